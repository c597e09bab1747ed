"""PostgreSQL's script writer: what pg_dump writes, from a `DatabaseModel`.

A model read from PostgreSQL by this worker (the fallback, our own JSON documents) carries its
catalog (`extras.catalog`): every object as the server's deparsers print it, in dependency
order, sectioned as pg_dump sections its dump. The script is then those statements before the
data, the data (COPY blocks, then large objects with `lo_create` + `lo_put`, inside the
restore's own transaction), sequence positions, the statements after the data and last the
refresh of materialized views.

Otherwise (a conversion from another engine, a document that is not ours) tables are
created with `CreateTable(...).compile(dialect=...)` in foreign-key order; keys of cycles and
self-references are added with `ALTER TABLE ... ADD CONSTRAINT` after the data, as are
indexes; then sequence positions, views, late functions, triggers (in their enabled state) and
comments. Data goes into `COPY ... FROM stdin` blocks. The script sets pg_dump's session
first and ends with pg_dump's end marker, so it restores the same way as a pg_dump file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import AddConstraint, CreateTable, ForeignKeyConstraint, SetColumnComment, SetTableComment

from backup_engine.dumpinfo import ByteSink, Progress, no_progress
from backup_engine.engines.postgresql.literals import pg_copy_row, pg_string
from backup_engine.engines.postgresql.native import END_MARKER
from backup_engine.engines.postgresql.restore import TRIGGER_STATES
from backup_engine.formats.model import CatalogNode, DatabaseModel, LargeObjectDef, PgCatalog, SequenceDef
from backup_engine.formats.sql_script import (
    COPY_BLOCK,
    CopyData,
    LineCounter,
    RowData,
    ScriptTable,
    ScriptWriter,
    TableOrder,
)

# pg_dump's session settings: exact floats, ISO dates, no timeouts, UTF-8.
SCRIPT_HEADER = """--
-- PostgreSQL database dump (include_data={include_data}, backup worker, SQLAlchemy fallback)
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


def make_dialect(reserved_words: Iterable[str] = ()) -> Dialect:
    """A dialect for compiling script text: no parameter escaping, standard strings, and every
    word in `reserved_words` (the server's own keywords) quoted as well."""
    dialect: Dialect = pg_dialect.dialect(paramstyle="named")
    dialect._backslash_escapes = False  # the script sets standard_conforming_strings = on
    preparer = dialect.identifier_preparer
    preparer.reserved_words = set(preparer.reserved_words) | {word.lower() for word in reserved_words}
    return dialect


HEX = re.compile(r"[0-9a-fA-F]*")
LARGE_OBJECT_HEX = 1 << 21  # hex digits per lo_put (1 MiB of data)
LargeObjectSource = Callable[[int], Iterable[tuple[int, bytes]]]


