"""MySQL's script writer: what mariadb-dump writes, from a `DatabaseModel`.

Tables are created as the server itself printed them (SHOW CREATE TABLE, kept in
`extras.table_ddl`: character sets, collations, generated and invisible columns, FULLTEXT and
SPATIAL indexes, partitions, AUTO_INCREMENT positions) or, for another engine's tables, compiled
by SQLAlchemy's MySQL dialect, foreign keys inline (the script runs with FOREIGN_KEY_CHECKS=0, as
dumps do, so cycles need no second pass). Rows go into multi-row INSERTs, one row per line. Then
sequence positions, and the objects that are not tables as blocks of their own (`object_block`):
routines, events, views (placeholders first) and triggers, each in the session it was created in.
The script ends with a `-- Dump completed` line, so it restores as a mariadb-dump file does.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects.mysql.base import MySQLDDLCompiler
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import AddConstraint, CreateTable, ForeignKeyConstraint, PrimaryKeyConstraint, UniqueConstraint

from backup_engine.dumpinfo import ByteSink, Progress, no_progress
from backup_engine.engines.mysql.catalog import DbObject, quote_name
from backup_engine.engines.mysql.kinds import KEY_VARCHAR, needs_key_length
from backup_engine.engines.mysql.literals import renderer
from backup_engine.formats.model import CatalogType, DatabaseModel, SequenceDef
from backup_engine.formats.sql_script import RowData, ScriptWriter, TableOrder

END_LINE = "-- Dump completed (backup worker, SQLAlchemy fallback)"
SCRIPT_SQL_MODE = "NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES"
HEADER = """-- MySQL dump (backup worker, SQLAlchemy fallback), server {version}, include_data={include_data}
SET NAMES utf8mb4;
SET SESSION time_zone = '+00:00';
SET SESSION unique_checks = 0;
SET SESSION foreign_key_checks = 0;
SET SESSION sql_mode = '{sql_mode}';
SET SESSION sql_notes = 0;

