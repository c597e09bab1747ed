"""MySQL columns as portable kinds, their values as JSON, and other engines' kinds as MySQL types.

A column's kind comes from information_schema.COLUMNS (DATA_TYPE, COLUMN_TYPE, and MariaDB's
`json_valid` check for JSON columns); its values are the server's text (text protocol, session in
UTC), written into the document by kind (`json_value`), so nothing is rounded on the way. The
type map both ways is in docs/FORMATS.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"})
TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "set"})
BYTES_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "geometry", "point",
                         "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
                         "geometrycollection"})
SIMPLE_KINDS = {"decimal": "numeric", "numeric": "numeric", "float": "float", "double": "float", "real": "float",
                "enum": "enum", "date": "date", "datetime": "timestamp", "timestamp": "timestamptz", "time": "time",
                "json": "json", "uuid": "uuid"}
JSON_NUMBER = re.compile(r"^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$")


def kind_of(data_type: str, column_type: str, json_column: bool = False) -> str:
    """The portable kind of a MySQL column."""
    name = data_type.lower()
    spec = column_type.lower()
    if json_column and name in ("longtext", "json"):
        return "json"
    if name in INTEGER_TYPES:
        return "numeric" if name == "bigint" and "unsigned" in spec else "integer"
    if name == "bit":
        width = re.search(r"\((\d+)\)", spec)
        return "numeric" if width and int(width.group(1)) >= 64 else "integer"
    if name in TEXT_TYPES:
        return "text"
    if name in BYTES_TYPES:
        return "bytes"
    return SIMPLE_KINDS.get(name, "other")


def _text(value: Any) -> str:
    return json.dumps(value if isinstance(value, str) else bytes(value).decode("utf-8", "replace"),
                      ensure_ascii=False)


def _number(value: Any) -> str:
    text = value if isinstance(value, str) else bytes(value).decode("ascii")
    if JSON_NUMBER.match(text):
        return text
    exact = str(Decimal(text))  # ZEROFILL's leading zeros: the same digits without them
    return exact if JSON_NUMBER.match(exact) else json.dumps(float(text))


def _bits(value: Any) -> str:
    return str(int.from_bytes(bytes(value), "big")) if isinstance(value, bytes | bytearray) else str(value)


def _bytes(value: Any) -> str:
    data = bytes(value) if isinstance(value, bytes | bytearray) else value.encode("utf-8")
    return '"\\\\x' + data.hex() + '"'


def _datetime(value: Any) -> str:
    return json.dumps(value.replace(" ", "T", 1))


def _timestamp(value: Any) -> str:
    return json.dumps(value.replace(" ", "T", 1) + "+00:00")


def json_encoder(kind: str, data_type: str) -> Callable[[Any], str]:
    """How one column's values (server text, or bytes for binary columns) become JSON text."""
    if data_type.lower() == "bit":
        encode = _bits
    elif kind in ("integer", "numeric", "float"):
        encode = _number
    elif kind == "bytes":
        encode = _bytes
    elif kind == "timestamp":
        encode = _datetime
    elif kind == "timestamptz":
        encode = _timestamp
    else:
        encode = _text
    return lambda value: "null" if value is None else encode(value)


# --- other engines' columns in MySQL ------------------------------------------------------------------
MYSQL_TYPES = {
    "integer": "BIGINT", "float": "DOUBLE", "numeric": "DECIMAL(65,30)", "boolean": "TINYINT(1)",
    "text": "LONGTEXT", "enum": "VARCHAR(255)", "uuid": "CHAR(36)", "interval": "VARCHAR(255)", "time": "TIME(6)",
    "timetz": "VARCHAR(64)", "date": "DATE", "timestamp": "DATETIME(6)", "timestamptz": "DATETIME(6)",
    "bytes": "LONGBLOB", "json": "JSON", "jsonb": "JSON", "array": "JSON", "other": "LONGTEXT", "any": "LONGTEXT",
}
LENGTH = re.compile(r"^\s*(character varying|varchar|character|char|nvarchar|nchar)\s*\(\s*(\d+)\s*\)", re.I)
PRECISION = re.compile(r"^\s*(?:numeric|decimal)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)", re.I)
UNSIGNED_BIGINT = re.compile(r"^\s*bigint(?:\(\d+\))?\s+unsigned", re.I)
MAX_VARCHAR = 16383  # utf8mb4 characters in a row's 65,535 bytes
KEY_VARCHAR = "VARCHAR(768)"  # the longest utf8mb4 text an InnoDB index takes whole (3072 bytes)


def column_type(kind: str, source_type: str) -> str:
    """The nearest faithful MySQL type for another engine's column (docs/FORMATS.md)."""
    spec = source_type or ""
    length = LENGTH.match(spec)
    if kind == "text" and length and int(length.group(2)) <= MAX_VARCHAR:
        return f"VARCHAR({int(length.group(2))})"
    precision = PRECISION.match(spec)
    if kind == "numeric" and precision and int(precision.group(1)) <= 65 and int(precision.group(2) or 0) <= 30:
        return f"DECIMAL({int(precision.group(1))},{int(precision.group(2) or 0)})"
    if kind == "numeric" and UNSIGNED_BIGINT.match(spec):
        return "BIGINT UNSIGNED"
    return MYSQL_TYPES.get(kind, "LONGTEXT")


def needs_key_length(type_spec: str) -> bool:
    """A type an index cannot take whole (TEXT and BLOB types)."""
    return bool(re.match(r"^\s*(long|medium|tiny)?(text|blob)\b", type_spec, re.I))
