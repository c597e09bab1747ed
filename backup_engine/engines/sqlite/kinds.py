"""SQLite columns as portable kinds, and portable values back into SQLite.

SQLite is dynamically typed: a column's kind comes from its declared type by SQLite's affinity
rules (plus well-known names), and each value is written by its storage class (`encode`).
Values of a document go back as the Python values `literals.SqliteLiterals` renders (`value`);
columns of another engine get the nearest declared type (`column_type`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from backup_engine.formats.json_values import ValueError_
from backup_engine.formats.values import RawText


def kind_of(declared: str) -> str:
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


def encode(value: Any, kind: str) -> Any:
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




SQLITE_TYPES = {
    "integer": "INTEGER", "float": "REAL", "numeric": "NUMERIC", "boolean": "BOOLEAN", "text": "TEXT",
    "enum": "TEXT", "uuid": "TEXT", "interval": "TEXT", "time": "TIME", "timetz": "TEXT", "date": "DATE",
    "timestamp": "DATETIME", "timestamptz": "DATETIME", "bytes": "BLOB", "json": "JSON", "jsonb": "JSON",
    "array": "JSON", "other": "TEXT", "any": "",
}
def column_type(kind: str, spec: str) -> str:
    """The SQLite declared type for a column of another engine."""
    match = re.match(r"^(character varying|varchar|character|char)\s*\((\d+)\)", spec or "", re.I)
    if kind == "text" and match:
        return f"VARCHAR({match.group(2)})"
    return SQLITE_TYPES.get(kind, "TEXT")
