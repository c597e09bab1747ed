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
from itertools import repeat
from operator import itemgetter
from typing import Any

from backup_engine.formats.json_document import JsonBackupReader
from backup_engine.formats.json_values import NUMBER_ARRAY_KINDS, ValueError_, describe

COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
NULL = "\\N"
SEPARATOR = "\x00"  # PostgreSQL text never holds NUL, and a value that does is refused by the server
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
        if numeric:
            try:  # a flat array of number tokens (the common case): one join
                return _escaped("{" + ",".join(value) + "}")
            except TypeError:  # a null, boolean or nested array among them
                pass
        return _escaped(_element(value, numeric))

    return field


def field_for(kind: str, element_kind: str | None) -> Field:
    """How one column's JSON values become COPY text fields."""
    if kind == "array":
        return _array(element_kind in NUMBER_ARRAY_KINDS)
    return _scalar


def copy_blocks(reader: JsonBackupReader, key: str, columns: list[str]) -> Iterator[str]:
    """The table's rows as COPY text for `columns` (in that order), checked as they go, a block of
    rows at a time (each string ends with a newline)."""
    table = reader.tables[key]
    specs = {col["name"]: col for col in reader.table_spec(key)["columns"]}
    positions = {name: index for index, name in enumerate(table.columns)}
    picks = [(positions[name], field_for(specs[name]["kind"], specs[name].get("element_kind")), name)
             for name in columns]
    rows = _RowLines(reader, key, len(table.columns))
    for block in reader.row_blocks(key):
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as exc:
            number = rows.first_number + block.count(b"\n", 0, exc.start)
            raise reader.fail(table.first_line + number - 1, f"table {key!r}, row {number}: not valid UTF-8") from None
        lines = text.split("\n")  # not splitlines: U+2028 may sit in a string
        lines.pop()
        if not lines:
            continue
        values = rows.decoded(lines)
        if not picks:  # a table without columns still has rows: an empty line each
            yield "\n" * len(values)
        else:
            try:
                fields = [_column(field, column) for (_, field, _), column in zip(
                    picks, _columns(values, [position for position, _, _ in picks]), strict=True)]
            except (ValueError, RecursionError) as exc:
                raise _value_error(reader, key, rows.first_number, values, picks, exc) from None
            yield "\n".join(map("\t".join, zip(*fields, strict=True))) + "\n"
        rows.first_number += len(lines)


class _RowLines:
    """Decodes a block's row lines with the C scanner in one pass; a block with a line that is not
    exactly one array of the table's width is decoded again line by line, which names that line."""

    def __init__(self, reader: JsonBackupReader, key: str, width: int) -> None:
        self.reader, self.key, self.width = reader, key, width
        self.decoder = json.JSONDecoder(parse_int=str, parse_float=str)
        self.first_number = 1  # the row number of the block's first line

    def decoded(self, lines: list[str]) -> list[list[Any]]:
        try:  # a line the scanner cannot start ends the map early (StopIteration): the ends then differ
            scanned = list(map(self.decoder.scan_once, lines, repeat(0)))
        except (ValueError, RecursionError):
            return self._line_by_line(lines)
        values = list(map(itemgetter(0), scanned))
        if (list(map(itemgetter(1), scanned)) != list(map(len, lines))
                or (values and ({*map(type, values)} != {list} or {*map(len, values)} != {self.width}))):
            return self._line_by_line(lines)
        return values

    def _line_by_line(self, lines: list[str]) -> list[list[Any]]:
        return [self.reader.row_values(self.key, self.first_number + offset, line, self.decoder.decode)
                for offset, line in enumerate(lines)]


def _columns(rows: list[list[Any]], positions: list[int]) -> list[tuple[Any, ...]]:
    """The picked columns of a block of rows, each as one tuple (a C-level transpose)."""
    if not rows:
        return [() for _ in positions]
    every = list(zip(*rows, strict=True))
    return [every[position] for position in positions]


def _column(field: Field, values: tuple[Any, ...]) -> list[str]:
    """One column of a block as COPY fields. A column of plain strings (the common case) is
    escaped in one pass over the joined column, split again at a separator no value holds."""
    if field is _scalar and values and {*map(type, values)} == {str}:
        joined = SEPARATOR.join(values)
        if joined.count(SEPARATOR) == len(values) - 1:
            if "\n" in joined or "\r" in joined or "\t" in joined:
                joined = joined.translate(COPY_ESCAPES)
            elif "\\" in joined:
                joined = joined.replace("\\", "\\\\")
            return joined.split(SEPARATOR)
    return list(map(field, values))


def _value_error(reader: JsonBackupReader, key: str, first_number: int, rows: list[list[Any]],
                 picks: list[tuple[int, Field, str]], exc: Exception) -> Exception:
    """The error for the first value of the block that cannot be converted, with its row and column."""
    for offset, values in enumerate(rows):
        bad = next((name for position, field, name in picks if not _fits(field, values[position])), None)
        if bad is not None:
            return reader.value_error(key, first_number + offset, bad, exc)
    return reader.value_error(key, first_number, "?", exc)


def _fits(field: Field, value: Any) -> bool:
    try:
        field(value)
    except (ValueError, RecursionError):
        return False
    return True
