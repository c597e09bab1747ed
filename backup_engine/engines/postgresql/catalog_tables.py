# ruff: noqa: S608 - the queries are constants; f-strings only splice other constants (filters)
"""Tables, foreign tables, views, materialized views and sequences as catalog nodes, written as
pg_dump writes them.

A table is CREATE TABLE with its own columns (an inheritance child leaves out what it only
inherits; a partition lists all of its columns in its own order and is attached afterwards),
its inline CHECKs (the NOT VALID ones, and the ones calling functions, come separately), then
identity, storage, compression, statistics targets and column options, forced row security and
replica identity. A column default that calls a function or a sequence is set by a node of its
own, so that a function taking the table's row type can come in between.
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

COLUMNS_SQL = f"""
SELECT a.attrelid, a.attnum, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
       CASE WHEN a.attcollation <> t.typcollation THEN a.attcollation::regcollation::text END,
       a.attnotnull, a.attislocal, a.attidentity::text, a.attgenerated::text,
       pg_get_expr(d.adbin, d.adrelid), d.oid, a.attstorage::text, t.typstorage::text,
       coalesce(a.attstattarget, -1), a.attcompression::text,
       (SELECT string_agg(split_part(o, '=', 1) || '=' || quote_literal(substr(o, strpos(o, '=') + 1)), ', ')
        FROM unnest(a.attoptions) o WHERE o NOT LIKE '{SERVER_STAMPED_ATTOPTION}=%'),
       {options_sql('a.attfdwoptions')}
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped
  AND {user_object('pg_class', 'c.oid')}
