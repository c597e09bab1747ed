"""The SQLAlchemy fallback: restorable SQL without pg_dump, from reflection and the dialect's compiler.

Three parts, usable apart:

(a) reflection (`reflect_postgresql`, `reflect_sqlite`): a live database into a
    `sqlmodel.DatabaseModel`, that is SQLAlchemy `MetaData` plus `SchemaExtras` for what
    MetaData cannot hold (enums, domains, sequences and their positions, partitioning,
    views, functions, triggers; the exact catalog types of PostgreSQL columns);
(b) `SqlScriptWriter`: a model plus one row source per table into a SQL script, for
    "postgresql" or "sqlite". Tables are created with `CreateTable(...).compile(dialect=...)`
    in `sort_tables_and_constraints` order; foreign keys of cycles and self-references are
    added with `ALTER TABLE ... ADD CONSTRAINT` after the data, as are indexes; then the
    sequence positions, views, late functions and triggers. A JSON backup's schema,
    rebuilt into a model, goes through the same writer;
(c) `backup_engine.sqlliterals`: every value that is pasted into SQL.

PostgreSQL data never passes through Python values: `COPY ... TO STDOUT` of each table is
copied in 1 MiB blocks into a `COPY ... FROM stdin;` block of the script (constant memory, and
PostgreSQL does the rendering, which is what gets near pg_dump's speed). SQLite data is read
with a streaming cursor and written as multi-row INSERTs. The script restores with
`psql -X -v ON_ERROR_STOP=1 --single-transaction` (PostgreSQL) or
`backup_engine.sqlite.restore_sql` (SQLite) and ends with the same marker as the native dumps.

`dump_sqlite_file` is the one SQLite SQL generator: the SQLAlchemy fallback runs it on the live
file, `backup_engine.sqlite.dump_sql` (the native path) on its online-backup-API snapshot.
"""

from __future__ import annotations

import io
import sqlite3
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Column, MetaData, Table, create_engine, literal_column
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import SAWarning
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import (
    AddConstraint,
    CreateTable,
    DefaultClause,
    ForeignKeyConstraint,
    SetColumnComment,
    SetTableComment,
    sort_tables_and_constraints,
)
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import Integer, UserDefinedType

from backup_engine import errors, sqlite, sqlliterals
from backup_engine.dumpinfo import INCLUDE_DATA_MODES, ByteSink, DumpResult, Progress, no_progress
from backup_engine.postgresql import TRIGGER_STATES
from backup_engine.sqlmodel import DatabaseModel, SchemaExtras, SequenceDef
from backup_engine.targets import Target

METHOD = "sqlalchemy"
PG_END_MARKER = "-- PostgreSQL database dump complete"  # = postgresql.END_MARKER
SQLITE_HEADER = "-- SQLite database dump (backup worker, SQLAlchemy fallback)"
COPY_BLOCK = 1 << 20
TEXT_BLOCK = 1 << 20
SQLITE_ROWS_PER_INSERT = 100
SQLITE_CHUNK_ROWS = 500  # rows read and their REALs checked at a time

# pg_dump's session settings: exact floats, ISO dates, no timeouts, UTF-8.
PG_SCRIPT_HEADER = """--
-- PostgreSQL database dump (backup worker, SQLAlchemy fallback)
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

"""


# --- (a) types and sources ----------------------------------------------------------------------
class CatalogType(UserDefinedType):
    """A column type written exactly as the catalog spells it (format_type(), a SQLite declared type)."""

    cache_ok = True

    def __init__(self, spec: str, integer: bool = False) -> None:
        self.spec = spec
        self.integer = integer

    def get_col_spec(self, **_: Any) -> str:
        return self.spec

    @property
    def _type_affinity(self) -> Any:  # lets SQLite's compiler see INTEGER PRIMARY KEY AUTOINCREMENT
        return Integer if self.integer else UserDefinedType

    def __repr__(self) -> str:
        return f"CatalogType({self.spec!r})"


