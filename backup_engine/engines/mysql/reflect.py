"""A live MySQL or MariaDB database as a `DatabaseModel`: SQLAlchemy tables plus information_schema.

The tables, columns, keys and constraints are SQLAlchemy objects SQLAlchemy can order and
compile (and a JSON document can carry to another engine), built from information_schema
(`schema.py`: SQLAlchemy's own MySQL reflection garbles quoted names), with exact column types,
defaults and generation expressions, which LONGTEXT is a JSON column, invisible columns; besides
them the portable indexes, sequences, and every view, routine, event and trigger (`catalog.objects`).
The table's own DDL is kept verbatim (SHOW CREATE TABLE,
with its AUTO_INCREMENT position, character sets, collations, FULLTEXT and SPATIAL indexes,
partitions) in `extras.table_ddl`, which is what a MySQL script creates it from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backup_engine import errors
from backup_engine.engines.mysql import catalog
from backup_engine.engines.mysql.catalog import DbObject, quote_name, text
from backup_engine.engines.mysql.kinds import INTEGER_TYPES, kind_of
from backup_engine.engines.mysql.schema import build_metadata
from backup_engine.engines.mysql.writer import object_blocks
from backup_engine.formats.model import DatabaseModel, SchemaExtras, SequenceDef

ENGINE_NAME = "mysql"

COLUMNS_SQL = """
SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COLUMN_DEFAULT, IS_NULLABLE, EXTRA, GENERATION_EXPRESSION
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION"""
JSON_CHECKS_SQL = """
SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = %s"""
INDEXES_SQL = """
SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"""


class ColumnInfo:
    __slots__ = ("data_type", "column_type", "default", "nullable", "extra", "generation", "json")

    def __init__(self, row: tuple[Any, ...]) -> None:
        _table, _name, data_type, column_type, default, nullable, extra, generation = (
            None if value is None else text(value) for value in row)
        self.data_type = (data_type or "").lower()
        self.column_type = column_type or ""
        self.default = None if default in (None, "NULL") else default
        self.nullable = nullable == "YES"
        self.extra = (extra or "").upper()
        self.generation = generation
        self.json = False

    @property
    def generated(self) -> bool:
        return "GENERATED" in self.extra

    @property
    def stored(self) -> bool:
        return "STORED" in self.extra or "PERSISTENT" in self.extra

    @property
    def invisible(self) -> bool:
        return "INVISIBLE" in self.extra

    @property
    def integer(self) -> bool:
        return self.data_type in INTEGER_TYPES

    @property
    def kind(self) -> str:
        return kind_of(self.data_type, self.column_type, self.json)


def column_info(cur: Any, database: str) -> dict[str, dict[str, ColumnInfo]]:
    """table -> column -> what information_schema says of it."""
    found: dict[str, dict[str, ColumnInfo]] = {}
    for row in catalog.fetch(cur, COLUMNS_SQL, (database,)):
        found.setdefault(text(row[0]), {})[text(row[1])] = ColumnInfo(row)
    for table, name, clause in catalog.fetch(cur, JSON_CHECKS_SQL, (database,)):
        table, name = text(table), text(name)
        info = found.get(table, {}).get(name)
        if info is not None and text(clause).replace(" ", "") == f"json_valid({quote_name(name)})":
            info.json = True
    return found


def portable_indexes(cur: Any, database: str, tables: set[str]) -> list[dict[str, Any]]:
    """Plain column indexes another engine can build (BTREE, no prefix length, not the primary key)."""
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for table, name, non_unique, column, sub_part, index_type in catalog.fetch(cur, INDEXES_SQL, (database,)):
        table, name = text(table), text(name)
        entry = grouped.setdefault((table, name), {"table": table, "name": name, "unique": str(non_unique) == "0",
                                                   "columns": [], "portable": True})
        if name == "PRIMARY" or sub_part is not None or text(index_type) != "BTREE" or column is None:
            entry["portable"] = False
        else:
            entry["columns"].append(text(column))
    return [{key: value for key, value in entry.items() if key != "portable"}
            for entry in grouped.values() if entry["portable"] and entry["table"] in tables]


def sequences(cur: Any, database: str, names: list[str]) -> list[SequenceDef]:
    found = []
    for name in names:
        cur.execute(f"SELECT next_not_cached_value, minimum_value, maximum_value, start_value, increment, "  # noqa: S608
                    f"cache_size, cycle_option FROM {quote_name(database)}.{quote_name(name)}")
        following, low, high, start, step, cache, cycle = (int(value) for value in cur.fetchone())
        found.append(SequenceDef(schema=None, name=name, data_type="bigint", start=start, increment=step,
                                 min_value=low, max_value=high, cache=cache, cycle=bool(cycle),
                                 last_value=following, is_called=False))
    return found


@dataclass
class Reflected:
    """The model, and what a JSON export needs besides: each column's portable kind and storage, and
    the portable indexes."""

    model: DatabaseModel
    columns: dict[str, dict[str, ColumnInfo]]
    indexes: list[dict[str, Any]]

    def kinds(self, key: str) -> dict[str, tuple[str, str | None]]:
        return {name: (details.kind, None) for name, details in self.columns.get(key, {}).items()}


def reflect_mysql(raw: Any, database: str, failure: str = errors.FALLBACK_FAILED) -> Reflected:
    """The model of `database`, read on `raw` (a snapshot connection). Names are not qualified with
    the database's own, so a backup restores into any database. What it cannot carry (or read) fails
    it up front with DumpError(`failure`, why)."""
    try:
        return _reflect(raw, database)
    except catalog.Unreadable as exc:
        raise errors.DumpError(failure, str(exc)) from exc


def _reflect(raw: Any, database: str) -> Reflected:
    with raw.cursor() as cur:
        cur.execute("SELECT VERSION()")
        version = text(cur.fetchone()[0])
        relations = catalog.relations(cur, database)
        names = sorted(name for name, kind in relations.items() if kind in catalog.TABLE_TYPES)
        info = column_info(cur, database)
        ddl = {}
        for name in names:
            cur.execute(f"SHOW CREATE TABLE {quote_name(database)}.{quote_name(name)}")
            ddl[name] = text(cur.fetchone()[1])
        indexes = portable_indexes(cur, database, set(names))
        metadata = build_metadata(cur, database, names, info)
        objects: list[DbObject] = catalog.objects(cur, database)
        sequence_defs = sequences(cur, database, sorted(n for n, kind in relations.items() if kind == "SEQUENCE"))
    extras = SchemaExtras(table_ddl={name: ddl[name] for name in metadata.tables},
                          raw_post_data=object_blocks(objects), sequences=sequence_defs,
                          display_names={name: name for name in metadata.tables})
    model = DatabaseModel(dialect=ENGINE_NAME, metadata=metadata, extras=extras, server_version=version)
    return Reflected(model=model, columns=info, indexes=indexes)
