"""Checking one parsed statement of an upload against the policy (gate_policy).

A statement passes when its kind is allowed, its own rule accepts its options (COPY only from
stdin, SET only listed parameters, DROP only in-database objects, ...), and nothing anywhere in
its tree refers to a denied function or relation: calls in expressions, the functions that
aggregates, operators, types, casts, operator classes, conversions and triggers name, and the
bodies of SQL and PL/pgSQL functions (gate_bodies).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from backup_engine.engines.postgresql import gate_policy as policy
from backup_engine.engines.postgresql.gate_targets import SYSTEM_SCHEMAS, TARGET_KINDS, system_first, system_target
from backup_engine.engines.postgresql.gate_tree import TreeError, constant, nodes, strings, unwrap
from backup_engine.engines.postgresql.gate_words import OBJECT_WORDS, qualified, words


class Refusal(Exception):
    """What was refused, in SQL words (`ALTER ROLE`, `CREATE VIEW calls pg_read_file`); the caller says where."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class Verdict(NamedTuple):
    """An accepted statement: its kind, whether the restore leaves it out, what it creates."""

    kind: str = ""
    skipped: bool = False
    relations: int = 0
    copy_table: tuple[str | None, str] | None = None


class Scope(NamedTuple):
    """Where a statement sits: `what` names the upload statement in messages; `text` is the
    statement's own SQL when known (PL/pgSQL bodies are parsed from it); `depth` counts
    function bodies around it; `top` is true at the top level of the upload."""

    what: str
    text: str | None = None
    depth: int = 0
    top: bool = True


NAMING_KINDS = frozenset({"DropStmt", "CommentStmt", "AlterOwnerStmt", "GrantStmt"})  # name objects, run nothing
NESTABLE = frozenset({"SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "VariableSetStmt",
                      "ReplicaIdentityStmt", "ReturnStmt"})
RULE_ACTIONS = frozenset({"SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt"})
INDEX_CONSTRAINTS = frozenset({"CONSTR_PRIMARY", "CONSTR_UNIQUE", "CONSTR_EXCLUSION"})
BODY_FIELD = frozenset({("CreateFunctionStmt", "sql_body")})
SELF_CHECKED = frozenset({"VariableSetStmt"})  # its rule accepts constants only: nothing left to walk
ALTER_TABLE_WORDS = {
    "AT_SetTableSpace": "SET TABLESPACE", "AT_AlterColumnType": "ALTER COLUMN TYPE", "AT_DropColumn": "DROP COLUMN",
    "AT_SetAccessMethod": "SET ACCESS METHOD", "AT_GenericOptions": "OPTIONS", "AT_DetachPartition": "DETACH PARTITION",
    "AT_AlterColumnGenericOptions": "ALTER COLUMN OPTIONS", "AT_SetLogged": "SET LOGGED",
    "AT_SetUnLogged": "SET UNLOGGED", "AT_DropInherit": "NO INHERIT", "AT_DropOf": "NOT OF",
    "AT_SetExpression": "SET EXPRESSION", "AT_DropExpression": "DROP EXPRESSION",
    "AT_AlterConstraint": "ALTER CONSTRAINT",
    "AT_DropCluster": "SET WITHOUT CLUSTER", "AT_DetachPartitionFinalize": "DETACH PARTITION FINALIZE",
}


def check(stmt: dict[str, Any], scope: Scope) -> Verdict:
    """Check one statement node ({"Kind": {...}}); raise Refusal, or return its verdict."""
    kind, node = unwrap(stmt)
    allowed = policy.ALLOWED_KINDS if scope.top else policy.BODY_KINDS
    if kind not in allowed:
        raise Refusal(words(kind, node) if scope.top else f"{scope.what} runs {words(kind, node)}")
    if scope.top:
        scope = Scope(words(kind, node), scope.text, scope.depth, scope.top)
    rule = RULES.get(kind)
    verdict = rule(node, scope) if rule else Verdict()
    # A skipped statement is never sent; in a function body nothing is skipped: it runs when called.
    if (not verdict.skipped or not scope.top) and kind not in SELF_CHECKED and not (kind == "SelectStmt" and scope.top):
        walk(kind, node, scope)
    return Verdict(kind, verdict.skipped, verdict.relations, verdict.copy_table)


def walk(kind: str, node: dict[str, Any], scope: Scope) -> None:
    """Refuse any reference to a denied function or relation anywhere under the node."""
    naming = kind in NAMING_KINDS
    try:
        for child_kind, fields in nodes(kind, node, BODY_FIELD):
            if child_kind.endswith("Stmt") and fields is not node and child_kind not in NESTABLE:
                raise Refusal(f"{scope.what} holds {words(child_kind, fields)}")
            check_node = NODE_CHECKS.get(child_kind)
            if check_node and not (naming and child_kind == "ObjectWithArgs"):
                check_node(fields, scope)
            if child_kind in TARGET_KINDS:
                target = system_target(child_kind, fields)
                if target is not None:
                    raise Refusal(f"{scope.what} writes to {target}")
    except TreeError as exc:
        raise Refusal(f"{scope.what}: {exc}") from exc


