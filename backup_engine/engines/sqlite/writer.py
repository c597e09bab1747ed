"""SQLite's script writer: SQLite's own CREATE texts where it keeps them, rows as INSERTs.

A reflected SQLite table is created from the exact statement `sqlite_master` holds (reflection
would lose its declared types and clauses); a table converted from another engine's JSON is
compiled by SQLAlchemy. Every identifier is quoted (no dependence on which words this SQLite,
or a later one, reserves). Rows are multi-row INSERTs whose values `literals` renders exactly.
The script is one transaction and ends with the worker's end marker.
"""

from __future__ import annotations

from itertools import islice

from sqlalchemy import Table
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateTable, ForeignKeyConstraint

from backup_engine.dumpinfo import ByteSink, Progress, no_progress
from backup_engine.engines.sqlite.literals import SqliteLiterals
from backup_engine.formats.model import DatabaseModel
from backup_engine.formats.sql_script import RowData, ScriptWriter, TableOrder

HEADER = "-- SQLite database dump (backup worker, SQLAlchemy fallback)"
NATIVE_HEADER = "-- SQLite database dump (backup worker)"
END_MARKER = "-- SQLite database dump complete"
ROWS_PER_INSERT = 100
CHUNK_ROWS = 500  # rows read and their REALs checked at a time


def make_dialect() -> Dialect:
    """A dialect for compiling script text that quotes every identifier."""
    dialect: Dialect = sqlite_dialect.dialect(paramstyle="named")
    dialect.identifier_preparer._requires_quotes = lambda _value: True
    return dialect


class SqliteScriptWriter(ScriptWriter):
    """A model and its data as a SQLite script (restored by `restore.restore_sql`)."""

    inline_foreign_keys = True  # SQLite has no ALTER TABLE ADD CONSTRAINT

    def __init__(self, out: ByteSink, *, progress: Progress = no_progress, header: str = HEADER) -> None:
        super().__init__(out, make_dialect(), progress=progress)
        self.header_text = header

    def display_name(self, table: Table) -> str:
        return table.name

    def header(self, model: DatabaseModel, include_data: str) -> None:
        self.write(f"{self.header_text}, SQLite {model.server_version}, include_data={include_data}\n"
                   "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n")

    def footer(self) -> None:
        self.write(f"COMMIT;\n{END_MARKER}\n")

    def pre_data(self, model: DatabaseModel, tables: TableOrder) -> None:
        extras = model.extras
        for pragma, value in extras.pragmas.items():
            self.statement(f"PRAGMA {pragma}={int(value)}")
        for table, fks in tables:
            if table.key in extras.table_ddl:
                self.statement(extras.table_ddl[table.key])
            else:
                self.statement(self.compile(CreateTable(table, include_foreign_key_constraints=fks)))
            self.write("\n")

    def insert_rows(self, table: Table, source: RowData) -> int:
        prefix = f"INSERT INTO {self.table_name(table)} ({self.column_list(source.columns)}) VALUES\n"
        literals = SqliteLiterals()
        rows = iter(source.rows)
        count = 0
        try:
            while chunk := list(islice(rows, CHUNK_ROWS)):
                for values in literals.values_lists(chunk, ROWS_PER_INSERT):
                    self.write(f"{prefix}{values};\n")
                count += len(chunk)
                self.rows += len(chunk)
        finally:
            literals.close()
        return count

    def sequence_positions(self, model: DatabaseModel) -> None:
        if model.extras.sqlite_sequence:
            literals = SqliteLiterals()
            self.statement('DELETE FROM "sqlite_sequence"')
            for name, seq in model.extras.sqlite_sequence:
                values = f"({literals.literal(name)}, {literals.literal(seq)})"
                self.statement(f'INSERT INTO "sqlite_sequence" ("name", "seq") VALUES {values}')  # noqa: S608
            literals.close()
        self.write("\n")

    def post_data(self, model: DatabaseModel, late_fks: list[ForeignKeyConstraint]) -> None:
        for raw in model.extras.raw_post_data:
            self.statement(raw)
