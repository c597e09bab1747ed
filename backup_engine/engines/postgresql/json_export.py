"""The JSON document of a PostgreSQL target: the server renders every row.

Rows are `COPY (SELECT json_build_array(...)) TO STDOUT` (one raw JSON array per line) moved
in 1 MiB blocks; schema and rows come from one REPEATABLE READ snapshot. Small tables are read
many to a COPY (`batch_copy`), a big one alone (in two streams when it is big enough to gain).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, DumpResult, Progress, no_progress
from backup_engine.engines.collector import frozen_gc
from backup_engine.engines.postgresql import kinds as pg_kinds
from backup_engine.engines.postgresql.batch_copy import (
    SMALL_TABLE_BYTES,
    BatchLines,
    batches,
    copy_batch,
    copy_rows,
)
from backup_engine.engines.postgresql.catalog_common import quote_ident
from backup_engine.engines.postgresql.connect import LockWindow, locks_released, snapshot_connection
from backup_engine.engines.postgresql.reflect import reflect_postgresql
from backup_engine.engines.postgresql.sequence_positions import positions_aside
from backup_engine.engines.postgresql.session_aside import run_here, session_aside
from backup_engine.engines.postgresql.split_copy import SecondStream, copy_split, second_stream
from backup_engine.engines.postgresql.table_sizes import TableSize, table_sizes
from backup_engine.formats.json_document import BLOCK, DocumentWriter, RowLines, document_header
from backup_engine.formats.json_schema import model_to_dict
from backup_engine.formats.model import DatabaseModel, TableSpec
from backup_engine.targets import Target

METHOD = "postgresql-json"
# Given the exported snapshot's id, a block that runs beside the export (the `.sql` twin's script writer).
Alongside = Callable[[str], AbstractContextManager[None]]

PG_PORTABLE_INDEXES_SQL = """
SELECT n.nspname, c.relname, ic.relname, i.indisunique,
       array(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = ic.relam
WHERE c.relkind = 'r' AND i.indexprs IS NULL AND i.indpred IS NULL AND am.amname = 'btree'
  AND NOT i.indisprimary AND NOT (0 = ANY (i.indkey::int2[]))
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid AND co.contype IN ('u', 'x'))
ORDER BY 1, 2, 3"""


def export_json(target: Target, out: ByteSink, include_data: str,
                progress: Progress = no_progress, alongside: Alongside | None = None) -> DumpResult:
    """Write the JSON document of a PostgreSQL target into `out`; rows are rendered by the server.

    `alongside` is given the id of the snapshot the document is read from, before anything is
    read, and its block lasts until the document is written (the `.sql` twin, `twin.TwinDump`)."""
    with snapshot_connection(target, errors.NATIVE_BACKUP_FAILED, "JSON export: ") as raw, \
            _sharing_snapshot(raw, alongside), frozen_gc():  # the model lives through the document
        with positions_aside(target, raw) as positions, session_aside(target, raw) as aside, locks_released(raw):
            work = partial(_read_for_document, with_sizes=include_data != "schema")
            read_aside = aside.submit(work) if aside else None  # queued first: it is short
            model = reflect_postgresql(raw, failure=errors.JSON_BACKUP_FAILED, positions=positions, aside=aside,
                                       tables="specs",
                                       large_object_data=include_data != "schema")
            reads = (read_aside or run_here(raw, work)).result()
        with second_stream(raw, target) as stream:
            result = _write_postgresql(raw, stream, model, reads, out, include_data, progress)
    return result


@dataclass
class _DocumentReads:
    """What the document needs beside the model: read aside, while this session reads the model."""

    column_kinds: dict[tuple[str, str, str], tuple[str, str | None]]
    indexes: list[dict[str, Any]]  # the portable_indexes list
    sizes: dict[tuple[str, str], TableSize]  # for the batches and the two-stream split


def _read_for_document(cur: Any, *, with_sizes: bool) -> _DocumentReads:
    column_kinds = pg_kinds.column_kinds(cur)
    cur.execute(PG_PORTABLE_INDEXES_SQL)
    indexes = [{"table": f"{s}.{t}", "name": name, "unique": unique, "columns": list(cols)}
               for s, t, name, unique, cols in cur.fetchall()]
    return _DocumentReads(column_kinds, indexes, table_sizes(cur.connection) if with_sizes else {})


@contextmanager
def _sharing_snapshot(raw: Any, alongside: Alongside | None) -> Iterator[None]:
    if alongside is None:
        yield
        return
    with raw.cursor() as cur:  # at the transaction's top level: a subtransaction cannot export
        cur.execute("SELECT pg_catalog.pg_export_snapshot()")
        snapshot = cur.fetchone()[0]
    with alongside(snapshot):
        yield


def _write_postgresql(raw: Any, stream: SecondStream, model: DatabaseModel, reads: _DocumentReads,
                      out: ByteSink, include_data: str, progress: Progress) -> DumpResult:
    specs = model.table_specs or []
    kinds = {spec.key: {c.name: reads.column_kinds.get((spec.schema, spec.name, c.name), ("other", None))
                        for c in spec.columns} for spec in specs}
    # the document's rows hold every column, generated ones too (for other engines)
    row_columns = {spec.key: [column.name for column in spec.columns] for spec in specs}
    schema = model_to_dict(model, kinds, row_columns, reads.indexes)
    schema["server_version"] = model.server_version
    writer = DocumentWriter(out)
    writer.start(document_header("postgresql", model.server_version, include_data), schema)
    del schema  # written: the rows need only the model
    tables = [(spec.key, spec) for spec in specs
              if include_data != "schema" and not model.extras.partition_keys.get(spec.key)]
    sections = _Sections(writer, row_columns, len(tables), progress)
    sizes = reads.sizes

    def small(item: tuple[str, TableSpec]) -> bool:
        _, table = item
        size = sizes.get((table.schema, table.name))
        return size is not None and size.total < SMALL_TABLE_BYTES

    with LockWindow(raw) as window:
        for batched, run in batches(tables, small):
            if batched:
                _batch_rows(raw, run, row_columns, kinds, sections)
                continue
            key, table = run[0]
            rows = sections.open(key)
            streams = _table_rows(raw, stream, window, table, row_columns[key], kinds[key], rows,
                                  sizes.get((table.schema, table.name)))
            sections.close(key, rows, streams)
    writer.finish()
    names = {spec.key: model.extras.display_names.get(spec.key) or spec.key for spec in specs}
    table_rows = {names[key]: writer.table_rows.get(key, 0) for key in names}
    not_carried = model.extras.catalog.not_carried if model.extras.catalog else []
    return DumpResult(method=METHOD, server_version=model.server_version, table_rows=table_rows,
                      not_carried=list(not_carried))


class _Sections:
    """The document's table sections, opened and closed in the document's order; progress as each closes."""

    def __init__(self, writer: DocumentWriter, row_columns: dict[str, list[str]], count: int,
                 progress: Progress) -> None:
        self._writer, self._row_columns, self._count, self._progress = writer, row_columns, count, progress
        self._closed = self._rows = 0

    def open(self, key: str) -> RowLines:
        self._writer.open_table(key, self._row_columns[key])
        return RowLines(self._writer.out)

    def close(self, key: str, rows: RowLines, streams: int = 1) -> None:
        rows.close_rows()
        self._closed += 1
        self._rows += rows.rows
        self._writer.close_table(key, rows.rows, self._closed == self._count)
        self._progress(phase="dump", tables=self._closed, rows=self._rows, table=key, streams=streams)


def _row_array(columns: list[str], kinds: dict[str, tuple]) -> str:
    """The expression of one row as a JSON array, its values rendered by the server."""
    expressions = [pg_kinds.export_expression(quote_ident(name), kinds[name][0])
                   for name in columns]
    return f"pg_catalog.json_build_array({', '.join(expressions)})"


def _batch_rows(raw: Any, batch: list[tuple[str, TableSpec]], row_columns: dict[str, list[str]],
                kinds: dict[str, dict[str, tuple]], sections: _Sections) -> None:
    """Write the rows of a batch of small tables, each into its own section, from one COPY."""
    branches = [f"SELECT {position}, {_row_array(row_columns[key], kinds[key])} "  # noqa: S608 - quoted identifiers
                f"FROM ONLY {quote_ident(table.schema)}.{quote_ident(table.name)}"
                for position, (key, table) in enumerate(batch)]
    copy_batch(raw, branches, BatchLines([key for key, _ in batch], sections))


def _table_rows(raw: Any, stream: SecondStream, window: LockWindow, table: TableSpec, columns: list[str],
                kinds: dict[str, tuple], forwarder: RowLines, size: TableSize | None) -> int:
    """Write one table's rows (one JSON array per line) into `forwarder`; returns in how many streams."""
    table_sql = f"{quote_ident(table.schema)}.{quote_ident(table.name)}"
    if not columns:
        with window.table(), raw.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM ONLY {table_sql}")  # noqa: S608 - a quoted identifier
            forwarder.write(b"[]\n" * cur.fetchone()[0])
        return 1
    row = _row_array(columns, kinds)

    def query_for(where: str) -> str:
        return copy_rows(f"SELECT {row} FROM ONLY {table_sql}{where}")  # noqa: S608 - quoted identifiers

    middle = stream.pages_to_split(size)
    if middle:
        window.close()  # the split may export the snapshot: only outside a savepoint
        copy_split(raw, stream, query_for, middle, forwarder)
        return 2
    with window.table(), io.BufferedWriter(forwarder, buffer_size=BLOCK) as buffered, raw.cursor() as cur:
        cur.copy_expert(query_for(""), buffered, size=BLOCK)
        buffered.flush()
    return 1