# --- references to functions and relations ------------------------------------------------------------
def refuse_function(parts: list[str] | None, scope: Scope, arguments: int | None = None) -> None:
    """Refuse a denied function named by `parts` (any qualification, any quoting: the parser has
    already folded and unquoted it); `arguments` picks the query-text forms of ts_rewrite."""
    if not parts:
        return
    name = parts[-1]
    arity = policy.QUERY_TEXT_ARITIES.get(name)
    if policy.is_denied_function(name) or (arity is not None and arguments != arity):
        raise Refusal(f"{scope.what} calls {qualified(parts)}")


def _func_call(fields: dict[str, Any], scope: Scope) -> None:
    refuse_function(strings(fields.get("funcname")), scope, len(fields.get("args", [])))


def _object_with_args(fields: dict[str, Any], scope: Scope) -> None:
    refuse_function(strings(fields.get("objname")), scope)


def _named_function(key: str):
    def check_name(fields: dict[str, Any], scope: Scope) -> None:
        refuse_function(strings(fields.get(key)), scope)
    return check_name


def _range_var(fields: dict[str, Any], scope: Scope) -> None:
    if fields.get("relname") in policy.DENIED_RELATIONS:
        parts = [part for part in (fields.get("schemaname"), fields["relname"]) if part]
        raise Refusal(f"{scope.what} uses {qualified(parts)}")


def _definition(fields: dict[str, Any], scope: Scope) -> None:
    """Options that name functions: CREATE AGGREGATE sfunc, CREATE OPERATOR function, CREATE TYPE input..."""
    for key in ("definition", "params"):
        for element in fields.get(key, []):
            kind, option = unwrap(element)
            if kind == "DefElem":
                refuse_function(strings(option.get("arg")), scope)


NODE_CHECKS = {
    "FuncCall": _func_call, "ObjectWithArgs": _object_with_args, "RangeVar": _range_var,
    "CreateTrigStmt": _named_function("funcname"), "CreateConversionStmt": _named_function("func_name"),
    "RangeTableSample": _named_function("method"),
    "DefineStmt": _definition, "CreateRangeStmt": _definition,
}


# --- statement rules ------------------------------------------------------------------------------------
def check_setting(node: dict[str, Any], scope: Scope, table: dict[str, frozenset[str] | None] | None = None) -> Verdict:
    table = policy.TOP_LEVEL_SETTINGS if table is None else table
    name = policy.fold(node.get("name", ""))
    if name in policy.SETTING_WORDS:
        raise Refusal(policy.SETTING_WORDS[name])
    if node.get("kind") != "VAR_SET_VALUE":
        raise Refusal(f"SET {name} TO DEFAULT or RESET" if name else "RESET ALL")
    if name not in table:
        raise Refusal(f"SET {name}")
    allowed = table[name]
    if name == "search_path" and system_first([constant(argument) or "" for argument in node.get("args", [])][:1]):
        raise Refusal("SET search_path with a system schema first")
    for argument in node.get("args", []):
        value = constant(argument)
        if value is None:
            raise Refusal(f"SET {name} to an expression")
        normal = policy.fold(value)
        if name == "client_encoding":
            normal = normal.replace("-", "").replace("_", "")
        if allowed is not None and normal not in allowed:
            raise Refusal(f"SET {name} other than {' or '.join(sorted(allowed)) or repr('')}")
    return Verdict()


def _select(node: dict[str, Any], scope: Scope) -> Verdict:
    """At the top level only pg_dump's two: setval(...) and set_config('search_path', ..., false)."""
    if not scope.top:
        return Verdict()
    targets = node.get("targetList", [])
    call_kind, call = unwrap(unwrap(targets[0])[1].get("val")) if len(targets) == 1 else ("", {})
    parts = strings(call.get("funcname")) if call_kind == "FuncCall" else None
    plain = set(node) <= {"targetList", "limitOption", "op"} and node.get("op") == "SETOP_NONE" and (
        set(call) <= {"funcname", "args", "funcformat", "location"}) and not unwrap(targets[0])[1].get("name")
    name = parts[1] if parts and len(parts) == 2 and parts[0] == "pg_catalog" else None  # as pg_dump writes them
    values = [constant(argument) for argument in call.get("args", [])]
    if plain and name == "setval" and len(values) in (2, 3) and None not in values:
        return Verdict()
    if plain and name == "set_config" and len(values) == 3 and policy.fold(values[0] or "") == "search_path" and (
            values[1] is not None and values[2] == "false"):
        if system_first((values[1] or "").split(",")):
            raise Refusal("SELECT set_config search_path with a system schema first")
        return Verdict()
    walk("SelectStmt", node, scope)  # a denied call says what it is
    raise Refusal("SELECT")


