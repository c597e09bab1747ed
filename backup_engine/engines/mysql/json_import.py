"""JSON documents into MySQL scripts: every value decoded, checked against its column's kind and
rendered as a literal here, where its table, row and column are known, so a value that does not
fit fails the conversion saying which ("...: table 't', row 3, column 'b': MySQL cannot store nan")."""

from __future__ import annotations

from collections.abc import Iterator

from backup_engine.engines.base import TableMap
from backup_engine.engines.mysql.literals import LITERAL, portable_literal
from backup_engine.formats import json_values
from backup_engine.formats.json_document import JsonBackupReader
from backup_engine.formats.sql_script import RowData


def document_rows(reader: JsonBackupReader, mapping: TableMap, columns: list[str], natural: bool) -> RowData:
    """A table's rows from the document as MySQL literals; positions of AUTO_INCREMENT keys made from
    another engine's rowid aliases are set from the largest key seen (and its sqlite_sequence)."""

    def rows() -> Iterator[list[str]]:
        for key in mapping.sources:
            picks = [(position, kind, mapping.kinds.get(name) or kind, name)
                     for position, kind, name in reader.picks(key, mapping.columns, columns)]
            for number, values in reader.rows(key):
                row = []
                for position, kind, target_kind, name in picks:
                    try:
                        value = json_values.decode_value(values[position], kind, natural)
                        if name in mapping.sequences and isinstance(value, int) and not isinstance(value, bool):
                            current = mapping.max_id.get(name)
                            if current is None or value > current:
                                mapping.max_id[name] = value
                        row.append(portable_literal(value, target_kind))
                    except (ValueError, ArithmeticError, RecursionError) as exc:
                        raise reader.value_error(key, number, name, exc) from None
                yield row
        for name, sequence in mapping.sequences.items():
            position = max(mapping.max_id.get(name, 0), mapping.floor)
            if position > 0:
                sequence.last_value, sequence.is_called = position, True

    return RowData(columns=columns, rows=rows(), kinds=[LITERAL] * len(columns))
