"""Reading libpg_query's JSON parse trees: every node of a statement, with its type.

libpg_query writes a node either wrapped (`{"FuncCall": {...}}`, where the field's type is a
generic Node or List) or bare (`"relation": {"relname": ...}`, where the struct field has a
fixed type). pglast's `ast` module carries the same struct definitions, so it tells which is
which. A key the definitions do not know fails closed: the gate refuses what it cannot read.

The JSON route (rather than pglast.parse_sql) is deliberate: parse_sql maps every node
location from bytes to characters by a linear search, quadratic on text full of non-ASCII
characters; the JSON keeps byte offsets and costs the parser's time only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

from pglast import ast, parser

WRAPPED_TYPES = frozenset({"Node*", "List*", "Expr*"})
SKIPPED_TYPES = frozenset({"Bitmapset*", "char*"})
NODE_NAMES = frozenset(name for name in dir(ast) if isinstance(getattr(ast, name), type)
                       and issubclass(getattr(ast, name), ast.Node) and name not in ("Node", "Expr"))


class TreeError(Exception):
    """The tree holds something these definitions do not describe, or is nested too deeply to read."""


@cache
def plan(kind: str) -> tuple[frozenset[str], tuple[tuple[str, str | None], ...]]:
    """For a node type: the keys it may have, and its node-bearing fields as (key, bare type or None)."""
    slots = getattr(ast, kind).__slots__
    keys, fields = set(), []
    for slot, info in (slots.items() if isinstance(slots, dict) else ()):
        key = slot[:-1] if slot.endswith("_") else slot
        keys.add(key)
        ctype = info.c_type
        if ctype in WRAPPED_TYPES:
            fields.append((key, None))
        elif ctype.endswith("*") and ctype not in SKIPPED_TYPES and ctype[:-1] in NODE_NAMES:
            fields.append((key, ctype[:-1]))
    if kind == "A_Const":  # its value is written as one of these keys, holding a bare value node
        keys |= {"ival", "fval", "boolval", "sval", "bsval", "location"}
    return frozenset(keys), tuple(fields)


def nodes(kind: str, fields: dict[str, Any], skip: frozenset[tuple[str, str]] = frozenset()
          ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every node under (and including) one node, depth first, as (type, fields).
    `skip` names (type, key) fields not to descend into (a function's body, checked on its own)."""
    stack: list[tuple[str, dict[str, Any]]] = [(kind, fields)]
    while stack:
        kind, fields = stack.pop()
        keys, children = plan(kind)
        if not keys.issuperset(fields):
            raise TreeError(f"unknown field in {kind}: {sorted(set(fields) - keys)[:3]}")
        yield kind, fields
        for key, bare in children:
            value = fields.get(key)
            if value is None or (kind, key) in skip:
                continue
            if bare is None:
                _push_wrapped(stack, value)
            elif isinstance(value, dict):
                stack.append((bare, value))
            else:
                raise TreeError(f"unexpected value in {kind}.{key}")


def _push_wrapped(stack: list[tuple[str, dict[str, Any]]], value: Any) -> None:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            if not item:
                continue  # a NULL element (e.g. DISTINCT without ON)
            if len(item) != 1:
                raise TreeError("malformed node")
            (name, inner), = item.items()
            if name == "List":
                pending.append(inner.get("items", []))
            elif name in NODE_NAMES and isinstance(inner, dict):
                stack.append((name, inner))
            else:
                raise TreeError(f"unknown node {name[:40]}")
        else:
            raise TreeError("malformed node list")


def unwrap(node: Any) -> tuple[str, dict[str, Any]]:
    """(type, fields) of a wrapped node; ("", {}) for anything else."""
    if isinstance(node, dict) and len(node) == 1:
        (name, inner), = node.items()
        if isinstance(inner, dict):
            return name, inner
    return "", {}


def items(node: Any) -> list[Any]:
    """The elements of a List field or node, whichever way it is written."""
    if isinstance(node, list):
        return node
    name, inner = unwrap(node)
    return inner.get("items", []) if name == "List" else []


def strings(node: Any) -> list[str] | None:
    """A name written as a list of String nodes (or a TypeName, or one String): its parts, else None."""
    name, inner = unwrap(node)
    if name == "TypeName":
        node = inner.get("names", [])
    elif name == "String":
        return [inner.get("sval", "")]
    parts = []
    for element in items(node):
        kind, fields = unwrap(element)
        if kind != "String":
            return None
        parts.append(fields.get("sval", ""))
    return parts or None


def constant(node: Any) -> str | None:
    """The text of an A_Const (string, number or boolean) as SET and setval see it; None otherwise."""
    kind, fields = unwrap(node)
    if kind == "TypeCast":
        kind, fields = unwrap(fields.get("arg"))
    if kind != "A_Const" or fields.get("isnull"):
        return None
    for key, value_key in (("sval", "sval"), ("ival", "ival"), ("fval", "fval"), ("bsval", "bsval")):
        if key in fields:
            return str(fields[key].get(value_key, "" if key == "sval" else 0))
    if "boolval" in fields:
        return "true" if fields["boolval"].get("boolval") else "false"
    return None


def parse(text: str, without_locations: bool = False) -> list[dict[str, Any]]:
    """The statements of `text` as libpg_query writes them ({"stmt", "stmt_location", "stmt_len"}).
    Raises pglast's ParseError, or TreeError when the tree nests deeper than Python can read."""
    try:
        hook = _drop_locations if without_locations else None
        return json.loads(parser.parse_sql_json(text), object_hook=hook).get("stmts", [])
    except RecursionError as exc:
        raise TreeError("nested too deeply") from exc


def _drop_locations(node: dict[str, Any]) -> dict[str, Any]:
    for key in ("location", "stmt_location", "stmt_len", "arg_location"):
        node.pop(key, None)
    return node