class PostgresScriptWriter(ScriptWriter):
    """A model and its data as a psql script."""

    def __init__(self, out: ByteSink, *, reserved_words: Iterable[str] = (), progress: Progress = no_progress) -> None:
        super().__init__(out, make_dialect(reserved_words), progress=progress)
        self._paused: list[tuple[ScriptTable, Any]] = []
        self._catalog: PgCatalog | None = None
        self._include_data = "full"
        # (offset, bytes) of a large object, read from the source (the fallback); else the model's hex
        self.large_object_source: LargeObjectSource | None = None

    def header(self, model: DatabaseModel, include_data: str) -> None:
        self._catalog = model.extras.catalog
        self._include_data = include_data
        self.write(SCRIPT_HEADER.format(include_data=include_data))

    def footer(self) -> None:
        if self._catalog is not None and self._include_data == "data":
            self.catalog_nodes("refresh")
        self.write(f"\n--\n{END_MARKER.decode()}\n--\n\n")

    # the catalog's objects -----------------------------------------------------
    def catalog_nodes(self, section: str) -> None:
        for node in self._catalog.nodes if self._catalog else ():
            if node.section == section:
                self.catalog_node(node)

    def catalog_node(self, node: CatalogNode) -> None:
        for statement in node.statements:
            self.statement(statement)
        self.write("\n")

    def large_objects(self, catalog: PgCatalog) -> None:
        for large_object in catalog.large_objects:
            oid = int(large_object.oid)
            self.statement(f"SELECT pg_catalog.lo_create('{oid}')")
            for offset, hex_digits in self._large_object_pieces(large_object):
                if hex_digits:
                    self.statement(f"SELECT pg_catalog.lo_put('{oid}', {offset}, '\\x{hex_digits}')")
            if large_object.comment is not None:
                self.statement(f"COMMENT ON LARGE OBJECT {oid} IS {pg_string(large_object.comment)}")
        if catalog.large_objects:
            self.write("\n")

    def _large_object_pieces(self, large_object: LargeObjectDef) -> Iterable[tuple[int, str]]:
        if self.large_object_source is not None:
            for offset, data in self.large_object_source(int(large_object.oid)):
                yield offset, data.hex()
            return
        digits = large_object.data or ""
        if len(digits) % 2 or not HEX.fullmatch(digits):
            raise ValueError(f"large object {large_object.oid}: its data is not hex")
        for start in range(0, len(digits), LARGE_OBJECT_HEX):
            yield start // 2, digits[start:start + LARGE_OBJECT_HEX]

    # pre-data ---------------------------------------------------------------
    def pre_data(self, model: DatabaseModel, tables: TableOrder) -> None:
        if self._catalog is not None:
            self.statement("SET default_table_access_method = heap")
            self.catalog_nodes("pre")
            return
        extras = model.extras
        partitions = {p.table: p for p in extras.partitions}
        for schema in extras.schemas:
            self.statement(f"CREATE SCHEMA {self.preparer.quote_schema(schema)}")
        self.statement("CREATE SCHEMA IF NOT EXISTS public")
        for ext in extras.extensions:
            where = f" WITH SCHEMA {self.preparer.quote_schema(ext.schema)}" if ext.schema else ""
            self.statement(f"CREATE EXTENSION IF NOT EXISTS {self.preparer.quote(ext.name)}{where}")
        for enum in extras.enums:
            labels = ", ".join(pg_string(label) for label in enum.labels)
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
            if partition is not None:
                parent = model.metadata.tables[partition.parent]
                by = extras.partition_keys.get(table.key)
                self.statement(f"CREATE TABLE {self.table_name(table)} PARTITION OF {self.table_name(parent)}\n"
                               f"    {partition.bound}" + (f"\nPARTITION BY {by}" if by else ""))
            else:
                self.statement(self.compile(CreateTable(table, include_foreign_key_constraints=fks)))
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
                schema, table_name, column = sequence.owned_by
                self.statement(f"ALTER SEQUENCE {self.qname(sequence.schema, sequence.name)} OWNED BY "
                               f"{self.qname(schema, table_name or '')}.{self.preparer.quote(column or '')}")
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
    def before_data(self, model: DatabaseModel, tables: TableOrder, include_data: str) -> None:
        """A data-only script fills tables whose user triggers exist: keep them from firing."""
        if include_data != "data":
            return
        keys = {table.key: table for table, _ in tables}
        for trigger in model.extras.triggers:
            key = f"{trigger.schema}.{trigger.table}" if trigger.schema else trigger.table
            if key in keys and trigger.enabled in TRIGGER_STATES and trigger.enabled != "D":
                self._paused.append((keys[key], trigger))
        for table, trigger in self._paused:
            self.statement(f"ALTER TABLE {self.table_name(table)} DISABLE TRIGGER {self.preparer.quote(trigger.name)}")

    def after_data(self, model: DatabaseModel, tables: TableOrder, include_data: str) -> None:
        """Large objects; each paused trigger back in its state once every row (and deferred check) is in."""
        if self._catalog is not None:
            self.large_objects(self._catalog)
        if self._paused:
            self.statement("SET CONSTRAINTS ALL IMMEDIATE")  # no pending trigger events for ALTER TABLE
        for table, trigger in self._paused:
            self.statement(f"ALTER TABLE {self.table_name(table)} {TRIGGER_STATES[trigger.enabled]} "
                           f"{self.preparer.quote(trigger.name)}")
        self._paused = []

    def copy_block(self, table: ScriptTable, source: CopyData) -> int:
        self.write(f"COPY {self.table_name(table)} ({self.column_list(source.columns)}) FROM stdin;\n")
        counter = LineCounter(self)
        with io.BufferedWriter(counter, buffer_size=COPY_BLOCK) as buffered:
            source.copy_to(buffered)
            buffered.flush()
        self.rows += counter.rows
        self.write("\\.\n\n")
        return counter.rows

    def insert_rows(self, table: Table, source: RowData) -> int:
        """Rows of Python values go into a COPY block too (rendered by `literals`)."""
        self.write(f"COPY {self.table_name(table)} ({self.column_list(source.columns)}) FROM stdin;\n")
        count = 0
        for row in source.rows:
            self.write(pg_copy_row(row, source.kinds))
            count += 1
        self.rows += count
        self.write("\\.\n\n")
        return count

    def sequence_positions(self, model: DatabaseModel) -> None:
        for seq in model.extras.sequences:
            if seq.last_value is None:
                continue
            if seq.identity and seq.owned_by and not seq.exact_name:
                schema, table, column = seq.owned_by
                start = int(seq.last_value) + (int(seq.increment) if seq.is_called else 0)
                self.statement(f"ALTER TABLE {self.qname(schema, table or '')} ALTER COLUMN "
                               f"{self.preparer.quote(column or '')} RESTART WITH {start}")
                continue
            name = pg_string(self.qname(seq.schema, seq.name))
            self.statement(f"SELECT pg_catalog.setval({name}, {int(seq.last_value)}, "
                           f"{'true' if seq.is_called else 'false'})")
        self.write("\n")

    # post-data --------------------------------------------------------------
    def post_data(self, model: DatabaseModel, late_fks: list[ForeignKeyConstraint]) -> None:
        if self._catalog is not None:
            self.catalog_nodes("post")
            if self._include_data == "full":
                self.catalog_nodes("refresh")
            return
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
            self.statement(f"COMMENT ON {comment.target} IS {pg_string(comment.text)}")
