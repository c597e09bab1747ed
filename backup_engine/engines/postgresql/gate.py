"""The upload gate for untrusted PostgreSQL SQL, built on PostgreSQL's own parser (pglast).

An upload is split and classified by the server's grammar, statement by statement as it
streams (gate_split); each statement must be of an allowed kind and pass its rule, and no
expression anywhere may call a denied function (gate_rules, gate_bodies, gate_policy).
`COPY ... FROM stdin` data blocks are the only text not parsed. The worker executes what this
yields through psycopg2, one statement per `execute`, exactly the `sql` given here, inside one
transaction; data goes through `cursor.copy_expert(statement.sql, statement.copy_data)`.

Before the first statement the executor must apply SESSION_SETTINGS: the gate reads strings
as the server does with standard_conforming_strings on and UTF-8 text, and an upload cannot
change either (SET of those is refused but for the same values).

Known limit: SQL that a PL/pgSQL body builds at run time and runs with EXECUTE cannot be read;
restoring uploads with a role that is not a superuser is the defence (README, known limits).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from backup_engine import errors
from backup_engine.engines.collector import paused_gc
from backup_engine.engines.postgresql import gate_bodies  # noqa: F401 - registers the CREATE FUNCTION checker
from backup_engine.engines.postgresql.gate_copy import CopyData
from backup_engine.engines.postgresql.gate_fragments import check_expression, check_statement, check_type_name
from backup_engine.engines.postgresql.gate_rules import Refusal, Scope, check
from backup_engine.engines.postgresql.gate_split import Splitter
from backup_engine.engines.postgresql.gate_words import quote_identifier

__all__ = ["SESSION_SETTINGS", "GateLimits", "GateReport", "GateStatement", "check_expression", "check_statement",
           "check_type_name", "check_upload", "gate_statements"]

SESSION_SETTINGS = (("standard_conforming_strings", "on"), ("client_encoding", "UTF8"))


@dataclass(frozen=True)
class GateLimits:
    max_statement_bytes: int = 64 * 1024 * 1024   # one statement (and one JSON line elsewhere)


@dataclass
class GateStatement:
    """One statement of an upload, checked; send `sql` as is unless `skipped`."""

    line: int          # 1-based line of the upload where the statement starts (its first token)
    sql: str           # the statement's exact text from the upload, without its `;`
    kind: str          # the parse node's name, e.g. "CreateStmt", "CopyStmt"
    skipped: bool      # ownership/privilege statements the restore leaves out (--no-owner --no-privileges)
    copy_table: tuple[str | None, str] | None = None   # (schema, table) of a COPY ... FROM stdin
    copy_data: CopyData | None = None   # its data lines; read to the end before the next statement
    relations: int = 0  # relations it creates (tables, indexes, sequences, views, ...), for lock estimates

    @property
    def copy_rows(self) -> int | None:
        """Rows of the COPY data, once it has been read to its end."""
        return self.copy_data.copy_rows if self.copy_data is not None and self.copy_data.done else None


@dataclass
class GateReport:
    """What a whole upload holds, found without executing it."""

    statements: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    table_rows: dict[str, int] = field(default_factory=dict)   # "schema.table" (quoted like quote_ident)
    relations: int = 0
    bytes: int = 0
    restrict_lines: int = 0   # psql \restrict / \unrestrict lines dropped


def gate_statements(stream: BinaryIO, limits: GateLimits = GateLimits()) -> Iterator[GateStatement]:
    """Split and check an upload as it streams; raises errors.UploadRefused on the first refused statement.
    A COPY statement's data must be read (or is skipped) before the next statement is produced."""
    return _statements(Splitter(stream, limits.max_statement_bytes))


def _statements(splitter: Splitter) -> Iterator[GateStatement]:
    for piece in splitter.pieces():
        try:
            with paused_gc():
                verdict = check(piece.stmt, Scope("", piece.sql))
        except Refusal as refusal:
            raise errors.UploadRefused.at(piece.line, refusal.what) from None
        piece.stmt = {}  # the tree is freed before the caller runs
        yield GateStatement(piece.line, piece.sql, verdict.kind, verdict.skipped, verdict.copy_table,
                            piece.copy_data, verdict.relations)


def check_upload(stream: BinaryIO, limits: GateLimits = GateLimits()) -> GateReport:
    """Run the whole gate without executing anything: counts per kind, rows per table, relations."""
    splitter = Splitter(stream, limits.max_statement_bytes)
    report = GateReport()
    kinds: Counter[str] = Counter()
    with paused_gc():  # nothing but the gate runs in this loop, and the gate makes no cycles
        _tally(_statements(splitter), report, kinds)
    report.statements = sum(kinds.values())
    report.kinds = dict(kinds)
    report.bytes = splitter.bytes_read
    report.restrict_lines = splitter.restrict_lines
    return report


def _tally(statements: Iterator[GateStatement], report: GateReport, kinds: Counter[str]) -> None:
    for statement in statements:
        kinds[statement.kind] += 1
        report.skipped += statement.skipped
        report.relations += statement.relations
        if statement.copy_data is not None and statement.copy_table is not None:
            statement.copy_data.drain()
            key = ".".join(quote_identifier(part) for part in statement.copy_table if part is not None)
            report.table_rows[key] = report.table_rows.get(key, 0) + statement.copy_data.copy_rows
