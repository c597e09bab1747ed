"""An untrusted JSON document's schema, vetted before a MySQL script is written from it.

There is no parser gate for MySQL, so nothing an untrusted document holds as SQL text reaches a
script unless it matches a closed grammar here: column types (a type name, lengths, UNSIGNED,
ENUM/SET labels as closed string literals), defaults (numbers, closed string literals, NULL, CURRENT_TIMESTAMP,
bit and hex literals) and the one check MariaDB puts on JSON columns. Its tables are then created
from the vetted columns (the verbatim SHOW CREATE TABLE text is dropped), and a document carrying
views, triggers, routines or events, generated columns or other checks is refused: their SQL
cannot be checked without a parser. Names are quoted by the writer as always. A document of
another engine needs nothing of this: its columns are mapped through the portable kinds, and
its defaults re-rendered by this engine.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from backup_engine import errors

STRING = r"'(?:[^'\\]|''|\\[\\'0nrtZb%_])*'"  # closed, whatever the escapes (backslash escapes are on)
TYPE = re.compile(
    r"^(?:(?:tinyint|smallint|mediumint|int|integer|bigint)(?:\(\d{1,3}\))?(?: unsigned)?(?: zerofill)?"
    r"|(?:decimal|numeric|float|double|real)(?:\(\d{1,2}(?:,\d{1,2})?\))?(?: unsigned)?(?: zerofill)?"
    r"|bit(?:\(\d{1,2}\))?|(?:char|varchar|binary|varbinary)\(\d{1,5}\)|(?:tinytext|text|mediumtext|longtext)"
    r"|(?:tinyblob|blob|mediumblob|longblob)|json|date|year(?:\(4\))?|(?:datetime|timestamp|time)(?:\(\d\))?"
    r"|uuid|inet4|inet6|geometry|point|linestring|polygon|multipoint|multilinestring|multipolygon"
    r"|geometrycollection|(?:enum|set)\(" + STRING + "(?:," + STRING + r")*\))$", re.I)
DEFAULT = re.compile(r"^(?:NULL|-?\d{1,65}(?:\.\d{1,30})?(?:e[+-]?\d{1,3})?|" + STRING +
                     r"|current_timestamp(?:\(\d?\))?|b'[01]{0,64}'|0x[0-9a-f]{0,128})$", re.I)
UNVETTED_EXTRAS = ("raw_post_data", "routines", "triggers", "views", "domains", "enums", "extensions", "constraints",
                   "indexes", "comments")


def refuse(where: str, what: str) -> errors.InvalidRequest:
    return errors.InvalidRequest(errors.FRAGMENT_REFUSED, f"{where}: {what}")


def _vet_table(spec: dict[str, Any]) -> None:
    name = f"table {str(spec.get('key'))[:80]!r}"
    for column in spec.get("columns", []):
        where = f"{name} column {str(column.get('name'))[:80]!r}"
        kind = column.get("type")
        if not isinstance(kind, str) or not TYPE.match(kind.strip()):
            raise refuse(where, f"type {str(kind)[:80]!r} is not a plain MySQL type")
        default = column.get("default")
        if default is not None and (not isinstance(default, str) or not DEFAULT.match(default.strip())):
            raise refuse(where, f"default {str(default)[:80]!r} is not a plain literal")
        if column.get("generated"):
            raise refuse(where, "a generated column's expression cannot be vetted")
    for check in spec.get("checks", []):
        sqltext = str(check.get("sqltext", "")).replace(" ", "")
        if not re.fullmatch(r"json_valid\(`(?:[^`]|``)+`\)", sqltext):
            raise refuse(name, "a check constraint cannot be vetted")
    spec["partition_by"] = None
    spec["prefixes"] = []


def vet_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of an untrusted MySQL document's schema that a script may be written from, or refused."""
    if schema.get("dialect") != "mysql":
        return schema  # another engine's: mapped through portable kinds, nothing of its SQL is pasted
    vetted = copy.deepcopy(schema)
    for spec in vetted.get("tables", []):
        _vet_table(spec)
    extras = vetted.get("extras") or {}
    for key in UNVETTED_EXTRAS:
        if extras.get(key):
            raise refuse("schema", f"{key} of an untrusted MySQL document hold SQL that cannot be vetted without a "
                                   "parser (views, triggers, routines, events)")
    extras["table_ddl"] = {}  # tables are created from the vetted columns
    for sequence in extras.get("sequences", []):
        for field in ("start", "increment", "min_value", "max_value", "cache", "last_value"):
            if sequence.get(field) is not None and not isinstance(sequence.get(field), int):
                raise refuse(f"sequence {str(sequence.get('name'))[:80]!r}", f"{field} is not a number")
    return vetted
