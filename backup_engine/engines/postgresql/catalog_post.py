# ruff: noqa: S608 - the queries are constants; f-strings only splice other constants (filters)
"""What pg_dump writes after the data: key, unique, exclusion and foreign-key constraints,
indexes (with their statistics targets, CLUSTER ON and REPLICA IDENTITY), partition index
attachments, extended statistics, rules, triggers (with every clone's enabled state), row-level
security and policies."""

from __future__ import annotations

from backup_engine.engines.postgresql.catalog_common import Reading, qualified, user_object
from backup_engine.engines.postgresql.catalog_relations import Relation

# Index columns' statistics targets are aggregated in one pass (as a subquery per index they were
# a fifth of the query's time at 10,000 indexes); the definition of an index its constraint
# creates is not read (pg_get_indexdef is half the query's time).
INDEXES_SQL = f"""
SELECT i.indexrelid, i.indrelid, {qualified('n', 'ic.relname')}, quote_ident(ic.relname),
       CASE WHEN co.oid IS NULL THEN pg_get_indexdef(i.indexrelid) END,
       i.indisclustered, i.indisreplident, i.indisvalid, ic.relkind::text,
       (SELECT h.inhparent FROM pg_inherits h WHERE h.inhrelid = i.indexrelid),
       st.targets, co.oid, n.nspname, ic.relname
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = c.relnamespace
LEFT JOIN pg_constraint co ON co.conindid = i.indexrelid AND co.conrelid = i.indrelid AND co.contype IN ('p', 'u', 'x')
LEFT JOIN (SELECT a.attrelid, array_agg(a.attnum || ' ' || a.attstattarget ORDER BY a.attnum) AS targets
           FROM pg_attribute a JOIN pg_class ac ON ac.oid = a.attrelid AND ac.relkind IN ('i', 'I')
           WHERE coalesce(a.attstattarget, -1) >= 0 GROUP BY a.attrelid) st ON st.attrelid = i.indexrelid
WHERE {user_object('pg_class', 'c.oid', 'tn')}"""

TRIGGERS_SQL = f"""
SELECT t.oid, t.tgrelid, quote_ident(t.tgname), pg_get_triggerdef(t.oid), t.tgenabled::text, t.tgparentid,
       t.tgconstraint
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND {user_object('pg_class', 'c.oid')}"""

RULES_SQL = f"""
SELECT r.oid, r.ev_class, quote_ident(r.rulename), r.rulename = '_RETURN', pg_get_ruledef(r.oid), r.ev_enabled::text
FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {user_object('pg_class', 'c.oid')}"""

POLICIES_SQL = f"""
SELECT p.oid, p.polrelid, quote_ident(p.polname), p.polcmd::text, p.polpermissive,
       (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE r::regrole::text END, ', ')
        FROM unnest(p.polroles) AS r),
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {user_object('pg_class', 'c.oid')}"""

STATISTICS_SQL = f"""
SELECT s.oid, {qualified('n', 's.stxname')}, pg_get_statisticsobjdef(s.oid), coalesce(s.stxstattarget, -1),
       n.nspname, s.stxname
FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
WHERE {user_object('pg_statistic_ext', 's.oid')}"""

STATES = {"D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS", "O": "ENABLE"}
COMMANDS = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}


def read_post_data(r: Reading, relations: dict[int, Relation], constraints: list[tuple]) -> None:
    _constraints(r, relations, constraints)
    _indexes(r, relations)
    _triggers(r, relations)
    _rules(r, relations)
    _policies(r, relations)
    _statistics(r)


