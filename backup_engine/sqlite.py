"""SQLite's native path: online-backup-API snapshots, a SQL dump of a snapshot, swap-in restores.

Backups never read the live file for long: `snapshot` copies it with the online backup API
inside one read transaction (a consistent state even while other processes write), and the
SQL dump is generated from such a private copy. Restores are all or nothing: the new database
is built in a hidden temp file beside the target, checked, and copied over the target with
the backup API in a single step, so other connections see the old or the new database,
never a mix. The SQL text is written by the one SQLite generator, `sqlgen.dump_sqlite_file`
(not `Connection.iterdump()`, which renders infinities as the bare word `Inf`, not valid SQL, and
REALs through `quote()`, whose text this SQLite does not always read back to the same double).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from backup_engine import errors
from backup_engine.artifacts import tail_of
from backup_engine.dumpinfo import INCLUDE_DATA_MODES, ByteSink, DumpResult, Progress, no_progress
from backup_engine.sqlliterals import decode_sqlite_text
from backup_engine.targets import Target

SNAPSHOT_METHOD = "sqlite-backup-api"
SQL_METHOD = "sqlite-sql"
HEADER_MARKER = "-- SQLite database dump (backup worker)"
END_MARKER = "-- SQLite database dump complete"
LOCK_TIMEOUT_S = 5.0
MARKER_TAIL_BYTES = 4096
FILE_MODE = 0o600
SIDE_FILE_SUFFIXES = ("", "-journal", "-wal", "-shm")
BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED: what a backup step returns while the target is locked
TRANSIENT_ERRORS = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_READONLY_ROLLBACK")

# What a SQL file being restored may do: plain DDL and DML on the new database only.
ALLOWED_PRAGMAS = frozenset({"foreign_keys", "defer_foreign_keys", "user_version", "application_id"})
# Read-only pragmas SQLite's own modules run while creating tables (fts5: data_version, rtree: page_size).
QUERY_PRAGMAS = frozenset({"data_version", "page_size", "schema_version", "table_info", "table_xinfo",
                           "index_list", "index_info", "index_xinfo", "foreign_key_list"})
DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})
ALLOWED_SCHEMAS = (None, "main", "temp")


# --- paths and connections ---------------------------------------------------------------
def database_path(target: Target) -> Path:
    """The target's database file, as named by its URL."""
    database = target.url.database
    if target.dialect != "sqlite" or not database or database == ":memory:":
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
        try:
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            if is_transient(exc):
                raise errors.TargetUnavailable(errors.TARGET_UNREACHABLE, f"{path.name}: {exc}") from exc
            raise
        yield conn
    finally:
        conn.close()


@contextmanager
def snapshot_connection(path: Path, failure_message: str, what: str = "") -> Iterator[sqlite3.Connection]:
    """A read-only connection in one read transaction (a consistent state for schema and rows),
    reading text losslessly. The SQLite twin of `pgconnect.snapshot_connection`.

    A locked file is TargetUnavailable; any other failure inside the block becomes
    DumpError(failure_message, what + reason).
    """
    try:
        with closing(open_read_only(path)) as raw:
            raw.text_factory = decode_sqlite_text
            raw.isolation_level = None
            raw.execute("BEGIN")
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


# --- snapshot ---------------------------------------------------------------------------
def snapshot(target: Target, dest_path: Path) -> DumpResult:
    """Copy the target into `dest_path` (an empty file) with the online backup API.

    The copy is taken in one backup step inside a read transaction: one committed state,
    whatever other processes are writing. It is then checked and counted on its own.
    """
    source = existing_database_path(target)
    try:
        with read_transaction(source) as src, closing(sqlite3.connect(dest_path, isolation_level=None)) as dest:
            src.backup(dest, pages=-1)
            dest.execute("PRAGMA journal_mode=DELETE")  # a WAL source would leave a WAL-mode copy
        return DumpResult(method=SNAPSHOT_METHOD, server_version=sqlite3.sqlite_version,
                          table_rows=verified_row_counts(dest_path))
    except sqlite3.Error as exc:
        if is_transient(exc):
            raise errors.TargetUnavailable(errors.TARGET_UNREACHABLE, f"{source.name}: {exc}") from exc
        raise errors.DumpError(errors.NATIVE_BACKUP_FAILED, f"SQLite backup of {source.name}: {exc}") from exc


