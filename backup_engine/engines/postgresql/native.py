"""pg_dump, streamed: the native `sql` backup of a PostgreSQL target.

pg_dump's plain output is streamed through the worker (hashed and scanned on the way, so the
checksum and per-table row counts cost no second read). A dump without pg_dump's end marker is
a failure, never a backup.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, ClientTools, DumpResult, Progress, dies_with_worker, no_progress
from backup_engine.engines.postgresql.connect import classify_failure, client_run, connect
from backup_engine.targets import Target

READ_SIZE = 1 << 20
END_MARKER = b"-- PostgreSQL database dump complete"
INCLUDE_DATA_FLAGS = {"full": [], "schema": ["--schema-only"], "data": ["--data-only"]}
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


def script_complete(tail: bytes) -> bool:
    """Whether a script ends as a complete dump: psql would take a file cut inside COPY data as
    the end of that data and commit a partial restore."""
    return END_MARKER in tail


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
    pg_dump = require_tool(tools.get("pg_dump"), "pg_dump")
    version = server_version(target)  # fails fast, and as TargetUnavailable, when the server is down
    argv = [pg_dump, "--format=plain", "--no-owner", "--no-privileges", "--no-password",
            *INCLUDE_DATA_FLAGS[include_data]]
    scanner = PlainDumpScanner()
    with client_run(target) as run, tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(dies_with_worker(argv), stdout=subprocess.PIPE, stderr=stderr,
                                   stdin=subprocess.DEVNULL, env=run.env, pass_fds=run.pass_fds)
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


