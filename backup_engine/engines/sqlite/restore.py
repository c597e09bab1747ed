"""SQLite restores, all or nothing: build the new database beside the target, check it, swap it in.

The new database is built in a hidden temp file beside the target, checked (integrity, foreign
keys, the backup's checksum), and copied over the target with the backup API in a single
step, so other connections see the old or the new database, never a mix.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from backup_engine import errors
from backup_engine.engines.base import ArtifactSource, Ready, no_wait
from backup_engine.engines.sqlite import files
from backup_engine.engines.sqlite.statements import END_MARKER, ScriptReader, run_script

BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED: what a backup step returns while the target is locked


def check_built(conn: sqlite3.Connection, check_foreign_keys: bool) -> None:
    problem = files.check_integrity(conn)
    if problem:
        raise errors.RestoreError(errors.RESTORE_FAILED, f"integrity_check: {problem}")
    if check_foreign_keys:
        violations = conn.execute("PRAGMA foreign_key_check").fetchmany(5)
        if violations:
            shown = ", ".join(f"{table} rowid {rowid} -> {parent}" for table, rowid, parent, _ in violations)
            raise errors.RestoreError(errors.RESTORE_FAILED, f"foreign key violations: {shown}")


def target_layout(path: Path) -> tuple[int, int] | None:
    """(page_size, auto_vacuum) of an existing target, so the swap keeps its file layout."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with closing(files.open_read_only(path)) as conn:
        return (conn.execute("PRAGMA page_size").fetchone()[0], conn.execute("PRAGMA auto_vacuum").fetchone()[0])


def start_empty(conn: sqlite3.Connection, path: Path) -> None:
    layout = target_layout(path)
    if layout:
        conn.execute(f"PRAGMA page_size={int(layout[0])}")
        conn.execute(f"PRAGMA auto_vacuum={int(layout[1])}")


def start_from_emptied_copy(conn: sqlite3.Connection, path: Path) -> list[str]:
    """Copy the target and delete every row, so a data-only file leaves exactly its own rows.

    Triggers are dropped while rows are deleted and inserted (they would add or change rows)
    and their SQL returned, to be created again afterwards.
    """
    if not path.is_file():
        raise errors.RestoreError(errors.RESTORE_FAILED, f"{errors.TARGET_MISSING}: a data-only restore needs "
                                  "a database that has the schema")
    with files.read_transaction(path) as source:
        source.backup(conn, pages=-1)
    conn.execute("PRAGMA journal_mode=OFF")
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY rowid").fetchall()
    for name, _ in triggers:
        conn.execute(f"DROP TRIGGER {files.quote_identifier(name)}")
    for name in files.user_table_names(conn):
        conn.execute(f"DELETE FROM {files.quote_identifier(name)}")  # noqa: S608 - quoted identifiers
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        conn.execute("DELETE FROM sqlite_sequence")
    return [sql for _, sql in triggers if sql]


