"""PostgreSQL's native path: pg_dump for backups, psql in one transaction for restores.

pg_dump's plain output is streamed through the worker (hashed and scanned on the way, so the
checksum and per-table row counts cost no second read); psql gets the dump file itself.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from psycopg2 import sql

from backup_engine import errors
from backup_engine.artifacts import tail_of
from backup_engine.dumpinfo import ByteSink, ClientTools, DumpResult, Progress, no_progress
from backup_engine.pgconnect import classify_failure, client_run, connect
from backup_engine.targets import Target

READ_SIZE = 1 << 20
END_MARKER = b"-- PostgreSQL database dump complete"
MARKER_TAIL_BYTES = 4096
INCLUDE_DATA_FLAGS = {"full": [], "schema": ["--schema-only"], "data": ["--data-only"]}
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
# An identifier as pg_dump prints it: bare, or double-quoted with "" for a quote inside.
IDENTIFIER = rb'(?:"(?:[^"]|"")*"|[^\s."(]+)'
QUALIFIED_NAME = IDENTIFIER + rb"(?:\." + IDENTIFIER + rb")?"


class PlainDumpScanner:
    """Counts rows per table in a plain-SQL dump as it streams past, chunk by chunk.

    Outside a COPY block it looks for `CREATE TABLE` and `COPY ... FROM stdin;` lines;
    inside one it only counts newlines up to the `\\.` terminator (a data line can never be
    exactly `\\.`, since COPY escapes backslashes).
    """

    _statement = re.compile(
        rb"^(?:CREATE (?:UNLOGGED )?TABLE (" + QUALIFIED_NAME + rb") \($|COPY (" + QUALIFIED_NAME
        + rb") (?:\(.*\) )?FROM stdin;$)", re.M)

    def __init__(self) -> None:
        self.table_rows: dict[str, int] = {}
        self.tail = b""
        self._carry = b""
        self._copy_table: str | None = None
        self.size = 0

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.tail = (self.tail + chunk)[-256:]
        data = self._carry + chunk
        cut = data.rfind(b"\n") + 1
        self._carry = data[cut:]
        self._scan(data[:cut])

    def _scan(self, text: bytes) -> None:
        pos = 0
        while pos < len(text):
            if self._copy_table is not None:
                if text.startswith(b"\\.\n", pos):
                    terminator = pos
                else:
                    found = text.find(b"\n\\.\n", pos)
                    if found == -1:
                        self.table_rows[self._copy_table] += text.count(b"\n", pos)
                        return
                    terminator = found + 1
                self.table_rows[self._copy_table] += text.count(b"\n", pos, terminator)
                self._copy_table = None
                pos = terminator + 3
                continue
            match = self._statement.search(text, pos)
            if match is None:
                return
            if match.group(1):
                self.table_rows.setdefault(match.group(1).decode(), 0)
            else:
                self._copy_table = match.group(2).decode()
                self.table_rows.setdefault(self._copy_table, 0)
            pos = match.end() + 1

    @property
    def inside_copy(self) -> bool:
        """True when the text so far ends in the middle of a COPY block (a cut-off file)."""
        return self._copy_table is not None

    def check_complete(self) -> None:
        if self.size == 0:
            raise errors.DumpError(errors.EMPTY_DUMP)
        if END_MARKER not in self.tail:
            raise errors.DumpError(errors.INCOMPLETE_DUMP)


def require_end_marker(sql_path: Path) -> None:
    """Refuse a file that does not end as a complete dump: psql would take a file cut inside
    COPY data as the end of that data and commit a partial restore."""
    if END_MARKER not in tail_of(sql_path, MARKER_TAIL_BYTES):
        raise errors.RestoreError(errors.RESTORE_FAILED, f"{sql_path.name}: {errors.INCOMPLETE_DUMP}")


def server_version(target: Target) -> str:
    with connect(target) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version")
        return cur.fetchone()[0]


def require_tool(path: str | None, name: str) -> str:
    if not path or not Path(path).is_file():
        raise errors.DumpError(errors.TOOL_NOT_FOUND, f"{name} ({path or 'not on PATH'})")
    return path


def dump_sql(target: Target, out: ByteSink, include_data: str, tools: ClientTools,
             progress: Progress = no_progress) -> DumpResult:
    """Stream `pg_dump --format=plain` of the target into `out`; raise unless it is complete."""
    pg_dump = require_tool(tools.pg_dump, "pg_dump")
    version = server_version(target)  # fails fast, and as TargetUnavailable, when the server is down
    argv = [pg_dump, "--format=plain", "--no-owner", "--no-privileges", "--no-password",
            *INCLUDE_DATA_FLAGS[include_data]]
    scanner = PlainDumpScanner()
    with client_run(target) as run, tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, env=run.env,
                                   pass_fds=run.pass_fds)
        assert process.stdout is not None
        try:
            while chunk := process.stdout.read(READ_SIZE):
                scanner.feed(chunk)
                out.write(chunk)
                progress(phase="dump", bytes=scanner.size, tables=len(scanner.table_rows))
        finally:
            process.stdout.close()
            returncode = process.wait()
        if returncode != 0:
            stderr.seek(0)
            message = stderr.read().decode("utf-8", "replace") or f"pg_dump exited with {returncode}"
            raise classify_failure(message, default=errors.DumpError,
                                   default_message=errors.NATIVE_BACKUP_FAILED, target=target)
    scanner.check_complete()
    return DumpResult(method="pg_dump", server_version=version, table_rows=scanner.table_rows)


@dataclass
class RestoreScripts:
    """SQL run in the restore's own transaction around the dump file."""

    before: str
    after: str = ""


