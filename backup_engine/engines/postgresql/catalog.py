# ruff: noqa: S608 - the queries are constants; f-strings only splice other constants (filters)
"""What SQLAlchemy's reflection leaves out of a PostgreSQL database, read from the catalog.

Exact column types (format_type), enums, domains, sequences and their positions, partitioning,
index and exclusion-constraint definitions, views, functions, triggers and comments, each with
the server's own deparser (pg_get_*def). The session is expected to run with
`search_path = pg_catalog`, so every name the deparsers print is schema-qualified and the
generated script restores under pg_dump's empty search_path.

Objects that belong to an extension are left to `CREATE EXTENSION`.

These are the typed lists of `SchemaExtras`: what a conversion reads (table kinds, display
names, partitions, sequence positions, the triggers a data-only load pauses), and what a JSON
document that is not ours restores from once vetted. Our own scripts are written from the
catalog-exact nodes of `catalog_read` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from backup_engine.engines.postgresql.sequence_positions import Positions, batched_positions
from backup_engine.formats.model import (
    CommentDef,
    ConstraintDef,
    DomainCheck,
    DomainType,
    EnumType,
    Extension,
    IndexDef,
    PartitionDef,
    RoutineDef,
    SchemaExtras,
    SequenceDef,
    TriggerDef,
    ViewDef,
)

USER_NS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"


def _not_extension_member(catalog: str, oid: str) -> str:
    return (f"NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass"
            f" AND e.objid = {oid} AND e.deptype = 'e')")


SCHEMAS_SQL = f"""
SELECT n.nspname FROM pg_namespace n
WHERE {USER_NS} AND {_not_extension_member('pg_namespace', 'n.oid')}
ORDER BY 1"""

EXTENSIONS_SQL = """
SELECT x.extname, n.nspname FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
WHERE x.extname <> 'plpgsql' ORDER BY x.oid"""

KEYWORDS_SQL = "SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'"

COLUMN_TYPES_SQL = f"""
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
            THEN a.attcollation::regcollation::text END,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND {USER_NS}"""

TABLES_SQL = f"""
SELECT n.nspname, c.relname, c.relkind::text, c.relpersistence::text,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
       c.relispartition, pn.nspname, pc.relname, pg_get_expr(c.relpartbound, c.oid)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_inherits i ON c.relispartition AND i.inhrelid = c.oid
LEFT JOIN pg_class pc ON pc.oid = i.inhparent
LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE c.relkind IN ('r', 'p') AND {USER_NS} AND {_not_extension_member('pg_class', 'c.oid')}
ORDER BY 1, 2"""

# Constraints SQLAlchemy does not reflect (exclusion), and a partition's own constraints
# (a partition is created with PARTITION OF and inherits the rest).
EXTRA_CONSTRAINTS_SQL = f"""
SELECT n.nspname, c.relname, co.conname, pg_get_constraintdef(co.oid), co.contype::text
FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE co.coninhcount = 0 AND {USER_NS} AND co.contype IN ('p', 'u', 'c', 'f', 'x')
  AND (co.contype = 'x' OR c.relispartition)
ORDER BY co.contype = 'f', 1, 2, 3"""

ENUMS_SQL = f"""
SELECT n.nspname, t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
WHERE {USER_NS} AND {_not_extension_member('pg_type', 't.oid')}
GROUP BY t.oid, n.nspname, t.typname ORDER BY t.oid"""

DOMAINS_SQL = f"""
SELECT t.oid, n.nspname, t.typname, format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault,
       CASE WHEN t.typcollation <> 0 AND t.typcollation <> bt.typcollation
            THEN t.typcollation::regcollation::text END,
       t.typbasetype
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_type bt ON bt.oid = t.typbasetype
WHERE t.typtype = 'd' AND {USER_NS} AND {_not_extension_member('pg_type', 't.oid')}
ORDER BY t.oid"""

DOMAIN_CHECKS_SQL = """
SELECT co.contypid, co.conname, pg_get_constraintdef(co.oid), co.convalidated
FROM pg_constraint co WHERE co.contypid <> 0 AND co.contype = 'c' ORDER BY co.contypid, co.conname"""

SEQUENCES_SQL = f"""
SELECT n.nspname, c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
       s.seqcache, s.seqcycle, d.deptype::text, tn.nspname, tc.relname, a.attname
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
     AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
