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

from backup_engine.engines.base import TableMap
from backup_engine.engines.postgresql import kinds as pg_kinds
from backup_engine.engines.postgresql.json_copy import copy_blocks
from backup_engine.formats import json_values
from backup_engine.formats.json_document import JsonBackupReader
from backup_engine.formats.sql_script import CopyData


def document_rows(reader: JsonBackupReader, mapping: TableMap, columns: list[str]) -> CopyData:
    """A PostgreSQL document's rows as COPY text (`json_copy`), streamed into the script."""

    def copy_to(file: Any) -> None:
        for key in mapping.sources:
            for block in copy_blocks(reader, key, columns):
                file.write(block.encode("utf-8"))

    return CopyData(columns=columns, copy_to=copy_to)


def decoded_rows(reader: JsonBackupReader, mapping: TableMap, columns: list[str], natural: bool) -> CopyData:
    """Another engine's rows as COPY text, every value checked against its column's kind on the way;
    positions of identity columns made from rowid aliases are set from the largest key seen."""

    def copy_to(file: Any) -> None:
        for key in mapping.sources:
            picks = reader.picks(key, mapping.columns, columns)
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