class BusyDeadline:
    """Backup progress callback that gives up once the target has stayed locked too long
    (Python's backup loop would otherwise retry a busy target forever)."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def __call__(self, status: int, remaining: int, total: int) -> None:
        if status in BUSY_CODES and time.monotonic() > self.deadline:
            raise errors.TargetUnavailable(errors.TARGET_UNREACHABLE, "target database stayed locked; not restored")


def swap_in(source: sqlite3.Connection, path: Path) -> None:
    """Copy `source` over the target in one backup step: readers see old or new, never a mix.

    A missing target file is created (mode 0600) and removed again if the copy fails.
    """
    created = False
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, files.FILE_MODE))
        created = True
    try:
        with closing(sqlite3.connect(path, timeout=files.LOCK_TIMEOUT_S, isolation_level=None)) as dest:
            source.backup(dest, pages=-1, progress=BusyDeadline(files.LOCK_TIMEOUT_S))
    except BaseException:
        if created:
            files.remove_database_files(path)
        raise


@contextmanager
def building_beside(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a hidden temp database next to the target, removed whatever happens."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.restore-", dir=path.parent or Path("."))
    os.close(fd)  # mkstemp creates it 0600
    temp = Path(temp_name)
    try:
        with closing(sqlite3.connect(temp, isolation_level=None)) as conn:
            yield conn
    finally:
        files.remove_database_files(temp)


def as_restore_error(exc: sqlite3.Error | OSError, what: str) -> errors.BackupError:
    if isinstance(exc, sqlite3.Error) and files.is_transient(exc):
        return errors.TargetUnavailable(errors.TARGET_UNREACHABLE, f"{what}: {exc}; target unchanged")
    return errors.RestoreError(errors.RESTORE_FAILED, f"{what}: {exc}")


def build_and_swap(path: Path, build: Callable[[sqlite3.Connection], None], what: str,
                   ready: Ready = no_wait) -> None:
    """Build the new database in a temp file beside the target, then swap it in once `ready`."""
    try:
        with building_beside(path) as conn:
            build(conn)
            ready()
            swap_in(conn, path)
    except (sqlite3.Error, OSError) as exc:
        raise as_restore_error(exc, what) from exc


def restore_sql(path: Path, source: ArtifactSource, include_data: str, *, check_foreign_keys: bool = True,
                require_marker: bool = True, ready: Ready = no_wait) -> None:
    """Make the database at `path` hold exactly what the SQL script holds, or leave it untouched.

    `check_foreign_keys=False` accepts a dump whose source already broke its foreign keys;
    `require_marker=False` takes a script that ends with COMMIT but not our marker (an upload).
    """

    def build(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA foreign_keys=OFF")
        triggers: list[str] = []
        if include_data == "data":
            triggers = start_from_emptied_copy(conn, path)
        else:
            start_empty(conn, path)
            conn.execute("PRAGMA journal_mode=OFF")  # a private temp file: discarded on any failure
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA trusted_schema=OFF")
        with source.open() as stream:
            script = ScriptReader(stream, source.name)
            run_script(conn, script)
            source.verify()  # only the file the manifest describes goes in
        if require_marker and script.last_line != END_MARKER:
            raise errors.RestoreError(errors.RESTORE_FAILED, f"{source.name} is incomplete (no end marker)")
        for sql in triggers:
            conn.execute(sql)
        check_built(conn, check_foreign_keys)

    build_and_swap(path, build, f"restore of {source.name}", ready)


def restore_snapshot(path: Path, source: ArtifactSource, ready: Ready = no_wait) -> None:
    """Swap a `.sqlite3` snapshot into the target after checking it, all or nothing.

    When the target is in WAL mode with another page size (which the backup API cannot copy
    into), the snapshot is first copied beside the target and vacuumed to the target's page size.
    """
    try:
        with source.local_file() as snapshot_path, closing(files.open_read_only(snapshot_path)) as snap:
            problem = files.check_integrity(snap)
            if problem:
                raise errors.RestoreError(errors.RESTORE_FAILED, f"integrity_check of {source.name}: {problem}")
            layout = target_layout(path)
            if layout is None or not needs_resize(path, snap, layout[0]):
                ready()
                swap_in(snap, path)
                return

            def build(conn: sqlite3.Connection) -> None:
                snap.backup(conn, pages=-1)
                conn.execute("PRAGMA journal_mode=DELETE")
                conn.execute(f"PRAGMA page_size={int(layout[0])}")
                conn.execute("VACUUM")

            build_and_swap(path, build, f"restore of {source.name}", ready)
    except (sqlite3.Error, OSError) as exc:
        raise as_restore_error(exc, f"restore of {source.name}") from exc


def needs_resize(path: Path, snap: sqlite3.Connection, page_size: int) -> bool:
    with closing(files.open_read_only(path)) as conn:
        wal = conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    return wal and snap.execute("PRAGMA page_size").fetchone()[0] != page_size