LEFT JOIN pg_class tc ON tc.oid = d.refobjid
LEFT JOIN pg_namespace tn ON tn.oid = tc.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE {USER_NS} AND {_not_extension_member('pg_class', 'c.oid')}
ORDER BY 1, 2"""

INDEXES_SQL = f"""
SELECT n.nspname, c.relname, ic.relname, pg_get_indexdef(i.indexrelid), pn.nspname, pic.relname, i.indisclustered
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_inherits ih ON ih.inhrelid = i.indexrelid
LEFT JOIN pg_class pic ON pic.oid = ih.inhparent
LEFT JOIN pg_namespace pn ON pn.oid = pic.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND {USER_NS} AND {_not_extension_member('pg_class', 'c.oid')}
  AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid
                  AND co.conrelid = i.indrelid AND co.contype IN ('p', 'u', 'x'))
ORDER BY ic.relkind = 'I' DESC, 1, 3"""

VIEWS_SQL = f"""
SELECT c.oid, n.nspname, c.relname, c.relkind = 'm', pg_get_viewdef(c.oid), c.reloptions::text[]
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND {USER_NS} AND {_not_extension_member('pg_class', 'c.oid')}
ORDER BY c.oid"""

VIEW_DEPENDENCIES_SQL = """
SELECT DISTINCT r.ev_class, d.refobjid
FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class"""

ROUTINES_SQL = f"""
SELECT n.nspname, p.proname, pg_get_functiondef(p.oid),
       EXISTS (SELECT 1 FROM pg_type t JOIN pg_class rc ON rc.oid = t.typrelid
               WHERE rc.relkind <> 'c'
                 AND (t.oid = p.prorettype OR t.typarray = p.prorettype
                      OR t.oid = ANY (coalesce(p.proallargtypes, p.proargtypes::oid[]))
                      OR t.typarray = ANY (coalesce(p.proallargtypes, p.proargtypes::oid[]))))
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p') AND {USER_NS} AND {_not_extension_member('pg_proc', 'p.oid')}
ORDER BY p.oid"""

TRIGGERS_SQL = f"""
SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled::text
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND {USER_NS}
ORDER BY 1, 2, 3"""

RELATION_KIND_WORDS = ("CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'"
                       " WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'c' THEN 'TYPE' ELSE 'INDEX' END")
QUALIFIED = "quote_ident(n.nspname) || '.' || quote_ident(c.relname)"

# Comments on tables and their columns travel in MetaData (Table.comment / Column.comment).
COMMENTS_SQL = f"""
SELECT 'SCHEMA ' || quote_ident(n.nspname), d.description
FROM pg_description d JOIN pg_namespace n ON n.oid = d.objoid
WHERE d.classoid = 'pg_namespace'::regclass AND {USER_NS}
  AND NOT (n.nspname = 'public' AND d.description = 'standard public schema')
UNION ALL
SELECT CASE WHEN d.objsubid = 0 THEN {RELATION_KIND_WORDS} || ' ' || {QUALIFIED}
            ELSE 'COLUMN ' || {QUALIFIED} || '.' || quote_ident(a.attname) END,
       d.description
FROM pg_description d JOIN pg_class c ON c.oid = d.objoid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid
WHERE d.classoid = 'pg_class'::regclass AND c.relkind NOT IN ('r', 'p') AND {USER_NS}
  AND {_not_extension_member('pg_class', 'c.oid')}
UNION ALL
SELECT CASE WHEN p.prokind = 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END || p.oid::regprocedure::text,
       d.description
