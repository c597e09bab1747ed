# ruff: noqa: S608 - the queries are constants; f-strings only splice other constants (filters)
"""The user tables from a few bulk catalog queries, not reflected: as SQLAlchemy `Table`s, or described.

SQLAlchemy's reflection was about half of an export's time at thousands of tables (it parses
each type and constraint definition in Python, and builds indexes the exports do not use). Three
builders:

- `table_definitions`: each table whole, as a JSON document's schema holds it (exact types,
  defaults, generation, identity, comments, keys, unique constraints, checks, foreign keys),
  field for field what the reflection gave (tests/test_fidelity.py compares them);
- `table_shapes`: names, the columns data goes into and the tables foreign keys refer to (data
  is written in foreign-key order), as `TableShape`s, no `Table`s: all a script written from
  `catalog_read`'s nodes needs;
- `table_specs`: `table_definitions`' tables as a JSON document describes them (`TableSpec`),
  built from the same rows without SQLAlchemy, field for field what `json_schema.table_spec`
  reads from them (tests/test_fidelity.py compares them): what the JSON export writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Computed,
    ForeignKeyConstraint,
    Identity,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    literal_column,
)

# The dialect of the `postgresql_*` keywords constraints carry, loaded with this module: SQLAlchemy
# would load it at the first such keyword, inside reflect_postgresql's collector pause, where the
# import's garbage stays until the pause ends (16 MB more peak memory at 5,000 tables).
from sqlalchemy.dialects import postgresql  # noqa: F401
from sqlalchemy.schema import DefaultClause
from sqlalchemy.util import strip_outer_parens

from backup_engine.engines.postgresql.catalog import USER_NS, TableInfo
from backup_engine.formats.json_schema import literal_text
from backup_engine.formats.model import CatalogType, ColumnSpec, TableShape, TableSpec

# Each column of each table, in order, and whether it is generated (a dump writes no data for it).
COLUMNS_SQL = f"""
SELECT n.nspname, c.relname, a.attname, a.attgenerated <> ''
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND {USER_NS}
ORDER BY n.nspname, c.relname, a.attnum"""

# Which tables each table's foreign keys refer to.
REFERENCES_SQL = f"""
SELECT DISTINCT n.nspname, c.relname, rn.nspname, rc.relname
FROM pg_constraint co
JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class rc ON rc.oid = co.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE co.contype = 'f' AND {USER_NS}
ORDER BY 1, 2, 3, 4"""


@dataclass
class ShapeRows:
    """What `table_shapes` builds from, read on any session of the snapshot (`read_shapes`)."""

    columns: list[tuple]
    references: list[tuple]


def read_shapes(cur: Any) -> ShapeRows:
    return ShapeRows(columns=_fetch(cur, COLUMNS_SQL), references=_fetch(cur, REFERENCES_SQL))


def table_shapes(rows: ShapeRows, names: dict[str, tuple[str, str]]) -> list[TableShape]:
    """The tables `names` holds (key -> (schema, name)), by key: the columns their data fills and
    the tables their foreign keys refer to.

    A foreign key to a table outside `names` (an extension's own) is left out: it only orders
    tables here, and the script creates it from the catalog."""
    columns: dict[str, list[str]] = {}
    for schema, table, column, generated in rows.columns:
        key = f"{schema}.{table}"
        if key in names and not generated:
            columns.setdefault(key, []).append(column)
    references: dict[str, list[str]] = {}
    for schema, table, referred_schema, referred in rows.references:
        key, referred_key = f"{schema}.{table}", f"{referred_schema}.{referred}"
        if key in names and referred_key in names and referred_key != key:
            references.setdefault(key, []).append(referred_key)
    return [TableShape(schema=schema, name=name, data_columns=tuple(columns.get(key, ())),
                       refers_to=tuple(references.get(key, ()))) for key, (schema, name) in sorted(names.items())]


def _fetch(cur: Any, query: str) -> list[tuple]:
    cur.execute(query)
    return cur.fetchall()


# --- whole definitions: what a JSON document's schema holds of each table -----------------------
# Columns as SQLAlchemy's reflection gives them: a domain's NOT NULL makes its columns NOT NULL,
# an identity column carries its sequence's options.
DEFINITION_COLUMNS_SQL = f"""
SELECT n.nspname, c.relname, a.attname, a.attnotnull OR (t.typtype = 'd' AND t.typnotnull),
       CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END,
       a.attidentity = 'a', s.seqrelid IS NOT NULL, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache,
       s.seqcycle, pg_catalog.col_description(c.oid, a.attnum)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_depend dep ON a.attidentity <> '' AND dep.refclassid = 'pg_class'::regclass
     AND dep.refobjid = a.attrelid AND dep.refobjsubid = a.attnum AND dep.classid = 'pg_class'::regclass
     AND dep.deptype = 'i'
LEFT JOIN pg_sequence s ON s.seqrelid = dep.objid
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND {USER_NS}
ORDER BY n.nspname, c.relname, a.attnum"""

# Keys, unique constraints, checks and foreign keys, with what each kind needs; columns in key
# order. PostgreSQL 15's fields (ON DELETE SET NULL (columns), NULLS NOT DISTINCT) through
# to_jsonb, so that older servers read them as absent.
DEFINITION_CONSTRAINTS_SQL = f"""
SELECT n.nspname, c.relname, co.conname, co.contype::text,
       ARRAY(SELECT a.attname FROM unnest(co.conkey) WITH ORDINALITY k(num, i)
             JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.num ORDER BY k.i),
       CASE WHEN co.contype = 'c' THEN pg_get_constraintdef(co.oid, true) END,
       rn.nspname, rc.relname,
       ARRAY(SELECT a.attname FROM unnest(co.confkey) WITH ORDINALITY k(num, i)
             JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.num ORDER BY k.i),
       co.confupdtype::text, co.confdeltype::text, co.confmatchtype::text,
       ARRAY(SELECT quote_ident(a.attname) FROM jsonb_array_elements_text(
                    coalesce(nullif(to_jsonb(co) -> 'confdelsetcols', 'null'), '[]')) WITH ORDINALITY k(num, i)
             JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.num::int ORDER BY k.i),
       co.condeferrable, co.condeferred, coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false)
