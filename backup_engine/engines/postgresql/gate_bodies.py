"""Function definitions in an upload: their language, options and bodies, checked by the same rules.

Only LANGUAGE sql and plpgsql pass (C, internal and the untrusted languages would run code the
gate cannot read). SQL bodies, as a string or BEGIN ATOMIC, are statements like any other and
go through gate_rules with the body allowlist. PL/pgSQL bodies are compiled by libpg_query's
copy of the PL/pgSQL parser; every SQL expression and statement in them is parsed and checked.
What a body builds at run time and runs with EXECUTE cannot be read: that is the documented
limit, and restoring uploads with a role that is not a superuser is the defence.
"""

from __future__ import annotations

from typing import Any

from pglast import parser
from pglast.parser import ParseError

from backup_engine.engines.postgresql import gate_policy as policy
from backup_engine.engines.postgresql.gate_buffer import SANITIZE
from backup_engine.engines.postgresql.gate_rules import (
    Refusal,
    Scope,
    check,
    check_setting,
    checks_function_bodies,
    refuse_function,
)
from backup_engine.engines.postgresql.gate_tree import TreeError, items, load_json, parse, strings, unwrap

ASSIGNMENT_TOKENS = frozenset({"COLON_EQUALS", "ASCII_61"})
OPENING, CLOSING = frozenset({"ASCII_40", "ASCII_91"}), frozenset({"ASCII_41", "ASCII_93"})
TRANSACTION_CONTROL = frozenset({"PLpgSQL_stmt_commit", "PLpgSQL_stmt_rollback"})
EXPRESSION_MODE, DEFAULT_MODE, ASSIGN_MODES = 2, 0, frozenset({3, 4, 5})
SEPARATOR = "\n;\n"  # a newline ends any line comment an expression may end with


@checks_function_bodies
def check_function(node: dict[str, Any], scope: Scope) -> None:
    """Language, options, and body of a CREATE FUNCTION / PROCEDURE."""
    options: dict[str, Any] = {}
    for element in node.get("options", []):
        option = unwrap(element)[1]
        name = option.get("defname", "")
        if name in options and name != "set":
            raise Refusal(f"{scope.what} with {name} given twice")
        options[name] = option.get("arg")
        if name == "set":
            check_setting(unwrap(option.get("arg"))[1], scope, policy.FUNCTION_SETTINGS)
    sql_body = node.get("sql_body")
    language = (strings(options["language"]) or [""])[0] if "language" in options else ("sql" if sql_body else "")
    if language not in policy.BODY_LANGUAGES:
        raise Refusal(f"{scope.what} in LANGUAGE {language or '(none)'}")
    if "transform" in options:
        raise Refusal(f"{scope.what} with TRANSFORM")
    if "support" in options:
        refuse_function(strings(options["support"]), scope)
    if scope.depth >= policy.MAX_BODY_DEPTH:
        raise Refusal(f"{scope.what}: function bodies nested too deeply")
    inner = Scope(scope.what, None, scope.depth + 1, top=False)
    if sql_body is not None:
        if language != "sql" or "as" in options:
            raise Refusal(f"{scope.what} with a BEGIN ATOMIC body in LANGUAGE {language}")
        for statement in _atomic_statements(sql_body):
            check(statement, inner)
        return
    source = [part for part in items(options.get("as")) if unwrap(part)[0] == "String"]
    if len(source) != 1 or len(items(options.get("as"))) != 1:
        raise Refusal(f"{scope.what} without exactly one body string")
    body = unwrap(source[0])[1].get("sval", "")
    if language == "sql":
        check_sql_text(body, inner)
    else:
        _check_plpgsql(scope, inner)


def _atomic_statements(sql_body: Any) -> list[Any]:
    kind, _ = unwrap(sql_body)
    if kind == "ReturnStmt":
        return [sql_body]
    statements = []
    for element in items(sql_body):
        statements.extend(items(element) if unwrap(element)[0] == "List" or isinstance(element, list) else [element])
    return statements


def check_sql_text(text: str, scope: Scope) -> None:
    """A body (or an expression wrapped as one) parsed and checked statement by statement."""
    encoded = text.encode("utf-8")
    for statement in _parse(text, scope):
        start = statement.get("stmt_location", 0)
        length = statement.get("stmt_len") or len(encoded) - start
        own = encoded[start:start + length].decode("utf-8", "replace")
        check(statement["stmt"], Scope(scope.what, own, scope.depth, top=False))


