"""A small `pgdump` archive streamed: `pg_dump -Ft` into the store, the store into `pg_restore -Ft`.

A directory archive is one file per table. On thousands of tiny tables, creating those files
is most of the work: `pg_dump -Fd` of 5,000 tables took 4.2-4.5 s into a folder on ext4, and
`pg_dump -Ft` of the same tables to a pipe 3.0 s, as long as the plain dump. Parallel jobs only
pay for big tables, and a tar archive extracts to a valid directory archive (pg_dump's own
docs): so a database without much data in big tables is dumped as tar on pg_dump's standard
output, and its members are rewritten into the stored tar stream as they come, with no folder
but one for the table of contents (which `pg_restore --list` reads). The stored object is the
same kind of tar as the folder's, and restores either way.

`pg_restore` reads a tar archive from its standard input in one pass: the table of contents
first, then the table data in the order of the table of contents. `ordered_archive` feeds it
so, from any stored order (archives written from a folder are in name order): a member that
comes early waits in the scratch folder for its turn.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, Progress, dies_with_worker
from backup_engine.engines.postgresql.archive_members import (
    BLOCK,
    READ_BUFFER,
    TAR_END,
    TOC,
    RowCounter,
    TarOut,
    checked_member,
    copy_member,
    member_chunks,
    unexpected_in_dump,
)
from backup_engine.engines.postgresql.connect import classify_failure, client_run
from backup_engine.targets import Target

PG_DUMP_SCRIPT = "restore.sql"  # the plain script pg_dump adds to a tar archive: not part of a directory archive


class TarDump:
    """`pg_dump --format=tar` running with its archive on its standard output, from `__enter__`.

    Started before the caller decides between it and a parallel dump (which reads every table's
    size, 0.2 s at 5,000 tables, while pg_dump reads its catalog); `rewrite` takes its archive,
    and leaving the block without it stops pg_dump before it has written any data."""

    def __init__(self, target: Target, argv: list[str]) -> None:
        self._target, self._argv = target, argv
        self._stack = contextlib.ExitStack()
        self._process: subprocess.Popen | None = None
        self._stderr: BinaryIO | None = None

    def __enter__(self) -> TarDump:
        with contextlib.ExitStack() as stack:
            run = stack.enter_context(client_run(self._target))
            self._stderr = stack.enter_context(tempfile.TemporaryFile())
            self._process = subprocess.Popen(dies_with_worker(self._argv), stdin=subprocess.DEVNULL,
                                             stdout=subprocess.PIPE, stderr=self._stderr, env=run.env,
                                             pass_fds=run.pass_fds)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
                self._exited()
        finally:
            self._stack.close()

    def rewrite(self, out: ByteSink, toc_folder: Path, progress: Progress,
                toc_written: Callable[[], None] = lambda: None) -> dict[str, RowCounter]:
        """pg_dump's archive rewritten into `out` as a directory archive's tar stream (its table of
        contents also kept in `toc_folder`, and `toc_written` called then); each data file's row
        counter, named by the caller through the table of contents."""
        assert self._process is not None and self._process.stdout is not None
        try:
            counters = _rewrite(self._process.stdout, out, toc_folder, progress, toc_written)
        except tarfile.TarError as exc:  # its output ended early: pg_dump stopped, and its message says why
            failed = self._exited()
            raise failed or errors.DumpError(errors.NATIVE_BACKUP_FAILED, f"pg_dump's archive: {exc}") from exc
        except BaseException:  # ours (the store, a member refused): pg_dump goes, the reason is ours
            self._process.kill()
            self._exited()
            raise
        failed = self._exited()
        if failed is not None:
            raise failed
        return counters

    def _exited(self) -> errors.BackupError | None:
        """Wait for pg_dump (its output closed: it cannot block on it); its failure, or None."""
        assert self._process is not None and self._process.stdout is not None and self._stderr is not None
        with contextlib.suppress(OSError):
            self._process.stdout.close()
        if self._process.wait() == 0:
            return None
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace") or f"pg_dump exited with {self._process.returncode}"
        return classify_failure(text, default=errors.DumpError, default_message=errors.NATIVE_BACKUP_FAILED,
                                target=self._target)


def _rewrite(stdout: BinaryIO, out: ByteSink, toc_folder: Path, progress: Progress,
             toc_written: Callable[[], None]) -> dict[str, RowCounter]:
    counters: dict[str, RowCounter] = {}
    written = 0
    tar = TarOut(out)
    with tarfile.open(fileobj=stdout, mode="r|", bufsize=READ_BUFFER) as source:
        for index, member in enumerate(source):
            if member.name == PG_DUMP_SCRIPT and member.isreg():
                continue
            checked_member(member, first=index == 0, refuse=unexpected_in_dump)
            reader = source.extractfile(member)
            assert reader is not None
            if member.name == TOC:
                copy_member(reader, toc_folder / TOC)
                toc_written()
                with (toc_folder / TOC).open("rb") as toc:
                    tar.add(TOC, member.size, toc)
            else:
                counters[member.name] = tar.add(member.name, member.size, reader)
            written += member.size
            progress(phase="archive", bytes=written)
    tar.close()
    return counters


class _ChunkReader(io.RawIOBase):
    """A generator of byte chunks as a readable binary stream (what a client's feed reads)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def ordered_archive(members: Iterator[tuple[tarfile.TarInfo, BinaryIO]], toc: Path, order: list[str],
                    waiting_room: Path, drain: Callable[[], None]) -> BinaryIO:
    """A tar stream `pg_restore --format=tar` reads in one pass: `toc` first, then the data files
    in `order` (the table of contents'), from `members` in any order; a member read before its
    turn waits in `waiting_room`. `drain` reads the stored stream to its end and checks it: a
    mismatch raises in the reader, so the feed stops and pg_restore is killed."""
    return io.BufferedReader(_ChunkReader(_ordered_chunks(members, toc, order, waiting_room, drain)), BLOCK)


def _ordered_chunks(members: Iterator[tuple[tarfile.TarInfo, BinaryIO]], toc: Path, order: list[str],
                    waiting_room: Path, drain: Callable[[], None]) -> Iterator[bytes]:
    with toc.open("rb") as handle:
        yield from member_chunks(TOC, toc.stat().st_size, handle, tarfile.USTAR_FORMAT)
    turn = {name: position for position, name in enumerate(order)}
    waiting: set[str] = set()
    next_turn = 0
    for member, reader in members:
        if member.name not in turn or turn[member.name] < next_turn or member.name in waiting:
            raise errors.ArtifactError(errors.BAD_ARCHIVE, f"member {member.name!r} is not one the table of "
                                       "contents awaits")
        if turn[member.name] > next_turn:
            copy_member(reader, waiting_room / member.name)
            waiting.add(member.name)
            continue
        yield from member_chunks(member.name, member.size, reader, tarfile.USTAR_FORMAT)
        next_turn += 1
        while next_turn < len(order) and order[next_turn] in waiting:
            path = waiting_room / order[next_turn]
            with path.open("rb") as handle:
                yield from member_chunks(order[next_turn], path.stat().st_size, handle, tarfile.USTAR_FORMAT)
            path.unlink()
            waiting.discard(order[next_turn])
            next_turn += 1
    if next_turn < len(order):
        raise errors.ArtifactError(errors.BAD_ARCHIVE, f"no member {order[next_turn]!r}")
    drain()
    yield TAR_END
