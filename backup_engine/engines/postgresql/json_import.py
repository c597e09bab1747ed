"""JSON documents into PostgreSQL scripts.

- From a PostgreSQL document the rows are not decoded in Python at all. Each table's JSON lines
  are copied verbatim into a `COPY pg_temp.bw_json_rows (doc) FROM stdin` block (CSV format with
  quote and delimiter bytes that JSON never holds raw), followed by an `INSERT ... SELECT` that
  lets the server decode each element with the column's own input function (`(doc->>i)::type`;
  arrays through `jsonb_populate_record`). A value of the wrong type is reported by the server
  at restore, which then rolls back.
- From another engine's document every value is decoded in Python (`json_values.decode_value`)
  and written as COPY text (`kinds.copy_field`), so a value that does not fit its column is
  reported at conversion: "Failed to convert JSON backup to SQL format: file, line, table, row,
  column: what".
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table

from backup_engine.dumpinfo import ByteSink, Progress, no_progress
from backup_engine.engines.base import TableMap
from backup_engine.engines.postgresql import kinds as pg_kinds
from backup_engine.engines.postgresql.literals import pg_string
from backup_engine.engines.postgresql.writer import PostgresScriptWriter
from backup_engine.formats import json_values
from backup_engine.formats.json_document import JsonBackupReader, conversion_error
from backup_engine.formats.model import DatabaseModel, data_columns, type_spec
from backup_engine.formats.sql_script import CopyData, DataSource

STAGING = "pg_temp.bw_json_rows"


class StagedScriptWriter(PostgresScriptWriter):
    """A PostgreSQL document's rows as staged JSON lines that the server decodes at restore."""

    def __init__(self, out: ByteSink, reader: JsonBackupReader, model: DatabaseModel, *,
                 progress: Progress = no_progress) -> None:
        super().__init__(out, reserved_words=model.extras.reserved_words, progress=progress)
        self.reader = reader
        self._staging_ready = False
        self._specs = {spec["key"]: spec for spec in reader.schema["tables"]}

    def table_data(self, table: Table, data_for: DataSource) -> int:
        doc = self.reader.tables.get(table.key)
        if doc is None or doc.rows == 0:
            return 0
        columns = data_columns(table)
        positions = {name: index for index, name in enumerate(doc.columns)}
        kinds = {col["name"]: (col["kind"], col.get("element_kind")) for col in self._specs[table.key]["columns"]}
        missing = [name for name in columns if name not in positions]
        if missing:
            raise conversion_error(f"table {table.key!r}: no values for column(s) {missing}")
        if not self._staging_ready:
            self.statement(f"CREATE TEMPORARY TABLE {STAGING.split('.', 1)[1]} (doc pg_catalog.json)")
            self._staging_ready = True
        self.write(f"COPY {STAGING} (doc) FROM stdin WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');\n")
        for block in self.reader.row_blocks(table.key):
            self.write_bytes(block)
        self.write("\\.\n")
        table_sql = self.table_name(table)
        expressions = []
        for name in columns:
            kind, element = kinds[name]
            spec = type_spec(table.c[name])
            expression = None
            if kind == "array":
                expression = pg_kinds.staging_array_expression("r.doc", positions[name], element, spec)
            expressions.append(expression or pg_kinds.staging_expression(
                "r.doc", positions[name], kind, spec, table_sql, self.preparer.quote(name), pg_string(name)))
        self.statement(f"INSERT INTO {table_sql} ({self.column_list(columns)}) OVERRIDING SYSTEM VALUE\n"
                       f"SELECT {', '.join(expressions)}\n"
                       f"FROM {STAGING} AS s, LATERAL (SELECT s.doc::pg_catalog.jsonb AS doc OFFSET 0) AS r")
        self.statement(f"TRUNCATE {STAGING}")
        self.write("\n")
        self.rows += doc.rows
        return doc.rows

    def footer(self) -> None:
        if self._staging_ready:
            self.statement(f"DROP TABLE {STAGING}")
        super().footer()


def decoded_rows(reader: JsonBackupReader, mapping: TableMap, columns: list[str], natural: bool) -> CopyData:
    """Another engine's rows as COPY text, every value checked against its column's kind on the way;
    positions of identity columns made from rowid aliases are set from the largest key seen."""

    def copy_to(file: Any) -> None:
        for key in mapping.sources:
            positions = {name: i for i, name in enumerate(reader.tables[key].columns)}
            kinds = {col["name"]: col["kind"] for col in reader.table_spec(key)["columns"]}
            picks = [(positions[mapping.columns.get(name, name)], kinds.get(mapping.columns.get(name, name), "any"),
                      name) for name in columns]
            for number, values in reader.rows(key):
                fields = []
                for position, kind, name in picks:
                    try:
                        value = json_values.decode_value(values[position], kind, natural)
                        if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
                            current = mapping.max_id.get(name)
                            if current is None or value > current:
                                mapping.max_id[name] = value
                        fields.append(pg_kinds.copy_field(value, kind))
                    except (ValueError, ArithmeticError, RecursionError) as exc:
                        raise reader.value_error(key, number, name, exc) from None
                file.write(("\t".join(fields) + "\n").encode("utf-8"))
        for name, sequence in mapping.sequences.items():
            position = max(mapping.max_id.get(name, 0), mapping.floor)
            if position > 0:
                sequence.last_value, sequence.is_called = position, True

    return CopyData(columns=columns, copy_to=copy_to)
