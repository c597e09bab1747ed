"""The JSON document of a MySQL or MariaDB target, read in one consistent snapshot.

Values are the server's text (text protocol, session in UTC) written by each column's kind
(`kinds.json_encoder`): DECIMAL and unsigned BIGINT as their exact digits, FLOAT and DOUBLE as
the server's shortest round-trip text, binary columns as `"\\x<hex>"`, DATETIME as ISO 8601,
TIMESTAMP with `+00:00`, JSON columns as their exact text. Rows hold every column, generated
and invisible ones included (another engine gets generated values as plain columns).
"""

from __future__ import annotations

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, DumpResult, Progress, no_progress
from backup_engine.engines.mysql.connect import begin_snapshot, snapshot_connection
from backup_engine.engines.mysql.kinds import json_encoder
from backup_engine.engines.mysql.reflect import reflect_mysql
from backup_engine.engines.mysql.rows import stream_rows
from backup_engine.formats.json_document import DocumentWriter, document_header
from backup_engine.formats.json_schema import model_to_dict
from backup_engine.targets import Target

METHOD = "mysql-json"


def export_json(target: Target, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
    """Write the JSON document of `target` into `out`."""
    database = target.url.database or ""
    with snapshot_connection(target, errors.NATIVE_BACKUP_FAILED, "JSON export: ") as raw:
        begin_snapshot(raw)
        reflected = reflect_mysql(raw, database, errors.JSON_BACKUP_FAILED)
        model = reflected.model
        metadata = model.metadata
        row_columns = {key: [column.name for column in table.columns] for key, table in metadata.tables.items()}
        kinds = {key: reflected.kinds(key) for key in metadata.tables}
        schema = model_to_dict(model, kinds, row_columns, reflected.indexes)
        schema["server_version"] = model.server_version
        writer = DocumentWriter(out)
        writer.start(document_header("mysql", model.server_version, include_data), schema)
        tables = list(metadata.tables) if include_data != "schema" else []
        for index, key in enumerate(tables):
            columns = row_columns[key]
            writer.open_table(key, columns)
            info = reflected.columns.get(key, {})
            encoders = [json_encoder(kinds[key][name][0], info[name].data_type) for name in columns]
            rows = writer.write_rows(
                "[" + ",".join(encode(value) for encode, value in zip(encoders, values, strict=True)) + "]"
                for values in stream_rows(raw, database, key, columns))
            writer.close_table(key, rows, index == len(tables) - 1)
            progress(phase="dump", tables=index + 1, rows=sum(writer.table_rows.values()))
        writer.finish()
    table_rows = {key: writer.table_rows.get(key, 0) for key in metadata.tables}
    return DumpResult(method=METHOD, server_version=model.server_version, table_rows=table_rows)
