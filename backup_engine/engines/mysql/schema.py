"""SQLAlchemy `Table`s of one MySQL database, built from information_schema.

SQLAlchemy's MySQL reflection parses SHOW CREATE TABLE with regular expressions: a name with a
backquote in it keeps its doubled backquote, and a foreign key with such a name is dropped with a
warning. information_schema names every column, key and constraint exactly, so the tables are
built from it (the same `Table`, `Column` and constraint objects reflection would give, which
the script writer, `json_schema` and the cross-engine conversion take).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Computed,
    ForeignKeyConstraint,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy.schema import DefaultClause

from backup_engine.engines.mysql import catalog
from backup_engine.engines.mysql.catalog import text
from backup_engine.formats.model import CatalogType

KEYS_SQL = """
SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, c.CONSTRAINT_TYPE, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA,
       k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME
FROM information_schema.KEY_COLUMN_USAGE k
JOIN information_schema.TABLE_CONSTRAINTS c ON c.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA
     AND c.TABLE_NAME = k.TABLE_NAME AND c.CONSTRAINT_NAME = k.CONSTRAINT_NAME
WHERE k.TABLE_SCHEMA = %s ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION"""
RULES_SQL = """
SELECT TABLE_NAME, CONSTRAINT_NAME, UPDATE_RULE, DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = %s"""
CHECKS_SQL = """
SELECT TABLE_NAME, CONSTRAINT_NAME, LEVEL, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = %s ORDER BY TABLE_NAME, CONSTRAINT_NAME"""
COMMENTS_SQL = "SELECT TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
COLUMN_COMMENTS_SQL = ("SELECT TABLE_NAME, COLUMN_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS "
                       "WHERE TABLE_SCHEMA = %s")


def _rule(value: Any) -> str | None:
    rule = text(value).upper() if value is not None else "RESTRICT"
    return None if rule in ("RESTRICT", "NO ACTION") else rule


def build_metadata(cur: Any, database: str, names: list[str], columns: dict[str, dict[str, Any]]) -> MetaData:
    """The tables `names` of `database`; `columns` is reflect.column_info's table -> column -> info."""
    metadata = MetaData()
    wanted = set(names)
    comments = {text(t): text(c) for t, c in catalog.fetch(cur, COMMENTS_SQL, (database,)) if c}
    column_comments = {(text(t), text(n)): text(c) for t, n, c in catalog.fetch(cur, COLUMN_COMMENTS_SQL, (database,))
                       if c}
    for name in names:
        built = []
        for column_name, info in columns.get(name, {}).items():
            args: list[Any] = []
            if info.generated:
                args.append(Computed(literal_column(info.generation or "NULL"), persisted=info.stored))
            column = Column(column_name, CatalogType(info.column_type, integer=info.integer), *args,
                            nullable=info.nullable, comment=column_comments.get((name, column_name)))
            column.autoincrement = False
            if not info.generated and info.default is not None:
                column.server_default = DefaultClause(literal_column(info.default), _reflected=True)
            if info.invisible:
                column.info["invisible"] = True
            built.append(column)
        Table(name, metadata, *built, comment=comments.get(name))
    keys: dict[tuple[str, str], dict[str, Any]] = {}
    for table, constraint, kind, column, ref_schema, ref_table, ref_column in catalog.fetch(cur, KEYS_SQL,
                                                                                             (database,)):
        entry = keys.setdefault((text(table), text(constraint)), {"kind": text(kind), "columns": [], "ref": None,
                                                                   "ref_columns": []})
        entry["columns"].append(text(column))
        if ref_table is not None:
            entry["ref"] = (text(ref_schema), text(ref_table))
            entry["ref_columns"].append(text(ref_column))
    rules = {(text(t), text(n)): (u, d) for t, n, u, d in catalog.fetch(cur, RULES_SQL, (database,))}
    for (table_name, constraint), entry in keys.items():
        table = metadata.tables.get(table_name)
        if table is None or table_name not in wanted:
            continue
        if entry["kind"] == "PRIMARY KEY":
            table.append_constraint(PrimaryKeyConstraint(*entry["columns"]))
        elif entry["kind"] == "UNIQUE":
            table.append_constraint(UniqueConstraint(*entry["columns"], name=constraint))
    for (table_name, constraint), entry in keys.items():
        table = metadata.tables.get(table_name)
        if table is None or entry["kind"] != "FOREIGN KEY" or entry["ref"] is None:
            continue
        ref_schema, ref_table = entry["ref"]
        referred = metadata.tables.get(ref_table)
        if ref_schema != database or referred is None:
            continue  # a key into another database: kept by the table's own DDL only
        update, delete = rules.get((table_name, constraint), (None, None))
        table.append_constraint(ForeignKeyConstraint(
            entry["columns"], [referred.c[column] for column in entry["ref_columns"]], name=constraint,
            onupdate=_rule(update), ondelete=_rule(delete)))
    for table_name, constraint, _level, clause in catalog.fetch(cur, CHECKS_SQL, (database,)):
        table = metadata.tables.get(text(table_name))
        if table is not None:
            table.append_constraint(CheckConstraint(literal_column(text(clause)), name=text(constraint)))
    return metadata
