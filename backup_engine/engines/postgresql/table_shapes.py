# ruff: noqa: S608 - the queries are constants; f-strings only splice other constants (filters)
"""The user tables as a script written from the catalog needs them, built without reflection.

A script written from `catalog_read`'s nodes takes every definition from the catalog; of each
table it needs only its name, its columns in order (generated ones marked: they get no data),
and its foreign keys (tables are written in key order). SQLAlchemy's reflection builds all the
rest too (types, defaults, constraints, indexes, comments) and was about half of a fallback
dump's time at thousands of tables; these `Table`s are made from two catalog queries.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Computed, ForeignKeyConstraint, MetaData, Table

from backup_engine.engines.postgresql.catalog import USER_NS

COLUMNS_SQL = f"""
SELECT n.nspname, c.relname, a.attname,
       CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND {USER_NS}
ORDER BY n.nspname, c.relname, a.attnum"""

# Each foreign key with its columns and the referred table's, pairwise in key order.
FOREIGN_KEYS_SQL = f"""
SELECT n.nspname, c.relname, co.conname, rn.nspname, rc.relname,
       ARRAY(SELECT a.attname FROM unnest(co.conkey) WITH ORDINALITY k(num, i)
             JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.num ORDER BY k.i),
       ARRAY(SELECT a.attname FROM unnest(co.confkey) WITH ORDINALITY k(num, i)
             JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.num ORDER BY k.i)
FROM pg_constraint co
JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class rc ON rc.oid = co.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE co.contype = 'f' AND {USER_NS}
ORDER BY n.nspname, c.relname, co.conname"""


def table_shapes(cur: Any, names: dict[str, tuple[str, str]]) -> MetaData:
    """A `MetaData` of the tables `names` holds (key -> (schema, name)): columns and foreign keys only.

    A foreign key to a table outside `names` (an extension's own) is left out: it only orders
    tables here, and the script creates it from the catalog."""
    metadata = MetaData()
    columns: dict[str, list[Column]] = {}
    cur.execute(COLUMNS_SQL)
    for schema, table, column, generated in cur.fetchall():
        key = f"{schema}.{table}"
        if key in names:
            marks = [Computed(generated, persisted=True)] if generated is not None else []
            columns.setdefault(key, []).append(Column(column, *marks))
    for key, (schema, name) in sorted(names.items()):
        Table(name, metadata, *columns.get(key, ()), schema=schema)
    cur.execute(FOREIGN_KEYS_SQL)
    for schema, table, name, referred_schema, referred, local, remote in cur.fetchall():
        parent, target = metadata.tables.get(f"{schema}.{table}"), metadata.tables.get(f"{referred_schema}.{referred}")
        if parent is not None and target is not None:
            parent.append_constraint(ForeignKeyConstraint([parent.c[column] for column in local],
                                                          [target.c[column] for column in remote], name=name))
    return metadata
