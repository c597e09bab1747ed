"""Python values as PostgreSQL text: the one place where a value becomes PostgreSQL SQL.

- `pg_literal(value, kind)`: a literal for an INSERT or a DDL statement, written for
  `standard_conforming_strings = on` (which every script of ours sets first);
- `pg_copy_field(value, kind)` / `pg_copy_row(values, kinds)`: a field / a line of
  `COPY ... FROM stdin` text format.

`kind` says how to read a list or dict where the type alone is ambiguous: `"json"` (the
value is a JSON document) or `"array"` (a PostgreSQL array); by default a dict is JSON and a
list is an array.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

JSON = "json"
ARRAY = "array"

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _check_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("PostgreSQL text cannot contain NUL characters")
    return value


def quote_string(value: str) -> str:
    """A standard SQL string literal: quotes doubled, backslashes literal."""
    return "'" + value.replace("'", "''") + "'"


def pg_string(value: str) -> str:
    return quote_string(_check_text(value))


# --- text forms shared by literals and COPY ------------------------------------------------------
def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _decimal_text(value: Decimal) -> str:
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "Infinity" if value > 0 else "-Infinity"
    return str(value)


def _interval_text(value: dt.timedelta) -> str:
    return f"{value.days} days {value.seconds} seconds {value.microseconds} microseconds"


def _datetime_text(value: dt.date | dt.time) -> str:
    return value.isoformat()


def _array_element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, list | tuple):
        return "{" + ",".join(_array_element(item) for item in value) + "}"
    text = pg_text(value, kind=JSON if isinstance(value, dict) else None)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pg_array_text(values: Sequence[Any]) -> str:
    """The text form of a PostgreSQL array (`{...}`), every element double-quoted."""
    return "{" + ",".join(_array_element(item) for item in values) + "}"


def pg_text(value: Any, kind: str | None = None) -> str:
    """The text PostgreSQL's input function of the column's type reads back as `value`."""
    if kind == JSON:  # any Python value is a JSON document here, a str included
        return _check_text(json.dumps(value, ensure_ascii=False, allow_nan=False))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, str):
        return _check_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return _datetime_text(value)
    if isinstance(value, dt.timedelta):
        return _interval_text(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return _check_text(json.dumps(value, ensure_ascii=False, allow_nan=False))
    if isinstance(value, list | tuple):
        return pg_array_text(value)
    raise TypeError(f"no PostgreSQL text form for {type(value).__name__}")


# --- PostgreSQL literals ---------------------------------------------------------------------------
def pg_literal(value: Any, kind: str | None = None) -> str:
    """A PostgreSQL literal for `value` (standard_conforming_strings on)."""
    if value is None:
        return "NULL"
    if kind == JSON:
        return quote_string(pg_text(value, kind))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Always through float8in: keeps -0.0, NaN and the infinities exact.
        return f"{quote_string(_float_text(value))}::double precision"
    if isinstance(value, Decimal):
        if value.is_finite():
            return str(value)
        return f"{quote_string(_decimal_text(value))}::numeric"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"{quote_string(pg_text(value))}::bytea"
    return quote_string(pg_text(value, kind))


def pg_copy_field(value: Any, kind: str | None = None) -> str:
    """One field of COPY's text format: `\\N` for NULL, backslash escapes for the rest."""
    if value is None:
        return "\\N"
    return pg_text(value, kind).translate(_COPY_ESCAPES)


def pg_copy_row(values: Iterable[Any], kinds: Sequence[str | None] | None = None) -> str:
    """One line of COPY text format, newline included."""
    if kinds is None:
        return "\t".join(pg_copy_field(value) for value in values) + "\n"
    return "\t".join(pg_copy_field(value, kind) for value, kind in zip(values, kinds, strict=True)) + "\n"
