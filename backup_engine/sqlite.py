"""SQLite's native path: online-backup-API snapshots, a SQL dump of a snapshot, swap-in restores.

Backups never read the live file for long: `snapshot` copies it with the online backup API
inside one read transaction (a consistent state even while other processes write), and the
SQL dump is generated from such a private copy. Restores are all or nothing: the new database
is built in a hidden temp file beside the target, checked, and copied over the target with
the backup API in a single step, so other connections see the old or the new database,
never a mix. The SQL is generated here rather than with `Connection.iterdump()`, which
renders infinities as the bare word `Inf` (not valid SQL) and REALs through `quote()`, whose
text this SQLite does not always read back to the same double.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from backup_engine import errors
from backup_engine.dumpinfo import INCLUDE_DATA_MODES, ByteSink, DumpResult, Progress, no_progress
from backup_engine.targets import Target

SNAPSHOT_METHOD = "sqlite-backup-api"
SQL_METHOD = "sqlite-sql"
HEADER_MARKER = "-- SQLite database dump (backup worker)"
END_MARKER = "-- SQLite database dump complete"
LOCK_TIMEOUT_S = 5.0
WRITE_BLOCK = 1 << 20
FETCH_ROWS = 500
ROWS_PER_INSERT = 100
FLOAT_CHECK_CHUNK = 500
MARKER_TAIL_BYTES = 4096
FILE_MODE = 0o600
SIDE_FILE_SUFFIXES = ("", "-journal", "-wal", "-shm")
ROWID_NAMES = ("rowid", "_rowid_", "oid")
FTS_MODULE = re.compile(r"\bUSING\s+fts[345]\b", re.IGNORECASE)
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


def remove_database_files(path: Path) -> None:
    for suffix in SIDE_FILE_SUFFIXES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --- what a database holds ---------------------------------------------------------------
@dataclass(frozen=True)
class TableInfo:
    """A user table as the dump sees it: which columns an INSERT must list, and the rowid."""

    name: str
    virtual: bool
    columns: tuple[str, ...]
    rowid: str | None  # the name to read/write an implicit rowid by; None when a column holds it

    @property
    def select_sql(self) -> str:
        names = [self.rowid] if self.rowid else []
        names += [quote_identifier(c) for c in self.columns]
        order = f" ORDER BY {self.rowid}" if self.rowid else ""
        return f"SELECT {', '.join(names)} FROM {quote_identifier(self.name)}{order}"  # noqa: S608 - quoted identifiers

    @property
    def insert_prefix(self) -> str:
        names = [self.rowid] if self.rowid else []
        names += [quote_identifier(c) for c in self.columns]
        return f"INSERT INTO {quote_identifier(self.name)}({','.join(names)}) VALUES\n"


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


def user_tables(conn: sqlite3.Connection) -> list[TableInfo]:
    kinds = table_kinds(conn)
    tables = []
    for kind, name, _, sql in schema_objects(conn):
        if kind == "table":
            table_kind, without_rowid = kinds.get(name, ("table", False))
            virtual = table_kind == "virtual"
            keeps_rowid = not without_rowid and (not virtual or bool(FTS_MODULE.search(sql)))
            tables.append(describe_table(conn, name, virtual, keeps_rowid))
    return tables


def describe_table(conn: sqlite3.Connection, name: str, virtual: bool, keeps_rowid: bool) -> TableInfo:
    """Columns an INSERT sets (not generated, not hidden) and how to keep the rowid.

    Rowids are kept for ordinary tables without an INTEGER PRIMARY KEY (other data may refer
    to them) and for full-text tables, whose rowid links them to their content.
    """
    info = conn.execute("SELECT name, type, pk, hidden FROM pragma_table_xinfo(?)", (name,)).fetchall()
    columns = tuple(col for col, _, _, hidden in info if hidden == 0)
    pk = [(col, decl) for col, decl, pk_pos, _ in info if pk_pos]
    rowid_alias = not virtual and len(pk) == 1 and (pk[0][1] or "").strip().upper() == "INTEGER"
    rowid = None
    if keeps_rowid and not rowid_alias:
        taken = {col.lower() for col, _, _, _ in info}
        rowid = next((candidate for candidate in ROWID_NAMES if candidate not in taken), None)
    return TableInfo(name=name, virtual=virtual, columns=columns, rowid=rowid)


def count_rows(conn: sqlite3.Connection) -> dict[str, int]:
    counts = {}
    for table in user_tables(conn):
        sql = f"SELECT count(*) FROM {quote_identifier(table.name)}"  # noqa: S608 - quoted identifier
        counts[table.name] = conn.execute(sql).fetchone()[0]
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
class RawText(bytes):
    """A TEXT value that is not valid UTF-8, kept as its bytes (written as CAST(X'..' AS TEXT))."""


def decode_text(data: bytes) -> str | RawText:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return RawText(data)


def text_literal(value: str) -> str:
    if "\x00" in value:  # a NUL would end the statement early inside SQLite
        return f"CAST(X'{value.encode('utf-8').hex()}' AS TEXT)"
    return "'" + value.replace("'", "''") + "'"


def exact_real_literal(value: float) -> str:
    """An expression SQLite evaluates to exactly `value`: mantissa times powers of two.

    Multiplying or dividing by a power of two is exact in binary floating point, so this
    never depends on how SQLite rounds decimal text (which this version does not do exactly).
    """
    fraction, exponent = math.frexp(value)
    mantissa, exponent = int(fraction * (1 << 53)), exponent - 53
    while mantissa % 2 == 0:
        mantissa //= 2
        exponent += 1
    text = f"CAST({mantissa} AS REAL)"
    while exponent:
        step = min(abs(exponent), 62)
        text += f"{'*' if exponent > 0 else '/'}{1 << step}"
        exponent -= step if exponent > 0 else -step
    return f"({text})"


def plain_real_literal(value: float) -> str:
    if math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    if value.is_integer() and abs(value) < 2**53:
        return f"{int(value)}.0"
    return repr(value)


def real_literals(conn: sqlite3.Connection, values: set[float]) -> dict[float, str]:
    """Literals for REALs: repr() where SQLite reads it back to the same double, else the exact form.

    Checked with the same SQLite library that will run the restore, a few hundred at a time.
    """
    literals: dict[float, str] = {}
    pending = list(values)
    for start in range(0, len(pending), FLOAT_CHECK_CHUNK):
        chunk = pending[start:start + FLOAT_CHECK_CHUNK]
        texts = [plain_real_literal(v) for v in chunk]
        parsed = conn.execute("SELECT " + ",".join(texts)).fetchone()
        for value, text, back in zip(chunk, texts, parsed, strict=True):
            literals[value] = text if type(back) is float and back == value else exact_real_literal(value)
    return literals


def value_literal(value: object, reals: dict[float, str]) -> str:
    kind = type(value)
    if value is None:
        return "NULL"
    if kind is int:
        return str(value)
    if kind is float:
        if value == 0:  # 0.0 and -0.0 are one key in `reals`; the sign is kept here
            return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"  # type: ignore[arg-type]
        return reals[value]  # type: ignore[index]
    if kind is str:
        return text_literal(value)  # type: ignore[arg-type]
    if kind is RawText:
        return f"CAST(X'{value.hex()}' AS TEXT)"  # type: ignore[attr-defined]
    if kind is bytes:
        return f"X'{value.hex()}'"  # type: ignore[attr-defined]
    raise errors.DumpError(errors.NATIVE_BACKUP_FAILED, f"unexpected SQLite value of type {kind.__name__}")


class BlockWriter:
    """Collects SQL text and hands it to the sink UTF-8 encoded, in blocks of about WRITE_BLOCK."""

    def __init__(self, out: ByteSink, progress: Progress) -> None:
        self._out = out
        self._progress = progress
        self._parts: list[str] = []
        self._pending = 0
        self.size = 0
        self.rows = 0
        self.tables = 0

    def write(self, text: str) -> None:
        self._parts.append(text)
        self._pending += len(text)
        if self._pending >= WRITE_BLOCK:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            data = "".join(self._parts).encode("utf-8")
            self._out.write(data)
            self.size += len(data)
            self._parts, self._pending = [], 0
            self._progress(phase="dump", tables=self.tables, rows=self.rows, bytes=self.size)


def write_table_rows(conn: sqlite3.Connection, table: TableInfo, writer: BlockWriter) -> int:
    """INSERT statements of ROWS_PER_INSERT rows each; returns the number of rows written."""
    cursor = conn.execute(table.select_sql)
    count = 0
    while rows := cursor.fetchmany(FETCH_ROWS):
        reals = real_literals(conn, {v for row in rows for v in row if type(v) is float})
        for start in range(0, len(rows), ROWS_PER_INSERT):
            batch = rows[start:start + ROWS_PER_INSERT]
            values = ",\n".join("(" + ",".join(value_literal(v, reals) for v in row) + ")" for row in batch)
            writer.write(f"{table.insert_prefix}{values};\n")
        count += len(rows)
        writer.rows += len(rows)
    return count


def write_sequence(conn: sqlite3.Connection, writer: BlockWriter) -> None:
    """AUTOINCREMENT positions, which may be past the largest key still in the table."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone()
    rows = conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall() if exists else []
    if not rows:
        return
    writer.write('DELETE FROM "sqlite_sequence";\n')
    for name, seq in rows:
        writer.write(f'INSERT INTO "sqlite_sequence"("name","seq") VALUES({value_literal(name, {})},'
                     f'{value_literal(seq, {})});\n')


