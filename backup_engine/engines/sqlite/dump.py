"""SQLite backups: online-backup-API snapshots, and the names of every SQLite backup method.

Backups never read the live file for long: `take_snapshot` copies it with the online backup
API inside one read transaction (a consistent state even while other processes write); the
native SQL dump is generated from such a private copy in the worker's scratch space (`script`).
No SQLAlchemy here: a snapshot backup, a restore and a drill never import it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from pathlib import Path

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, DumpResult
from backup_engine.engines.sqlite import files
from backup_engine.scratch import private_folder
from backup_engine.targets import Target

SNAPSHOT_METHOD = "sqlite-backup-api"
SQL_METHOD = "sqlite-sql"
GENERATED_METHOD = "sqlalchemy"
BLOCK = 1 << 20


def take_snapshot(target: Target, dest_path: Path) -> dict[str, int]:
    """Copy the target into `dest_path` (an empty file), then check and count the copy."""
    copy_snapshot(target, dest_path)
    return verified_row_counts(dest_path)


def copy_snapshot(target: Target, dest_path: Path) -> None:
    """Copy the target into `dest_path` (an empty file) with the online backup API.

    The copy is taken in one backup step inside a read transaction: one committed state,
    whatever other processes are writing. It is checked on its own (`verified_row_counts`).
    """
    source = files.existing_database_path(target)
    try:
        with files.read_transaction(source) as src, \
                closing(sqlite3.connect(dest_path, isolation_level=None)) as dest:
            src.backup(dest, pages=-1)
            dest.execute("PRAGMA journal_mode=DELETE")  # a WAL source would leave a WAL-mode copy
    except sqlite3.Error as exc:
        if files.is_transient(exc):
            raise errors.TargetUnavailable(errors.TARGET_UNREACHABLE, f"{source.name}: {exc}") from exc
        raise errors.DumpError(errors.NATIVE_BACKUP_FAILED, f"SQLite backup of {source.name}: {exc}") from exc


def verified_row_counts(path: Path) -> dict[str, int]:
    """The row counts of the database at `path`, once `PRAGMA integrity_check` has passed it."""
    with closing(files.open_read_only(path)) as conn:
        problem = files.check_integrity(conn)
        if problem:
            raise errors.DumpError(errors.NATIVE_BACKUP_FAILED, f"integrity_check of the snapshot: {problem}")
        return files.count_rows(conn)


def _checked_snapshot(path: Path) -> dict[str, int]:
    try:
        return verified_row_counts(path)
    except sqlite3.Error as exc:
        raise errors.DumpError(errors.NATIVE_BACKUP_FAILED, f"integrity_check of the snapshot: {exc}") from exc


@contextmanager
def private_snapshot(target: Target, scratch_dir: Path) -> Iterator[tuple[Path, Future[dict[str, int]]]]:
    """A snapshot of the target in a private folder of the scratch space, removed afterwards,
    with its verified row counts to come.

    The check (`integrity_check`, then the counts) runs on its own thread while the caller reads
    the copy: SQLite lets go of the GIL while it works, so the check costs no time of its own
    next to the compression of a snapshot or the writing of its script. The caller must take the
    counts (`.result()`, which raises when the check failed) before it calls the backup good.
    """
    with private_folder(scratch_dir) as folder:
        snap = folder / "snapshot.sqlite3"
        os.close(os.open(snap, os.O_WRONLY | os.O_CREAT | os.O_EXCL, files.FILE_MODE))
        copy_snapshot(target, snap)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-check") as pool:
            yield snap, pool.submit(_checked_snapshot, snap)


def write_snapshot(target: Target, out: ByteSink, scratch_dir: Path) -> DumpResult:
    """The `sqlite` format: a snapshot, streamed into `out` while it is checked."""
    with private_snapshot(target, scratch_dir) as (snap, checked), snap.open("rb") as handle:
        while block := handle.read(BLOCK):
            out.write(block)
        table_rows = checked.result()
    return DumpResult(method=SNAPSHOT_METHOD, server_version=sqlite3.sqlite_version, table_rows=table_rows)
