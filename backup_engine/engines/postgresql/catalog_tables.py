"""Tables and foreign tables as catalog nodes, written as pg_dump writes them (views, materialized
views and sequences: `catalog_relations`).

A table is CREATE TABLE with its own columns (an inheritance child leaves out what it only
inherits; a partition lists all of its columns in its own order and is attached afterwards),
its inline CHECKs (the NOT VALID ones, and the ones calling functions, come separately), then
identity, storage, compression, statistics targets and column options, forced row security and
replica identity. A column default that calls a function or a sequence is set by a node of its
own, so that a function taking the table's row type can come in between.
"""

from __future__ import annotations

from backup_engine.engines.postgresql.catalog_common import Reading
from backup_engine.engines.postgresql.catalog_relations import (
    RELATIONS_SQL,
    SEQUENCES_SQL,
    Column,
    Relation,
    Sequence,
    columns_sql,
    comment_targets,
    default_node,
    parents_first,
    read_sequences,
    read_view,
)

STORAGE = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED"}
COMPRESSION = {"p": "pglz", "l": "lz4", "": "default"}
SEPARATE_DEFAULT_REFERENCES = ("pg_proc", "pg_class", "pg_operator")  # a function, a sequence, ...


def read_relations(r: Reading, constraints: list[tuple]) -> dict[int, Relation]:
    """Tables, foreign tables, views, materialized views and sequences; returns the relations by oid."""
    relations = {row[0]: Relation(*row) for row in r.rows(RELATIONS_SQL)}
    for row in r.stream(columns_sql(r.cur.connection.server_version)):
        if row[0] in relations:
            relations[row[0]].columns.append(Column(*row[1:]))
    for oid, relid, name, kind, definition, validated, local, _, _ in constraints:
        if kind == "c" and relid in relations:
            relations[relid].checks.append((oid, name, definition, validated, local))
    sequences = {row[0]: Sequence(*row) for row in r.rows(SEQUENCES_SQL)}
    identities = read_sequences(r, sequences, relations)
    for relation in parents_first(relations):
        if relation.kind in ("v", "m"):
            read_view(r, relation)
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
    comment_targets(r, rel, node.id)
    for column in late_defaults:
        default_node(r, rel, column)
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


def _checks(r: Reading, rel: Relation, relations: dict[int, Relation], later: list[tuple], node: str) -> None:
    """CHECKs added after CREATE TABLE (NOT VALID ones after the data), and where each CHECK's
    comment can go: an inherited one exists once its table or its origin's own node ran."""
    for oid, name, definition, validated in later:
        check = r.graph.add("pg_constraint", oid, "check constraint", f"{name} on {rel.name}",
                            [f"ALTER TABLE {rel.name} ADD CONSTRAINT {name} {definition}"],
                            section="pre" if validated else "post", sort_name=(rel.schema, rel.plain, name))
        r.graph.depend(check.id, node)
        rel.separate_checks[name] = check.id
    for oid, name, _, validated, local in rel.checks:
        owner = rel.separate_checks.get(name) if local else _origin(rel, name, relations) or node
        owner = owner or node
        if not local and validated and owner != node and r.graph.nodes[owner].section == "post":
            # the parent's NOT VALID CHECK reaches this table NOT VALID; its own copy was checked
            r.graph.nodes[owner].statements.append(f"ALTER TABLE {rel.name} VALIDATE CONSTRAINT {name}")
            r.graph.depend(owner, node)
        r.graph.alias("pg_constraint", oid, owner)
        r.comment("pg_constraint", oid, f"CONSTRAINT {name} ON {rel.name}", owner)


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


