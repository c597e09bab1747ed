"""A SQLite target's file: its path, read-only connections and read transactions, what it holds.

A backup must never alter its source, so every connection here is opened read-only, and a
backup reads one committed state inside one read transaction, whatever other processes write.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from backup_engine import errors
from backup_engine.formats.values import decode_text
from backup_engine.targets import Target

LOCK_TIMEOUT_S = 5.0
LOCK_POLL_S = 0.2
READ_LOCK_WAIT_S = 30.0
READ_LOCK_POLL_S = 0.002
FILE_MODE = 0o600
SIDE_FILE_SUFFIXES = ("", "-journal", "-wal", "-shm")
TRANSIENT_ERRORS = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_READONLY_ROLLBACK")


# --- paths and connections ---------------------------------------------------------------
def database_path(target: Target) -> Path:
    """The target's database file, as named by its URL."""
    database = target.url.database
    if not database or database == ":memory:":
        raise errors.InvalidRequest(errors.CONFIG_INVALID, f"target {target.name!r} is not a SQLite file")
    return Path(database)


def existing_database_path(target: Target) -> Path:
    path = database_path(target)
    if not path.is_file():
        raise errors.InvalidRequest(errors.TARGET_MISSING, f"target {target.name!r}: no file at {path}")
    return path


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that can never create or change the file (a backup must not alter its source)."""
    uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=LOCK_TIMEOUT_S, isolation_level=None)


def is_transient(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(TRANSIENT_ERRORS) or "locked" in str(exc)


@contextmanager
def read_transaction(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection holding a read transaction, so a backup copies one committed state.

    The busy timeout retries while a writer holds the lock; past it the target counts as
    unavailable (worth a later retry), not as a failed backup.
    """
    conn = open_read_only(path)
    try:
        begin_read(conn, path)
        yield conn
    finally:
        conn.close()


def begin_read(conn: sqlite3.Connection, path: Path) -> None:
    """Open a read transaction and take its shared lock, however busy the writers are.

    In rollback-journal mode a writer's commit shuts new readers out, and SQLite's own busy
    handler sleeps up to 100 ms between tries, so a reader can miss every short gap between the
    commits of a tight write loop and starve. Polling every few milliseconds finds those gaps;
    past READ_LOCK_WAIT_S the target counts as unavailable (worth a later retry), not as a
    failed backup. Once the shared lock is held, the connection's usual busy timeout returns.
    """
    conn.execute("PRAGMA busy_timeout = 0")
    deadline = time.monotonic() + READ_LOCK_WAIT_S
    try:
        while True:
            try:
                conn.execute("BEGIN")
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if not is_transient(exc):
                    raise
                if time.monotonic() > deadline:
                    raise errors.TargetUnavailable(errors.TARGET_UNREACHABLE, f"{path.name}: {exc}") from exc
                time.sleep(READ_LOCK_POLL_S)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(LOCK_TIMEOUT_S * 1000)}")


@contextmanager
def snapshot_connection(path: Path, failure_message: str, what: str = "") -> Iterator[sqlite3.Connection]:
    """A read-only connection in one read transaction (a consistent state for schema and rows),
    reading text losslessly. The SQLite twin of `pgconnect.snapshot_connection`.

    A locked file is TargetUnavailable; any other failure inside the block becomes
    DumpError(failure_message, what + reason).
    """
    try:
        with closing(open_read_only(path)) as raw:
            raw.text_factory = decode_text
            raw.isolation_level = None
            begin_read(raw, path)
            yield raw
    except errors.BackupError:
        raise
    except sqlite3.Error as exc:
        if is_transient(exc):
            raise errors.TargetUnavailable(errors.TARGET_UNREACHABLE, f"{path.name}: {exc}") from exc
        raise errors.DumpError(failure_message, f"{what}{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - every failure becomes one dump error, with its reason
        raise errors.DumpError(failure_message, f"{what}{type(exc).__name__}: {exc}") from exc


def remove_database_files(path: Path) -> None:
    for suffix in SIDE_FILE_SUFFIXES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --- what a database holds ---------------------------------------------------------------
def table_kinds(conn: sqlite3.Connection) -> dict[str, tuple[str, bool]]:
    """name -> (kind, without_rowid) for the main schema; kinds are table, virtual, shadow, view."""
    rows = conn.execute("SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main'").fetchall()
    return {name: (kind, bool(wr)) for name, kind, wr in rows}


def schema_objects(conn: sqlite3.Connection) -> list[tuple[str, str, str, str]]:
    """(type, name, tbl_name, sql) of user objects in creation order; internal and shadow
    tables are left out (SQLite makes them itself)."""
    kinds = table_kinds(conn)
    shadow = {name for name, (kind, _) in kinds.items() if kind == "shadow"}
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid").fetchall()
    return [row for row in rows
            if not row[1].startswith("sqlite_") and row[1] not in shadow and row[2] not in shadow]


def user_table_names(conn: sqlite3.Connection) -> list[str]:
    """The user's tables (ordinary and virtual, not shadow), in creation order."""
    return [name for kind, name, _, _ in schema_objects(conn) if kind == "table"]


def count_rows(conn: sqlite3.Connection) -> dict[str, int]:
    counts = {}
    for name in user_table_names(conn):
        sql = f"SELECT count(*) FROM {quote_identifier(name)}"  # noqa: S608 - quoted identifier
        counts[name] = conn.execute(sql).fetchone()[0]
    return counts


def check_integrity(conn: sqlite3.Connection) -> str | None:
    """None when `PRAGMA integrity_check` says ok, else its first findings."""
    findings = [row[0] for row in conn.execute("PRAGMA integrity_check(20)").fetchall()]
    return None if findings == ["ok"] else "; ".join(findings)


@contextmanager
def exclusive(path: Path, target_name: str, wait_s: float) -> Iterator[None]:
    """The target's lock: an flock on a hidden file beside the database (a SQLite file is only ever
    reached from its own machine), released by the kernel the moment its holder dies."""
    lock_path = path.with_name(f".{path.name}.backup-worker-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise errors.TargetBusy(errors.TARGET_BUSY, f"another backup or restore of {target_name!r} "
                                            f"is running (waited {wait_s:.0f}s)") from None
                time.sleep(LOCK_POLL_S)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
