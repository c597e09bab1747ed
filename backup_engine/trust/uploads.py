"""Importing an uploaded file as a backup of its own, so it can be restored like one of ours.

An upload is untrusted from its path to its last byte:
- the path must stay inside the upload folder: each part is opened with `O_NOFOLLOW` relative to
  its folder's descriptor (`dir_fd`) and the file checked with `fstat`, so a symlink swapped in
  between a check and an open is never followed;
- the format is sniffed by content, not by name (a zip or binary junk called `.sql` is refused);
- the engine's gate reads it whole before it is kept (PostgreSQL: its own parser and an
  allowlist), and the bytes kept are exactly the bytes the gate read (one pass, teed);
- its manifest says `origin: upload` inside the signature, so its restore goes through the gate
  again, with a role that is not a superuser unless the operator allows it.
"""

from __future__ import annotations

import io
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from backup_engine import errors
from backup_engine.engines.base import MAX_STATEMENT_BYTES, Engine, UploadReport
from backup_engine.formats import FORMATS
from backup_engine.formats.json_document import read_document
from backup_engine.scratch import private_folder
from backup_engine.storage.base import check_object_name
from backup_engine.storage.catalogue import Catalogue, Entry, NewArtifact, utc_now
from backup_engine.storage.compression import GZIP, NONE, ZSTD, GzipReader, ZstdReader, sniff_compression

SNIFF_BYTES = 4096
BLOCK = 1 << 20
ZIP_MAGIC = b"PK\x03\x04"
TAR_MAGIC, TAR_MAGIC_AT = b"ustar", 257  # POSIX tar: the magic of the first header block
OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def upload_parts(upload_dir: Path, path: object) -> list[str]:
    """The path's parts below the upload folder, each a plain name; refused if it leaves the folder."""
    if not isinstance(path, str) or not path:
        raise errors.InvalidRequest(errors.BAD_FILENAME, "path must be a non-empty string")
    if "\x00" in path:
        raise errors.InvalidRequest(errors.UNSAFE_PATH, "path contains a NUL byte")
    relative = path
    if os.path.isabs(path):
        relative = os.path.relpath(os.path.normpath(path), upload_dir.resolve())
    parts = relative.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise errors.InvalidRequest(errors.UNSAFE_PATH, f"{path!r} leaves the upload folder")
        check_object_name(part, "upload path segment")
    return parts


@contextmanager
def open_upload(upload_dir: Path, path: object) -> Iterator[BinaryIO]:
    """The upload, opened without following any link at any level (`O_NOFOLLOW` at each step,
    relative to the folder descriptor above it) and checked to be a regular file."""
    parts = upload_parts(upload_dir, path)
    fds: list[int] = []
    try:
        try:
            fds.append(os.open(upload_dir, OPEN_DIR))
            for part in parts[:-1]:
                fds.append(os.open(part, OPEN_DIR, dir_fd=fds[-1]))
            fd = os.open(parts[-1], OPEN_FILE, dir_fd=fds[-1])
        except FileNotFoundError as exc:
            raise errors.ArtifactError(errors.BACKUP_NOT_FOUND, f"upload {path!r}") from exc
        except OSError as exc:  # ELOOP: a link; ENOTDIR: a link or file where a folder should be
            raise errors.InvalidRequest(errors.UNSAFE_PATH, f"{path!r} goes through a symbolic link "
                                        f"or something that is not a folder ({exc.strerror})") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise errors.InvalidRequest(errors.UNSAFE_PATH, f"{path!r} is not a regular file")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", buffering=BLOCK) as handle:
            yield handle
    finally:
        for descriptor in fds:
            os.close(descriptor)