def write_dump(conn: sqlite3.Connection, include_data: str, writer: BlockWriter) -> dict[str, int]:
    """The whole dump: schema objects in an order that restores (tables, data, indexes, views,
    triggers, so no trigger fires on restored rows), inside one transaction, then the end marker."""
    writer.write(f"{HEADER_MARKER}, SQLite {sqlite3.sqlite_version}, include_data={include_data}\n"
                 "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n")
    objects = schema_objects(conn)
    tables = user_tables(conn)
    if include_data != "data":
        for pragma in ("user_version", "application_id"):
            writer.write(f"PRAGMA {pragma}={int(conn.execute(f'PRAGMA {pragma}').fetchone()[0])};\n")
        for kind, _, _, sql in objects:
            if kind == "table":
                writer.write(f"{sql};\n")
    table_rows = {table.name: 0 for table in tables}
    if include_data != "schema":
        for table in tables:
            table_rows[table.name] = write_table_rows(conn, table, writer)
            writer.tables += 1
        write_sequence(conn, writer)
    if include_data != "data":
        for wanted in ("index", "view", "trigger"):
            for kind, _, _, sql in objects:
                if kind == wanted:
                    writer.write(f"{sql};\n")
    writer.write(f"COMMIT;\n{END_MARKER}\n")
    writer.flush()
    return table_rows


