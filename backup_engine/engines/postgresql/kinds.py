"""PostgreSQL columns as portable kinds, and portable values back into PostgreSQL.

Kinds come from the catalog (domains resolved to their base type); the JSON export lets the
server render each value (`export_expression`); a value from another engine's document becomes
a COPY text field here (`copy_field`), and its column the nearest faithful type (`column_type`).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from backup_engine.formats.json_values import ARRAY_ELEMENT_KINDS, ValueError_, describe
from backup_engine.formats.values import RawText

PG_BASE_KINDS = {
    "int2": "integer", "int4": "integer", "int8": "integer", "oid": "integer",
    "float4": "float", "float8": "float", "numeric": "numeric", "bool": "boolean",
    "text": "text", "varchar": "text", "bpchar": "text", "name": "text", "char": "text", "citext": "text",
    "bytea": "bytes", "date": "date", "timestamp": "timestamp", "timestamptz": "timestamptz",
    "time": "time", "timetz": "timetz", "interval": "interval", "uuid": "uuid", "json": "json", "jsonb": "jsonb",
}


PG_TYPES_SQL = """
SELECT t.oid, n.nspname, t.typname, t.typtype::text, t.typbasetype, t.typelem, t.typcategory::text
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"""

PG_COLUMN_TYPES_SQL = """
SELECT n.nspname, c.relname, a.attname, a.atttypid
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"""


def column_kinds(cur: Any) -> dict[tuple[str, str, str], tuple[str, str | None]]:
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


def export_expression(column_sql: str, kind: str) -> str:
    """The expression json_build_array gets for a column: the server renders the JSON. An array
    whose bounds do not all start at 1 (`[0:2]={1,2,3}`) has no JSON array form: its text goes."""
    if kind in ("json", "jsonb", "other"):
        return f"{column_sql}::text"
    if kind == "array":  # one dimension from 1 first: a pattern match per row cost a quarter of the export
        return (f"CASE WHEN pg_catalog.array_ndims({column_sql}) = 1 AND pg_catalog.array_lower({column_sql}, 1) = 1"
                f" THEN pg_catalog.to_json({column_sql})"
                f" WHEN pg_catalog.array_dims({column_sql}) OPERATOR(pg_catalog.!~) '^(\\[1:[0-9]+\\])+$'"
                f" THEN pg_catalog.to_json({column_sql}::text) ELSE pg_catalog.to_json({column_sql}) END")
    return column_sql



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
    raise ValueError_(f"expected an integer, got {describe(value if not isinstance(value, bytes) else '<blob>')}")


def _check_number(value: Any, kind: str) -> str:
    if isinstance(value, bool):
        raise ValueError_(f"expected a number, got {describe(value)}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, Decimal):  # a numeric of a document whose engine writes by kind (MySQL)
        return str(value) if value.is_finite() else ("NaN" if value.is_nan() else
                                                      ("Infinity" if value > 0 else "-Infinity"))
    if isinstance(value, str):
        try:
            Decimal(value.strip())
        except InvalidOperation:
            raise ValueError_(f"expected a number, got {describe(value)}") from None
        return value.strip()
    raise ValueError_(f"expected a number, got {'<blob>' if isinstance(value, bytes) else describe(value)}")


def copy_field(value: Any, kind: str) -> str:
    """A value of another engine's document (decoded to its natural Python value) as a COPY text field of
    the mapped PostgreSQL type."""
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
        raise ValueError_(f"expected a boolean (0 or 1), got {describe(value)}")
    if kind == "bytes":
        if isinstance(value, str):
            value = value.encode("utf-8")
        if isinstance(value, bytes):
            return "\\\\x" + value.hex()
        raise ValueError_(f"expected a blob, got {describe(value)}")
    if isinstance(value, RawText):
        raise ValueError_("text that is not valid UTF-8 cannot go into PostgreSQL")
    if isinstance(value, bytes):
        raise ValueError_(f"a blob cannot go into a {kind} column")
    if kind in ("date", "timestamp", "timestamptz", "time", "json", "uuid", "interval") and not isinstance(value, str):
        raise ValueError_(f"expected {kind} text, got {describe(value)}")
    if isinstance(value, float):
        return _check_number(value, "float")
    return _copy_text(str(value))



PG_TYPES = {
    "integer": "bigint", "float": "double precision", "numeric": "numeric", "boolean": "boolean", "text": "text",
    "enum": "text", "uuid": "uuid", "interval": "interval", "time": "time without time zone",
    "timetz": "time with time zone", "date": "date", "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone", "bytes": "bytea", "json": "json", "jsonb": "jsonb",
    "array": "jsonb", "other": "text", "any": "text",
}


def column_type(kind: str, spec: str) -> str:
    """The PostgreSQL type for a column of another engine (SQLite: by its declared type's kind)."""
    match = re.match(r"^\s*(?:NUMERIC|DECIMAL)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)", spec or "", re.I)
    if kind == "numeric" and match:
        return "numeric"  # SQLite never enforced the precision: a rounded restore would not be faithful
    return PG_TYPES.get(kind, "text")
