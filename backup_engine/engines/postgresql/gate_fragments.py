"""SQL fragments from an uploaded JSON document (column types, default/check/generated
expressions, view/routine/trigger/index definitions), checked by the upload gate's rules and
written back in our own words.

A converter pastes these into a script, so what it gets is never the uploaded text: the
fragment is parsed inside a fixed frame (`CREATE TABLE t (c <type>)`, `SELECT <expression>`),
the frame must come back exactly as written, the node inside is checked, and pglast's
deparser renders it. The rendering is parsed again and must give the same tree, so the
text we return means what we checked.
"""

from __future__ import annotations

from typing import Any

from pglast import ast
from pglast.parser import ParseError
from pglast.stream import RawStream

from backup_engine import errors
from backup_engine.engines.postgresql import gate_bodies  # noqa: F401 - registers the CREATE FUNCTION checker
from backup_engine.engines.postgresql.gate_rules import Refusal, Scope, check, walk
from backup_engine.engines.postgresql.gate_tree import NODE_NAMES, TreeError, parse, unwrap

TYPE_FRAME = ("CREATE TABLE t (c ", ")")
EXPRESSION_FRAME = ("SELECT ", "")
FRAGMENT_KINDS = frozenset({"ViewStmt", "CreateFunctionStmt", "CreateTrigStmt", "IndexStmt", "CreateTableAsStmt",
                            "RuleStmt", "CreatePolicyStmt", "CreateStatsStmt", "CreateDomainStmt"})
MAX_FRAGMENT_BYTES = 64 * 1024 * 1024
VALUE_NODES = {"ival": "Integer", "fval": "Float", "boolval": "Boolean", "sval": "String", "bsval": "BitString"}
INTEGER_TYPES = frozenset({"int", "int16", "int32", "long", "uint32", "Index", "AttrNumber", "Oid", "ParseLoc",
                           "int64", "uint64", "bits32", "SubTransactionId", "Cardinality", "Cost", "double"})


def check_type_name(text: str) -> str:
    """A column type: exactly one TypeName and nothing else; returns our rendering of it."""
    column = _column(_framed(text, TYPE_FRAME, "type"))
    type_name = column["typeName"]
    if type_name.get("setof") or type_name.get("pct_type"):
        raise _refused("type with SETOF or %TYPE")
    _walk("TypeName", type_name, "type")
    rendered = _render("TypeName", type_name)
    if _column(_framed(rendered, TYPE_FRAME, "type", locations=False))["typeName"] != _column(
            _framed(text, TYPE_FRAME, "type", locations=False))["typeName"]:
        raise _refused("type that does not render faithfully")
    return rendered


def check_expression(text: str) -> str:
    """A default, check or generated expression: exactly one expression, every call checked."""
    value = _target(_framed(text, EXPRESSION_FRAME, "expression"))
    kind, fields = unwrap(value)
    _walk(kind, fields, "expression")
    rendered = _render(kind, fields)
    if _target(_framed(rendered, EXPRESSION_FRAME, "expression", locations=False)) != _target(
            _framed(text, EXPRESSION_FRAME, "expression", locations=False)):
        raise _refused("expression that does not render faithfully")
    return rendered


def check_statement(text: str, kind: str) -> str:
    """A view, routine, trigger or index definition: exactly one statement of node kind `kind`."""
    if kind not in FRAGMENT_KINDS:
        raise _refused(f"definition of kind {kind[:40]}")
    statement = _one(text, "definition")
    found, fields = unwrap(statement["stmt"])
    if found != kind:
        raise _refused(f"definition of kind {found} where {kind} was expected")
    try:
        verdict = check(statement["stmt"], Scope("", text))
    except Refusal as refusal:
        raise _refused(refusal.what) from None
    if verdict.skipped:
        raise _refused("ownership or privilege statement")
    rendered = _render(found, fields)
    if _one(rendered, "definition", locations=False) != _one(text, "definition", locations=False):
        raise _refused("definition that does not render faithfully")
    return rendered


# --- frames ----------------------------------------------------------------------------------------------
def _refused(what: str) -> errors.InvalidRequest:
    return errors.InvalidRequest(errors.FRAGMENT_REFUSED, what)