def _insert(node: dict[str, Any], scope: Scope) -> Verdict:
    """At the top level, pg_dump --inserts: INSERT ... VALUES, at most ON CONFLICT DO NOTHING."""
    if not scope.top:
        return Verdict()
    source_kind, source = unwrap(node.get("selectStmt"))
    conflict = node.get("onConflictClause") or {"action": "ONCONFLICT_NOTHING"}
    if (source_kind != "SelectStmt" or set(source) - {"valuesLists", "limitOption", "op"}
            or set(node) - {"relation", "cols", "selectStmt", "onConflictClause", "override"}
            or conflict.get("action") != "ONCONFLICT_NOTHING" or set(conflict) - {"action", "location"}):
        raise Refusal("INSERT other than INSERT ... VALUES")
    return Verdict()


def _copy(node: dict[str, Any], scope: Scope) -> Verdict:
    if node.get("query"):
        raise Refusal("COPY with a query")
    if not node.get("is_from"):
        raise Refusal("COPY TO")
    if node.get("is_program"):
        raise Refusal("COPY FROM PROGRAM")
    if "filename" in node:
        raise Refusal("COPY FROM a server file")
    if node.get("whereClause") or node["relation"].get("catalogname"):
        raise Refusal("COPY with WHERE or a database name")
    for element in node.get("options", []):
        option = unwrap(element)[1]
        name, value = option.get("defname", ""), strings(option.get("arg"))
        if name not in policy.COPY_OPTIONS:
            raise Refusal(f"COPY option {name}")
        allowed = policy.COPY_OPTIONS[name]
        if allowed is not None and (not value or policy.fold(value[0]) not in allowed):
            raise Refusal(f"COPY option {name} other than {', '.join(sorted(allowed))}")
    relation = node["relation"]
    return Verdict(copy_table=(relation.get("schemaname"), relation["relname"]))


def _schema(node: dict[str, Any], scope: Scope) -> Verdict:
    if node.get("authrole") or node.get("schemaElts"):
        raise Refusal("CREATE SCHEMA with AUTHORIZATION or elements")
    return Verdict()


def _extension(node: dict[str, Any], scope: Scope) -> Verdict:
    name = node.get("extname", "")
    if name not in policy.ALLOWED_EXTENSIONS:
        raise Refusal(f"CREATE EXTENSION {qualified([name])}")
    options = {unwrap(option)[1].get("defname"): unwrap(option)[1].get("arg") for option in node.get("options", [])}
    if "cascade" in options:
        raise Refusal("CREATE EXTENSION ... CASCADE")
    if name != "plpgsql" and (strings(options.get("schema")) or [""])[0] in SYSTEM_SCHEMAS:
        raise Refusal(f"CREATE EXTENSION {qualified([name])} in a system schema")
    return Verdict()


def _object_type(field: str, allowed: frozenset[str] | None = None, skipped: bool = False):
    """A rule on the object type a statement acts on: never objects outside the database (a
    language's owner or grants may only be skipped)."""
    def rule(node: dict[str, Any], scope: Scope) -> Verdict:
        objtype = node.get(field, "")
        if objtype in policy.FOREIGN_OBJECTS or (objtype in policy.LANGUAGE_OBJECTS and not skipped) or (
                allowed is not None and objtype not in allowed):
            raise Refusal(scope.what)
        return Verdict(skipped=skipped)
    return rule


def _drop(node: dict[str, Any], scope: Scope) -> Verdict:
    _object_type("removeType", policy.DROPPABLE)(node, scope)
    if node.get("behavior") == "DROP_CASCADE" or node.get("concurrent"):
        raise Refusal(f"{scope.what} CASCADE or CONCURRENTLY")
    if node.get("removeType") == "OBJECT_EXTENSION":
        for element in node.get("objects", []):
            if (strings(element) or [""])[0] not in policy.ALLOWED_EXTENSIONS:
                raise Refusal(f"DROP EXTENSION {qualified(strings(element) or [''])}")
    return Verdict()


