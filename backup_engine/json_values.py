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

This module also holds the cross-engine type mapping (`sqlite_type_for`, `pg_type_for`).
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from backup_engine.sqlliterals import RawText

KINDS = frozenset({"integer", "float", "numeric", "boolean", "text", "enum", "uuid", "interval", "time", "timetz",
                   "date", "timestamp", "timestamptz", "bytes", "json", "jsonb", "array", "other", "any"})
# element kinds an array keeps as nested JSON arrays (the rest are written as the array's text: kind "other")
ARRAY_ELEMENT_KINDS = frozenset({"integer", "float", "numeric", "boolean", "text", "enum", "uuid", "interval", "time",
                                 "timetz", "date", "timestamp", "timestamptz", "bytes"})
# arrays whose JSON text is PostgreSQL array input once [] become {} (no strings with escapes)
NUMBER_ARRAY_KINDS = frozenset({"integer", "float", "numeric", "boolean"})

PG_BASE_KINDS = {
    "int2": "integer", "int4": "integer", "int8": "integer", "oid": "integer",
    "float4": "float", "float8": "float", "numeric": "numeric", "bool": "boolean",
    "text": "text", "varchar": "text", "bpchar": "text", "name": "text", "char": "text", "citext": "text",
    "bytea": "bytes", "date": "date", "timestamp": "timestamp", "timestamptz": "timestamptz",
    "time": "time", "timetz": "timetz", "interval": "interval", "uuid": "uuid", "json": "json", "jsonb": "jsonb",
}


class Num(str):
    """A JSON number token, kept as its exact text (parse_float / parse_int hook)."""


def loads_row(line: bytes | str) -> Any:
    """One row line as Python values; numbers stay `Num` text so that nothing is rounded."""
    return json.loads(line, parse_float=Num, parse_int=Num)


class ValueError_(ValueError):
    """A value that does not fit its column's kind (the message says what was expected)."""


# --- PostgreSQL: kinds from the catalog, export expressions, staging casts ------------------------------------
PG_TYPES_SQL = """
SELECT t.oid, n.nspname, t.typname, t.typtype::text, t.typbasetype, t.typelem, t.typcategory::text
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"""

PG_COLUMN_TYPES_SQL = """
SELECT n.nspname, c.relname, a.attname, a.atttypid
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"""


def pg_column_kinds(cur: Any) -> dict[tuple[str, str, str], tuple[str, str | None]]:
    """(schema, table, column) -> (kind, element_kind) from the catalog (domains resolved to their base)."""
    cur.execute(PG_TYPES_SQL)
    types = {row[0]: row[1:] for row in cur.fetchall()}

    def scalar(oid: int, depth: int = 0) -> str:
        info = types.get(oid)
        if info is None or depth > 20:
            return "other"
        nspname, typname, typtype, basetype, _elem, _category = info
        if typtype == "d":
            return scalar(basetype, depth + 1)
        if typtype == "e":
            return "enum"
        if nspname == "pg_catalog" and typname in PG_BASE_KINDS:
            return PG_BASE_KINDS[typname]
        return "other"

    def kind_of(oid: int, depth: int = 0) -> tuple[str, str | None]:
        info = types.get(oid)
        if info is None:
            return "other", None
        _nsp, _name, typtype, basetype, elem, category = info
        if typtype == "d":
            return kind_of(basetype, depth + 1)
        if category == "A" and elem:
            element = scalar(elem)
            return ("array", element) if element in ARRAY_ELEMENT_KINDS else ("other", None)
        return scalar(oid), None

    cur.execute(PG_COLUMN_TYPES_SQL)
    return {(schema, table, column): kind_of(oid) for schema, table, column, oid in cur.fetchall()}


def pg_export_expression(column_sql: str, kind: str) -> str:
    """The expression json_build_array gets for a column: the server renders the JSON."""
    if kind in ("json", "jsonb", "other"):
        return f"{column_sql}::text"
    return column_sql


RAW_DOC = "s.doc"  # the staged row as json text (the staging table's column); `doc` is its jsonb
_TYPMOD_TEXT = re.compile(r"^(character varying|character|varchar|char|bpchar|bit|bit varying)\s*\(", re.I)


def pg_staging_expression(doc: str, position: int, kind: str, spec: str, table_sql: str, column_name_sql: str,
                          column_literal: str) -> str:
    """SQL that turns element `position` of the staged jsonb row `doc` into the column's value."""
    element = f"{doc}->{position}"
    text = f"({doc}->>{position})"
    if kind == "float":  # jsonb reads -0 as 0: take a zero's token from the json text, which keeps the sign
        return f"(CASE WHEN {text} = '0' THEN {RAW_DOC}->>{position} ELSE {text} END)::{spec}"
    if kind == "array":
        return (f"(pg_catalog.jsonb_populate_record(NULL::{table_sql}, "
                f"pg_catalog.jsonb_build_object({column_literal}, {element}))).{column_name_sql}")
    if kind == "text" and _TYPMOD_TEXT.match(spec):
        return text  # assigned, not cast: a too-long value fails instead of being cut
    return f"{text}::{spec}"