@dataclass
class CopyData:
    """PostgreSQL table data as COPY text: `copy_to(file)` writes the lines into `file`."""

    columns: list[str]
    copy_to: Callable[[Any], None]


@dataclass
class RowData:
    """Table data as rows of Python values, in `columns` order; `kinds` as in sqlliterals."""

    columns: list[str]
    rows: Iterable[Sequence[Any]]
    kinds: Sequence[str | None] | None = None


DataSource = Callable[[Table, list[str]], "CopyData | RowData"]


def data_columns(table: Table) -> list[str]:
    """Columns a dump writes: all but generated and hidden ones, after the implicit rowid if kept."""
    rowid = [table.info["rowid"]] if table.info.get("rowid") else []
    return rowid + [column.name for column in table.columns
                    if column.computed is None and not column.info.get("hidden")]


def make_dialect(name: str, reserved_words: Iterable[str] = ()) -> Dialect:
    """A dialect for compiling script text: no parameter escaping, standard strings, and every
    word in `reserved_words` (e.g. the server's own keywords) quoted as well."""
    if name == "postgresql":
        dialect: Dialect = pg_dialect.dialect(paramstyle="named")
        dialect._backslash_escapes = False  # the script sets standard_conforming_strings = on
    elif name == "sqlite":
        dialect = sqlite_dialect.dialect(paramstyle="named")
        # Every identifier quoted: no dependence on which words this SQLite (or a later one) reserves.
        dialect.identifier_preparer._requires_quotes = lambda _value: True
    else:
        raise errors.InvalidRequest(errors.UNSUPPORTED_DIALECT, name)
    preparer = dialect.identifier_preparer
    preparer.reserved_words = set(preparer.reserved_words) | {word.lower() for word in reserved_words}
    return dialect


def _verbatim(clause: Any) -> Any:
    """Reflected SQL text as a verbatim element (TextClause would read `:name` as a parameter)."""
    if isinstance(clause, TextClause):
        return literal_column(clause.text)
    return clause


def _freeze_reflected_text(metadata: MetaData) -> None:
    for table in metadata.tables.values():
        for column in table.columns:
            default = column.server_default
            if isinstance(default, DefaultClause) and isinstance(default.arg, TextClause):
                column.server_default = DefaultClause(literal_column(default.arg.text), _reflected=True)
            if column.computed is not None:
                column.computed.sqltext = _verbatim(column.computed.sqltext)
        for constraint in table.constraints:
            if hasattr(constraint, "sqltext"):
                constraint.sqltext = _verbatim(constraint.sqltext)


# --- (a) PostgreSQL reflection -------------------------------------------------------------------
def reflect_postgresql(conn: Connection) -> DatabaseModel:
    """The model of the database behind `conn` (a session with search_path = pg_catalog)."""
    from backup_engine import pgcatalog

    cur = conn.connection.dbapi_connection.cursor()
    info = pgcatalog.read_table_info(cur)
    extras = pgcatalog.read_extras(cur, info)
    cur.execute("SHOW server_version")
    version = cur.fetchone()[0]
    metadata = MetaData()
    schemas = sorted({key.rsplit(".", 1)[0] for key in info.kinds} | {"public"} | set(extras.schemas))
    for schema in schemas:
        names = [key.split(".", 1)[1] for key in info.kinds if key.split(".", 1)[0] == schema]
        if names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SAWarning)  # unknown types: replaced by catalog types below
                metadata.reflect(conn, schema=schema, only=names, postgresql_ignore_search_path=True,
                                 resolve_fks=False)
    _freeze_reflected_text(metadata)
    for key, table in metadata.tables.items():
        table.indexes.clear()  # from the catalog, exactly as defined
        for column in table.columns:
            column_key = (table.schema, table.name, column.name)
            column.type = CatalogType(info.column_types[column_key])
            column.autoincrement = False  # serial and identity come from the catalog, never SERIAL
            if column.computed is None:
                default = info.column_defaults.get(column_key)
                column.server_default = DefaultClause(literal_column(default), _reflected=True) if default else None
        if key in info.unlogged:
            table._prefixes = ["UNLOGGED"]
        if key in info.partition_keys:
            table.dialect_options["postgresql"]["partition_by"] = info.partition_keys[key]
        for constraint in table.constraints:
            options = constraint.dialect_options["postgresql"] if constraint.dialect_options else None
            if options is not None and options.get("nulls_not_distinct") is False:
                options["nulls_not_distinct"] = None  # the default: no PG15-only syntax in the script
            flags = info.constraint_flags.get((table.schema, table.name, constraint.name or ""))
            if flags and flags[0]:
                constraint.deferrable = True
                constraint.initially = "DEFERRED" if flags[1] else "IMMEDIATE"
    cur.close()
    return DatabaseModel(dialect="postgresql", metadata=metadata, extras=extras, server_version=version)


