"""Column kinds of a JSON backup and how each kind's values are written and read back.

A column's `kind` (in the document's schema) says how its values are encoded, so PostgreSQL
values carry no per-value tags; see docs/FORMATS.md for the table. In short:

| kind | JSON form |
|---|---|
| integer | number |
| float | number (shortest round-trip, -0 included), or the string "NaN", "Infinity", "-Infinity" |
| numeric | number exactly as the server prints it, or "NaN", "Infinity", "-Infinity" |
| boolean | true / false |
| text, enum, uuid, interval, time, timetz | string (the server's text; intervals in IntervalStyle postgres) |
| date, timestamp, timestamptz | ISO 8601 string ("2024-01-31T12:00:00+00:00"), "infinity", "-infinity", "... BC" |
| bytes | string "\\x<hex>" (PostgreSQL's bytea hex form) |
| json, jsonb | string: the document's exact text (json keeps whitespace, key order, duplicate keys) |
| array | nested JSON arrays of the element kind's form (`element_kind`); null elements are null |
| other | string: the type's own text form (inet, money, ranges, arrays of json, ...) |
| any | SQLite columns without a declared type: the value's natural form |

SQLite is dynamically typed, so a SQLite document writes each value by its storage class:
INTEGER as an integer token, REAL as a number token with "." or an exponent, TEXT as a string,
BLOB as "\\x<hex>" in a `bytes` column. A value the column's kind would not predict is a
one-key object: {"$blob": "<hex>"} (a blob outside a bytes column), {"$text": "..."} (text in a
bytes column), {"$real": "Infinity"|"-Infinity"} and {"$rawtext": "<hex>"} (TEXT that is not UTF-8).

Each engine maps kinds to its own types and values (`engines/*/kinds.py`).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from backup_engine.formats.values import RawText

KINDS = frozenset({"integer", "float", "numeric", "boolean", "text", "enum", "uuid", "interval", "time", "timetz",
                   "date", "timestamp", "timestamptz", "bytes", "json", "jsonb", "array", "other", "any"})
# element kinds an array keeps as nested JSON arrays (the rest are written as the array's text: kind "other")
ARRAY_ELEMENT_KINDS = frozenset({"integer", "float", "numeric", "boolean", "text", "enum", "uuid", "interval", "time",
                                 "timetz", "date", "timestamp", "timestamptz", "bytes"})
# arrays whose JSON text is PostgreSQL array input once [] become {} (no strings with escapes)
NUMBER_ARRAY_KINDS = frozenset({"integer", "float", "numeric", "boolean"})

class Num(str):
    """A JSON number token, kept as its exact text (parse_float / parse_int hook)."""


def loads_row(line: bytes | str) -> Any:
    """One row line as Python values; numbers stay `Num` text so that nothing is rounded."""
    return json.loads(line, parse_float=Num, parse_int=Num)


class ValueError_(ValueError):
    """A value that does not fit its column's kind (the message says what was expected)."""


# --- reading values back -------------------------------------------------------------------------------------
def describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def tagged(value: dict[str, Any]) -> Any:
    if len(value) != 1:
        raise ValueError_(f"a tagged value has exactly one key, got {describe(value)}")
    (tag, payload), = value.items()
    if not isinstance(payload, str):
        raise ValueError_(f"tag {tag} needs a string, got {describe(payload)}")
    try:
        if tag == "$blob":
            return bytes.fromhex(payload)
        if tag == "$rawtext":
            return RawText(bytes.fromhex(payload))
    except ValueError:
        raise ValueError_(f"{tag} needs hex digits, got {describe(payload)}") from None
    if tag == "$text":
        return payload
    if tag == "$real" and payload in ("Infinity", "-Infinity"):
        return float(payload)
    raise ValueError_(f"unknown tagged value {describe(value)}")


def number(value: Any) -> int | float:
    return int(value) if isinstance(value, Num) and value.lstrip("-").isdigit() else float(value)


def hex_bytes(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("\\x"):
        raise ValueError_(f"expected bytes as a \"\\\\x<hex>\" string, got {describe(value)}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise ValueError_(f"expected hex digits after \\x, got {describe(value)}") from None


def plain_json(value: Any) -> Any:
    """A decoded array with its Num tokens as numbers again (for json.dumps)."""
    if isinstance(value, list):
        return [plain_json(item) for item in value]
    if isinstance(value, Num):
        return number(value)
    return value


def decode_value(value: Any, kind: str, natural: bool) -> Any:
    """A document's value as a natural Python value (int, float, Decimal, bool, str, bytes, RawText).

    `natural`: the source engine writes values by their own storage class (SQLite), so a number is
    whatever its token says; otherwise the column's kind says what to expect. An array becomes its
    JSON text (what an engine without arrays stores).
    """
    if value is None:
        return None
    if type(value) is dict:
        return tagged(value)
    if natural or kind == "any":
        if isinstance(value, Num):
            return number(value)
        if kind == "bytes" and isinstance(value, str):
            return hex_bytes(value)
        if isinstance(value, bool | str):
            return value
        raise ValueError_(f"expected a number or string, got {describe(value)}")
    if kind == "integer":
        if isinstance(value, Num) and value.lstrip("-").isdigit():
            return int(value)
        raise ValueError_(f"expected an integer, got {describe(value)}")
    if kind == "float":
        if isinstance(value, Num) or value in ("NaN", "Infinity", "-Infinity", "-0"):
            return float(value)
        raise ValueError_(f"expected a number, got {describe(value)}")
    if kind == "numeric":
        if isinstance(value, Num) or value in ("NaN", "Infinity", "-Infinity"):
            return Decimal(value)
        raise ValueError_(f"expected a number, got {describe(value)}")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise ValueError_(f"expected true or false, got {describe(value)}")
    if kind == "bytes":
        return hex_bytes(value)
    if kind == "array":
        if isinstance(value, list):
            return json.dumps(plain_json(value), ensure_ascii=False, allow_nan=False)
        if isinstance(value, str):
            return value  # an array the source wrote as its text (bounds other than 1)
        raise ValueError_(f"expected an array, got {describe(value)}")
    if isinstance(value, str):
        return value
    raise ValueError_(f"expected a string, got {describe(value)}")
