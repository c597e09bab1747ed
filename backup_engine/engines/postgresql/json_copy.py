"""A PostgreSQL JSON document's rows as COPY text, converted in a stream.

The export let the server render every value (`json_build_array`), so a row line holds, per
column, the server's own text form (timestamps, intervals, bytea as `\\x...`, json, anything of
kind `other`) as a JSON string, or a JSON number, boolean or array. Numbers are kept as the exact
token the server wrote (`parse_int=str, parse_float=str`: `-0`, `1.2300` and 20-digit integers
stay what they were), arrays become PostgreSQL array literals by their element kind, and every
field is escaped for COPY's text format. The server's input functions then check each value
against its column's type, as they would for pg_dump's COPY data; a row of the wrong width, or a
value whose JSON shape cannot be the column's, is refused here with its line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from backup_engine.formats.json_document import JsonBackupReader
from backup_engine.formats.json_values import NUMBER_ARRAY_KINDS, ValueError_, describe

COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
NULL = "\\N"
Field = Callable[[Any], str]


def _escaped(text: str) -> str:
    """COPY text escaping. Most values need none, and a printable one (no newline, tab or CR) at
    most its backslashes doubled (bytea's `\\x...`): C-level scans, not a translation table."""
    if text.isprintable():
        return text.replace("\\", "\\\\") if "\\" in text else text
    return text.translate(COPY_ESCAPES)


def _scalar(value: Any) -> str:
    if type(value) is str:
        return _escaped(value)
    if value is None:
        return NULL
    if value is True:
        return "t"
    if value is False:
        return "f"
    raise ValueError_(f"expected a scalar value, got {describe(value)}")


def _element(value: Any, numeric: bool) -> str:
    if value is None:
        return "NULL"
    if type(value) is list:
        return "{" + ",".join(_element(item, numeric) for item in value) + "}"
    if value is True or value is False:
        return "t" if value else "f"
    if type(value) is not str:
        raise ValueError_(f"unexpected array element {describe(value)}")
    if numeric:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array(numeric: bool) -> Field:
    def field(value: Any) -> str:
        if value is None:
            return NULL
        if type(value) is str:  # the array's own text: bounds other than 1 (`[0:2]={1,2,3}`)
            return _escaped(value)
        if type(value) is not list:
            raise ValueError_(f"expected an array, got {describe(value)}")
        return _escaped(_element(value, numeric))

    return field


def field_for(kind: str, element_kind: str | None) -> Field:
    """How one column's JSON values become COPY text fields."""
    if kind == "array":
        return _array(element_kind in NUMBER_ARRAY_KINDS)
    return _scalar


def copy_lines(reader: JsonBackupReader, key: str, columns: list[str]) -> Iterator[str]:
    """The table's rows as COPY text lines for `columns` (in that order), checked as they go."""
    table = reader.tables[key]
    specs = {col["name"]: col for col in reader.table_spec(key)["columns"]}
    positions = {name: index for index, name in enumerate(table.columns)}
    picks = [(positions[name], field_for(specs[name]["kind"], specs[name].get("element_kind")), name)
             for name in columns]
    width = len(table.columns)
    in_order = [position for position, _, _ in picks] == list(range(width))
    fields = [field for _, field, _ in picks]
    plain = in_order and all(field is _scalar for field in fields)
    loads = json.JSONDecoder(parse_int=str, parse_float=str).decode
    number = 0
    for block in reader.row_blocks(key):
        for line in block.decode("utf-8").split("\n")[:-1]:  # not splitlines: U+2028 may sit in a string
            number += 1
            try:
                values = loads(line)
            except (ValueError, RecursionError) as exc:
                raise reader.fail(table.first_line + number - 1,
                                  f"table {key!r}, row {number}: not valid JSON ({exc})") from None
            if type(values) is not list or len(values) != width:
                raise reader.fail(table.first_line + number - 1,
                                  f"table {key!r}, row {number}: expected an array of {width} values")
            try:
                if plain:  # every column a scalar, in the document's order: no picking
                    yield "\t".join(map(_scalar, values)) + "\n"
                elif in_order:
                    yield "\t".join([field(value) for field, value in zip(fields, values, strict=True)]) + "\n"
                else:
                    yield "\t".join([field(values[position]) for position, field, _ in picks]) + "\n"
            except (ValueError, RecursionError) as exc:
                bad = next((name for position, field, name in picks if not _fits(field, values[position])), "?")
                raise reader.value_error(key, number, bad, exc) from None


def _fits(field: Field, value: Any) -> bool:
    try:
        field(value)
    except (ValueError, RecursionError):
        return False
    return True