def verified_row_counts(path: Path) -> dict[str, int]:
    with closing(open_read_only(path)) as conn:
        problem = check_integrity(conn)
        if problem:
            raise errors.DumpError(errors.NATIVE_BACKUP_FAILED, f"integrity_check of the snapshot: {problem}")
        return count_rows(conn)


# --- SQL dump ------------------------------------------------------------------------------
def check_include_data(include_data: str) -> None:
    if include_data not in INCLUDE_DATA_MODES:
        raise errors.InvalidRequest(errors.UNKNOWN_INCLUDE_DATA, repr(include_data))


def dump_sql(target: Target, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
    """Stream a restorable SQL dump of a private snapshot of the target into `out`.

    Dumping from a snapshot keeps the source's read lock short and the dump consistent.
    """
    from backup_engine.sqlgen import dump_sqlite_file  # sqlgen imports this module: imported when used

    check_include_data(include_data)
    with tempfile.TemporaryDirectory(prefix="sqlite-dump-") as folder:  # mkdtemp: mode 0700
        snap = Path(folder) / "snapshot.sqlite3"
        os.close(os.open(snap, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        snapshot_result = snapshot(target, snap)
        table_rows = dump_sqlite_file(snap, out, include_data, progress, header=HEADER_MARKER,
                                      failure=errors.NATIVE_BACKUP_FAILED)
    expected = {name: (0 if include_data == "schema" else rows) for name, rows in snapshot_result.table_rows.items()}
    if table_rows != expected:
        raise errors.DumpError(errors.NATIVE_BACKUP_FAILED, "rows written differ from the snapshot's row counts")
    return DumpResult(method=SQL_METHOD, server_version=sqlite3.sqlite_version, table_rows=table_rows)


# --- restore ------------------------------------------------------------------------------
def restore_authorizer(action: int, arg1: str | None, arg2: str | None, db_name: str | None,
                       _source: str | None) -> int:
    """What a restored SQL file may do: no ATTACH/DETACH (nor VACUUM INTO, which attaches),
    no other schema than the new database, only harmless pragmas, no extension loading."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH) or db_name not in ALLOWED_SCHEMAS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        allowed = name in ALLOWED_PRAGMAS or (name in QUERY_PRAGMAS and arg2 is None)
        return sqlite3.SQLITE_OK if allowed else sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def require_end_marker(sql_path: Path) -> None:
    """Refuse a file that does not end with the marker: a truncated dump is not a backup."""
    lines = tail_of(sql_path, MARKER_TAIL_BYTES).rstrip().splitlines()
    if not lines or lines[-1].strip() != END_MARKER.encode():
        raise errors.RestoreError(errors.RESTORE_FAILED, f"{sql_path.name} is incomplete (no end marker)")


def only_comments(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("--") for line in text.splitlines())


def sql_statements(sql_path: Path) -> Iterator[tuple[int, str]]:
    """(line number, statement) pairs, read line by line: the file is never held in memory.

    `newline=""` keeps carriage returns inside text values as they were written.
    """
    buffer: list[str] = []
    with open(sql_path, encoding="utf-8", newline="") as handle:
        for line_no, line in enumerate(handle, 1):
            buffer.append(line)
            if line.rstrip().endswith(";"):
                statement = "".join(buffer)
                if sqlite3.complete_statement(statement):
                    yield line_no, statement
                    buffer = []
    if not only_comments("".join(buffer)):
        raise errors.RestoreError(errors.RESTORE_FAILED, f"{sql_path.name} is incomplete (unfinished statement)")


def describe_statement(statement: str) -> str:
    lines = [line for line in statement.splitlines() if line.strip() and not line.lstrip().startswith("--")]
    return (lines[0] if lines else "").split("(")[0].strip()[:80]


def run_sql_file(conn: sqlite3.Connection, sql_path: Path) -> None:
    conn.set_authorizer(restore_authorizer)
    number = 0
    try:
        for line_no, statement in sql_statements(sql_path):
            number += 1
            try:
                conn.execute(statement)
            except (sqlite3.Error, sqlite3.Warning) as exc:
                raise errors.RestoreError(errors.RESTORE_FAILED, f"statement {number} (line {line_no}, "
                                          f"{describe_statement(statement)!r}): {exc}") from exc
    except UnicodeDecodeError as exc:
        raise errors.RestoreError(errors.RESTORE_FAILED, f"{sql_path.name} is not UTF-8 text: {exc}") from exc
    finally:
        conn.set_authorizer(None)
    if conn.in_transaction:
        raise errors.RestoreError(errors.RESTORE_FAILED, f"{sql_path.name} is incomplete (no COMMIT)")


def check_built(conn: sqlite3.Connection, check_foreign_keys: bool) -> None:
    problem = check_integrity(conn)
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
    with closing(open_read_only(path)) as conn:
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
    with read_transaction(path) as source:
        source.backup(conn, pages=-1)
    conn.execute("PRAGMA journal_mode=OFF")
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY rowid").fetchall()
    for name, _ in triggers:
        conn.execute(f"DROP TRIGGER {quote_identifier(name)}")
    for name in user_table_names(conn):
        conn.execute(f"DELETE FROM {quote_identifier(name)}")  # noqa: S608 - quoted identifiers
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
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        created = True
    try:
        with closing(sqlite3.connect(path, timeout=LOCK_TIMEOUT_S, isolation_level=None)) as dest:
            source.backup(dest, pages=-1, progress=BusyDeadline(LOCK_TIMEOUT_S))
    except BaseException:
        if created:
            remove_database_files(path)
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
        remove_database_files(temp)


def as_restore_error(exc: sqlite3.Error | OSError, what: str) -> errors.BackupError:
    if isinstance(exc, sqlite3.Error) and is_transient(exc):
        return errors.TargetUnavailable(errors.TARGET_UNREACHABLE, f"{what}: {exc}; target unchanged")
    return errors.RestoreError(errors.RESTORE_FAILED, f"{what}: {exc}")


def build_and_swap(path: Path, build: Callable[[sqlite3.Connection], None], what: str) -> None:
    try:
        with building_beside(path) as conn:
            build(conn)
            swap_in(conn, path)
    except (sqlite3.Error, OSError) as exc:
        raise as_restore_error(exc, what) from exc


def restore_sql(target: Target, sql_path: Path, include_data: str, *, check_foreign_keys: bool = True) -> None:
    """Make the target hold exactly what the SQL dump holds, or leave it untouched.

    `check_foreign_keys=False` accepts a dump whose source already broke its foreign keys.
    """
    check_include_data(include_data)
    path = database_path(target)
    try:
        require_end_marker(sql_path)
    except OSError as exc:
        raise errors.RestoreError(errors.RESTORE_FAILED, f"{sql_path.name}: {exc}") from exc

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
        run_sql_file(conn, sql_path)
        for sql in triggers:
            conn.execute(sql)
        check_built(conn, check_foreign_keys)

    build_and_swap(path, build, f"restore of {sql_path.name}")


def restore_snapshot(target: Target, snapshot_path: Path) -> None:
    """Swap a `.sqlite3` snapshot into the target after checking it, all or nothing.

    When the target is in WAL mode with another page size (which the backup API cannot copy
    into), the snapshot is first copied beside the target and vacuumed to the target's page size.
    """
    path = database_path(target)
    try:
        with closing(open_read_only(snapshot_path)) as snap:
            problem = check_integrity(snap)
            if problem:
                raise errors.RestoreError(errors.RESTORE_FAILED, f"integrity_check of {snapshot_path.name}: {problem}")
            layout = target_layout(path)
            if layout is None or not needs_resize(path, snap, layout[0]):
                swap_in(snap, path)
                return

            def build(conn: sqlite3.Connection) -> None:
                snap.backup(conn, pages=-1)
                conn.execute("PRAGMA journal_mode=DELETE")
                conn.execute(f"PRAGMA page_size={int(layout[0])}")
                conn.execute("VACUUM")

            build_and_swap(path, build, f"restore of {snapshot_path.name}")
    except (sqlite3.Error, OSError) as exc:
        raise as_restore_error(exc, f"restore of {snapshot_path.name}") from exc


def needs_resize(path: Path, snap: sqlite3.Connection, page_size: int) -> bool:
    with closing(open_read_only(path)) as conn:
        wal = conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    return wal and snap.execute("PRAGMA page_size").fetchone()[0] != page_size
