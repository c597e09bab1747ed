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

from backup_engine.engines.collector import paused_gc

WRAPPED_TYPES = frozenset({"Node*", "List*", "Expr*"})
SKIPPED_TYPES = frozenset({"Bitmapset*", "char*"})
LOCATION_FIELDS = frozenset(slot for name in dir(ast) if isinstance(getattr(ast, name), type)
                            and isinstance(getattr(getattr(ast, name), "__slots__", None), dict)
                            for slot, info in getattr(ast, name).__slots__.items() if info.c_type == "ParseLoc")
NODE_NAMES = frozenset(name for name in dir(ast) if isinstance(getattr(ast, name), type)
                       and issubclass(getattr(ast, name), ast.Node) and name not in ("Node", "Expr"))


# Constants: no node inside, nothing to check (skipping them keeps big VALUES lists cheap).
LEAVES = frozenset({"A_Const", "String", "Integer", "Float", "Boolean", "BitString", "A_Star"})


class TreeError(Exception):
    """The tree holds something these definitions do not describe, or is nested too deeply to read."""


@cache
def plan(kind: str) -> tuple[frozenset[str], dict[str, str]]:
    """For a node type: the keys it may have, and its node-bearing fields as {key: bare type, or ""
    for a wrapped node or list}."""
    slots = getattr(ast, kind).__slots__
    keys, fields = set(), {}
    for slot, info in (slots.items() if isinstance(slots, dict) else ()):
        key = slot[:-1] if slot.endswith("_") else slot
        keys.add(key)
        ctype = info.c_type
        if ctype in WRAPPED_TYPES:
            fields[key] = ""
        elif ctype.endswith("*") and ctype not in SKIPPED_TYPES and ctype[:-1] in NODE_NAMES:
            fields[key] = ctype[:-1]
    if kind == "A_Const":  # its value is written as one of these keys, holding a bare value node
        keys |= {"ival", "fval", "boolval", "sval", "bsval", "location"}
    return frozenset(keys), fields


def nodes(kind: str, fields: dict[str, Any], skip: frozenset[tuple[str, str]] = frozenset()
          ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every node under (and including) one node, depth first, as (type, fields).
    `skip` names (type, key) fields not to descend into (a function's body, checked on its own).
    The stack holds typed nodes as (type, fields) and wrapped values as ("", value)."""
    stack: list[tuple[str, Any]] = [(kind, fields)]
    pop, push = stack.pop, stack.append
    while stack:
        kind, fields = pop()
        if not kind:  # a wrapped node, a list of them, or a NULL element (DISTINCT without ON)
            if type(fields) is list:
                for item in fields:  # constants are most of a big VALUES list: drop them here
                    if type(item) is not dict or len(item) != 1 or LEAVES.isdisjoint(item):
                        push(("", item))
                continue
            if type(fields) is not dict or len(fields) > 1:
                raise TreeError("malformed node")
            for name, inner in fields.items():
                if name == "List":
                    push(("", inner.get("items", [])))
                elif name not in LEAVES:
                    if name not in NODE_NAMES or type(inner) is not dict:
                        raise TreeError(f"unknown node {name[:40]}")
                    push((name, inner))
            continue
        keys, children = plan(kind)
        if not keys.issuperset(fields):
            raise TreeError(f"unknown field in {kind}: {sorted(set(fields) - keys)[:3]}")
        yield kind, fields
        for key, value in fields.items():  # libpg_query leaves empty fields out: few keys per node
            bare = children.get(key)
            if bare is None or value is None or (skip and (kind, key) in skip):
                continue
            if not bare:
                push(("", value))
            elif type(value) is dict:
                push((bare, value))
            else:
                raise TreeError(f"unexpected value in {kind}.{key}")


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
    return load_json(parser.parse_sql_json(text), _drop_locations if without_locations else None).get("stmts", [])


def load_json(text: str, hook: Any = None) -> Any:
    """json.loads of a parse tree; RecursionError becomes TreeError."""
    with paused_gc():
        try:
            return json.loads(text, object_hook=hook)
        except RecursionError as exc:
            raise TreeError("nested too deeply") from exc


def _drop_locations(node: dict[str, Any]) -> dict[str, Any]:
    for key in LOCATION_FIELDS.intersection(node):
        del node[key]
    return node
