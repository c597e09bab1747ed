"""A parse node in the words of SQL, for refusal messages: `ALTER ROLE`, `DROP DATABASE`, `SET ROLE`.

Users read what they wrote, not the parser's node names; the mapping is presentation only and
never decides anything.
"""

from __future__ import annotations

from typing import Any

from pglast.keywords import COL_NAME_KEYWORDS, RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS

QUOTED_KEYWORDS = COL_NAME_KEYWORDS | RESERVED_KEYWORDS | TYPE_FUNC_NAME_KEYWORDS

KIND_WORDS = {
    "AlterCollationStmt": "ALTER COLLATION", "AlterDatabaseRefreshCollStmt": "ALTER DATABASE",
    "AlterDatabaseSetStmt": "ALTER DATABASE", "AlterDatabaseStmt": "ALTER DATABASE",
    "AlterDefaultPrivilegesStmt": "ALTER DEFAULT PRIVILEGES", "AlterDomainStmt": "ALTER DOMAIN",
    "AlterEnumStmt": "ALTER TYPE", "AlterEventTrigStmt": "ALTER EVENT TRIGGER", "AlterExtensionContentsStmt":
    "ALTER EXTENSION", "AlterExtensionStmt": "ALTER EXTENSION", "AlterFdwStmt": "ALTER FOREIGN DATA WRAPPER",
    "AlterForeignServerStmt": "ALTER SERVER", "AlterFunctionStmt": "ALTER FUNCTION",
    "AlterObjectDependsStmt": "ALTER ... DEPENDS ON EXTENSION", "AlterObjectSchemaStmt": "ALTER ... SET SCHEMA",
    "AlterOpFamilyStmt": "ALTER OPERATOR FAMILY", "AlterOperatorStmt": "ALTER OPERATOR",
    "AlterPolicyStmt": "ALTER POLICY", "AlterPublicationStmt": "ALTER PUBLICATION", "AlterRoleSetStmt": "ALTER ROLE",
    "AlterRoleStmt": "ALTER ROLE", "AlterSeqStmt": "ALTER SEQUENCE", "AlterStatsStmt": "ALTER STATISTICS",
    "AlterSubscriptionStmt": "ALTER SUBSCRIPTION", "AlterSystemStmt": "ALTER SYSTEM",
    "AlterTSConfigurationStmt": "ALTER TEXT SEARCH CONFIGURATION",
    "AlterTSDictionaryStmt": "ALTER TEXT SEARCH DICTIONARY", "AlterTableMoveAllStmt": "ALTER TABLE ALL IN TABLESPACE",
    "AlterTableSpaceOptionsStmt": "ALTER TABLESPACE", "AlterTypeStmt": "ALTER TYPE",
    "AlterUserMappingStmt": "ALTER USER MAPPING", "CallStmt": "CALL", "CheckPointStmt": "CHECKPOINT",
    "ClosePortalStmt": "CLOSE", "ClusterStmt": "CLUSTER", "CommentStmt": "COMMENT", "CompositeTypeStmt": "CREATE TYPE",
    "ConstraintsSetStmt": "SET CONSTRAINTS", "CopyStmt": "COPY", "CreateAmStmt": "CREATE ACCESS METHOD",
    "CreateCastStmt": "CREATE CAST", "CreateConversionStmt": "CREATE CONVERSION", "CreateDomainStmt": "CREATE DOMAIN",
    "CreateEnumStmt": "CREATE TYPE", "CreateEventTrigStmt": "CREATE EVENT TRIGGER",
    "CreateExtensionStmt": "CREATE EXTENSION", "CreateFdwStmt": "CREATE FOREIGN DATA WRAPPER",
    "CreateForeignServerStmt": "CREATE SERVER", "CreateForeignTableStmt": "CREATE FOREIGN TABLE",
    "CreateFunctionStmt": "CREATE FUNCTION", "CreateOpClassStmt": "CREATE OPERATOR CLASS",
    "CreateOpFamilyStmt": "CREATE OPERATOR FAMILY", "CreatePLangStmt": "CREATE LANGUAGE",
    "CreatePolicyStmt": "CREATE POLICY", "CreatePublicationStmt": "CREATE PUBLICATION",
    "CreateRangeStmt": "CREATE TYPE", "CreateRoleStmt": "CREATE ROLE", "CreateSchemaStmt": "CREATE SCHEMA",
    "CreateSeqStmt": "CREATE SEQUENCE", "CreateStatsStmt": "CREATE STATISTICS", "CreateStmt": "CREATE TABLE",
    "CreateSubscriptionStmt": "CREATE SUBSCRIPTION", "CreateTableAsStmt": "CREATE TABLE AS",
    "CreateTableSpaceStmt": "CREATE TABLESPACE", "CreateTransformStmt": "CREATE TRANSFORM",
    "CreateTrigStmt": "CREATE TRIGGER", "CreateUserMappingStmt": "CREATE USER MAPPING",
    "CreatedbStmt": "CREATE DATABASE", "DeallocateStmt": "DEALLOCATE", "DeclareCursorStmt": "DECLARE",
    "DefineStmt": "CREATE", "DeleteStmt": "DELETE", "DiscardStmt": "DISCARD", "DoStmt": "DO",
    "DropOwnedStmt": "DROP OWNED", "DropRoleStmt": "DROP ROLE", "DropStmt": "DROP",
    "DropSubscriptionStmt": "DROP SUBSCRIPTION", "DropTableSpaceStmt": "DROP TABLESPACE",
    "DropUserMappingStmt": "DROP USER MAPPING", "DropdbStmt": "DROP DATABASE", "ExecuteStmt": "EXECUTE",
    "ExplainStmt": "EXPLAIN", "FetchStmt": "FETCH", "GrantRoleStmt": "GRANT role", "GrantStmt": "GRANT",
    "ImportForeignSchemaStmt": "IMPORT FOREIGN SCHEMA", "IndexStmt": "CREATE INDEX", "InsertStmt": "INSERT",
    "ListenStmt": "LISTEN", "LoadStmt": "LOAD", "LockStmt": "LOCK", "MergeStmt": "MERGE", "NotifyStmt": "NOTIFY",
    "PrepareStmt": "PREPARE", "ReassignOwnedStmt": "REASSIGN OWNED", "RefreshMatViewStmt":
    "REFRESH MATERIALIZED VIEW", "ReindexStmt": "REINDEX", "RenameStmt": "ALTER ... RENAME",
    "ReturnStmt": "RETURN", "RuleStmt": "CREATE RULE", "SecLabelStmt": "SECURITY LABEL", "SelectStmt": "SELECT",
    "TruncateStmt": "TRUNCATE", "UnlistenStmt": "UNLISTEN", "UpdateStmt": "UPDATE", "VacuumStmt": "VACUUM",
    "VariableSetStmt": "SET", "VariableShowStmt": "SHOW", "ViewStmt": "CREATE VIEW",
}
TRANSACTION_WORDS = {
    "TRANS_STMT_BEGIN": "BEGIN", "TRANS_STMT_START": "START TRANSACTION", "TRANS_STMT_COMMIT": "COMMIT",
    "TRANS_STMT_ROLLBACK": "ROLLBACK", "TRANS_STMT_SAVEPOINT": "SAVEPOINT", "TRANS_STMT_RELEASE": "RELEASE SAVEPOINT",
    "TRANS_STMT_ROLLBACK_TO": "ROLLBACK TO SAVEPOINT", "TRANS_STMT_PREPARE": "PREPARE TRANSACTION",
    "TRANS_STMT_COMMIT_PREPARED": "COMMIT PREPARED", "TRANS_STMT_ROLLBACK_PREPARED": "ROLLBACK PREPARED",
}
OBJECT_WORDS = {
    "OBJECT_ACCESS_METHOD": "ACCESS METHOD", "OBJECT_AGGREGATE": "AGGREGATE", "OBJECT_CAST": "CAST",
    "OBJECT_COLUMN": "COLUMN", "OBJECT_COLLATION": "COLLATION", "OBJECT_CONVERSION": "CONVERSION",
    "OBJECT_DATABASE": "DATABASE", "OBJECT_DOMAIN": "DOMAIN", "OBJECT_DOMCONSTRAINT": "CONSTRAINT",
    "OBJECT_EVENT_TRIGGER": "EVENT TRIGGER", "OBJECT_EXTENSION": "EXTENSION", "OBJECT_FDW": "FOREIGN DATA WRAPPER",
    "OBJECT_FOREIGN_SERVER": "SERVER", "OBJECT_FOREIGN_TABLE": "FOREIGN TABLE", "OBJECT_FUNCTION": "FUNCTION",
    "OBJECT_INDEX": "INDEX", "OBJECT_LANGUAGE": "LANGUAGE", "OBJECT_LARGEOBJECT": "LARGE OBJECT",
    "OBJECT_MATVIEW": "MATERIALIZED VIEW", "OBJECT_OPCLASS": "OPERATOR CLASS", "OBJECT_OPERATOR": "OPERATOR",
    "OBJECT_OPFAMILY": "OPERATOR FAMILY", "OBJECT_PARAMETER_ACL": "PARAMETER", "OBJECT_POLICY": "POLICY",
    "OBJECT_PROCEDURE": "PROCEDURE", "OBJECT_PUBLICATION": "PUBLICATION", "OBJECT_ROLE": "ROLE",
    "OBJECT_ROUTINE": "ROUTINE", "OBJECT_RULE": "RULE", "OBJECT_SCHEMA": "SCHEMA", "OBJECT_SEQUENCE": "SEQUENCE",
    "OBJECT_SUBSCRIPTION": "SUBSCRIPTION", "OBJECT_STATISTIC_EXT": "STATISTICS", "OBJECT_TABCONSTRAINT": "CONSTRAINT",
    "OBJECT_TABLE": "TABLE", "OBJECT_TABLESPACE": "TABLESPACE", "OBJECT_TRANSFORM": "TRANSFORM",
    "OBJECT_TRIGGER": "TRIGGER", "OBJECT_TSCONFIGURATION": "TEXT SEARCH CONFIGURATION",
    "OBJECT_TSDICTIONARY": "TEXT SEARCH DICTIONARY", "OBJECT_TSPARSER": "TEXT SEARCH PARSER",
    "OBJECT_TSTEMPLATE": "TEXT SEARCH TEMPLATE", "OBJECT_TYPE": "TYPE", "OBJECT_USER_MAPPING": "USER MAPPING",
    "OBJECT_VIEW": "VIEW",
}
# Which field names the object type, for the statements whose words depend on it.
OBJECT_FIELDS = {"DropStmt": ("DROP", "removeType"), "CommentStmt": ("COMMENT ON", "objtype"),
                 "AlterOwnerStmt": ("ALTER", "objectType"), "GrantStmt": ("GRANT ON", "objtype"),
                 "DefineStmt": ("CREATE", "kind"), "AlterTableStmt": ("ALTER", "objtype"),
                 "RenameStmt": ("ALTER", "renameType"), "AlterObjectSchemaStmt": ("ALTER", "objectType")}


