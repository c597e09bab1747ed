"""SQL text for SQLite, split into statements by SQLite's own parser and run under an authorizer.

Splitting asks `sqlite3.complete_statement` (SQLite's own tokenizer) whether the text so far
ends a statement, at lines ending in `;`. Past `EAGER_BYTES` of one statement it asks again only
once the text has doubled, so a statement with many such lines (a long trigger, a text value
holding a script) cannot make the split quadratic; should that merge two statements, SQLite says
so when asked to run them and the piece is split line by line (`exact_statements`). One statement
is capped.
What any script may do once running is the authorizer's to say: plain DDL and DML on the new
database only, no ATTACH, no other schema, harmless pragmas, no extension loading.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import BinaryIO

from backup_engine import errors
from backup_engine.streams import lines

MAX_STATEMENT_BYTES = 64 * 1024 * 1024
EAGER_BYTES = 1 << 20
MAX_TRIES = 100_000
END_MARKER = "-- SQLite database dump complete"
UPLOAD_END = "COMMIT;"

# What a SQL file being restored may do: plain DDL and DML on the new database only.
ALLOWED_PRAGMAS = frozenset({"foreign_keys", "defer_foreign_keys", "user_version", "application_id"})
# Read-only pragmas SQLite's own modules run while creating tables (fts5: data_version, rtree: page_size).
QUERY_PRAGMAS = frozenset({"data_version", "page_size", "schema_version", "table_info", "table_xinfo",
                           "index_list", "index_info", "index_xinfo", "foreign_key_list"})
DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})
ALLOWED_SCHEMAS = (None, "main", "temp")


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


def only_comments(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("--") for line in text.splitlines())


class ScriptReader:
    """(line number, statement) pairs of a SQL script read as a stream; the last non-blank line
    is kept for the end-marker check. `newline=""` keeps carriage returns inside values."""

    def __init__(self, stream: BinaryIO, name: str, *, max_statement: int = MAX_STATEMENT_BYTES) -> None:
        self.stream = stream
        self.name = name
        self.max_statement = max_statement
        self.last_line = ""

    def __iter__(self) -> Iterator[tuple[int, str]]:
        buffer: list[str] = []
        size = 0
        next_try = 0
        line_no = 0
        try:
            for line_no, raw in enumerate(lines(self.stream), 1):
                line = raw.decode("utf-8")
                buffer.append(line)
                size += len(line)
                if line.strip():
                    self.last_line = line.strip()
                if size > self.max_statement:
                    raise errors.InvalidRequest(errors.STATEMENT_TOO_LONG,
                                                f"{self.name}, line {line_no}: over {self.max_statement} bytes")
                if size >= next_try and line.rstrip().endswith(";"):
                    statement = "".join(buffer)
                    if sqlite3.complete_statement(statement):
                        yield line_no, statement
                        buffer, size, next_try = [], 0, 0
                    elif size > EAGER_BYTES:
                        next_try = 2 * size  # a long literal or trigger body: look again once doubled
        except UnicodeDecodeError as exc:
            raise errors.RestoreError(errors.RESTORE_FAILED, f"{self.name} is not UTF-8 text: {exc}") from exc
        rest = "".join(buffer)
        if rest.strip() and sqlite3.complete_statement(rest):
            yield line_no, rest
        elif not only_comments(rest):
            raise errors.RestoreError(errors.RESTORE_FAILED, f"{self.name} is incomplete (unfinished statement)")


def exact_statements(text: str, name: str) -> Iterator[str]:
    """The statements of a piece that holds several, asking at every line ending in `;`."""
    buffer: list[str] = []
    tries = 0
    for line in text.splitlines(keepends=True):
        buffer.append(line)
        if line.rstrip().endswith(";"):
            tries += 1
            if tries > MAX_TRIES:
                raise errors.RestoreError(errors.RESTORE_FAILED, f"{name}: a statement too tangled to split")
            statement = "".join(buffer)
            if sqlite3.complete_statement(statement):
                yield statement
                buffer = []
    if "".join(buffer).strip():
        yield "".join(buffer)


def describe_statement(statement: str) -> str:
    lines = [line for line in statement.splitlines() if line.strip() and not line.lstrip().startswith("--")]
    return (lines[0] if lines else "").split("(")[0].strip()[:80]


def run_script(conn: sqlite3.Connection, script: ScriptReader) -> None:
    """Every statement of `script` on `conn`, under the authorizer."""
    conn.set_authorizer(restore_authorizer)
    number = 0
    try:
        for line_no, piece in script:
            try:
                conn.execute(piece)
                number += 1
                continue
            except sqlite3.ProgrammingError as exc:
                if "one statement at a time" not in str(exc):
                    raise errors.RestoreError(errors.RESTORE_FAILED, f"statement {number + 1} (line {line_no}, "
                                              f"{describe_statement(piece)!r}): {exc}") from exc
            except (sqlite3.Error, sqlite3.Warning) as exc:
                raise errors.RestoreError(errors.RESTORE_FAILED, f"statement {number + 1} (line {line_no}, "
                                          f"{describe_statement(piece)!r}): {exc}") from exc
            for statement in exact_statements(piece, script.name):
                number += 1
                try:
                    conn.execute(statement)
                except (sqlite3.Error, sqlite3.Warning) as exc:
                    raise errors.RestoreError(errors.RESTORE_FAILED, f"statement {number} (near line {line_no}, "
                                              f"{describe_statement(statement)!r}): {exc}") from exc
    finally:
        conn.set_authorizer(None)
    if conn.in_transaction:
        raise errors.RestoreError(errors.RESTORE_FAILED, f"{script.name} is incomplete (no COMMIT)")