def _alter_table(node: dict[str, Any], scope: Scope) -> Verdict:
    if node.get("objtype") not in policy.ALTER_TABLE_OBJECTS:
        raise Refusal(scope.what)
    commands = [unwrap(command)[1] for command in node.get("cmds", [])]
    subtypes = [command.get("subtype", "") for command in commands]
    for subtype in subtypes:
        if subtype not in policy.ALTER_TABLE_COMMANDS:
            raise Refusal(f"{scope.what} {ALTER_TABLE_WORDS.get(subtype, subtype.removeprefix('AT_'))}")
    if "AT_ChangeOwner" in subtypes:
        if set(subtypes) != {"AT_ChangeOwner"}:
            raise Refusal(f"{scope.what} OWNER TO mixed with other changes")
        return Verdict(skipped=True)
    relations = sum(1 for command in commands if command.get("subtype") == "AT_AddIdentity" or (
        command.get("subtype") == "AT_AddConstraint" and unwrap(command.get("def"))[1].get("contype")
        in INDEX_CONSTRAINTS))
    return Verdict(relations=relations)


def _alter_domain(node: dict[str, Any], scope: Scope) -> Verdict:
    if node.get("subtype") not in policy.ALTER_DOMAIN_SUBTYPES:
        raise Refusal("ALTER DOMAIN other than constraints, default and NOT NULL")
    return Verdict()


def _create_table(node: dict[str, Any], scope: Scope) -> Verdict:
    if node.get("tablespacename") or node.get("accessMethod", "heap") != "heap":
        raise Refusal("CREATE TABLE with a TABLESPACE or an access method other than heap")
    relations = 1
    for element in node.get("tableElts", []):
        kind, fields = unwrap(element)
        constraints = [fields] if kind == "Constraint" else [unwrap(c)[1] for c in fields.get("constraints", [])]
        relations += sum(1 for c in constraints if c.get("contype") in INDEX_CONSTRAINTS | {"CONSTR_IDENTITY"})
    return Verdict(relations=relations)


def _index(node: dict[str, Any], scope: Scope) -> Verdict:
    if node.get("tableSpace") or node.get("concurrent"):
        raise Refusal("CREATE INDEX with a TABLESPACE or CONCURRENTLY")
    return Verdict(relations=1)


def _table_as(node: dict[str, Any], scope: Scope) -> Verdict:
    into = node.get("into", {})
    if node.get("objtype") != "OBJECT_MATVIEW":
        raise Refusal("CREATE TABLE AS")
    if into.get("tableSpaceName") or into.get("accessMethod", "heap") != "heap":
        raise Refusal("CREATE MATERIALIZED VIEW with a TABLESPACE or an access method other than heap")
    return Verdict(relations=1)


def _rule(node: dict[str, Any], scope: Scope) -> Verdict:
    for action in node.get("actions", []):
        kind, fields = unwrap(action)
        if kind not in RULE_ACTIONS:
            raise Refusal(f"CREATE RULE ... DO {words(kind, fields)}")
    return Verdict()


def _define(node: dict[str, Any], scope: Scope) -> Verdict:
    if node.get("kind") not in policy.DEFINABLE:
        raise Refusal(f"CREATE {OBJECT_WORDS.get(node.get('kind', ''), 'object')}")
    return Verdict()


BodyCheck = Callable[[dict[str, Any], Scope], None]
_function_bodies: list[BodyCheck] = []


def checks_function_bodies(check_function: BodyCheck) -> BodyCheck:
    """Register the CREATE FUNCTION checker (gate_bodies). It checks a body's statements with
    `check`, so the two recurse into each other; registering keeps their imports one way."""
    _function_bodies[:] = [check_function]
    return check_function


def _function(node: dict[str, Any], scope: Scope) -> Verdict:
    if not _function_bodies:  # fail closed: a body nobody checked never runs
        raise Refusal(f"{words('CreateFunctionStmt', node)} (no function body checker loaded)")
    _function_bodies[0](node, scope)
    return Verdict()


def _counted(relations: int):
    def rule(node: dict[str, Any], scope: Scope) -> Verdict:
        return Verdict(relations=relations)
    return rule


RULES = {
    "VariableSetStmt": check_setting, "SelectStmt": _select, "InsertStmt": _insert, "CopyStmt": _copy,
    "CreateSchemaStmt": _schema, "CreateExtensionStmt": _extension, "DropStmt": _drop,
    "CommentStmt": _object_type("objtype"), "AlterOwnerStmt": _object_type("objectType", skipped=True),
    "GrantStmt": _object_type("objtype", skipped=True), "AlterTableStmt": _alter_table,
    "AlterDomainStmt": _alter_domain, "CreateStmt": _create_table, "IndexStmt": _index,
    "CreateTableAsStmt": _table_as, "RuleStmt": _rule, "DefineStmt": _define, "CreateFunctionStmt": _function,
    "CreateSeqStmt": _counted(1), "ViewStmt": _counted(1),
    "CompositeTypeStmt": _counted(1),
}