def _one(text: str, what: str, locations: bool = True) -> dict[str, Any]:
    if not isinstance(text, str) or "\x00" in text:
        raise _refused(f"{what} that is not text")
    try:
        if len(text.encode("utf-8")) > MAX_FRAGMENT_BYTES:
            raise _refused(f"{what} longer than {MAX_FRAGMENT_BYTES} bytes")
        statements = parse(text, without_locations=not locations)
    except (ParseError, TreeError, UnicodeEncodeError) as exc:
        raise _refused(f"{what} that does not parse: {str(exc)[:160]}") from None
    if len(statements) != 1:
        raise _refused(f"{what} that is not exactly one")
    return statements[0]


def _framed(text: str, frame: tuple[str, str], what: str, locations: bool = True) -> dict[str, Any]:
    if not isinstance(text, str):
        raise _refused(f"{what} that is not text")
    return _one(frame[0] + text + frame[1], what, locations)["stmt"]


def _column(stmt: dict[str, Any]) -> dict[str, Any]:
    kind, node = unwrap(stmt)
    elements = node.get("tableElts", [])
    relation = node.get("relation", {})
    column_kind, column = unwrap(elements[0]) if len(elements) == 1 else ("", {})
    if (kind != "CreateStmt" or set(node) - {"relation", "tableElts", "oncommit"} or column_kind != "ColumnDef"
            or set(relation) - {"relname", "inh", "relpersistence", "location"} or relation.get("relname") != "t"
            or set(column) - {"colname", "typeName", "is_local", "location"} or column.get("colname") != "c"):
        raise _refused("type that is more than a type")
    return column


def _target(stmt: dict[str, Any]) -> Any:
    kind, node = unwrap(stmt)
    targets = node.get("targetList", [])
    target_kind, target = unwrap(targets[0]) if len(targets) == 1 else ("", {})
    if (kind != "SelectStmt" or set(node) - {"targetList", "limitOption", "op"} or node.get("op") != "SETOP_NONE"
            or target_kind != "ResTarget" or set(target) - {"val", "location"}):
        raise _refused("expression that is more than one expression")
    return target["val"]


def _walk(kind: str, fields: dict[str, Any], what: str) -> None:
    try:
        walk(kind, fields, Scope(what))
    except Refusal as refusal:
        raise _refused(refusal.what) from None


# --- rendering: libpg_query JSON -> pglast AST -> pglast's deparser ---------------------------------------
def _render(kind: str, fields: dict[str, Any]) -> str:
    try:
        return RawStream()(_node(kind, fields))
    except (RecursionError, ValueError, TypeError, AttributeError, KeyError, NotImplementedError) as exc:
        raise _refused(f"fragment that cannot be rendered: {type(exc).__name__}") from None


def _wrapped(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_wrapped(item) for item in value)
    if not value:
        return None
    kind, fields = unwrap(value)
    if kind == "List":
        return tuple(_wrapped(item) for item in fields.get("items", []))
    if kind not in NODE_NAMES:
        raise KeyError(kind)
    return _node(kind, fields)


def _node(kind: str, fields: dict[str, Any]) -> ast.Node:
    cls = getattr(ast, kind)
    if kind == "A_Const":
        data: dict[str, Any] = {"@": kind, "isnull": bool(fields.get("isnull"))}
        for key, value_kind in VALUE_NODES.items():
            if key in fields:
                data["val"] = _node(value_kind, fields[key])
        return cls(data)
    data = {"@": kind}
    for slot, info in cls.__slots__.items():
        key = slot[:-1] if slot.endswith("_") else slot
        if key not in fields:
            data[slot] = _default(kind, slot, info.c_type)
            continue
        value, ctype = fields[key], info.c_type
        if ctype in ("List*", "Node*", "Expr*"):
            value = _wrapped(value)
        elif ctype.endswith("*") and ctype[:-1] in NODE_NAMES:
            value = _node(ctype[:-1], value)
        data[slot] = value
    return cls(data) if len(data) > 1 else cls()


def _default(kind: str, slot: str, ctype: str) -> Any:
    """What libpg_query leaves out of its JSON: false, zero, and the empty value of a value node."""
    if kind in VALUE_NODES.values():
        return {"ival": 0, "boolval": False, "sval": "", "fval": "0", "bsval": ""}[slot]
    if ctype == "bool":
        return False
    return 0 if ctype in INTEGER_TYPES else None