def pg_staging_array_expression(doc: str, position: int, element_kind: str | None, spec: str) -> str | None:
    """A faster form for arrays of numbers and booleans: their JSON text is array input once [ ] are { }."""
    if element_kind == "float":
        doc = RAW_DOC  # the json text keeps -0
    if element_kind in NUMBER_ARRAY_KINDS:
        return f"pg_catalog.translate({doc}->>{position}, '[]', '{{}}')::{spec}"
    return None


# --- SQLite: kinds from declared types, export encoding ------------------------------------------------------
def sqlite_kind(declared: str) -> str:
    """A portable kind from a SQLite declared type (SQLite's affinity rules, plus well-known names)."""
    name = (declared or "").upper()
    if not name:
        return "any"
    if "BOOL" in name:
        return "boolean"
    if "INT" in name:
        return "integer"
    if "CHAR" in name or "CLOB" in name or "TEXT" in name:
        return "text"
    if "BLOB" in name or "BINARY" in name or "BYTEA" in name:
        return "bytes"
    if "REAL" in name or "FLOA" in name or "DOUB" in name:
        return "float"
    if "JSON" in name:
        return "json"
    if "UUID" in name or "GUID" in name:
        return "uuid"
    if "TIMESTAMP" in name or "DATETIME" in name:
        return "timestamp"
    if "DATE" in name:
        return "date"
    if "TIME" in name:
        return "time"
    if "INTERVAL" in name:
        return "interval"
    return "numeric"


def sqlite_encode(value: Any, kind: str) -> Any:
    """A SQLite value as its JSON form in a column of `kind` (see the module doc)."""
    if value is None:
        return None
    cls = type(value)
    if cls is int or cls is str:
        if cls is str and kind == "bytes":
            return {"$text": value}
        return value
    if cls is float:
        if math.isinf(value):
            return {"$real": "Infinity" if value > 0 else "-Infinity"}
        return value
    if cls is RawText:
        return {"$rawtext": value.hex()}
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return "\\x" + data.hex() if kind == "bytes" else {"$blob": data.hex()}
    raise ValueError_(f"unexpected SQLite value of type {cls.__name__}")


# --- reading values back -------------------------------------------------------------------------------------
def _describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _tagged(value: dict[str, Any]) -> Any:
    if len(value) != 1:
        raise ValueError_(f"a tagged value has exactly one key, got {_describe(value)}")
    (tag, payload), = value.items()
    if not isinstance(payload, str):
        raise ValueError_(f"tag {tag} needs a string, got {_describe(payload)}")
    try:
        if tag == "$blob":
            return bytes.fromhex(payload)
        if tag == "$rawtext":
            return RawText(bytes.fromhex(payload))
    except ValueError:
        raise ValueError_(f"{tag} needs hex digits, got {_describe(payload)}") from None
    if tag == "$text":
        return payload
    if tag == "$real" and payload in ("Infinity", "-Infinity"):
        return float(payload)
    raise ValueError_(f"unknown tagged value {_describe(value)}")


def _number(value: Any) -> int | float:
    return int(value) if isinstance(value, Num) and value.lstrip("-").isdigit() else float(value)


