"""What a statement writes to or creates must not be in a system schema.

A restore that runs as a superuser (BACKUP_UPLOAD_ALLOW_SUPERUSER) may write to the catalogs
with plain DML: `INSERT INTO pg_catalog.pg_authid`, `COPY pg_catalog.pg_proc FROM stdin`,
`UPDATE pg_language SET lanpltrusted = true` in a function body, or create functions and types
in pg_catalog, which every query in the database then finds first. pg_dump never does any of
this: it writes into the user's schemas, always qualified. So the target relation of a write
or DDL statement (anywhere: top level, function bodies, rules, data-modifying CTEs) and the name
of a created object are refused in pg_catalog, information_schema or pg_toast, and an
unqualified target relation named pg_* is refused too (lookup tries pg_catalog first). A
search_path that puts a system schema first, where unqualified objects would be created, is
refused by the SET rule.
"""

from __future__ import annotations

from typing import Any

from backup_engine.engines.postgresql.gate_tree import strings, unwrap
from backup_engine.engines.postgresql.gate_words import qualified

SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast"})

# Statement kind -> fields naming the relations it writes to or defines (a bare RangeVar, a list of
# wrapped RangeVars, or an IntoClause).
RELATION_TARGETS = {
    "InsertStmt": ("relation",), "UpdateStmt": ("relation",), "DeleteStmt": ("relation",),
    "MergeStmt": ("relation",), "CopyStmt": ("relation",), "CreateStmt": ("relation",),
    "AlterTableStmt": ("relation",), "IndexStmt": ("relation",), "CreateTrigStmt": ("relation",),
    "RuleStmt": ("relation",), "ViewStmt": ("view",), "CreatePolicyStmt": ("table",),
    "CreateSeqStmt": ("sequence",), "AlterSeqStmt": ("sequence",), "RefreshMatViewStmt": ("relation",),
    "TruncateStmt": ("relations",), "LockStmt": ("relations",), "CreateTableAsStmt": ("into",),
    "CompositeTypeStmt": ("typevar",), "CreateStatsStmt": ("relations",),
}
# Statement kind -> fields holding the (possibly qualified) name of the object it creates or alters.
NAME_TARGETS = {
    "CreateFunctionStmt": "funcname", "DefineStmt": "defnames", "CreateDomainStmt": "domainname",
    "CreateEnumStmt": "typeName", "CreateRangeStmt": "typeName", "CreateConversionStmt": "conversion_name",
    "CreateOpClassStmt": "opclassname", "CreateOpFamilyStmt": "opfamilyname", "AlterOpFamilyStmt": "opfamilyname",
    "AlterEnumStmt": "typeName", "AlterDomainStmt": "typeName", "CreateStatsStmt": "defnames",
}
TARGET_KINDS = frozenset(RELATION_TARGETS) | frozenset(NAME_TARGETS)


def system_target(kind: str, fields: dict[str, Any]) -> str | None:
    """The qualified name of a system-schema relation or object this statement writes or creates, if any."""
    for key in RELATION_TARGETS.get(kind, ()):
        value = fields.get(key)
        if key == "into" and isinstance(value, dict):
            value = value.get("rel")
        for relation in value if isinstance(value, list) else [value]:
            name = _relation(relation)
            if name is not None and (name[0] in SYSTEM_SCHEMAS if len(name) == 2 else name[0].startswith("pg_")):
                return qualified(list(name))
    key = NAME_TARGETS.get(kind)
    parts = strings(fields.get(key)) if key else None
    if parts and len(parts) >= 2 and parts[-2] in SYSTEM_SCHEMAS:
        return qualified(parts)
    return None


def _relation(value: Any) -> tuple[str, ...] | None:
    """(schema, name) or (name,) of a RangeVar, bare or wrapped."""
    kind, fields = unwrap(value)
    if kind != "RangeVar":
        fields = value if isinstance(value, dict) else {}
    if "relname" not in fields:
        return None
    return (fields["schemaname"], fields["relname"]) if fields.get("schemaname") else (fields["relname"],)


def system_first(schemas: list[str]) -> bool:
    """True when a search_path (its elements as written) starts with a system schema."""
    if not schemas:
        return False
    first = schemas[0].strip()
    first = first[1:-1].replace('""', '"') if first.startswith('"') and first.endswith('"') else first.lower()
    return first in SYSTEM_SCHEMAS