def _parse(text: str, scope: Scope) -> list[dict[str, Any]]:
    try:
        return parse(text)
    except (ParseError, TreeError) as exc:
        raise Refusal(f"{scope.what} has a body that does not parse: {exc}") from exc


def _check_plpgsql(outer: Scope, inner: Scope) -> None:
    """Compile the PL/pgSQL body from the statement's own text and check every expression in it.
    The text is the whole CREATE FUNCTION statement (libpg_query's PL/pgSQL entry point wants
    that); inside a BEGIN ATOMIC body it is not at hand, and the function is refused."""
    if outer.text is None:
        raise Refusal(f"{outer.what} defines a PL/pgSQL function where its text is not at hand")
    try:
        functions = load_json(parser.parse_plpgsql_json(outer.text))
    except (ParseError, TreeError) as exc:
        raise Refusal(f"{outer.what} has a PL/pgSQL body that does not parse: {exc}") from exc
    if not isinstance(functions, list) or len(functions) != 1:
        raise Refusal(f"{outer.what} has a PL/pgSQL body that does not parse")
    texts: list[str] = []
    pending: list[Any] = [functions]
    while pending:
        value = pending.pop()
        if isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, dict):
            for key, inner_value in value.items():
                if key in TRANSACTION_CONTROL:
                    raise Refusal(f"{outer.what} with COMMIT or ROLLBACK in its body")
                if key == "PLpgSQL_expr":
                    texts.extend(_expression_texts(inner_value, inner))
                else:
                    pending.append(inner_value)
    _check_texts(texts, inner)


def _expression_texts(expr: dict[str, Any], scope: Scope) -> list[str]:
    """One PL/pgSQL expression as SQL text(s) that parse the way the server's mode for it does."""
    query, mode = expr.get("query", ""), expr.get("parseMode", DEFAULT_MODE)
    if mode == DEFAULT_MODE:
        return [query]
    if mode == EXPRESSION_MODE:
        return ["SELECT " + query]
    if mode in ASSIGN_MODES:
        target, value = _split_assignment(query, scope)
        return ["SELECT " + target, "SELECT " + value]
    raise Refusal(f"{scope.what} has a PL/pgSQL expression of an unknown kind")


def _check_texts(texts: list[str], scope: Scope) -> None:
    """Check many expression texts with one parse when it provably reads each as exactly one
    statement inside its own bounds (a body may hold thousands); otherwise one by one."""
    joined = SEPARATOR.join(texts)
    encoded = joined.encode("utf-8")
    bounds, offset = [], 0
    for text in texts:
        size = len(text.encode("utf-8"))
        bounds.append((offset, offset + size))
        offset += size + len(SEPARATOR)
    try:
        statements = parse(joined) if len(texts) > 1 else None
    except (ParseError, TreeError):
        statements = None
    if statements is None or len(statements) != len(texts) or not all(
            _within(statement, start, end, len(encoded)) for statement, (start, end) in zip(statements, bounds,
                                                                                             strict=True)):
        for text in texts:
            check_sql_text(text, scope)
        return
    for statement, (start, end) in zip(statements, bounds, strict=True):
        own = encoded[start:end].decode("utf-8", "replace")
        check(statement["stmt"], Scope(scope.what, own, scope.depth, top=False))


def _within(statement: dict[str, Any], start: int, end: int, total: int) -> bool:
    """The statement starts inside [start, end) and ends there too (at the separator's `;`, or the end)."""
    location = statement.get("stmt_location", 0)
    stop = location + (statement.get("stmt_len") or total - location)
    return start <= location < end and stop in (end, end + 1)


def _split_assignment(query: str, scope: Scope) -> tuple[str, str]:
    """`target[subscripts] := expression` cut at its first top-level := or =, found by the server's
    own lexer (on an ASCII stand-in of the text, so token offsets are byte offsets)."""
    encoded = query.encode("utf-8")
    try:
        tokens = parser.scan(encoded.translate(SANITIZE).decode("ascii"))
    except ParseError as exc:
        raise Refusal(f"{scope.what} has a PL/pgSQL assignment that does not parse: {exc}") from exc
    depth = 0
    for token in tokens:
        if token.name in OPENING:
            depth += 1
        elif token.name in CLOSING:
            depth -= 1
        elif depth == 0 and token.name in ASSIGNMENT_TOKENS:
            return (encoded[:token.start].decode("utf-8", "replace"),
                    encoded[token.end + 1:].decode("utf-8", "replace"))
    raise Refusal(f"{scope.what} has a PL/pgSQL assignment without := ")