def _constraints(r: Reading, relations: dict[int, Relation], constraints: list[tuple]) -> None:
    """Primary keys, unique and exclusion constraints, then foreign keys; a partition's clone of its
    parent's foreign key comes with the parent's (its comment too)."""
    by_oid = {row[0]: row for row in constraints}
    for oid, relid, name, kind, definition, _, _, parent, index_options in constraints:
        rel = relations.get(relid)
        if rel is None or kind not in ("p", "u", "x", "f"):
            continue
        if kind == "f" and parent:
            root = parent
            while by_oid.get(root, (0,) * 8)[7]:
                root = by_oid[root][7]
            r.graph.alias("pg_constraint", oid, f"pg_constraint:{root}")
            r.comment("pg_constraint", oid, f"CONSTRAINT {name} ON {rel.name}", f"pg_constraint:{root}")
            continue
        only = "" if kind == "f" and rel.kind == "p" else "ONLY "
        if index_options:
            definition = with_index_options(definition, index_options)
        statement = f"ALTER TABLE {only}{rel.name} ADD CONSTRAINT {name} {definition}"
        node = r.graph.add("pg_constraint", oid, "foreign key" if kind == "f" else "constraint",
                           f"{name} on {rel.name}", [statement], section="post",
                           sort_name=(rel.schema, rel.plain, name))
        r.graph.depend(node.id, rel.node)
        r.comment("pg_constraint", oid, f"CONSTRAINT {name} ON {rel.name}", node.id)


def with_index_options(definition: str, options: str) -> str:
    """A key, unique or exclusion constraint's definition with its index's storage parameters
    (pg_get_constraintdef leaves them out): after the column list and INCLUDE (...), as they go."""
    end = _group_end(definition, definition.find("("))
    if definition.startswith(" INCLUDE (", end):
        end = _group_end(definition, end + len(" INCLUDE "))
    return f"{definition[:end]} WITH ({options}){definition[end:]}"


def _group_end(text: str, start: int) -> int:
    """The index just after the parenthesis closing the one at `start` (quotes respected)."""
    depth, quote = 0, ""
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(text)


def _indexes(r: Reading, relations: dict[int, Relation]) -> None:
    rows = r.rows(INDEXES_SQL)
    names = {row[0]: row[2] for row in rows}
    attaches: list[tuple[str, int]] = []
    for (oid, relid, name, plain_name, definition, clustered, replident, valid, relkind, parent, targets, constraint,
         schema, plain) in rows:
        rel = relations.get(relid)
        if rel is None or (not valid and relkind != "I"):
            continue  # an index a failed CREATE INDEX CONCURRENTLY left behind
        statements = [] if constraint else [definition]
        statements += [f"ALTER INDEX {name} ALTER COLUMN {t.split()[0]} SET STATISTICS {t.split()[1]}"
                       for t in targets or []]
        statements += [f"ALTER TABLE {rel.name} CLUSTER ON {plain_name}"] if clustered else []
        statements += [f"ALTER TABLE ONLY {rel.name} REPLICA IDENTITY USING INDEX {plain_name}"] if replident else []
        if constraint:
            node_id = f"pg_constraint:{constraint}"
            if node_id in r.graph.nodes:
                r.graph.nodes[node_id].statements += statements
            r.graph.alias("pg_class", oid, node_id)
        else:
            node = r.graph.add("pg_class", oid, "index", name, statements, section="post",
                               sort_name=(rel.schema, rel.plain, plain))
            r.graph.depend(node.id, rel.node)
            node_id = node.id
        r.comment("pg_class", oid, f"INDEX {name}", node_id)
        if parent and parent in names:
            attach = r.graph.add("index attach", oid, "index attach", f"index {name} of {names[parent]}",
                                 [f"ALTER INDEX {names[parent]} ATTACH PARTITION {name}"], section="post",
                                 sort_name=(schema, plain))
            r.graph.depend(attach.id, node_id)
            attaches.append((attach.id, parent))
    for attach_id, parent in attaches:  # the parent index's node is known once every index is read
        r.graph.depend(attach_id, r.graph.resolve("pg_class", parent))