"""
RESET = f"SET SESSION sql_mode = '{SCRIPT_SQL_MODE}';\nSET NAMES utf8mb4;\nSET SESSION time_zone = '+00:00';\n"
ROWS_PER_INSERT = 1000
INSERT_BYTES = 1 << 20
INDEX_BYTES = 3072  # InnoDB's longest index key


class KeyLengthCompiler(MySQLDDLCompiler):
    """CREATE INDEX for other engines' tables: a TEXT or BLOB column gets a key length it can be
    indexed with (a prefix in a plain index; the column becomes VARCHAR in a unique one)."""

    def visit_create_index(self, create: Any, **kw: Any) -> str:
        index = create.element
        long_columns = [column for column in index.columns if needs_key_length(str(column.type.compile(self.dialect)))]
        if long_columns:
            share = max(1, INDEX_BYTES // 4 // len(long_columns))
            if index.unique:
                for column in long_columns:
                    column.type = CatalogType(f"VARCHAR({min(share, 768)})")
            else:
                index.dialect_options["mysql"]["length"] = {column.name: min(share, 255) for column in long_columns}
        return super().visit_create_index(create, **kw)


def make_dialect() -> Dialect:
    """A dialect for compiling script text that quotes every identifier."""
    dialect: Dialect = mysql_dialect.dialect(paramstyle="named")
    dialect.ddl_compiler = KeyLengthCompiler
    dialect.identifier_preparer._requires_quotes = lambda _value: True
    return dialect


def object_block(item: DbObject) -> str:
    """An object's creation as script text: its session, its statement between `DELIMITER ;;`
    lines (a body holds `;`), the script's session again, then an event's state."""
    lines = [f"-- {item.kind.lower()} {quote_name(item.name)}"]
    lines += [f"{statement};" for statement in item.session()]
    if item.kind == "VIEW":
        lines.append(f"DROP VIEW IF EXISTS {quote_name(item.name)};")
    lines += ["DELIMITER ;;", f"{item.statement} ;;", "DELIMITER ;"]
    lines.append(RESET.rstrip("\n"))
    lines += [f"{statement};" for statement in item.after()]
    return "\n".join(lines) + "\n\n"


def placeholders_block(views: list[DbObject]) -> str:
    """Views as placeholders with their columns, so that a view may select from another."""
    lines = ["-- view placeholders"]
    for view in views:
        columns = ", ".join(f"1 AS {quote_name(column)}" for column in view.columns) or "1 AS `1`"
        lines.append(f"CREATE VIEW {quote_name(view.name)} AS SELECT {columns};")
    return "\n".join(lines) + "\n\n"


def object_blocks(objects: list[DbObject]) -> list[str]:
    """The blocks of `extras.raw_post_data`: routines, events, view placeholders, views, triggers."""
    order = ("PROCEDURE", "FUNCTION", "EVENT")
    blocks = [object_block(item) for kind in order for item in objects if item.kind == kind]
    views = [item for item in objects if item.kind == "VIEW"]
    if views:
        blocks.append(placeholders_block(views))
        blocks += [object_block(view) for view in views]
    blocks += [object_block(item) for item in objects if item.kind == "TRIGGER"]
    return blocks


class MysqlScriptWriter(ScriptWriter):
    """A model and its data as a script for the `mariadb` / `mysql` client."""

    inline_foreign_keys = True  # FOREIGN_KEY_CHECKS=0: a key may name a table created later

    def __init__(self, out: ByteSink, *, progress: Progress = no_progress) -> None:
        super().__init__(out, make_dialect(), progress=progress)

    def display_name(self, table: Table) -> str:
        return table.name

    def table_name(self, table: Table) -> str:
        return quote_name(table.name)

    def header(self, model: DatabaseModel, include_data: str) -> None:
        version = (model.server_version or "unknown").replace("\n", " ")
        self.write(HEADER.format(version=version, include_data=include_data, sql_mode=SCRIPT_SQL_MODE))

    def footer(self) -> None:
        self.write(f"\n{END_LINE}\n")

    def pre_data(self, model: DatabaseModel, tables: TableOrder) -> None:
        for sequence in model.extras.sequences:
            if not sequence.identity:
                self.statement(self.create_sequence(sequence))
        for table, fks in tables:
            ddl = model.extras.table_ddl.get(table.key)
            if ddl is None:
                self.fit_keys(table)
                ddl = self.compile(CreateTable(table, include_foreign_key_constraints=fks))
            self.statement(ddl)
            self.write("\n")

    def fit_keys(self, table: Table) -> None:
        """Columns of another engine's primary or unique key that MySQL could not index whole
        (TEXT, BLOB) become VARCHAR / VARBINARY within InnoDB's key length; an identity column
        (another engine's rowid alias) is an integer, so that it is written AUTO_INCREMENT."""
        for column in table.columns:
            if column.identity is not None and isinstance(column.type, CatalogType):
                column.type = CatalogType(column.type.spec, integer=True)
                column.autoincrement = True
        for constraint in table.constraints:
            if not isinstance(constraint, PrimaryKeyConstraint | UniqueConstraint):
                continue
            long_columns = [column for column in constraint.columns
                            if needs_key_length(str(column.type.compile(self.dialect)))]
            share = min(768, max(1, INDEX_BYTES // 4 // max(1, len(long_columns))))
            for column in long_columns:
                spec = str(column.type.compile(self.dialect)).upper()
                column.type = CatalogType(f"VARBINARY({share * 4})" if "BLOB" in spec else
                                          (KEY_VARCHAR if share == 768 else f"VARCHAR({share})"))

    @staticmethod
    def create_sequence(sequence: SequenceDef) -> str:
        parts = [f"CREATE SEQUENCE {quote_name(sequence.name)} START WITH {int(sequence.start)}"]
        if sequence.min_value is not None:
            parts.append(f"MINVALUE {int(sequence.min_value)}")
        if sequence.max_value is not None:
            parts.append(f"MAXVALUE {int(sequence.max_value)}")
        parts.append(f"INCREMENT BY {int(sequence.increment)}")
        parts.append(f"CACHE {int(sequence.cache)}" if sequence.cache and sequence.cache > 1 else "NOCACHE")
        parts.append("CYCLE" if sequence.cycle else "NOCYCLE")
        return " ".join(parts)

    def insert_rows(self, table: Table, source: RowData) -> int:
        prefix = f"INSERT INTO {self.table_name(table)} ({self.column_list(source.columns)}) VALUES\n"
        kinds = list(source.kinds) if source.kinds is not None else [None] * len(source.columns)
        render = [renderer(kind) for kind in kinds]
        rows = iter(source.rows)
        count = 0
        while chunk := list(islice(rows, ROWS_PER_INSERT)):
            lines = []
            size = 0
            for values in chunk:
                line = "(" + ",".join(write(value) for write, value in zip(render, values, strict=True)) + ")"
                lines.append(line)
                size += len(line)
                if size >= INSERT_BYTES:
                    self.write(prefix + ",\n".join(lines) + ";\n")
                    lines, size = [], 0
            if lines:
                self.write(prefix + ",\n".join(lines) + ";\n")
            count += len(chunk)
            self.rows += len(chunk)
        return count

    def sequence_positions(self, model: DatabaseModel) -> None:
        for sequence in model.extras.sequences:
            if sequence.last_value is None:
                continue
            if sequence.identity and sequence.owned_by:  # another engine's rowid alias, now AUTO_INCREMENT
                table = sequence.owned_by[1] or ""
                self.statement(f"ALTER TABLE {quote_name(table)} AUTO_INCREMENT = {int(sequence.last_value) + 1}")
            elif not sequence.identity:
                self.statement(f"SELECT SETVAL({quote_name(sequence.name)}, {int(sequence.last_value)}, "
                               f"{1 if sequence.is_called else 0})")
        self.write("\n")

    def post_data(self, model: DatabaseModel, late_fks: list[ForeignKeyConstraint]) -> None:
        for fk in late_fks:  # none: keys are inline (kept for a model that has them)
            self.statement(self.compile(AddConstraint(fk)))
        for raw in model.extras.raw_post_data:
            if raw.endswith("\n"):  # a block of our own (object_block): written as it is
                self.write(raw)
            else:
                self.statement(raw)
