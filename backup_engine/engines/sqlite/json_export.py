"""The JSON document of a SQLite target, read in one read transaction.

SQLite is dynamically typed, so each value is written by its storage class (`kinds.encode`);
rows whose values JSON holds as they are take the fast path of one `json.dumps` per row.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, DumpResult, Progress, no_progress
from backup_engine.engines.collector import frozen_gc
from backup_engine.engines.reflection import sqlalchemy_connection
from backup_engine.engines.sqlite import files
from backup_engine.engines.sqlite import kinds as sqlite_kinds
from backup_engine.engines.sqlite.reflect import reflect_sqlite
from backup_engine.formats.json_document import DocumentWriter, document_header
from backup_engine.formats.json_schema import model_to_dict
from backup_engine.formats.model import DatabaseModel, data_columns, type_spec
from backup_engine.targets import Target

METHOD = "sqlite-json"
FETCH_ROWS = 1000


SQLITE_INDEXES_SQL = """
SELECT m.tbl_name, il.name, il."unique", il.partial, il.origin
FROM sqlite_master m, pragma_index_list(m.name) il
WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"""


def _sqlite_indexes(raw: sqlite3.Connection) -> list[dict[str, Any]]:
    found = []
    for table, name, unique, partial, origin in raw.execute(SQLITE_INDEXES_SQL).fetchall():
        if origin != "c" or partial:
            continue
        columns = [row[2] for row in raw.execute("SELECT seqno, cid, name FROM pragma_index_info(?) ORDER BY seqno",
                                                 (name,)).fetchall()]
        if columns and all(isinstance(c, str) for c in columns):
            found.append({"table": table, "name": name, "unique": bool(unique), "columns": columns})
    return found


def export_json(target: Target, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
    """Write the JSON document of a SQLite target into `out`, in one read transaction."""
    path = files.existing_database_path(target)
    with files.snapshot_connection(path, errors.NATIVE_BACKUP_FAILED, "JSON export: ") as raw, \
            sqlalchemy_connection(raw, "sqlite://") as conn, frozen_gc():  # the model lives through the document
        model = reflect_sqlite(conn, failure=errors.JSON_BACKUP_FAILED)
        return _write_sqlite(raw, model, out, include_data, progress)


def _write_sqlite(raw: sqlite3.Connection, model: DatabaseModel, out: ByteSink, include_data: str,
                  progress: Progress) -> DumpResult:
    metadata = model.metadata
    kinds: dict[str, dict[str, tuple[str, str | None]]] = {}
    for key, table in metadata.tables.items():
        kinds[key] = {c.name: (sqlite_kinds.kind_of(type_spec(c)), None) for c in table.columns}
        if table.info.get("rowid"):
            kinds[key][table.info["rowid"]] = ("integer", None)
    row_columns = {key: data_columns(table) for key, table in metadata.tables.items()}
    schema = model_to_dict(model, kinds, row_columns, _sqlite_indexes(raw))
    schema["server_version"] = model.server_version
    writer = DocumentWriter(out)
    writer.start(document_header("sqlite", model.server_version, include_data), schema)
    tables = list(metadata.tables.items()) if include_data != "schema" else []
    for index, (key, table) in enumerate(tables):
        columns = row_columns[key]
        writer.open_table(key, columns)
        column_kinds = [kinds[key].get(name, ("any", None))[0] for name in columns]
        bytes_at = [i for i, kind in enumerate(column_kinds) if kind == "bytes"]
        names = ", ".join(files.quote_identifier(name) for name in columns) or "1"
        cursor = raw.execute(f"SELECT {names} FROM {files.quote_identifier(table.name)}")  # noqa: S608 - quoted names
        rows = writer.write_rows(_row_line(row if columns else (), column_kinds, bytes_at)
                                 for batch in iter(lambda cursor=cursor: cursor.fetchmany(FETCH_ROWS), [])
                                 for row in batch)
        writer.close_table(key, rows, index == len(tables) - 1)
        progress(phase="dump", tables=index + 1, rows=sum(writer.table_rows.values()))
    writer.finish()
    table_rows = {key: writer.table_rows.get(key, 0) for key in metadata.tables}
    return DumpResult(method=METHOD, server_version=model.server_version, table_rows=table_rows)


_JSON_NATIVE = (int, float, str, type(None))


def _row_line(values: tuple, column_kinds: list[str], bytes_at: list[int]) -> str:
    """One row as a JSON array: straight through json.dumps when every value is JSON already (and
    no text stands in a bytes column), else each value encoded by its kind (blobs, infinities)."""
    if all(type(v) in _JSON_NATIVE for v in values) and not any(type(values[i]) is str for i in bytes_at):
        try:
            return json.dumps(values, ensure_ascii=False, allow_nan=False)
        except ValueError:  # an infinite REAL
            pass
    return json.dumps([sqlite_kinds.encode(v, k) for v, k in zip(values, column_kinds, strict=True)],
                      ensure_ascii=False, allow_nan=False)


# --- reading ------------------------------------------------------------------------------------------------
