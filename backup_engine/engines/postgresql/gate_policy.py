"""What the upload gate lets through: the allowlists and denylists, kept apart from the code
that applies them so that a review of the policy is a review of this file alone.

Names are parse-node names of PostgreSQL's grammar (as pglast/libpg_query spell them) and
catalog names as the server compares them (after the parser has folded unquoted names).
The lists follow what pg_dump writes for the objects inside one database; anything else is
refused, because an upload restores into a database that other people use.
"""

from __future__ import annotations

# --- statement kinds at the top level of an upload ------------------------------------------------------
# Each of these still goes through its own rule in gate_rules (options, object types, functions).
ALLOWED_KINDS = frozenset({
    "VariableSetStmt", "SelectStmt", "InsertStmt", "CopyStmt",
    "CreateSchemaStmt", "CreateExtensionStmt", "CommentStmt",
    "CreateEnumStmt", "CompositeTypeStmt", "CreateRangeStmt", "CreateDomainStmt", "AlterEnumStmt",
    "AlterDomainStmt", "DefineStmt", "CreateStmt", "CreateSeqStmt", "AlterSeqStmt", "AlterTableStmt",
    "CreateFunctionStmt", "CreateOpClassStmt", "CreateOpFamilyStmt", "AlterOpFamilyStmt", "CreateCastStmt",
    "CreateConversionStmt", "ViewStmt", "CreateTableAsStmt", "RefreshMatViewStmt", "IndexStmt",
    "CreateTrigStmt", "RuleStmt", "CreatePolicyStmt", "CreateStatsStmt", "AlterStatsStmt",
    "AlterTSConfigurationStmt", "DropStmt", "AlterOwnerStmt", "GrantStmt",
})
# Left out of the restore, like pg_restore --no-owner --no-privileges (the target has its own owner).
SKIPPED_KINDS = frozenset({"AlterOwnerStmt", "GrantStmt"})
# Inside function bodies: data manipulation and the DDL above (COPY excluded: a body has no client data).
BODY_KINDS = (ALLOWED_KINDS - {"CopyStmt", "AlterOwnerStmt", "GrantStmt"}) | {
    "UpdateStmt", "DeleteStmt", "MergeStmt", "CallStmt", "TruncateStmt", "LockStmt", "ReturnStmt",
}

# --- ALTER TABLE ---------------------------------------------------------------------------------------
ALTER_TABLE_OBJECTS = frozenset({"OBJECT_TABLE", "OBJECT_INDEX", "OBJECT_SEQUENCE", "OBJECT_VIEW", "OBJECT_MATVIEW"})
ALTER_TABLE_COMMANDS = frozenset({
    "AT_AddColumn", "AT_ColumnDefault", "AT_SetNotNull", "AT_DropNotNull", "AT_SetStatistics", "AT_SetOptions",
    "AT_ResetOptions", "AT_SetStorage", "AT_SetCompression", "AT_AddConstraint", "AT_ValidateConstraint",
    "AT_DropConstraint", "AT_ClusterOn", "AT_SetRelOptions", "AT_ResetRelOptions",
    "AT_EnableTrig", "AT_EnableAlwaysTrig", "AT_EnableReplicaTrig", "AT_DisableTrig", "AT_EnableTrigAll",
    "AT_DisableTrigAll", "AT_EnableTrigUser", "AT_DisableTrigUser", "AT_EnableRule", "AT_EnableAlwaysRule",
    "AT_EnableReplicaRule", "AT_DisableRule", "AT_AddInherit", "AT_AddOf", "AT_ReplicaIdentity",
    "AT_EnableRowSecurity", "AT_DisableRowSecurity", "AT_ForceRowSecurity", "AT_NoForceRowSecurity",
    "AT_AttachPartition", "AT_AddIdentity", "AT_SetIdentity", "AT_DropIdentity", "AT_ChangeOwner",
})
ALTER_DOMAIN_SUBTYPES = frozenset({"C", "V", "T", "X", "N", "O"})  # constraints, default, NOT NULL

# --- objects that live outside the database, or that an upload may not touch ---------------------------
FOREIGN_OBJECTS = frozenset({
    "OBJECT_DATABASE", "OBJECT_ROLE", "OBJECT_TABLESPACE", "OBJECT_LARGEOBJECT", "OBJECT_PARAMETER_ACL",
    "OBJECT_FDW", "OBJECT_FOREIGN_SERVER", "OBJECT_FOREIGN_TABLE", "OBJECT_USER_MAPPING", "OBJECT_PUBLICATION",
    "OBJECT_PUBLICATION_NAMESPACE", "OBJECT_PUBLICATION_REL", "OBJECT_SUBSCRIPTION", "OBJECT_EVENT_TRIGGER",
    "OBJECT_ACCESS_METHOD", "OBJECT_TRANSFORM", "OBJECT_TSPARSER", "OBJECT_TSTEMPLATE",
})
LANGUAGE_OBJECTS = frozenset({"OBJECT_LANGUAGE"})
DROPPABLE = frozenset({
    "OBJECT_TABLE", "OBJECT_SEQUENCE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_INDEX", "OBJECT_TYPE",
    "OBJECT_DOMAIN", "OBJECT_COLLATION", "OBJECT_CONVERSION", "OBJECT_SCHEMA", "OBJECT_EXTENSION",
    "OBJECT_FUNCTION", "OBJECT_PROCEDURE", "OBJECT_AGGREGATE", "OBJECT_ROUTINE", "OBJECT_OPERATOR",
    "OBJECT_OPCLASS", "OBJECT_OPFAMILY", "OBJECT_CAST", "OBJECT_TRIGGER", "OBJECT_RULE", "OBJECT_POLICY",
    "OBJECT_STATISTIC_EXT", "OBJECT_TSCONFIGURATION", "OBJECT_TSDICTIONARY",
})
DEFINABLE = frozenset({
    "OBJECT_AGGREGATE", "OBJECT_OPERATOR", "OBJECT_TYPE", "OBJECT_COLLATION", "OBJECT_TSDICTIONARY",
    "OBJECT_TSCONFIGURATION",
})