# --- (a) SQLite reflection -----------------------------------------------------------------------
def reflect_sqlite(conn: Connection) -> DatabaseModel:
    """The model of a SQLite database: MetaData for order and columns, and the CREATE statements
    SQLite keeps verbatim (tables, indexes, views, triggers), which are exact where reflection is not.

    Implicit rowids are kept (other data may refer to them; a full-text table's rowid links it to
    its content): a table with a rowid but no INTEGER PRIMARY KEY column, and every virtual table
    with a rowid, gets it dumped under the first free name of rowid/_rowid_/oid. Which objects are
    the user's (not internal, not a virtual table's shadow tables) is `sqlite.schema_objects`.
    """
    raw: sqlite3.Connection = conn.connection.dbapi_connection
    extras = SchemaExtras()
    objects = sqlite.schema_objects(raw)
    kinds = sqlite.table_kinds(raw)
    table_names = sqlite.user_table_names(raw)
    metadata = MetaData()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # unknown declared types: replaced just below
        metadata.reflect(conn, only=table_names, resolve_fks=False)
    _freeze_reflected_text(metadata)
    for kind, name, _, sql in objects:
        if kind == "table" and name in metadata.tables:
            extras.table_ddl[name] = sql
        elif kind in ("index", "view", "trigger"):
            extras.raw_post_data.append(sql)
    for table in metadata.tables.values():
        table.indexes.clear()  # verbatim CREATE INDEX statements instead
        declared = {row[1]: (row[2], row[5], row[6]) for row in
                    raw.execute("SELECT * FROM pragma_table_xinfo(?)", (table.name,)).fetchall()}
        pk_columns = [name for name, (_, pk, _) in declared.items() if pk]
        for column in table.columns:
            spec, _, hidden = declared[column.name]
            column.type = CatalogType(spec, integer=spec.upper() == "INTEGER")
            if not column.type.integer:
                column.autoincrement = False
            if hidden:
                column.info["hidden"] = True
        kind, without_rowid = kinds[table.name]
        aliased = len(pk_columns) == 1 and declared[pk_columns[0]][0].upper() == "INTEGER"
        if not without_rowid and (kind == "virtual" or not aliased):
            taken = {name.lower() for name in declared}
            table.info["rowid"] = next((n for n in ("rowid", "_rowid_", "oid") if n not in taken), None)
    if raw.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        extras.sqlite_sequence = [list(row) for row in raw.execute("SELECT name, seq FROM sqlite_sequence")]
    for pragma in ("user_version", "application_id"):
        extras.pragmas[pragma] = int(raw.execute(f"PRAGMA {pragma}").fetchone()[0])
    extras.display_names = {name: name for name in metadata.tables}
    return DatabaseModel(dialect="sqlite", metadata=metadata, extras=extras, server_version=sqlite3.sqlite_version)