def _bytes(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("\\x"):
        raise ValueError_(f"expected bytes as a \"\\\\x<hex>\" string, got {_describe(value)}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise ValueError_(f"expected hex digits after \\x, got {_describe(value)}") from None


def _plain_json(value: Any) -> Any:
    """A decoded array with its Num tokens as numbers again (for json.dumps)."""
    if isinstance(value, list):
        return [_plain_json(item) for item in value]
    if isinstance(value, Num):
        return _number(value)
    return value


def to_sqlite(value: Any, kind: str, natural: bool) -> Any:
    """A JSON value as the Python value a SQLite INSERT gets (SqliteLiterals renders it).

    `natural`: the document came from SQLite, so values carry their own storage class.
    """
    if value is None:
        return None
    if type(value) is dict:
        return _tagged(value)
    if natural or kind == "any":
        if isinstance(value, Num):
            return _number(value)
        if kind == "bytes" and isinstance(value, str):
            return _bytes(value)
        if isinstance(value, bool | str):
            return value
        raise ValueError_(f"expected a number or string, got {_describe(value)}")
    if kind == "integer":
        if isinstance(value, Num) and value.lstrip("-").isdigit():
            return int(value)
        raise ValueError_(f"expected an integer, got {_describe(value)}")
    if kind == "float":
        if isinstance(value, Num) or value in ("NaN", "Infinity", "-Infinity", "-0"):
            return float(value)
        raise ValueError_(f"expected a number, got {_describe(value)}")
    if kind == "numeric":
        if isinstance(value, Num) or value in ("NaN", "Infinity", "-Infinity"):
            return Decimal(value)
        raise ValueError_(f"expected a number, got {_describe(value)}")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise ValueError_(f"expected true or false, got {_describe(value)}")
    if kind == "bytes":
        return _bytes(value)
    if kind == "array":
        if isinstance(value, list):
            return json.dumps(_plain_json(value), ensure_ascii=False, allow_nan=False)
        raise ValueError_(f"expected an array, got {_describe(value)}")
    if isinstance(value, str):
        return value
    raise ValueError_(f"expected a string, got {_describe(value)}")


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _copy_text(text: str) -> str:
    if "\x00" in text:
        raise ValueError_("PostgreSQL text cannot hold a NUL character")
    return text.translate(_COPY_ESCAPES)


def _check_integer(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return text
    raise ValueError_(f"expected an integer, got {_describe(value if not isinstance(value, bytes) else '<blob>')}")


def _check_number(value: Any, kind: str) -> str:
    if isinstance(value, bool):
        raise ValueError_(f"expected a number, got {_describe(value)}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, str):
        try:
            Decimal(value.strip())
        except InvalidOperation:
            raise ValueError_(f"expected a number, got {_describe(value)}") from None
        return value.strip()
    raise ValueError_(f"expected a number, got {'<blob>' if isinstance(value, bytes) else _describe(value)}")


def sqlite_value_to_copy(value: Any, kind: str) -> str:
    """A SQLite document's value (decoded natural value) as a COPY text field for the mapped PostgreSQL type."""
    if value is None:
        return "\\N"
    if kind == "integer":
        return _check_integer(value)
    if kind in ("float", "numeric"):
        return _check_number(value, kind)
    if kind == "boolean":
        if isinstance(value, bool):
            return "t" if value else "f"
        if isinstance(value, int) and value in (0, 1):
            return "t" if value else "f"
        if isinstance(value, str):
            return _copy_text(value)
        raise ValueError_(f"expected a boolean (0 or 1), got {_describe(value)}")
    if kind == "bytes":
        if isinstance(value, str):
            value = value.encode("utf-8")
        if isinstance(value, bytes):
            return "\\\\x" + value.hex()
        raise ValueError_(f"expected a blob, got {_describe(value)}")
    if isinstance(value, RawText):
        raise ValueError_("text that is not valid UTF-8 cannot go into PostgreSQL")
    if isinstance(value, bytes):
        raise ValueError_(f"a blob cannot go into a {kind} column")
    if kind in ("date", "timestamp", "timestamptz", "time", "json", "uuid", "interval") and not isinstance(value, str):
        raise ValueError_(f"expected {kind} text, got {_describe(value)}")
    if isinstance(value, float):
        return _check_number(value, "float")
    return _copy_text(str(value))


# --- the cross-engine type mapping ---------------------------------------------------------------------------
SQLITE_TYPES = {
    "integer": "INTEGER", "float": "REAL", "numeric": "NUMERIC", "boolean": "BOOLEAN", "text": "TEXT",
    "enum": "TEXT", "uuid": "TEXT", "interval": "TEXT", "time": "TIME", "timetz": "TEXT", "date": "DATE",
    "timestamp": "DATETIME", "timestamptz": "DATETIME", "bytes": "BLOB", "json": "JSON", "jsonb": "JSON",
    "array": "JSON", "other": "TEXT", "any": "",
}
PG_TYPES = {
    "integer": "bigint", "float": "double precision", "numeric": "numeric", "boolean": "boolean", "text": "text",
    "enum": "text", "uuid": "uuid", "interval": "interval", "time": "time without time zone",
    "timetz": "time with time zone", "date": "date", "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone", "bytes": "bytea", "json": "json", "jsonb": "jsonb",
    "array": "jsonb", "other": "text", "any": "text",
}


def sqlite_type_for(kind: str, spec: str) -> str:
    """The SQLite declared type for a column of another engine."""
    match = re.match(r"^(character varying|varchar|character|char)\s*\((\d+)\)", spec or "", re.I)
    if kind == "text" and match:
        return f"VARCHAR({match.group(2)})"
    return SQLITE_TYPES.get(kind, "TEXT")


def pg_type_for(kind: str, spec: str) -> str:
    """The PostgreSQL type for a column of another engine (SQLite: by its declared type's kind)."""
    match = re.match(r"^\s*(?:NUMERIC|DECIMAL)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)", spec or "", re.I)
    if kind == "numeric" and match:
        return "numeric"  # SQLite never enforced the precision: a rounded restore would not be faithful
    return PG_TYPES.get(kind, "text")