def _triggers(r: Reading, relations: dict[int, Relation]) -> None:
    rows = r.rows(TRIGGERS_SQL)
    parents = {oid: parent for oid, _, _, _, _, parent, _ in rows}
    for oid, relid, name, definition, enabled, parent, constraint in sorted(rows, key=lambda row: row[5] != 0):
        rel = relations.get(relid)
        if rel is None:
            continue
        root = oid
        while parents.get(root):
            root = parents[root]
        node_id = f"pg_trigger:{root}"
        if not parent:
            node = r.graph.add("pg_trigger", oid, "trigger", f"{name} on {rel.name}", [definition], section="post",
                               sort_name=(rel.schema, rel.plain, name))
            r.graph.depend(node.id, rel.node)
            if constraint:  # CREATE CONSTRAINT TRIGGER makes its constraint, named as the trigger
                r.graph.alias("pg_constraint", constraint, node.id)
                r.comment("pg_constraint", constraint, f"CONSTRAINT {name} ON {rel.name}", node.id)
        if node_id not in r.graph.nodes:
            continue
        if enabled != "O":  # CREATE TRIGGER makes every clone enabled; ONLY: this table's trigger alone
            r.graph.nodes[node_id].statements.append(f"ALTER TABLE ONLY {rel.name} {STATES[enabled]} TRIGGER {name}")
        r.graph.alias("pg_trigger", oid, node_id)
        r.comment("pg_trigger", oid, f"TRIGGER {name} ON {rel.name}", node_id)


def _rules(r: Reading, relations: dict[int, Relation]) -> None:
    for oid, relid, name, is_view, definition, enabled in r.rows(RULES_SQL):
        rel = relations.get(relid)
        if rel is None:
            continue
        if is_view:
            r.graph.alias("pg_rewrite", oid, rel.node)
            continue
        statements = [definition.rstrip().rstrip(";")]
        if enabled != "O":
            statements.append(f"ALTER TABLE {rel.name} {STATES[enabled]} RULE {name}")
        node = r.graph.add("pg_rewrite", oid, "rule", f"{name} on {rel.name}", statements, section="post",
                           sort_name=(rel.schema, rel.plain, name))
        r.graph.depend(node.id, rel.node)
        r.comment("pg_rewrite", oid, f"RULE {name} ON {rel.name}", node.id)


def _policies(r: Reading, relations: dict[int, Relation]) -> None:
    for rel in relations.values():
        if rel.row_security:
            node = r.graph.add("row security", rel.oid, "row security", f"row security of {rel.name}",
                               [f"ALTER TABLE {rel.name} ENABLE ROW LEVEL SECURITY"], section="post",
                               sort_name=(rel.schema, rel.plain))
            r.graph.depend(node.id, rel.node)
    for oid, relid, name, command, permissive, roles, using, check in r.rows(POLICIES_SQL):
        rel = relations.get(relid)
        if rel is None:
            continue
        statement = f"CREATE POLICY {name} ON {rel.name}"
        statement += "" if permissive else " AS RESTRICTIVE"
        statement += f" FOR {COMMANDS[command]}" if command in COMMANDS else ""
        statement += f" TO {roles}" if roles and roles != "PUBLIC" else ""
        statement += f" USING ({using})" if using is not None else ""
        statement += f" WITH CHECK ({check})" if check is not None else ""
        node = r.graph.add("pg_policy", oid, "policy", f"{name} on {rel.name}", [statement], section="post",
                           sort_name=(rel.schema, rel.plain, name))
        r.graph.depend(node.id, rel.node)
        r.comment("pg_policy", oid, f"POLICY {name} ON {rel.name}", node.id)


def _statistics(r: Reading) -> None:
    for oid, name, definition, target, schema, plain in r.rows(STATISTICS_SQL):
        statements = [definition] + ([f"ALTER STATISTICS {name} SET STATISTICS {target}"] if target >= 0 else [])
        node = r.graph.add("pg_statistic_ext", oid, "statistics", name, statements, section="post",
                           sort_name=(schema, plain))
        r.comment("pg_statistic_ext", oid, f"STATISTICS {name}", node.id)

