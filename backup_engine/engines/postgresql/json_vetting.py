"""An untrusted JSON document's schema, vetted before a PostgreSQL script is written from it.

The converter pastes SQL fragments of a document's schema into its script: column types,
defaults, check and generation expressions, and view, routine, trigger and index definitions.
From a document that is not ours each of them is parsed by PostgreSQL's parser in a fixed frame,
checked by the upload gate's rules, and replaced by the gate's own rendering
(`gate_fragments`), so what reaches the script is what was checked, in our words. Parts the
checkers cannot frame (SQL kept verbatim from another engine's catalog) are refused; the
script itself then goes through the gate again when it is restored, as any upload does.
"""

from __future__ import annotations

import copy
from typing import Any

from backup_engine import errors
from backup_engine.engines.postgresql.gate_fragments import check_expression, check_statement, check_type_name
from backup_engine.formats.model import catalog_only_objects

# extras lists whose items carry a full definition, with the statement kind each must be
DEFINITIONS = {"views": None, "routines": "CreateFunctionStmt", "triggers": "CreateTrigStmt",
               "indexes": "IndexStmt"}
VERBATIM = ("raw_post_data", "table_ddl")


def _vet(value: Any, check: Any, where: str) -> Any:
    if value is None:
        return None
    try:
        return check(value)
    except errors.InvalidRequest as exc:
        raise errors.InvalidRequest(errors.FRAGMENT_REFUSED, f"{where}: {exc.detail}") from None


def _vet_table(spec: dict[str, Any]) -> None:
    name = f"table {str(spec.get('key'))[:80]!r}"
    for column in spec.get("columns", []):
        where = f"{name} column {str(column.get('name'))[:80]!r}"
        column["type"] = _vet(column.get("type"), check_type_name, f"{where} type")
        column["default"] = _vet(column.get("default"), check_expression, f"{where} default")
        if column.get("generated"):
            column["generated"]["sqltext"] = _vet(column["generated"].get("sqltext"), check_expression,
                                                  f"{where} generated")
    for check in spec.get("checks", []):
        check["sqltext"] = _vet(check.get("sqltext"), check_expression, f"{name} check")


def _vet_view(view: dict[str, Any]) -> None:
    definition = view.get("definition")
    if not isinstance(definition, str):
        raise errors.InvalidRequest(errors.FRAGMENT_REFUSED, "a view without its definition")
    kind = "CreateTableAsStmt" if view.get("materialized") else "ViewStmt"
    frame = "CREATE MATERIALIZED VIEW v AS " if view.get("materialized") else "CREATE VIEW v AS "
    _vet(frame + definition, lambda text: check_statement(text, kind), f"view {str(view.get('name'))[:80]!r}")


def vet_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` whose SQL fragments are the gate's renderings; refuses what it cannot vet."""
    vetted = copy.deepcopy(schema)
    for spec in vetted.get("tables", []):
        _vet_table(spec)
    extras = vetted.get("extras") or {}
    # the catalog section is verbatim SQL for restores of our own documents: dropped here, the typed
    # lists are what an untrusted document restores from; refused when it holds what they cannot carry
    beyond = [name[:80] for name in catalog_only_objects(extras.pop("catalog", None))]
    if beyond:
        more = ", ..." if len(beyond) > 10 else ""
        raise errors.InvalidRequest(errors.FRAGMENT_REFUSED,
                                    f"objects only a document of ours may carry: {', '.join(beyond[:10])}{more}")
    for key in VERBATIM:
        if extras.get(key):
            raise errors.InvalidRequest(errors.FRAGMENT_REFUSED, f"verbatim SQL ({key}) from an untrusted document")
    for domain in extras.get("domains", []):
        where = f"domain {str(domain.get('name'))[:80]!r}"
        domain["base_type"] = _vet(domain.get("base_type"), check_type_name, f"{where} type")
        domain["default"] = _vet(domain.get("default"), check_expression, f"{where} default")
        for check in domain.get("checks", []):
            check["definition"] = _vet(check.get("definition"),
                                       lambda text: "CHECK (" + check_expression(_inside_check(text)) + ")",
                                       f"{where} check")
    for sequence in extras.get("sequences", []):
        sequence["data_type"] = _vet(sequence.get("data_type"), check_type_name, "sequence type")
    for view in extras.get("views", []):
        _vet_view(view)
    for key, kind in DEFINITIONS.items():
        if kind is None:
            continue
        for item in extras.get(key, []):
            item["definition"] = _vet(item.get("definition"), lambda text, k=kind: check_statement(text, k),
                                      f"{key[:-1]} {str(item.get('name'))[:80]!r}")
    return vetted


def _inside_check(text: str) -> str:
    """The expression of a `CHECK (...)` clause as the catalog prints it."""
    stripped = text.strip() if isinstance(text, str) else ""
    if not (stripped.upper().startswith("CHECK (") and stripped.endswith(")")):
        raise errors.InvalidRequest(errors.FRAGMENT_REFUSED, "a check that is not CHECK (...)")
    return stripped[len("CHECK ("):-1]