def words(kind: str, node: dict[str, Any]) -> str:
    """`ALTER ROLE`, `DROP DATABASE`, `COMMIT`, `CREATE MATERIALIZED VIEW` for a statement node."""
    if kind == "TransactionStmt":
        return TRANSACTION_WORDS.get(node.get("kind", ""), "transaction control")
    if kind == "CreateFunctionStmt" and node.get("is_procedure"):
        return "CREATE PROCEDURE"
    if kind == "CreateTableAsStmt" and node.get("objtype") == "OBJECT_MATVIEW":
        return "CREATE MATERIALIZED VIEW"
    if kind == "GrantStmt" and not node.get("is_grant"):
        return f"REVOKE ON {OBJECT_WORDS.get(node.get('objtype', ''), 'object')}"
    if kind in OBJECT_FIELDS:
        verb, field = OBJECT_FIELDS[kind]
        return f"{verb} {OBJECT_WORDS.get(node.get(field, ''), 'object')}"
    return KIND_WORDS.get(kind, kind)


def qualified(parts: list[str]) -> str:
    """`pg_catalog.pg_read_file` from a list of name parts, quoting what needs quotes."""
    return ".".join(quote_identifier(part) for part in parts)


def quote_identifier(name: str) -> str:
    """A name as the server's quote_ident writes it (and pg_dump prints it)."""
    plain = bool(name) and name.isascii() and (name[0].islower() or name[0] == "_") and all(
        c.islower() or c.isdigit() or c == "_" for c in name)
    return name if plain and name not in QUOTED_KEYWORDS else '"' + name.replace('"', '""') + '"'