# --- extensions: contrib modules that neither reach outside the database nor run query strings ----------
ALLOWED_EXTENSIONS = frozenset({
    "plpgsql", "btree_gin", "btree_gist", "citext", "cube", "dict_int", "dict_xsyn", "earthdistance",
    "fuzzystrmatch", "hstore", "intagg", "intarray", "isn", "ltree", "pg_trgm", "pgcrypto", "seg",
    "tsm_system_rows", "tsm_system_time", "unaccent", "uuid-ossp", "bloom",
})

# --- function languages --------------------------------------------------------------------------------
BODY_LANGUAGES = frozenset({"sql", "plpgsql"})
MAX_BODY_DEPTH = 4  # a function defined inside a function body inside ...: deeper is refused

# --- SET: parameter -> allowed values (None: any constant); names compared after ASCII case folding -------
TIMEOUT = None
TOP_LEVEL_SETTINGS: dict[str, frozenset[str] | None] = {
    "statement_timeout": TIMEOUT, "lock_timeout": TIMEOUT, "idle_in_transaction_session_timeout": TIMEOUT,
    "transaction_timeout": TIMEOUT, "client_encoding": frozenset({"utf8"}),
    "standard_conforming_strings": frozenset({"on", "true"}),
    "check_function_bodies": frozenset({"on", "off", "true", "false"}),
    "xmloption": frozenset({"content", "document"}),
    "client_min_messages": frozenset({"debug5", "debug4", "debug3", "debug2", "debug1", "debug", "log", "notice",
                                      "warning", "error", "info"}),
    "row_security": frozenset({"on", "off", "true", "false"}), "search_path": None,
    "default_tablespace": frozenset({""}), "default_table_access_method": frozenset({"heap"}),
    "default_with_oids": frozenset({"off", "false"}),
}
# A function's own SET clause runs whenever it is called; a few harmless planner and format settings more.
FUNCTION_SETTINGS: dict[str, frozenset[str] | None] = {
    **TOP_LEVEL_SETTINGS, "work_mem": None, "timezone": None, "datestyle": None, "intervalstyle": None,
    "extra_float_digits": None, "jit": None, "default_text_search_config": None, "bytea_output": None,
    "random_page_cost": None, "seq_page_cost": None, "enable_seqscan": None, "enable_nestloop": None,
    "enable_hashjoin": None, "enable_mergejoin": None, "enable_indexscan": None, "enable_bitmapscan": None,
    "from_collapse_limit": None, "join_collapse_limit": None, "plpgsql.variable_conflict": None,
    "plpgsql.extra_warnings": None, "plpgsql.extra_errors": None, "plpgsql.print_strict_params": None,
}
SETTING_WORDS = {"session_authorization": "SET SESSION AUTHORIZATION", "role": "SET ROLE",
                 "transaction": "SET TRANSACTION", "session characteristics": "SET SESSION CHARACTERISTICS"}

# --- COPY ... FROM stdin options that keep the data one row per line --------------------------------------
COPY_OPTIONS: dict[str, frozenset[str] | None] = {"format": frozenset({"text"}), "delimiter": None, "null": None,
                                                   "freeze": None}

# --- functions that no uploaded expression may call, however quoted or qualified ------------------------
DENIED_FUNCTIONS = frozenset({
    # server files and logs
    "pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_ls_dir", "pg_current_logfile", "pg_logdir_ls",
    # large objects
    "loread", "lowrite",
    # configuration
    "set_config", "pg_reload_conf", "pg_rotate_logfile", "pg_import_system_collations",
    # signalling, promotion, WAL and backups
    "pg_terminate_backend", "pg_cancel_backend", "pg_promote", "pg_switch_wal", "pg_switch_xlog",
    "pg_create_restore_point", "pg_start_backup", "pg_stop_backup", "pg_backup_start", "pg_backup_stop",
    "pg_log_backend_memory_contexts", "pg_notify",
    # query strings run by the server
    "ts_stat", "query_to_xml_and_xmlschema",
})
DENIED_PREFIXES = (
    "pg_ls_", "pg_file_", "lo_", "dblink", "pg_sleep", "pg_replication_origin_", "pg_logical_", "pg_wal_replay_",
    "pg_stat_reset", "pg_stat_statements_reset", "query_to_xml", "cursor_to_xml", "table_to_xml",
    "schema_to_xml", "database_to_xml",
)
DENIED_INFIXES = ("replication_slot",)
# ts_rewrite(query, 'SELECT ...') runs its second argument; the three-argument form does not.
QUERY_TEXT_ARITIES = {"ts_rewrite": 3}
# Relations that change settings through a rule, hold large objects, or expose credentials and files.
DENIED_RELATIONS = frozenset({
    "pg_settings", "pg_file_settings", "pg_hba_file_rules", "pg_ident_file_mappings", "pg_largeobject",
    "pg_largeobject_metadata", "pg_authid", "pg_shadow", "pg_user_mapping", "pg_user_mappings",
})


def is_denied_function(name: str) -> bool:
    """True for a function name (the last part of a qualified name) that no upload may call."""
    return (name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES)
            or any(part in name for part in DENIED_INFIXES))


def fold(name: str) -> str:
    """ASCII-only lower-casing, as the server compares setting names (str.lower would fold the
    Kelvin sign into a `k` and match a name the server would not)."""
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