# --- (b) the writer ------------------------------------------------------------------------------
class _CopyForwarder(io.RawIOBase):
    """The raw end of a BufferedWriter: receives COPY output in large blocks, counts its lines."""

    def __init__(self, writer: SqlScriptWriter) -> None:
        self.writer = writer
        self.rows = 0

    def writable(self) -> bool:
        return True

    def write(self, block: Any) -> int:
        data = bytes(block)
        self.rows += data.count(b"\n")
        self.writer.write_bytes(data)
        return len(data)


class SqlScriptWriter:
    """Writes a model and its data as a SQL script for one dialect, streaming into `out`."""

    def __init__(self, out: ByteSink, dialect_name: str, *, reserved_words: Iterable[str] = (),
                 progress: Progress = no_progress, sqlite_header: str = SQLITE_HEADER) -> None:
        self.out = out
        self.dialect_name = dialect_name
        self.sqlite_header = sqlite_header
        self.dialect = make_dialect(dialect_name, reserved_words)
        self.preparer = self.dialect.identifier_preparer
        self.progress = progress
        self.size = 0
        self.rows = 0
        self.tables_done = 0
        self._parts: list[str] = []
        self._pending = 0

    # output -----------------------------------------------------------------
    def write(self, text: str) -> None:
        self._parts.append(text)
        self._pending += len(text)
        if self._pending >= TEXT_BLOCK:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            data = "".join(self._parts).encode("utf-8")
            self._parts, self._pending = [], 0
            self.out.write(data)
            self.size += len(data)
            self.progress(phase="dump", tables=self.tables_done, rows=self.rows, bytes=self.size)

    def write_bytes(self, data: bytes) -> None:
        self.flush()
        self.out.write(data)
        self.size += len(data)
        self.progress(phase="dump", tables=self.tables_done, rows=self.rows, bytes=self.size)

    def statement(self, sql: str) -> None:
        self.write(sql.rstrip().rstrip(";") + ";\n")

    # names -------------------------------------------------------------------
    def qname(self, schema: str | None, name: str) -> str:
        quoted = self.preparer.quote(name)
        return f"{self.preparer.quote_schema(schema)}.{quoted}" if schema else quoted

    def table_name(self, table: Table) -> str:
        return self.preparer.format_table(table)

    def display_name(self, table: Table) -> str:
        """The name table_rows reports: pg_dump's qualified SQL name, SQLite's plain table name."""
        return self.table_name(table) if self.dialect_name == "postgresql" else table.name

    def column_list(self, columns: Sequence[str]) -> str:
        return ", ".join(self.preparer.quote(name) for name in columns)

    def compile(self, element: Any) -> str:
        return str(element.compile(dialect=self.dialect)).strip()

    # the script -------------------------------------------------------------
    def write_script(self, model: DatabaseModel, include_data: str, data_for: DataSource | None) -> dict[str, int]:
        """The whole script; returns rows per table, keyed by the table's display name."""
        if include_data not in INCLUDE_DATA_MODES:
            raise errors.InvalidRequest(errors.UNKNOWN_INCLUDE_DATA, repr(include_data))
        extras = model.extras
        metadata = model.metadata
        partitions = {p.table: p for p in extras.partitions}
        self_refs = {id(fk) for table in metadata.tables.values() for fk in table.foreign_key_constraints
                     if fk.referred_table is table}
        ordered = sort_tables_and_constraints(
            list(metadata.tables.values()),
            filter_fn=lambda fk: True if id(fk) in self_refs else None,
            extra_dependencies=[(metadata.tables[p.parent], metadata.tables[p.table]) for p in extras.partitions
                                if p.parent in metadata.tables and p.table in metadata.tables],
        )
        if self.dialect_name == "sqlite":  # no ALTER TABLE ADD CONSTRAINT; references are not checked on CREATE
            ordered = [(table, table.foreign_key_constraints if table is not None else []) for table, _ in ordered]
        tables = [(table, fks) for table, fks in ordered if table is not None]
        late_fks = [fk for table, fks in ordered if table is None for fk in fks]
        late_fks = [fk for fk in late_fks if fk.parent.key not in partitions]  # partitions inherit theirs
        names = {table.key: extras.display_names.get(table.key) or self.display_name(table) for table, _ in tables}
        table_rows: dict[str, int] = {}
        triggers_of: dict[str, list[Any]] = {}
        for trigger in extras.triggers:
            if trigger.enabled in TRIGGER_STATES and trigger.enabled != "D":
                key = f"{trigger.schema}.{trigger.table}" if trigger.schema else trigger.table
                triggers_of.setdefault(key, []).append(trigger)

        self.header(model, include_data)
        if include_data != "data":
            self.pre_data(model, tables, partitions)
            table_rows.update({names[table.key]: 0 for table, _ in tables})
        if include_data != "schema":
            if data_for is None:
                raise errors.DumpError(errors.FALLBACK_FAILED, "no data source")
            # A data-only script fills tables whose user triggers exist: keep them from firing,
            # and put each back in its state once every row (and deferred check) is in.
            paused = [(table, trigger) for table, _ in tables for trigger in triggers_of.get(table.key, [])
                      ] if include_data == "data" else []
            for table, trigger in paused:
                self.statement(f"ALTER TABLE {self.table_name(table)} DISABLE TRIGGER "
                               f"{self.preparer.quote(trigger.name)}")
            for table, _ in tables:
                if extras.partition_keys.get(table.key):
                    continue  # a partitioned table holds no rows of its own
                table_rows[names[table.key]] = self.table_data(table, data_for)
                self.tables_done += 1
            if paused:
                self.statement("SET CONSTRAINTS ALL IMMEDIATE")  # no pending trigger events for ALTER TABLE
            for table, trigger in paused:
                self.statement(f"ALTER TABLE {self.table_name(table)} {TRIGGER_STATES[trigger.enabled]} "
                               f"{self.preparer.quote(trigger.name)}")
            self.sequence_positions(model)
        if include_data != "data":
            self.post_data(model, late_fks)
        self.footer()
        self.flush()
        return table_rows

    def header(self, model: DatabaseModel, include_data: str) -> None:
        if self.dialect_name == "postgresql":
            self.write(PG_SCRIPT_HEADER.replace("(backup worker", f"(include_data={include_data}, backup worker", 1))
        else:
            self.write(f"{self.sqlite_header}, SQLite {model.server_version}, include_data={include_data}\n"
                       "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n")

    def footer(self) -> None:
        if self.dialect_name == "postgresql":
            self.write(f"\n--\n{PG_END_MARKER}\n--\n\n")
        else:
            self.write(f"COMMIT;\n{sqlite.END_MARKER}\n")

    # pre-data ---------------------------------------------------------------
    def pre_data(self, model: DatabaseModel, tables: list[tuple[Table, list[ForeignKeyConstraint]]],
                 partitions: dict[str, Any]) -> None:
        extras = model.extras
        for pragma, value in extras.pragmas.items():
            self.statement(f"PRAGMA {pragma}={int(value)}")
        for schema in extras.schemas:
            self.statement(f"CREATE SCHEMA {self.preparer.quote_schema(schema)}")
        if self.dialect_name == "postgresql":
            self.statement("CREATE SCHEMA IF NOT EXISTS public")
        for ext in extras.extensions:
            where = f" WITH SCHEMA {self.preparer.quote_schema(ext.schema)}" if ext.schema else ""
            self.statement(f"CREATE EXTENSION IF NOT EXISTS {self.preparer.quote(ext.name)}{where}")
        for enum in extras.enums:
            labels = ", ".join(sqlliterals.pg_string(label) for label in enum.labels)
            self.statement(f"CREATE TYPE {self.qname(enum.schema, enum.name)} AS ENUM ({labels})")
        for domain in extras.domains:
            parts = [f"CREATE DOMAIN {self.qname(domain.schema, domain.name)} AS {domain.base_type}"]
            if domain.collation:
                parts.append(f"COLLATE {domain.collation}")
            if domain.default is not None:
                parts.append(f"DEFAULT {domain.default}")
            if domain.not_null:
                parts.append("NOT NULL")
            parts += [f"CONSTRAINT {self.preparer.quote(c.name)} {c.definition}" for c in domain.checks if c.validated]
            self.statement("\n    ".join(parts))
            for check in domain.checks:
                if not check.validated:
                    self.statement(f"ALTER DOMAIN {self.qname(domain.schema, domain.name)} ADD CONSTRAINT "
                                   f"{self.preparer.quote(check.name)} {check.definition}")
        for routine in extras.routines:
            if not routine.after_tables:
                self.statement(routine.definition)
        for sequence in extras.sequences:
            if not sequence.identity:
                self.create_sequence(sequence)
        self.write("\n")
        for table, fks in tables:
            partition = partitions.get(table.key)
            if table.key in extras.table_ddl:
                self.statement(extras.table_ddl[table.key])
            elif partition is not None:
                parent = model.metadata.tables[partition.parent]
                by = extras.partition_keys.get(table.key)
                self.statement(f"CREATE TABLE {self.table_name(table)} PARTITION OF {self.table_name(parent)}\n"
                               f"    {partition.bound}" + (f"\nPARTITION BY {by}" if by else ""))
            else:
                self.statement(self.compile(CreateTable(table, include_foreign_key_constraints=fks)))
            if self.dialect_name == "postgresql":
                if table.comment is not None:
                    self.statement(self.compile(SetTableComment(table)))
                for column in table.columns:
                    if column.comment is not None:
                        self.statement(self.compile(SetColumnComment(column)))
            self.write("\n")
        for constraint in extras.constraints:
            if not constraint.post_data:
                self.add_constraint(constraint)
        for sequence in extras.sequences:
            if sequence.owned_by and not sequence.identity:
                schema, table, column = sequence.owned_by
                self.statement(f"ALTER SEQUENCE {self.qname(sequence.schema, sequence.name)} OWNED BY "
                               f"{self.qname(schema, table or '')}.{self.preparer.quote(column or '')}")
        self.write("\n")

    def create_sequence(self, seq: SequenceDef) -> None:
        parts = [f"CREATE SEQUENCE {self.qname(seq.schema, seq.name)}", f"AS {seq.data_type}",
                 f"START WITH {int(seq.start)}", f"INCREMENT BY {int(seq.increment)}",
                 f"MINVALUE {int(seq.min_value)}" if seq.min_value is not None else "NO MINVALUE",
                 f"MAXVALUE {int(seq.max_value)}" if seq.max_value is not None else "NO MAXVALUE",
                 f"CACHE {int(seq.cache)}", "CYCLE" if seq.cycle else "NO CYCLE"]
        self.statement("\n    ".join(parts))

    def add_constraint(self, constraint: Any) -> None:
        self.statement(f"ALTER TABLE ONLY {self.qname(constraint.schema, constraint.table)} ADD CONSTRAINT "
                       f"{self.preparer.quote(constraint.name)} {constraint.definition}")

    # data -------------------------------------------------------------------
    def table_data(self, table: Table, data_for: DataSource) -> int:
        columns = data_columns(table)
        source = data_for(table, columns)
        if self.dialect_name == "postgresql":
            self.write(f"COPY {self.table_name(table)} ({self.column_list(source.columns)}) FROM stdin;\n")
            if isinstance(source, CopyData):
                forwarder = _CopyForwarder(self)
                with io.BufferedWriter(forwarder, buffer_size=COPY_BLOCK) as buffered:
                    source.copy_to(buffered)
                    buffered.flush()
                count = forwarder.rows
            else:
                count = 0
                for row in source.rows:
                    self.write(sqlliterals.pg_copy_row(row, source.kinds))
                    count += 1
            self.rows += count
            self.write("\\.\n\n")
            return count
        if isinstance(source, CopyData):
            raise errors.DumpError(errors.FALLBACK_FAILED, "COPY data cannot go into a SQLite script")
        return self.insert_rows(table, source)

    def insert_rows(self, table: Table, source: RowData) -> int:
        prefix = f"INSERT INTO {self.table_name(table)} ({self.column_list(source.columns)}) VALUES\n"
        literals = sqlliterals.SqliteLiterals()
        rows = iter(source.rows)
        count = 0
        try:
            while chunk := list(islice(rows, SQLITE_CHUNK_ROWS)):
                for values in literals.values_lists(chunk, SQLITE_ROWS_PER_INSERT):
                    self.write(f"{prefix}{values};\n")
                count += len(chunk)
                self.rows += len(chunk)
        finally:
            literals.close()
        return count

    def sequence_positions(self, model: DatabaseModel) -> None:
        extras = model.extras
        for seq in extras.sequences:
            if seq.last_value is None:
                continue
            if seq.identity and seq.owned_by:
                schema, table, column = seq.owned_by
                name = (f"pg_catalog.pg_get_serial_sequence({sqlliterals.pg_string(self.qname(schema, table or ''))}, "
                        f"{sqlliterals.pg_string(column or '')})")
            else:
                name = sqlliterals.pg_string(self.qname(seq.schema, seq.name))
            self.statement(f"SELECT pg_catalog.setval({name}, {int(seq.last_value)}, "
                           f"{'true' if seq.is_called else 'false'})")
        if extras.sqlite_sequence:
            literals = sqlliterals.SqliteLiterals()
            self.statement('DELETE FROM "sqlite_sequence"')
            for name, seq in extras.sqlite_sequence:
                values = f"({literals.literal(name)}, {literals.literal(seq)})"
                self.statement(f'INSERT INTO "sqlite_sequence" ("name", "seq") VALUES {values}')  # noqa: S608
            literals.close()
        self.write("\n")

    # post-data --------------------------------------------------------------
    def post_data(self, model: DatabaseModel, late_fks: list[ForeignKeyConstraint]) -> None:
        extras = model.extras
        for view in extras.views:
            name = self.qname(view.schema, view.name)
            options = f" WITH ({', '.join(view.options)})" if view.options else ""
            if view.materialized:
                self.statement(f"CREATE MATERIALIZED VIEW {name}{options} AS\n{view.definition}\nWITH DATA")
            else:
                check = f"\n  WITH {view.check_option.upper()} CHECK OPTION" if view.check_option else ""
                self.statement(f"CREATE VIEW {name}{options} AS\n{view.definition}{check}")
        for index in extras.indexes:
            self.statement(index.definition)
        for index in extras.indexes:
            if index.attach_to:
                self.statement(f"ALTER INDEX {self.qname(index.attach_to[0], index.attach_to[1] or '')} "
                               f"ATTACH PARTITION {self.qname(index.schema, index.name)}")
        for constraint in extras.constraints:
            if constraint.post_data:
                self.add_constraint(constraint)
        for fk in late_fks:
            self.statement(self.compile(AddConstraint(fk)))
        for raw in extras.raw_post_data:
            self.statement(raw)
        for routine in extras.routines:
            if routine.after_tables:
                self.statement(routine.definition)
        for trigger in extras.triggers:
            self.statement(trigger.definition)
            if trigger.enabled != "O" and trigger.enabled in TRIGGER_STATES:
                self.statement(f"ALTER TABLE {self.qname(trigger.schema, trigger.table)} "
                               f"{TRIGGER_STATES[trigger.enabled]} {self.preparer.quote(trigger.name)}")
        for comment in extras.comments:
            self.statement(f"COMMENT ON {comment.target} IS {sqlliterals.pg_string(comment.text)}")


