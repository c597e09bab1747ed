"""Values as MySQL SQL text: the one place where a value becomes a MySQL literal.

Two sources of values reach a script:

- the server's own text of a value (the fallback dump and MySQL's own JSON documents read rows
  through the text protocol, so DECIMAL, unsigned BIGINT, FLOAT and DOUBLE, dates and zero dates
  arrive exactly as the server prints them): `server_literal(value, storage)` writes numbers as
  they are, strings quoted, binary values (BLOB, BINARY, BIT, spatial) as hex, as mysqldump does;
- a natural Python value of a JSON document (another engine's, or MySQL's decoded by its kind):
  `portable_literal(value, kind)`, checked against the column's kind.

Strings are written for the server's default sql_mode and the client's parser alike: quotes and
backslashes escaped with a backslash, and NUL, CR, LF and ^Z escaped, so a row is one line.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from backup_engine.formats.json_values import ValueError_, describe
from backup_engine.formats.values import RawText

# How the server's text of a value is written, by information_schema.COLUMNS.DATA_TYPE.
NUMBER, STRING, BINARY, TEMPORAL = "number", "string", "binary", "temporal"
LITERAL = "sql"  # a value that is already a literal (rendered where its row and column are known)
NUMBER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric",
                          "float", "double", "real", "year"})
BINARY_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit", "geometry",
                          "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
                          "geometrycollection"})
TEMPORAL_TYPES = frozenset({"date", "datetime", "timestamp", "time"})
ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\x00": "\\0", "\n": "\\n", "\r": "\\r", "\x1a": "\\Z"})
NUMBER_TEXT = re.compile(r"^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$")
ISO_DATETIME = re.compile(r"^(-?\d{4,}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(?:\.\d+)?)(Z|[+-]\d{2}(?::?\d{2})?)?$")
UTC_OFFSETS = (None, "Z", "+00", "+00:00", "+0000", "-00:00")


def storage_of(data_type: str) -> str:
    """How a column's values are written: NUMBER, STRING, BINARY or TEMPORAL."""
    name = data_type.lower()
    if name in NUMBER_TYPES:
        return NUMBER
    if name in BINARY_TYPES:
        return BINARY
    if name in TEMPORAL_TYPES:
        return TEMPORAL
    return STRING


def mysql_string(value: str) -> str:
    """A string literal (backslash escapes; every line break escaped)."""
    return "'" + value.translate(ESCAPES) + "'"


def hex_literal(data: bytes) -> str:
    return "0x" + data.hex().upper() if data else "''"


def server_literal(value: str | bytes | None, storage: str) -> str:
    """A value as the server printed it (text protocol) written back as a literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bytes | bytearray):
        return hex_literal(bytes(value))
    if storage == NUMBER:
        return value
    return mysql_string(value)


# --- natural values of a JSON document ----------------------------------------------------------------
def mysql_datetime(text: str) -> str:
    """ISO 8601 date-time text as MySQL's `YYYY-MM-DD HH:MM:SS[.ffffff]`, in UTC when it has an offset."""
    match = ISO_DATETIME.match(text.strip())
    if match is None:
        return text  # let the server judge it (strict mode: refused, with the row)
    date, time, offset = match.groups()
    if offset in UTC_OFFSETS:
        return f"{date} {time}"
    try:
        moment = dt.datetime.fromisoformat(f"{date}T{time}{offset}")
    except ValueError:
        raise ValueError_(f"expected a date and time, got {describe(text)}") from None
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")


def portable_literal(value: Any, kind: str) -> str:
    """A natural Python value (json_values.decode_value) as a literal for a column of `kind`."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError_(f"MySQL cannot store {value!r}")
        return repr(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError_(f"MySQL cannot store {value}")
        return str(value)
    if isinstance(value, RawText):
        raise ValueError_("text that is not valid UTF-8 cannot go into a MySQL text column")
    if isinstance(value, bytes | bytearray | memoryview):
        if kind != "bytes" and kind != "any":
            raise ValueError_(f"a blob cannot go into a {kind} column")
        return hex_literal(bytes(value))
    if not isinstance(value, str):
        raise ValueError_(f"unexpected value {describe(value)}")
    if kind == "bytes":
        return hex_literal(value.encode("utf-8"))
    if kind in ("timestamp", "timestamptz"):
        return mysql_string(mysql_datetime(value))
    if kind in ("integer", "float", "numeric"):
        if NUMBER_TEXT.match(value.strip()):
            return value.strip()
        raise ValueError_(f"expected a number, got {describe(value)}")
    if kind == "boolean":
        lowered = value.strip().lower()
        if lowered in ("t", "true", "1", "f", "false", "0"):
            return "1" if lowered in ("t", "true", "1") else "0"
        raise ValueError_(f"expected a boolean, got {describe(value)}")
    return mysql_string(value)


def renderer(kind: str | None) -> Callable[[Any], str]:
    """The literal writer of a column: `kind` is `raw:<storage>` for the server's text of its values,
    else a portable kind."""
    if kind == LITERAL:
        return lambda value: "NULL" if value is None else value
    if kind is not None and kind.startswith("raw:"):
        storage = kind[4:]
        if storage == NUMBER:
            return lambda value: "NULL" if value is None else (
                value if isinstance(value, str) else hex_literal(bytes(value)))
        return lambda value: server_literal(value, storage)
    portable = kind or "any"
    return lambda value: portable_literal(value, portable)
