# ruff: noqa: S608 - the queries are constants; f-strings only splice other constants (filters)
"""Relations as the catalog has them (tables, foreign tables, views, materialized views, their
columns and constraints), and the nodes of views, materialized views and sequences.

A view is CREATE VIEW with pg_get_viewdef's text (and a stand-in, should a dependency loop need
one); a materialized view is created WITH NO DATA and refreshed after everything else, as pg_dump
does; a sequence is CREATE SEQUENCE with every option, its OWNED BY a node of its own (after its
table), an identity sequence its column's (ALTER TABLE ... ADD GENERATED ... AS IDENTITY).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backup_engine.engines.postgresql.catalog_common import Reading, options_sql, qualified, user_object

SERVER_STAMPED_ATTOPTION = "pg_attver"  # a build's own stamp on new columns, never user state

RELATIONS_SQL = f"""
SELECT c.oid, {qualified('n', 'c.relname')}, c.relkind::text, c.relpersistence::text,
       (SELECT string_agg(o.option_name || '=' || quote_literal(o.option_value), ', ')
        FROM pg_options_to_table(c.reloptions) o WHERE o.option_name <> 'check_option'),
       (SELECT string_agg('toast.' || o.option_name || '=' || quote_literal(o.option_value), ', ')
        FROM pg_class t, pg_options_to_table(t.reloptions) o WHERE t.oid = c.reltoastrelid),
       (SELECT quote_ident(am.amname) FROM pg_am am WHERE am.oid = c.relam AND am.amname <> 'heap'
        AND c.relkind IN ('r', 'm')),
       c.relispartition, pg_get_expr(c.relpartbound, c.oid),
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
       CASE WHEN c.reloftype <> 0 THEN format_type(c.reloftype, NULL) END,
       c.relrowsecurity, c.relforcerowsecurity, c.relreplident::text, c.relispopulated,
       coalesce((SELECT array_agg(i.inhparent ORDER BY i.inhseqno) FROM pg_inherits i WHERE i.inhrelid = c.oid),
                '{{}}'),
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
       (SELECT upper(o.option_value) FROM pg_options_to_table(c.reloptions) o WHERE o.option_name = 'check_option'),
       (SELECT quote_ident(s.srvname) FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver
        WHERE ft.ftrelid = c.oid),
       (SELECT {options_sql('ft.ftoptions')} FROM pg_foreign_table ft WHERE ft.ftrelid = c.oid),
       n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND {user_object('pg_class', 'c.oid')}"""

ATTCOMPRESSION = "{attcompression}"  # filled in by columns_sql: the column exists from PostgreSQL 14
COLUMNS_SQL = f"""
SELECT a.attrelid, a.attnum, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
       CASE WHEN a.attcollation <> t.typcollation THEN a.attcollation::regcollation::text END,
       a.attnotnull, a.attislocal, a.attidentity::text, a.attgenerated::text,
       pg_get_expr(d.adbin, d.adrelid), d.oid, a.attstorage::text, t.typstorage::text,
       coalesce(a.attstattarget, -1), coalesce({ATTCOMPRESSION}, ''),
       (SELECT string_agg(split_part(o, '=', 1) || '=' || quote_literal(substr(o, strpos(o, '=') + 1)), ', ')
        FROM unnest(a.attoptions) o WHERE o NOT LIKE '{SERVER_STAMPED_ATTOPTION}=%'),
       {options_sql('a.attfdwoptions')}
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped
  AND {user_object('pg_class', 'c.oid')}
ORDER BY a.attrelid, a.attnum"""



def columns_sql(server_version_num: int) -> str:
    """COLUMNS_SQL for a server of that version: `attcompression` read as a column where it is one
    (read from the row as JSON, where it may be missing, it was half the query: 0.1 s at 5,000 tables)."""
    return COLUMNS_SQL.replace(ATTCOMPRESSION, "a.attcompression::text" if server_version_num >= 140000 else "NULL")


CONSTRAINTS_SQL = f"""
SELECT co.oid, co.conrelid, quote_ident(co.conname), co.contype::text, pg_get_constraintdef(co.oid), co.convalidated,
       co.conislocal, co.conparentid,
       (SELECT string_agg(o.option_name || '=' || quote_literal(o.option_value), ', ')
        FROM pg_class ic, pg_options_to_table(ic.reloptions) o WHERE ic.oid = co.conindid AND co.contype <> 'f')
FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE co.contype IN ('c', 'p', 'u', 'x', 'f', 't') AND {user_object('pg_class', 'c.oid')}
ORDER BY co.conrelid, co.conname"""

SEQUENCES_SQL = f"""
SELECT c.oid, {qualified('n', 'c.relname')}, c.relpersistence::text, format_type(s.seqtypid, NULL), s.seqstart,
       s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle, n.nspname, c.relname
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {user_object('pg_class', 'c.oid')}"""

CREATE_WORD = {"r": "TABLE", "p": "TABLE", "f": "FOREIGN TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}

@dataclass
class Column:
    attnum: int
    name: str
    type: str
    collation: str | None
    not_null: bool
    local: bool
    identity: str
    generated: str
    default: str | None
    default_oid: int | None
    storage: str
    type_storage: str
    stattarget: int
    compression: str
    options: str | None
    fdw_options: str | None


@dataclass
class Relation:
    oid: int
    name: str
    kind: str
    persistence: str
    options: str | None
    toast_options: str | None
    access_method: str | None
    is_partition: bool
    bound: str | None
    partition_key: str | None
    of_type: str | None
    row_security: bool
    force_row_security: bool
    replica_identity: str
    populated: bool
    parents: list[int]
    view_definition: str | None
    check_option: str | None
    server: str | None
    server_options: str | None
    schema: str
    plain: str
    columns: list[Column] = field(default_factory=list)
    checks: list[tuple] = field(default_factory=list)  # (oid, name, definition, validated, local)
    created_checks: set[str] = field(default_factory=set)  # CHECKs it has once CREATE TABLE ran
    separate_checks: dict[str, str] = field(default_factory=dict)  # CHECK name -> its own node

    @property
    def node(self) -> str:
        return f"pg_class:{self.oid}"

    @property
    def word(self) -> str:
        return CREATE_WORD[self.kind]


@dataclass
class Sequence:
    oid: int
    name: str
    persistence: str
    type: str
    start: int
    increment: int
    min: int
    max: int
    cache: int
    cycle: bool
    schema: str
    plain: str

    def options(self, indent: str = "\n    ") -> str:
        parts = [f"START WITH {self.start}", f"INCREMENT BY {self.increment}", f"MINVALUE {self.min}",
                 f"MAXVALUE {self.max}", f"CACHE {self.cache}"] + (["CYCLE"] if self.cycle else [])
        return indent + indent.join(parts)


def parents_first(relations: dict[int, Relation]) -> list[Relation]:
    ordered: list[Relation] = []
    seen: set[int] = set()
    for relation in relations.values():
        _visit(relation, relations, seen, ordered)
    return ordered


def _visit(relation: Relation, relations: dict[int, Relation], seen: set[int], ordered: list[Relation]) -> None:
    """Parents, then `relation`. Not a closure calling itself: that is a cycle, which kept every
    relation the reading built (60,000 objects at 5,000 tables) until the collector's next pass."""
    if relation.oid in seen:
        return
    seen.add(relation.oid)
    for parent in relation.parents:
        if parent in relations:
            _visit(relations[parent], relations, seen, ordered)
    ordered.append(relation)


