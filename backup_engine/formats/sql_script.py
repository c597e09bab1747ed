"""The `sql` format's writer: a model and one row source per table into a restorable script.

`ScriptWriter` holds what every engine's script has in common: buffered streaming output,
names quoted by the dialect's preparer, and the order of a dump (pre-data, data in foreign-key
order, sequence positions, post-data). Each engine subclasses it (as Alembic's `DefaultImpl`
has one subclass per dialect) and fills in its header and footer, how tables are created, how
rows are written (COPY blocks, INSERTs) and what comes after the data.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import ForeignKeyConstraint, sort_tables_and_constraints

from backup_engine import errors
from backup_engine.dumpinfo import INCLUDE_DATA_MODES, ByteSink, Progress, no_progress
from backup_engine.formats.model import DatabaseModel, TableShape, data_columns
from backup_engine.formats.table_order import foreign_key_order

TEXT_BLOCK = 1 << 20
COPY_BLOCK = 1 << 20


@dataclass
class CopyData:
    """Table data as COPY text: `copy_to(file)` writes the lines into `file`."""

    columns: list[str]
    copy_to: Callable[[Any], None]


@dataclass
class RowData:
    """Table data as rows of Python values, in `columns` order; `kinds` as the engine's literals take them."""

    columns: list[str]
    rows: Iterable[Sequence[Any]]
    kinds: Sequence[str | None] | None = None


ScriptTable = Table | TableShape  # a shape only in a script written from the catalog (PostgreSQL's)
DataSource = Callable[[ScriptTable, list[str]], "CopyData | RowData"]
TableOrder = list[tuple[ScriptTable, list[ForeignKeyConstraint]]]


class LineCounter(io.RawIOBase):
    """The raw end of a BufferedWriter: passes large blocks of lines to the writer, counting them."""

    def __init__(self, writer: ScriptWriter) -> None:
        self.writer = writer
        self.rows = 0

    def writable(self) -> bool:
        return True

    def write(self, block: Any) -> int:
        data = bytes(block)
        self.rows += data.count(b"\n")
        self.writer.write_bytes(data)
        return len(data)


class ScriptWriter:
    """Writes a model and its data as one engine's SQL script, streaming into `out`."""

    #: foreign keys are all written inside CREATE TABLE (engines without ALTER TABLE ADD CONSTRAINT)
    inline_foreign_keys = False

    def __init__(self, out: ByteSink, dialect: Dialect, *, progress: Progress = no_progress) -> None:
        self.out = out
        self.dialect = dialect
        self.preparer = dialect.identifier_preparer
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

    def table_name(self, table: ScriptTable) -> str:
        """`preparer.format_table(table)`, for a `TableShape` too."""
        return self.qname(table.schema, table.name)

    def display_name(self, table: ScriptTable) -> str:
        """The name `table_rows` reports for a table (the engine's own convention)."""
        return self.table_name(table)

    def column_list(self, columns: Sequence[str]) -> str:
        return ", ".join(self.preparer.quote(name) for name in columns)

    def compile(self, element: Any) -> str:
        return str(element.compile(dialect=self.dialect)).strip()

    # the script -------------------------------------------------------------
    def table_order(self, model: DatabaseModel) -> tuple[TableOrder, list[ForeignKeyConstraint]]:
        """Tables in foreign-key order with the keys each creates inline, and the keys of
        cycles and self-references, to be added after the data. A model of `table_shapes` comes
        with its catalog, whose statements create the tables and add every key after the data."""
        metadata = model.metadata
        partitions = model.extras.partitions
        if model.table_shapes is not None:
            ordered_shapes = foreign_key_order(model.table_shapes, [(p.parent, p.table) for p in partitions])
            return [(shape, []) for shape in ordered_shapes], []
        self_refs = {id(fk) for table in metadata.tables.values() for fk in table.foreign_key_constraints
                     if fk.referred_table is table}
        ordered = sort_tables_and_constraints(
            list(metadata.tables.values()),
            filter_fn=lambda fk: True if id(fk) in self_refs else None,
            extra_dependencies=[(metadata.tables[p.parent], metadata.tables[p.table]) for p in partitions
                                if p.parent in metadata.tables and p.table in metadata.tables],
        )
        if self.inline_foreign_keys:  # references are not checked when a table is created
            ordered = [(table, table.foreign_key_constraints if table is not None else []) for table, _ in ordered]
        tables = [(table, list(fks)) for table, fks in ordered if table is not None]
        partitioned = {p.table for p in partitions}
        late = [fk for table, fks in ordered if table is None for fk in fks if fk.parent.key not in partitioned]
        return tables, late

    def write_script(self, model: DatabaseModel, include_data: str, data_for: DataSource | None) -> dict[str, int]:
        """The whole script; returns rows per table, keyed by the table's display name."""
        if include_data not in INCLUDE_DATA_MODES:
            raise errors.InvalidRequest(errors.UNKNOWN_INCLUDE_DATA, repr(include_data))
        tables, late_fks = self.table_order(model)
        names = {table.key: model.extras.display_names.get(table.key) or self.display_name(table)
                 for table, _ in tables}
        table_rows: dict[str, int] = {}
        self.header(model, include_data)
        if include_data != "data":
            self.pre_data(model, tables)
            table_rows.update({names[table.key]: 0 for table, _ in tables})
        if include_data != "schema":
            if data_for is None:
                raise errors.DumpError(errors.FALLBACK_FAILED, "no data source")
            self.before_data(model, tables, include_data)
            for table, _ in tables:
                if self.holds_rows(model, table):
                    table_rows[names[table.key]] = self.table_data(table, data_for)
                    self.tables_done += 1
            self.after_data(model, tables, include_data)
            self.sequence_positions(model)
        if include_data != "data":
            self.post_data(model, late_fks)
        self.footer()
        self.flush()
        return table_rows

    def holds_rows(self, model: DatabaseModel, table: ScriptTable) -> bool:
        """Whether the table has rows of its own to write (a partitioned parent has none)."""
        return not model.extras.partition_keys.get(table.key)

    def table_data(self, table: ScriptTable, data_for: DataSource) -> int:
        """Write one table's rows; returns how many."""
        source = data_for(table, data_columns(table))
        if isinstance(source, CopyData):
            return self.copy_block(table, source)
        return self.insert_rows(table, source)

    # the parts each engine writes its own way ----------------------------------
    def header(self, model: DatabaseModel, include_data: str) -> None:
        raise NotImplementedError

    def footer(self) -> None:
        raise NotImplementedError

    def pre_data(self, model: DatabaseModel, tables: TableOrder) -> None:
        raise NotImplementedError

    def before_data(self, model: DatabaseModel, tables: TableOrder, include_data: str) -> None:
        """Before the first row (a data-only script pauses triggers here)."""

    def after_data(self, model: DatabaseModel, tables: TableOrder, include_data: str) -> None:
        """After the last row."""

    def copy_block(self, table: ScriptTable, source: CopyData) -> int:
        raise errors.DumpError(errors.FALLBACK_FAILED, "this engine's scripts take no COPY data")

    def insert_rows(self, table: Table, source: RowData) -> int:
        raise NotImplementedError

    def sequence_positions(self, model: DatabaseModel) -> None:
        """Where each sequence stands, after the data."""

    def post_data(self, model: DatabaseModel, late_fks: list[ForeignKeyConstraint]) -> None:
        raise NotImplementedError
