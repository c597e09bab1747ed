"""Importing an uploaded file into the backup folder, so it can be restored like our own.

An upload is untrusted: it must sit inside the upload folder (no `..`, no symlinks), it is
sniffed by content, not by name (gzip, zip or binary junk called `.sql` is refused), and
foreign PostgreSQL SQL is screened as it is copied: whole-line psql meta-commands and
server-side `COPY ... PROGRAM` / file COPY are refused, and the restore runs it under psql's
`\\restrict`, so any backslash command hidden elsewhere fails too. The copy gets a manifest
(`origin: upload`) and is restored through the same all-or-nothing path as any backup.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

from backup_engine import errors
from backup_engine.artifacts import BackupStore, check_safe_name
from backup_engine.json_format import read_document
from backup_engine.postgresql import PlainDumpScanner
from backup_engine.sqlscreen import UploadScreen
from backup_engine.targets import Target

SNIFF_BYTES = 4096
SQLITE_MAGIC = b"SQLite format 3\x00"
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
UNSUPPORTED_RESTORE = {"postgresql": errors.UNSUPPORTED_PG_RESTORE, "sqlite": errors.UNSUPPORTED_SQLITE_RESTORE}
SQLITE_DUMP_END = b"COMMIT;"



def locate_upload(upload_dir: Path, path: object) -> Path:
    """The upload's real path: a relative path (or absolute one) inside the folder, no links."""
    if not isinstance(path, str) or not path:
        raise errors.InvalidRequest(errors.BAD_FILENAME, "path must be a non-empty string")
    if "\x00" in path:
        raise errors.InvalidRequest(errors.UNSAFE_PATH, "path contains a NUL byte")
    root = upload_dir.resolve()
    relative = path
    if os.path.isabs(path):
        relative = os.path.relpath(os.path.normpath(path), root)
    parts = relative.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise errors.InvalidRequest(errors.UNSAFE_PATH, f"{path!r} leaves the upload folder")
        check_safe_name(part, "upload path segment")
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise errors.InvalidRequest(errors.UNSAFE_PATH, f"{path!r} goes through a symbolic link")
    if not current.is_file():
        raise errors.ArtifactError(errors.BACKUP_NOT_FOUND, f"upload {path!r}")
    return current


def sniff_format(head: bytes, target: Target) -> str:
    """`sql`, `sqlite` or `json` from the first bytes; anything else is refused with a reason."""
    unsupported = UNSUPPORTED_RESTORE[target.dialect]
    if not head:
        raise errors.InvalidRequest(unsupported, "the uploaded file is empty")
    if head.startswith(GZIP_MAGIC):
        raise errors.InvalidRequest(unsupported, "the upload is gzip-compressed; upload the plain file")
    if head.startswith(ZIP_MAGIC):
        raise errors.InvalidRequest(unsupported, "a zip (CSV backup) is export only")
    if head.startswith(SQLITE_MAGIC):
        if target.dialect != "sqlite":
            raise errors.InvalidRequest(unsupported, "a SQLite database file restores only into SQLite")
        return "sqlite"
    if b"\x00" in head:
        raise errors.InvalidRequest(unsupported, "the upload is binary, not SQL text")
    if head.lstrip().startswith(b"{"):
        return "json"
    return "sql"


def import_upload(store: BackupStore, upload_dir: Path, path: str, target: Target,
                  prefix: str | None = None) -> dict[str, Any]:
    """Copy the upload into the backup folder under a backup name, with its manifest."""
    source = locate_upload(upload_dir, path)
    with source.open("rb") as handle:
        upload_format = sniff_format(handle.read(SNIFF_BYTES), target)
        handle.seek(0)
        extension = {"sqlite": "sqlite3", "json": "json"}.get(upload_format, "sql")
        with store.pending(extension) as pending:
            table_rows = _copy(handle, pending, upload_format, target)
            dialect, include_data = target.dialect, "full"
            if upload_format == "json":  # checked whole before it is kept: a bad document is refused here
                reader = read_document(pending.temp_path)
                dialect = reader.header.get("source_dialect", target.dialect)
                include_data = reader.header.get("include_data", "full")
                table_rows = {key: table.rows for key, table in reader.tables.items()}
            manifest = {
                "format": upload_format, "target": target.name, "dialect": dialect, "method": "upload",
                "origin": "upload", "imported_from": str(source.relative_to(upload_dir.resolve())),
                "include_data": include_data, "tables": len(table_rows) if table_rows is not None else None,
                "rows": sum(table_rows.values()) if table_rows is not None else None,
                "table_rows": table_rows or {}, "server_version": None, "duration_s": 0.0,
            }
            return store.publish(pending, prefix or target.name, manifest)


def _copy(handle: BinaryIO, pending: Any, upload_format: str, target: Target) -> dict[str, int] | None:
    if upload_format in ("sqlite", "json"):
        stream = pending.stream()
        while chunk := handle.read(1 << 20):
            stream.write(chunk)
        stream.flush()  # read back (JSON) or checked by SQLite before it is published
        return None
    if target.dialect == "postgresql":
        return _screen_postgresql(handle, pending.stream())
    return _copy_sqlite_sql(handle, pending.stream())


def _screen_postgresql(handle: BinaryIO, out: Any) -> dict[str, int]:
    """Copy foreign PostgreSQL SQL line by line through the screen, counting its rows."""
    scanner = PlainDumpScanner()
    screen = UploadScreen()
    for line in handle:
        line = screen.feed(line)
        scanner.feed(line)
        out.write(line)
    screen.finish()
    return scanner.table_rows


def _copy_sqlite_sql(handle: BinaryIO, out: Any) -> None:
    """Copy a foreign SQLite dump (e.g. `sqlite3 .dump`); it must end with COMMIT to be complete."""
    from backup_engine.sqlite import END_MARKER

    last = b""
    for line in handle:
        if b"\x00" in line:
            raise errors.InvalidRequest(errors.UNSUPPORTED_SQLITE_RESTORE, "binary data in the upload")
        out.write(line)
        if line.strip():
            last = line.strip()
    if last != SQLITE_DUMP_END and last != END_MARKER.encode():
        raise errors.InvalidRequest(errors.UNSUPPORTED_SQLITE_RESTORE,
                                    "the SQL upload does not end with COMMIT; (truncated?)")
    if last == SQLITE_DUMP_END:
        out.write(b"\n" + END_MARKER.encode() + b"\n")
    return None