def check_include_data(include_data: str) -> None:
    if include_data not in INCLUDE_DATA_MODES:
        raise errors.InvalidRequest(errors.UNKNOWN_INCLUDE_DATA, repr(include_data))


def dump_sql(target: Target, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
    """Stream a restorable SQL dump of a private snapshot of the target into `out`.

    Dumping from a snapshot keeps the source's read lock short and the dump consistent.
    """
    check_include_data(include_data)
    with tempfile.TemporaryDirectory(prefix="sqlite-dump-") as folder:  # mkdtemp: mode 0700
        snap = Path(folder) / "snapshot.sqlite3"
        os.close(os.open(snap, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        snapshot_result = snapshot(target, snap)
        writer = BlockWriter(out, progress)
        try:
            with closing(open_read_only(snap)) as conn:
                conn.text_factory = decode_text
                table_rows = write_dump(conn, include_data, writer)
        except sqlite3.Error as exc:
            raise errors.DumpError(errors.NATIVE_BACKUP_FAILED, f"SQL dump: {exc}") from exc
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
    with open(sql_path, "rb") as handle:
        handle.seek(max(0, os.fstat(handle.fileno()).st_size - MARKER_TAIL_BYTES))
        lines = handle.read().rstrip().splitlines()
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
    for table in user_tables(conn):
        conn.execute(f"DELETE FROM {quote_identifier(table.name)}")  # noqa: S608 - quoted identifiers
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