# --- the dump ----------------------------------------------------------------------------------
def _pg_data_source(raw: Any, writer: SqlScriptWriter) -> DataSource:
    def source(table: Table, columns: list[str]) -> CopyData:
        query = f"COPY {writer.table_name(table)} ({writer.column_list(columns)}) TO STDOUT"

        def copy_to(file: Any) -> None:
            with raw.cursor() as cur:
                cur.copy_expert(query, file, size=COPY_BLOCK)

        return CopyData(columns=columns, copy_to=copy_to)

    return source


def _sqlite_data_source(raw: sqlite3.Connection, writer: SqlScriptWriter) -> DataSource:
    def source(table: Table, columns: list[str]) -> RowData:
        rowid = table.info.get("rowid")
        order = f" ORDER BY {writer.preparer.quote(rowid)}" if rowid else ""  # the order a restore appends fastest
        query = f"SELECT {writer.column_list(columns)} FROM {writer.table_name(table)}{order}"  # noqa: S608
        return RowData(columns=columns, rows=raw.execute(query))  # the cursor streams the rows

    return source


@contextmanager
def sqlalchemy_connection(raw: Any, url: str) -> Iterator[Connection]:
    """A SQLAlchemy connection over an open DB-API connection (reflection inside its snapshot)."""
    engine = create_engine(url, creator=lambda: raw, poolclass=StaticPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _dump_postgresql(target: Target, out: ByteSink, include_data: str, progress: Progress) -> DumpResult:
    from backup_engine.pgconnect import snapshot_connection

    with snapshot_connection(target, errors.FALLBACK_FAILED) as raw, \
            sqlalchemy_connection(raw, "postgresql+psycopg2://") as conn:
        model = reflect_postgresql(conn)
        writer = SqlScriptWriter(out, "postgresql", reserved_words=model.extras.reserved_words, progress=progress)
        table_rows = writer.write_script(model, include_data, _pg_data_source(raw, writer))
    return DumpResult(method=METHOD, server_version=model.server_version, table_rows=table_rows)


def dump_sqlite_file(path: Path, out: ByteSink, include_data: str, progress: Progress = no_progress, *,
                     header: str = SQLITE_HEADER, failure: str = errors.FALLBACK_FAILED) -> dict[str, int]:
    """Write the SQL script of the SQLite database file at `path` into `out`; rows per table.

    Schema and rows are read in one read transaction (one consistent state). A locked file is
    TargetUnavailable; any other failure is DumpError(`failure`, reason).
    """
    with sqlite.snapshot_connection(path, failure) as raw, sqlalchemy_connection(raw, "sqlite://") as conn:
        model = reflect_sqlite(conn)
        writer = SqlScriptWriter(out, "sqlite", progress=progress, sqlite_header=header)
        return writer.write_script(model, include_data, _sqlite_data_source(raw, writer))


def _dump_sqlite(target: Target, out: ByteSink, include_data: str, progress: Progress) -> DumpResult:
    table_rows = dump_sqlite_file(sqlite.existing_database_path(target), out, include_data, progress)
    return DumpResult(method=METHOD, server_version=sqlite3.sqlite_version, table_rows=table_rows)


def dump_sql(target: Target, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
    """Write a restorable SQL script of `target` into `out` without any client tool.

    Raises DumpError(FALLBACK_FAILED, reason) when it cannot, TargetUnavailable when the
    server cannot be reached.
    """
    if include_data not in INCLUDE_DATA_MODES:
        raise errors.InvalidRequest(errors.UNKNOWN_INCLUDE_DATA, repr(include_data))
    progress(phase="dump", method=METHOD)
    if target.dialect == "postgresql":
        return _dump_postgresql(target, out, include_data, progress)
    if target.dialect == "sqlite":
        return _dump_sqlite(target, out, include_data, progress)
    raise errors.InvalidRequest(errors.UNSUPPORTED_DIALECT, target.dialect)


__all__ = ["CatalogType", "Column", "CopyData", "DataSource", "RowData", "SqlScriptWriter", "data_columns",
           "dump_sql", "dump_sqlite_file", "make_dialect", "reflect_postgresql", "reflect_sqlite"]