ORDER BY a.attrelid, a.attnum"""

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

STORAGE = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED"}
COMPRESSION = {"p": "pglz", "l": "lz4", "": "default"}
CREATE_WORD = {"r": "TABLE", "p": "TABLE", "f": "FOREIGN TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}
SEPARATE_DEFAULT_REFERENCES = ("pg_proc", "pg_class", "pg_operator")  # a function, a sequence, ...


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


def read_relations(r: Reading, constraints: list[tuple]) -> dict[int, Relation]:
    """Tables, foreign tables, views, materialized views and sequences; returns the relations by oid."""
    relations = {row[0]: Relation(*row) for row in r.rows(RELATIONS_SQL)}
    for row in r.rows(COLUMNS_SQL):
        if row[0] in relations:
            relations[row[0]].columns.append(Column(*row[1:]))
    for oid, relid, name, kind, definition, validated, local, _, _ in constraints:
        if kind == "c" and relid in relations:
            relations[relid].checks.append((oid, name, definition, validated, local))
    sequences = {row[0]: Sequence(*row) for row in r.rows(SEQUENCES_SQL)}
    identities = _sequences(r, sequences, relations)
    for relation in _parents_first(relations):
        if relation.kind in ("v", "m"):
            _view(r, relation)
        else:
            _table(r, relation, relations, identities)
    _checks_after_attaching(r, relations)
    return relations


def _checks_after_attaching(r: Reading, relations: dict[int, Relation]) -> None:
    """A partitioned table's CHECK added after CREATE reaches its partitions by recursion: only
    once they are attached (ATTACH PARTITION refuses a partition missing the parent's CHECKs)."""
    children: dict[int, list[int]] = {}
    for relation in relations.values():
        if relation.is_partition:
            for parent in relation.parents:
                children.setdefault(parent, []).append(relation.oid)
    for relation in relations.values():
        if relation.kind != "p" or not relation.separate_checks:
            continue
        below, stack = [], list(children.get(relation.oid, []))
        while stack:
            oid = stack.pop()
            below.append(oid)
            stack += children.get(oid, [])
        for check in relation.separate_checks.values():
            for oid in below:
                r.graph.depend(check, f"attach:{oid}")


def _parents_first(relations: dict[int, Relation]) -> list[Relation]:
    ordered: list[Relation] = []
    seen: set[int] = set()

    def visit(relation: Relation) -> None:
        if relation.oid in seen:
            return
        seen.add(relation.oid)
        for parent in relation.parents:
            if parent in relations:
                visit(relations[parent])
        ordered.append(relation)

    for relation in relations.values():
        visit(relation)
    return ordered


def _sequences(r: Reading, sequences: dict[int, Sequence],
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


def _column_sql(relation: Relation, column: Column, inline_default: bool) -> str:
    if relation.of_type:
        parts = [f"{column.name} WITH OPTIONS"]
    else:
        parts = [f"{column.name} {column.type}"]
        if column.fdw_options:
            parts.append(f"OPTIONS ({column.fdw_options})")
        if column.collation:
            parts.append(f"COLLATE {column.collation}")
    if column.generated == "s":
        parts.append(f"GENERATED ALWAYS AS ({column.default}) STORED")
    elif inline_default and column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    if column.not_null:
        parts.append("NOT NULL")
    return " ".join(parts)


def _separate_default(r: Reading, column: Column) -> bool:
    return column.default_oid is not None and any(
        dep.refclassid in SEPARATE_DEFAULT_REFERENCES for dep in r.graph.references("pg_attrdef", column.default_oid))


def _table(r: Reading, rel: Relation, relations: dict[int, Relation],
           identities: dict[tuple[int, int], Sequence]) -> None:
    parents = [relations[p] for p in rel.parents if p in relations]
    inherited = {c.name: [pc for p in parents for pc in p.columns if pc.name == c.name]
                 for c in rel.columns} if not rel.is_partition else {}
    printed = [c for c in rel.columns if rel.is_partition or c.local]
    if rel.of_type:
        printed = [c for c in rel.columns if c.not_null or (c.default is not None and c.generated != "s")]
    late_defaults = [c for c in rel.columns if c.default is not None and c.generated != "s"
                     and (c not in printed or _separate_default(r, c))]
    lines = [_column_sql(rel, c, c not in late_defaults) for c in printed]
    parent_checks = set().union(*(p.created_checks for p in parents)) if parents else set()
    later_checks: list[tuple] = []
    for oid, name, definition, validated, local in rel.checks:
        calls = r.graph.references("pg_constraint", oid, "pg_proc", "n")
        if not validated or calls:
            if local:
                later_checks.append((oid, name, definition, validated))
            continue
        if local or (rel.is_partition and name in parent_checks):
            lines.append(f"CONSTRAINT {name} {definition}")
            rel.created_checks.add(name)
    rel.created_checks |= parent_checks if not rel.is_partition else set()
    unlogged = "UNLOGGED " if rel.persistence == "u" else ""
    head = f"CREATE {unlogged}{rel.word} {rel.name}" + (f" OF {rel.of_type}" if rel.of_type else "")
    body = " (\n    " + ",\n    ".join(lines) + "\n)" if lines or not rel.of_type else ""
    tail = [f"INHERITS ({', '.join(p.name for p in parents)})"] if parents and not rel.is_partition else []
    tail += [f"PARTITION BY {rel.partition_key}"] if rel.partition_key else []
    tail += [f"USING {rel.access_method}"] if rel.access_method else []
    options = ", ".join(o for o in (rel.options, rel.toast_options) if o)
    tail += [f"WITH ({options})"] if options else []
    tail += [f"SERVER {rel.server}"] if rel.server else []
    tail += [f"OPTIONS ({rel.server_options})"] if rel.server_options else []
    statements = [head + body + "".join("\n" + part for part in tail)]
    statements += _column_settings(rel, printed, inherited, identities)
    if rel.force_row_security:
        statements.append(f"ALTER TABLE ONLY {rel.name} FORCE ROW LEVEL SECURITY")
    if rel.replica_identity in ("f", "n") and rel.kind in ("r", "p"):
        statements.append(f"ALTER TABLE ONLY {rel.name} REPLICA IDENTITY "
                          f"{'FULL' if rel.replica_identity == 'f' else 'NOTHING'}")
    kind = {"f": "foreign table"}.get(rel.kind, "table")
    node = r.graph.add("pg_class", rel.oid, kind, rel.name, statements, sort_name=(rel.schema, rel.plain),
                       fixed=rel.kind in ("r", "p"))
    _comment_targets(r, rel, node.id)
    for column in late_defaults:
        _default_node(r, rel, column)
    for column in rel.columns:
        if column.default_oid is not None and column not in late_defaults:
            r.graph.alias("pg_attrdef", column.default_oid, node.id)
    _checks(r, rel, relations, later_checks, node.id)
    if rel.is_partition and parents:
        attach = r.graph.add("attach", rel.oid, "partition attach", f"partition {rel.name} of {parents[0].name}",
                             [f"ALTER TABLE ONLY {parents[0].name} ATTACH PARTITION {rel.name} {rel.bound}"],
                             sort_name=(rel.schema, rel.plain))
        r.graph.depend(attach.id, node.id)
        r.graph.depend(attach.id, parents[0].node)


def _column_settings(rel: Relation, printed: list[Column], inherited: dict[str, list[Column]],
                     identities: dict[tuple[int, int], Sequence]) -> list[str]:
    alter = f"ALTER {'FOREIGN TABLE' if rel.kind == 'f' else 'TABLE'} ONLY {rel.name} ALTER COLUMN"
    out = []
    for column in rel.columns:
        seq = identities.get((rel.oid, column.attnum))
        if column.identity in ("a", "d") and seq is not None:
            how = "ALWAYS" if column.identity == "a" else "BY DEFAULT"
            out.append(f"{alter} {column.name} ADD GENERATED {how} AS IDENTITY ("
                       f"\n    SEQUENCE NAME {seq.name}{seq.options()}\n)")
            if seq.persistence != rel.persistence:
                out.append(f"ALTER SEQUENCE {seq.name} SET {'UNLOGGED' if seq.persistence == 'u' else 'LOGGED'}")
        from_parents = inherited.get(column.name, [])
        if not rel.of_type:
            created_not_null = (column in printed and column.not_null) or any(p.not_null for p in from_parents)
            if column.not_null and not created_not_null:
                out.append(f"{alter} {column.name} SET NOT NULL")
            elif not column.not_null and created_not_null:
                out.append(f"{alter} {column.name} DROP NOT NULL")
            if column.default is None and any(p.default is not None for p in from_parents):
                out.append(f"{alter} {column.name} DROP DEFAULT")
        base = from_parents[0] if from_parents else None
        if column.storage != (base.storage if base else column.type_storage):
            out.append(f"{alter} {column.name} SET STORAGE {STORAGE[column.storage]}")
        if column.compression != (base.compression if base else ""):
            out.append(f"{alter} {column.name} SET COMPRESSION {COMPRESSION.get(column.compression, 'default')}")
        if column.options:
            out.append(f"{alter} {column.name} SET ({column.options})")
        if column.stattarget >= 0:
            out.append(f"{alter} {column.name} SET STATISTICS {column.stattarget}")
    return out


def _comment_targets(r: Reading, rel: Relation, node: str) -> None:
    r.comment("pg_class", rel.oid, f"{rel.word} {rel.name}", node)
    for column in rel.columns:
        r.comment("pg_class", rel.oid, f"COLUMN {rel.name}.{column.name}", node, subid=column.attnum)


def _default_node(r: Reading, rel: Relation, column: Column) -> None:
    word = {"v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE"}.get(rel.kind, "TABLE")
    only = "" if rel.kind in ("v", "m") else "ONLY "
    node = r.graph.add("pg_attrdef", column.default_oid or 0, "default", f"default of {rel.name}.{column.name}",
                       [f"ALTER {word} {only}{rel.name} ALTER COLUMN {column.name} SET DEFAULT {column.default}"],
                       sort_name=(rel.schema, rel.plain, column.name))
    r.graph.depend(node.id, rel.node)


def _checks(r: Reading, rel: Relation, relations: dict[int, Relation], later: list[tuple], node: str) -> None:
    """CHECKs added after CREATE TABLE (NOT VALID ones after the data), and where each CHECK's
    comment can go: an inherited one exists once its table or its origin's own node ran."""
    for oid, name, definition, validated in later:
        check = r.graph.add("pg_constraint", oid, "check constraint", f"{name} on {rel.name}",
                            [f"ALTER TABLE {rel.name} ADD CONSTRAINT {name} {definition}"],
                            section="pre" if validated else "post", sort_name=(rel.schema, rel.plain, name))
        r.graph.depend(check.id, node)
        rel.separate_checks[name] = check.id
    for oid, name, _, _, local in rel.checks:
        owner = rel.separate_checks.get(name) if local else _origin(rel, name, relations) or node
        r.graph.alias("pg_constraint", oid, owner or node)
        r.comment("pg_constraint", oid, f"CONSTRAINT {name} ON {rel.name}", owner or node)


def _origin(rel: Relation, name: str, relations: dict[int, Relation]) -> str | None:
    """The node adding an inherited CHECK to `rel` when that is not `rel`'s own CREATE."""
    if name in rel.created_checks:
        return None
    for parent in (relations[p] for p in rel.parents if p in relations):
        if name in parent.separate_checks:
            return parent.separate_checks[name]
        found = _origin(parent, name, relations)
        if found:
            return found
    return None


def _view(r: Reading, rel: Relation) -> None:
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
    _comment_targets(r, rel, node.id)
    for column in rel.columns:
        if column.default is not None:
            _default_node(r, rel, column)
    if rel.kind == "m" and rel.populated:
        refresh = r.graph.add("refresh", rel.oid, "refresh", f"data of {rel.name}",
                              [f"REFRESH MATERIALIZED VIEW {rel.name}"], section="refresh",
                              sort_name=(rel.schema, rel.plain))
        r.graph.depend(refresh.id, node.id)