def read_sequences(r: Reading, sequences: dict[int, Sequence],
               relations: dict[int, Relation]) -> dict[tuple[int, int], Sequence]:
    """CREATE SEQUENCE and OWNED BY nodes; identity sequences are their columns' (returned by column)."""
    identities: dict[tuple[int, int], Sequence] = {}
    for oid, seq in sequences.items():
        owners = [dep for dep in r.graph.references("pg_class", oid, "pg_class", "ai")
                  if dep.refobjsubid and dep.refobjid in relations]
        owner = owners[0] if owners else None
        if owner is not None and owner.deptype == "i":
            identities[(owner.refobjid, owner.refobjsubid)] = seq
            r.graph.alias("pg_class", oid, f"pg_class:{owner.refobjid}")
            r.comment("pg_class", oid, f"SEQUENCE {seq.name}", f"pg_class:{owner.refobjid}")
            continue
        unlogged = "UNLOGGED " if seq.persistence == "u" else ""
        node = r.graph.add("pg_class", oid, "sequence", seq.name,
                           [f"CREATE {unlogged}SEQUENCE {seq.name}\n    AS {seq.type}{seq.options()}"],
                           sort_name=(seq.schema, seq.plain))
        r.comment("pg_class", oid, f"SEQUENCE {seq.name}", node.id)
        if owner is not None:
            table = relations[owner.refobjid]
            column = next(c.name for c in table.columns if c.attnum == owner.refobjsubid)
            owned = r.graph.add("owned", oid, "sequence owned by", f"ownership of {seq.name}",
                                [f"ALTER SEQUENCE {seq.name} OWNED BY {table.name}.{column}"],
                                sort_name=(seq.schema, seq.plain))
            r.graph.depend(owned.id, node.id)
            r.graph.depend(owned.id, table.node)
            r.graph.skip.add(("pg_class", oid, "pg_class", owner.refobjid))
    return identities


def comment_targets(r: Reading, rel: Relation, node: str) -> None:
    r.comment("pg_class", rel.oid, f"{rel.word} {rel.name}", node)
    for column in rel.columns:
        r.comment("pg_class", rel.oid, f"COLUMN {rel.name}.{column.name}", node, subid=column.attnum)


def default_node(r: Reading, rel: Relation, column: Column) -> None:
    word = {"v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE"}.get(rel.kind, "TABLE")
    only = "" if rel.kind in ("v", "m") else "ONLY "
    node = r.graph.add("pg_attrdef", column.default_oid or 0, "default", f"default of {rel.name}.{column.name}",
                       [f"ALTER {word} {only}{rel.name} ALTER COLUMN {column.name} SET DEFAULT {column.default}"],
                       sort_name=(rel.schema, rel.plain, column.name))
    r.graph.depend(node.id, rel.node)


def read_view(r: Reading, rel: Relation) -> None:
    options = f" WITH ({rel.options})" if rel.options else ""
    definition = (rel.view_definition or "").rstrip().rstrip(";")
    if rel.kind == "m":
        using = f" USING {rel.access_method}" if rel.access_method else ""
        statements = [f"CREATE MATERIALIZED VIEW {rel.name}{using}{options} AS\n{definition}\n  WITH NO DATA"]
    else:
        check = f"\n  WITH {rel.check_option} CHECK OPTION" if rel.check_option else ""
        statements = [f"CREATE VIEW {rel.name}{options} AS\n{definition}{check}"]
    kind = "materialized view" if rel.kind == "m" else "view"
    node = r.graph.add("pg_class", rel.oid, kind, rel.name, statements, sort_name=(rel.schema, rel.plain))
    if rel.kind == "v":
        columns = ", ".join(f"NULL::{c.type}" + (f" COLLATE {c.collation}" if c.collation else "") + f" AS {c.name}"
                            for c in rel.columns)
        node.split = [f"CREATE VIEW {rel.name} AS\n SELECT {columns}"]
        node.split_needs = [(dep.refclassid, dep.refobjid) for dep in r.graph.references("pg_class", rel.oid)
                            if dep.objsubid and dep.refclassid in ("pg_type", "pg_collation")]
    comment_targets(r, rel, node.id)
    for column in rel.columns:
        if column.default is not None:
            default_node(r, rel, column)
    if rel.kind == "m" and rel.populated:
        refresh = r.graph.add("refresh", rel.oid, "refresh", f"data of {rel.name}",
                              [f"REFRESH MATERIALIZED VIEW {rel.name}"], section="refresh",
                              sort_name=(rel.schema, rel.plain))
        r.graph.depend(refresh.id, node.id)