FROM pg_constraint co
JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class rc ON rc.oid = co.confrelid LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = co.conindid
WHERE co.contype IN ('p', 'u', 'c', 'f') AND c.relkind IN ('r', 'p') AND {USER_NS}
ORDER BY n.nspname, c.relname, co.conname"""

TABLE_COMMENTS_SQL = f"""
SELECT n.nspname, c.relname, pg_catalog.obj_description(c.oid, 'pg_class')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND {USER_NS} AND pg_catalog.obj_description(c.oid, 'pg_class') IS NOT NULL"""

# pg_constraint's action codes as a foreign key's clause (NO ACTION, the default: none).
FOREIGN_KEY_ACTIONS = {"a": None, "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
# pg_get_constraintdef's CHECK, as SQLAlchemy's reflection reads it.
CHECK_DEFINITION = re.compile(r"^CHECK *\((.+)\)( NO INHERIT)?( NOT VALID)?$", re.DOTALL)


@dataclass
class DefinitionRows:
    """What `table_definitions` builds from, read on any session of the snapshot (`read_definitions`)."""

    columns: list[tuple]
    comments: list[tuple]
    constraints: list[tuple]


def read_definitions(cur: Any) -> DefinitionRows:
    return DefinitionRows(columns=_fetch(cur, DEFINITION_COLUMNS_SQL), comments=_fetch(cur, TABLE_COMMENTS_SQL),
                          constraints=_fetch(cur, DEFINITION_CONSTRAINTS_SQL))


@dataclass(slots=True)
class _DefinedColumn:
    """A column of a definitions row, as both builders take it."""

    key: str  # its table's
    name: str
    type: str  # format_type(), with its collation
    nullable: bool
    generated: str | None  # the expression of a generated column
    identity: dict[str, Any] | None  # Identity's keywords, in json_schema._identity's order
    default: str | None
    comment: str | None


def _defined_columns(rows: DefinitionRows, info: TableInfo) -> Iterator[_DefinedColumn]:
    """The columns of the tables `info` names. A domain's NOT NULL makes a column NOT NULL; an
    identity column carries its sequence's options; a generated column has no default."""
    for (schema, table, name, not_null, generated, always, identity, start, increment, minimum, maximum, cache,
         cycle, comment) in rows.columns:
        key = f"{schema}.{table}"
        if key not in info.names:
            continue
        default = info.column_defaults.get((schema, table, name)) if generated is None else None
        yield _DefinedColumn(
            key=key, name=name, type=info.column_types[(schema, table, name)], nullable=not not_null,
            generated=generated, default=default or None, comment=comment,
            identity={"always": always, "on_null": None, "start": start, "increment": increment, "minvalue": minimum,
                      "maxvalue": maximum, "cycle": cycle, "cache": cache} if identity else None)