FROM pg_description d JOIN pg_proc p ON p.oid = d.objoid JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE d.classoid = 'pg_proc'::regclass AND {USER_NS} AND {_not_extension_member('pg_proc', 'p.oid')}
UNION ALL
SELECT CASE WHEN t.typtype = 'd' THEN 'DOMAIN ' ELSE 'TYPE ' END || t.oid::regtype::text, d.description
FROM pg_description d JOIN pg_type t ON t.oid = d.objoid JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE d.classoid = 'pg_type'::regclass AND {USER_NS} AND {_not_extension_member('pg_type', 't.oid')}
UNION ALL
SELECT 'CONSTRAINT ' || quote_ident(co.conname) || ' ON '
       || CASE WHEN co.contypid <> 0 THEN 'DOMAIN ' || co.contypid::regtype::text
               ELSE co.conrelid::regclass::text END,
       d.description
FROM pg_description d JOIN pg_constraint co ON co.oid = d.objoid JOIN pg_namespace n ON n.oid = co.connamespace
WHERE d.classoid = 'pg_constraint'::regclass AND {USER_NS}
UNION ALL
SELECT 'TRIGGER ' || quote_ident(t.tgname) || ' ON ' || t.tgrelid::regclass::text, d.description
FROM pg_description d JOIN pg_trigger t ON t.oid = d.objoid
JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE d.classoid = 'pg_trigger'::regclass AND {USER_NS}
ORDER BY 1"""


def _rows(cur: Any, query: str) -> Iterator[tuple]:
    """The rows one at a time, for one pass (a list of thousands of tables' rows is held for nothing)."""
    cur.execute(query)
    return iter(cur)


def _key(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name


def _topological(items: dict[int, Any], edges: list[tuple[int, int]]) -> list[Any]:
    """Items (keyed by oid, in oid order) so that each follows what it depends on."""
    depends: dict[int, set[int]] = {oid: set() for oid in items}
    for obj, ref in edges:
        if obj in items and ref in items:
            depends[obj].add(ref)
    ordered: list[Any] = []
    done: set[int] = set()

    def visit(oid: int, path: frozenset[int]) -> None:
        if oid in done or oid in path:
            return
        for ref in sorted(depends[oid]):
            visit(ref, path | {oid})
        done.add(oid)
        ordered.append(items[oid])

    for oid in sorted(items):
        visit(oid, frozenset())
    return ordered


class TableInfo:
    """Per-table facts the reflection needs: exact column types, kind, partitioning."""

    def __init__(self) -> None:
        self.column_types: dict[tuple[str, str, str], str] = {}
        # the column's own DEFAULT (SQLAlchemy would hand a domain's default to its columns)
        self.column_defaults: dict[tuple[str, str, str], str] = {}
        self.kinds: dict[str, str] = {}  # key -> relkind
        self.names: dict[str, tuple[str, str]] = {}  # key -> (schema, name)
        self.unlogged: set[str] = set()
        self.display_names: dict[str, str] = {}
        self.partition_keys: dict[str, str] = {}
        self.partitions: list[PartitionDef] = []


def read_table_info(cur: Any) -> TableInfo:
    info = TableInfo()
    for schema, table, column, type_text, collation, default in _rows(cur, COLUMN_TYPES_SQL):
        info.column_types[(schema, table, column)] = type_text + (f" COLLATE {collation}" if collation else "")
        if default is not None:
            info.column_defaults[(schema, table, column)] = default
    for (schema, name, kind, persistence, display, partkey, is_partition, pschema, pname,
         bound) in _rows(cur, TABLES_SQL):
        key = _key(schema, name)
        info.kinds[key] = kind
        info.names[key] = (schema, name)
        info.display_names[key] = display
        if persistence == "u":
            info.unlogged.add(key)
        if partkey:
            info.partition_keys[key] = partkey
        if is_partition and pname:
            info.partitions.append(PartitionDef(table=key, parent=_key(pschema, pname), bound=bound))
    return info


def read_sequences(cur: Any, known: Positions | None = None) -> list[SequenceDef]:
    """Every sequence with its position: from `known` (read aside, see `sequence_positions`), else
    read here in batches (`SELECT last_value, is_called` is per sequence relation)."""
    known = known or {}
    sequences = []
    for (schema, name, data_type, start, increment, min_value, max_value, cache, cycle, deptype, tschema, table,
         column) in _rows(cur, SEQUENCES_SQL):
        sequences.append(SequenceDef(schema=schema, name=name, data_type=data_type, start=start, increment=increment,
                                     min_value=min_value, max_value=max_value, cache=cache, cycle=cycle,
                                     owned_by=[tschema, table, column] if deptype and column else None,
                                     identity=deptype == "i"))
    unread = []
    for seq in sequences:
        position = known.get((seq.schema or "public", seq.name))
        if position is None:
            unread.append(seq)
        else:
            seq.last_value, seq.is_called = position
    for index, last_value, is_called in batched_positions(cur, [(seq.schema or "public", seq.name) for seq in unread]):
        unread[index].last_value, unread[index].is_called = last_value, is_called
    return sequences


def read_extras(cur: Any, info: TableInfo, positions: Positions | None = None) -> SchemaExtras:
    extras = SchemaExtras()
    extras.reserved_words = sorted(word for (word,) in _rows(cur, KEYWORDS_SQL))
    extras.schemas = [name for (name,) in _rows(cur, SCHEMAS_SQL) if name != "public"]
    extras.extensions = [Extension(name=name, schema=schema) for name, schema in _rows(cur, EXTENSIONS_SQL)]
    extras.enums = [EnumType(schema=s, name=n, labels=list(labels)) for s, n, labels in _rows(cur, ENUMS_SQL)]

    checks: dict[int, list[DomainCheck]] = {}
    for typid, name, definition, validated in _rows(cur, DOMAIN_CHECKS_SQL):
        checks.setdefault(typid, []).append(DomainCheck(name=name, definition=definition, validated=validated))
    domains: dict[int, DomainType] = {}
    domain_edges = []
    for oid, schema, name, base, not_null, default, collation, base_oid in _rows(cur, DOMAINS_SQL):
        domains[oid] = DomainType(schema=schema, name=name, base_type=base, not_null=not_null, default=default,
                                  collation=collation, checks=checks.get(oid, []))
        domain_edges.append((oid, base_oid))
    extras.domains = _topological(domains, domain_edges)

    extras.sequences = read_sequences(cur, positions)
    extras.routines = [RoutineDef(schema=s, name=n, definition=d, after_tables=late)
                       for s, n, d, late in _rows(cur, ROUTINES_SQL)]
    extras.partition_keys = dict(info.partition_keys)
    extras.partitions = list(info.partitions)
    extras.constraints = [ConstraintDef(schema=s, table=t, name=n, definition=d, post_data=kind in ("f", "x"))
                          for s, t, n, d, kind in _rows(cur, EXTRA_CONSTRAINTS_SQL)]
    extras.indexes = [IndexDef(schema=s, table=t, name=n, definition=d,
                               attach_to=[ps, pn] if pn else None)
                      for s, t, n, d, ps, pn, _clustered in _rows(cur, INDEXES_SQL)]

    views: dict[int, ViewDef] = {}
    for oid, schema, name, materialized, definition, reloptions in _rows(cur, VIEWS_SQL):
        options = [opt for opt in (reloptions or []) if not opt.startswith("check_option=")]
        check = next((opt.split("=", 1)[1] for opt in (reloptions or []) if opt.startswith("check_option=")), None)
        views[oid] = ViewDef(schema=schema, name=name, definition=definition.rstrip().rstrip(";"),
                             materialized=materialized, options=options, check_option=check)
    extras.views = _topological(views, [tuple(edge) for edge in _rows(cur, VIEW_DEPENDENCIES_SQL)])

    extras.triggers = [TriggerDef(schema=s, table=t, name=n, definition=d, enabled=e)
                       for s, t, n, d, e in _rows(cur, TRIGGERS_SQL)]
    extras.comments = [CommentDef(target=target, text=text) for target, text in _rows(cur, COMMENTS_SQL)]
    extras.display_names = dict(info.display_names)
    return extras