# pg_trigger.tgenabled -> the ALTER TABLE clause that puts a trigger back in that state.
TRIGGER_STATES = {"O": "ENABLE TRIGGER", "D": "DISABLE TRIGGER", "R": "ENABLE REPLICA TRIGGER",
                  "A": "ENABLE ALWAYS TRIGGER"}
ENABLED_USER_TRIGGERS = """
    SELECT n.nspname, c.relname, t.tgname, t.tgenabled
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND t.tgenabled <> 'D'
       AND n.nspname NOT IN %s AND n.nspname NOT LIKE 'pg\\_%%'
     ORDER BY 1, 2, 3"""
USER_SCHEMAS = "SELECT nspname FROM pg_namespace WHERE nspname NOT IN %s AND nspname NOT LIKE 'pg\\_%%' ORDER BY 1"


def _restore_scripts(target: Target, include_data: str, table_names: list[str]) -> RestoreScripts:
    """So that the target ends up holding exactly the backup: a schema-bearing restore replaces
    every user schema; a data-only restore empties the tables it fills, with the user triggers
    off while it loads (they fired when the rows were first written) and on again after."""
    with connect(target) as conn, conn.cursor() as cur:
        if include_data == "data":
            cur.execute(ENABLED_USER_TRIGGERS, (SYSTEM_SCHEMAS,))
            triggers = cur.fetchall()
            before = [sql.SQL("ALTER TABLE {} DISABLE TRIGGER {};").format(sql.Identifier(schema, table),
                                                                          sql.Identifier(trigger)).as_string(conn)
                      for schema, table, trigger, _ in triggers]
            # Deferred checks of the load must run before ALTER TABLE ("pending trigger events").
            after = ["SET CONSTRAINTS ALL IMMEDIATE;"] + [
                sql.SQL("ALTER TABLE {} {} {};").format(sql.Identifier(schema, table), sql.SQL(TRIGGER_STATES[state]),
                                                       sql.Identifier(trigger)).as_string(conn)
                for schema, table, trigger, state in triggers]
            if table_names:
                before.append("TRUNCATE TABLE " + ", ".join(table_names) + ";")
            return RestoreScripts(before="\n".join(before) + "\n", after="\n".join(after) + "\n")
        cur.execute(USER_SCHEMAS, (SYSTEM_SCHEMAS,))
        statements = [sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE;").format(sql.Identifier(name)).as_string(conn)
                      for (name,) in cur.fetchall()]
    statements.append("CREATE SCHEMA IF NOT EXISTS public;")
    return RestoreScripts(before="\n".join(statements) + "\n")


def restore_sql(target: Target, sql_path: Path, include_data: str, table_names: list[str],
                tools: ClientTools, *, restricted: bool = False) -> None:
    """Run the dump with psql in a single transaction, after the reset statements; all or nothing.

    `restricted` is for SQL that did not come from our own dump: psql's `\\restrict` with a key
    the file cannot know refuses every backslash command in it (`\\!`, `\\c`, `\\o`, ...).
    """
    psql = require_tool(tools.psql, "psql")
    if not restricted:
        require_end_marker(sql_path)
    around = _restore_scripts(target, include_data, table_names)
    with client_run(target) as run, tempfile.TemporaryFile() as stderr:
        files = [run.memory_file(around.before)]
        if restricted:
            files.append(run.memory_file(f"\\restrict {secrets.token_hex(16)}\n"))
        files.append(str(sql_path))
        if around.after:
            files.append(run.memory_file(around.after))
        argv = [psql, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction"]
        for script in files:
            argv += ["-f", script]
        returncode = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                    env=run.env, pass_fds=run.pass_fds, check=False).returncode
        if returncode != 0:
            stderr.seek(0)
            message = stderr.read().decode("utf-8", "replace") or f"psql exited with {returncode}"
            raise classify_failure(message, default=errors.RestoreError,
                                   default_message=errors.RESTORE_FAILED, target=target)


def count_rows(target: Target, table_names: list[str]) -> dict[str, int]:
    """Exact row counts of the named tables (`ONLY`: a partitioned parent counts its own rows,
    as pg_dump's COPY blocks do)."""
    counts: dict[str, int] = {}
    with connect(target) as conn, conn.cursor() as cur:
        for name in table_names:
            cur.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.SQL(name)))
            counts[name] = cur.fetchone()[0]
    return counts


@contextmanager
def scratch_database(target: Target) -> Iterator[Target]:
    """A new empty database on the target's server for a restore drill, dropped afterwards."""
    name = f"bw_drill_{uuid.uuid4().hex[:12]}"
    _admin(target, sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield Target(name=f"{target.name}:drill", url=target.url.set(database=name))
    finally:
        _admin(target, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _admin(target: Target, statement: sql.Composable) -> None:
    with connect(target) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