def table_definitions(rows: DefinitionRows, info: TableInfo) -> MetaData:
    """A `MetaData` of every table `info` names, whole: columns with their exact types, defaults,
    generation, identity and comments; keys, unique constraints, checks and foreign keys (no
    indexes: they come from the catalog), as SQLAlchemy's reflection gave them."""
    metadata = MetaData()
    columns: dict[str, list[Column]] = {}
    for defined in _defined_columns(rows, info):
        marks: list[Any] = []
        if defined.generated is not None:
            marks.append(Computed(literal_column(defined.generated), persisted=True))
        if defined.identity:
            marks.append(Identity(**defined.identity))
        default = defined.default
        column = Column(defined.name, CatalogType(defined.type), *marks, nullable=defined.nullable,
                        comment=defined.comment,
                        server_default=DefaultClause(literal_column(default), _reflected=True) if default else None)
        column.autoincrement = False  # serial and identity come from the catalog, never SERIAL
        columns.setdefault(defined.key, []).append(column)
    for key, (schema, name) in sorted(info.names.items()):
        table = Table(name, metadata, *columns.get(key, ()), schema=schema)
        if key in info.unlogged:
            table._prefixes = ["UNLOGGED"]
        if key in info.partition_keys:
            table.dialect_options["postgresql"]["partition_by"] = info.partition_keys[key]
    for schema, name, comment in rows.comments:
        if (table := metadata.tables.get(f"{schema}.{name}")) is not None:
            table.comment = comment
    for row in rows.constraints:
        if (table := metadata.tables.get(f"{row[0]}.{row[1]}")) is not None:
            constraint = _constraint(metadata, table, *row[2:])
            if constraint is not None:
                table.append_constraint(constraint)
    return metadata


def _constraint(metadata: MetaData, table: Table, name: str, kind: str, local: list[str], check: str | None,
                referred_schema: str | None, referred: str | None, remote: list[str], on_update: str,
                on_delete: str, match: str, delete_set: list[str], deferrable: bool, deferred: bool,
                nulls_not_distinct: bool) -> Any:
    when = {"deferrable": True, "initially": "DEFERRED" if deferred else "IMMEDIATE"} if deferrable else {}
    if kind == "p":
        return PrimaryKeyConstraint(*local, name=name, **when)
    if kind == "u":
        return UniqueConstraint(*local, name=name, postgresql_nulls_not_distinct=nulls_not_distinct or None, **when)
    if kind == "c":
        return CheckConstraint(literal_column(_check_text(check)), name=name)
    target = metadata.tables.get(f"{referred_schema}.{referred}")
    if target is None:
        return None
    return ForeignKeyConstraint([table.c[column] for column in local], [target.c[column] for column in remote],
                                name=name, onupdate=FOREIGN_KEY_ACTIONS.get(on_update),
                                ondelete=_on_delete(on_delete, delete_set), match="FULL" if match == "f" else None,
                                **when)