def sniff_format(head: bytes, engine: Engine) -> str:
    """`sql`, `json` or an engine's own format from the first bytes; anything else refused with a reason."""
    unsupported = engine.unsupported_restore
    if not head:
        raise errors.InvalidRequest(unsupported, "the uploaded file is empty")
    if sniff_compression(head) != NONE:
        raise errors.InvalidRequest(unsupported, "the upload is compressed twice")
    if head.startswith(ZIP_MAGIC):
        raise errors.InvalidRequest(unsupported, "a zip (CSV backup) is export only")
    if head[TAR_MAGIC_AT:TAR_MAGIC_AT + len(TAR_MAGIC)] == TAR_MAGIC:
        raise errors.InvalidRequest(unsupported, errors.PGDUMP_NOT_UPLOADED)
    own = engine.sniff_upload(head)
    if own is not None:
        return own
    if b"SQLite format 3\x00" in head[:16]:
        raise errors.InvalidRequest(unsupported, "a SQLite database file restores only into SQLite")
    if b"\x00" in head:
        raise errors.InvalidRequest(unsupported, "the upload is binary, not SQL text")
    if head.lstrip().startswith(b"{"):
        return "json"
    return "sql"


def decompressed(handle: BinaryIO) -> io.BufferedReader:
    """The upload's plain bytes: a `.gz` or `.zst` upload is read through its decompressor (output
    bounded per read, a truncated stream refused), anything else as it is."""
    kind = sniff_compression(handle.peek(SNIFF_BYTES)[:SNIFF_BYTES])  # type: ignore[attr-defined]
    if kind == ZSTD:
        return io.BufferedReader(ZstdReader(handle), BLOCK)
    if kind == GZIP:
        return io.BufferedReader(GzipReader(handle), BLOCK)
    return handle  # type: ignore[return-value]


class Tee:
    """A readable stream that copies everything read from it into an artifact."""

    def __init__(self, source: BinaryIO, copy: NewArtifact) -> None:
        self._source = source
        self._copy = copy

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self._copy.write(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._source.readline(size)
        if data:
            self._copy.write(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def readable(self) -> bool:
        return True


def _check_in_scratch(catalogue: Catalogue, handle: BinaryIO, artifact: NewArtifact, upload_format: str,
                      engine: Engine, name: str, max_statement_bytes: int) -> UploadReport:
    """Formats read with seeking (a JSON document, a SQLite file): a private copy in scratch
    space is checked, then kept."""
    with private_folder(catalogue.store.scratch_dir) as folder:
        temp = folder / "upload"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as copy:
            while block := handle.read(BLOCK):
                copy.write(block)
        if upload_format == "json":
            reader = read_document(temp, name, max_line_bytes=max_statement_bytes)
            report = UploadReport(table_rows={key: table.rows for key, table in reader.tables.items()},
                                  include_data=reader.header.get("include_data", "full"),
                                  details={"dialect": reader.schema.get("dialect")})
        else:
            with temp.open("rb") as check:
                report = engine.check_upload(check, upload_format, max_statement_bytes)
        with temp.open("rb") as kept:
            while block := kept.read(BLOCK):
                artifact.write(block)
        return report


def import_upload(catalogue: Catalogue, engine: Engine, upload_dir: Path, path: str,
                  prefix: str | None = None, max_statement_bytes: int = MAX_STATEMENT_BYTES) -> Entry:
    """Check the upload through the engine's gate and keep it as a backup with `origin: upload`."""
    started = time.monotonic()
    with open_upload(upload_dir, path) as raw:
        handle = decompressed(raw)
        upload_format = sniff_format(handle.peek(SNIFF_BYTES)[:SNIFF_BYTES], engine)
        relative = "/".join(upload_parts(upload_dir, path))
        with catalogue.new_artifact(FORMATS[upload_format], prefix or engine.target.name, utc_now()) as artifact:
            if upload_format == "sql":
                report = engine.check_upload(Tee(handle, artifact), upload_format,  # type: ignore[arg-type]
                                             max_statement_bytes)
            else:
                report = _check_in_scratch(catalogue, handle, artifact, upload_format, engine, relative,
                                           max_statement_bytes)
            table_rows = report.table_rows
            fields: dict[str, Any] = {
                "format": upload_format, "target": engine.target.name,
                "dialect": report.details.get("dialect") or engine.name, "method": "upload", "origin": "upload",
                "imported_from": relative, "include_data": report.include_data, "tables": len(table_rows),
                "rows": sum(table_rows.values()), "table_rows": table_rows,
                "duration_s": round(time.monotonic() - started, 3),
            }
            if report.details.get("object_counts"):
                fields["object_counts"] = report.details["object_counts"]
            return artifact.publish(**fields)
