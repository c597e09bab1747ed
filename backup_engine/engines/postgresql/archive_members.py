"""The members of a stored `pgdump` archive: which names may be in it, and how each is copied.

A stored archive is a tar stream of a pg_dump directory archive: `toc.dat` first, then the
data files, under the names pg_dump gives them and no other (a member named anything else, or
that is not a regular file, is refused before anything is written for it). A table's data file
is COPY text ending in `\\.`; its rows are counted as it passes.

Tar streams are written here (`TarOut`), not by tarfile's stream mode, and read by it with a
small buffer: its stream buffer is a bytes object copied whole on every write, and its unread
part copied on every read, which on thousands of small members was a tenth of a dump.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink

BLOCK = 1 << 20
READ_BUFFER = 64 << 10  # tarfile's stream buffer when reading (see the module doc)
TAR_END = b"\0" * (2 * tarfile.BLOCKSIZE)
TOC = "toc.dat"
# The files pg_dump writes into a directory archive (uncompressed), and nothing else.
MEMBER_NAME = re.compile(r"toc\.dat|blobs\.toc|[0-9]{1,10}\.dat|blob_[0-9]{1,10}\.dat")
TABLE_DATA_FILE = re.compile(r"([0-9]{1,10})\.dat")
COPY_END = b"\\.\n\n\n"  # how pg_dump ends every table data file


class RowCounter:
    """A data file read through on its way, counting its COPY lines."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.newlines = 0
        self.tail = b""

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self.newlines += chunk.count(b"\n")
        self.tail = (self.tail + chunk)[-len(COPY_END):]
        return chunk

    def rows(self, name: str) -> int:
        """The rows of table data file `name`; DumpError unless it ends its COPY."""
        if self.tail != COPY_END:
            raise errors.DumpError(errors.INCOMPLETE_DUMP, f"table data file {name} does not end its COPY")
        return self.newlines - COPY_END.count(b"\n")


def checked_member(member: tarfile.TarInfo, *, first: bool, refuse: Callable[[str], errors.BackupError]) -> None:
    """Raise `refuse(why)` unless `member` is a regular file under one of pg_dump's own names, and
    the table of contents exactly when it is the first."""
    if not member.isreg() or not MEMBER_NAME.fullmatch(member.name):
        raise refuse(f"member {member.name!r}")
    if first and member.name != TOC:
        raise refuse(f"{member.name!r} before {TOC}")
    if not first and member.name == TOC:
        raise refuse(f"a second {TOC}")


def unexpected_in_dump(what: str) -> errors.BackupError:
    """The backup's failure for a member pg_dump's archive should not hold (`checked_member`'s refusal)."""
    return errors.DumpError(errors.NATIVE_BACKUP_FAILED, f"unexpected file in pg_dump's archive: {what}")


def member_chunks(name: str, size: int, reader: BinaryIO, tar_format: int = tarfile.PAX_FORMAT) -> Iterator[bytes]:
    """One tar member: its header, `size` bytes of `reader`, the padding to a whole block.
    (pg_restore reads USTAR headers only; PAX writes one too unless the size needs more.)"""
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o600
    yield info.tobuf(format=tar_format, encoding="utf-8", errors="strict")
    left = size
    while left and (block := reader.read(min(BLOCK, left))):
        left -= len(block)
        yield block
    if left:
        raise errors.ArtifactError(errors.BAD_ARCHIVE, f"member {name!r} ends {left} bytes early")
    if size % tarfile.BLOCKSIZE:
        yield b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE)


class TarOut:
    """A tar stream written into `out` in writes of about BLOCK bytes."""

    def __init__(self, out: ByteSink) -> None:
        self._out = out
        self._pending = bytearray()

    def add(self, name: str, size: int, reader: BinaryIO) -> RowCounter:
        """One member, read through a RowCounter (returned)."""
        counter = RowCounter(reader)
        for chunk in member_chunks(name, size, counter):  # type: ignore[arg-type]
            self._pending += chunk
            if len(self._pending) >= BLOCK:
                self._out.write(bytes(self._pending))
                self._pending.clear()
        return counter

    def close(self) -> None:
        """The end of the archive."""
        self._out.write(bytes(self._pending) + TAR_END)
        self._pending.clear()


def copy_member(reader: BinaryIO, path: Path) -> None:
    """A member's content into a new file at `path` (a name given twice is refused: FileExistsError)."""
    with open(path, "xb") as handle:
        while block := reader.read(BLOCK):
            handle.write(block)