def _check_text(definition: str | None) -> str:
    """A CHECK's expression from pg_get_constraintdef, as SQLAlchemy's reflection reads it."""
    found = CHECK_DEFINITION.match(definition or "")
    return strip_outer_parens(found.group(1)) if found else ""


def _on_delete(action: str, delete_set: list[str]) -> str | None:
    """A foreign key's ON DELETE clause (with its SET NULL / SET DEFAULT columns), or None."""
    deleting = FOREIGN_KEY_ACTIONS.get(action)
    return f"{deleting} ({', '.join(delete_set)})" if deleting and delete_set else deleting


def table_specs(rows: DefinitionRows, info: TableInfo) -> list[TableSpec]:
    """What `table_definitions` builds, as the document describes it (`json_schema.table_spec`),
    in the same order: SQLAlchemy's objects cost 150 µs a table, only to be described."""
    columns: dict[str, list[ColumnSpec]] = {}
    for defined in _defined_columns(rows, info):
        columns.setdefault(defined.key, []).append(ColumnSpec(
            name=defined.name, type=defined.type, nullable=defined.nullable, default=defined.default,
            generated=({"sqltext": literal_text(defined.generated), "persisted": True}
                       if defined.generated is not None else None),
            identity=defined.identity, comment=defined.comment))
    comments = {f"{schema}.{name}": comment for schema, name, comment in rows.comments}
    specs = {key: TableSpec(key=key, schema=schema, name=name, comment=comments.get(key),
                            prefixes=["UNLOGGED"] if key in info.unlogged else [],
                            partition_by=info.partition_keys.get(key), rowid=None, columns=columns.get(key, []),
                            primary_key=None, foreign_keys=[], unique=[], checks=[])
             for key, (schema, name) in sorted(info.names.items())}
    for row in rows.constraints:
        if (spec := specs.get(f"{row[0]}.{row[1]}")) is not None:
            _add_constraint(spec, specs, *row[2:])
    for spec in specs.values():  # json_schema._in_order's order
        spec.unique.sort(key=lambda item: (item["name"] or "", ",".join(item["columns"])))
        spec.checks.sort(key=lambda item: (item["name"] or "", item["sqltext"] or ""))
        spec.foreign_keys.sort(key=lambda item: (item["name"] or "", ",".join(item["columns"])))
    return list(specs.values())


def _add_constraint(spec: TableSpec, specs: dict[str, TableSpec], name: str, kind: str, local: list[str],
                    check: str | None, referred_schema: str | None, referred: str | None, remote: list[str],
                    on_update: str, on_delete: str, match: str, delete_set: list[str], deferrable: bool,
                    deferred: bool, nulls_not_distinct: bool) -> None:
    """`_constraint`'s constraint, as `json_schema.table_spec` describes it."""
    timing = ({"deferrable": True, "initially": "DEFERRED" if deferred else "IMMEDIATE"} if deferrable
              else {"deferrable": None, "initially": None})
    if kind == "p":
        spec.primary_key = {"name": name, "columns": list(local), **timing}
    elif kind == "u":
        spec.unique.append({"name": name, "columns": list(local), **timing,
                            "nulls_not_distinct": bool(nulls_not_distinct)})
    elif kind == "c":
        spec.checks.append({"name": name, "sqltext": literal_text(_check_text(check))})
    elif f"{referred_schema}.{referred}" in specs:
        spec.foreign_keys.append({"name": name, "columns": list(local),
                                  "referred_table": f"{referred_schema}.{referred}", "referred_columns": list(remote),
                                  "ondelete": _on_delete(on_delete, delete_set),
                                  "onupdate": FOREIGN_KEY_ACTIONS.get(on_update),
                                  "match": "FULL" if match == "f" else None, **timing})
