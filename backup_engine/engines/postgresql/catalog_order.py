"""A PostgreSQL catalog's objects in dependency order, as pg_dump orders them.

Each object the script creates is a node: the statements that create it, a section (before the
data, after it, or a materialized view's refresh at the very end), a kind priority and a name
(pg_dump's order where no dependency decides). The catalog's own `pg_depend` edges decide the
rest: each side of an edge is a catalog object (class, oid), mapped onto the node that creates
it by `alias` (a table's row type, its columns' defaults and inline checks belong to the table's
node, an index that backs a constraint to the constraint's, an extension's members to the
extension's).

A view in a dependency loop (a function returning its rows that it calls) is split in two, as
pg_dump splits it: a stand-in with the view's columns first, its real definition once what it
uses exists. A node before the data that needs one after it (a view grouping by a primary key) moves after
the data, with whatever needs it in turn; a table cannot move (the data needs it), so such a
loop is refused with its objects named, as is any cycle the kinds above do not break.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from backup_engine.formats.model import CatalogNode

SECTIONS = ("pre", "post", "refresh")
# pg_dump's object type priorities (pg_dump_sort.c), for what dependencies leave open.
PRIORITY = {kind: rank for rank, kinds in enumerate((
    ("schema",), ("language",), ("collation",), ("transform",), ("extension",),
    ("shell type", "enum", "composite type", "range type", "domain", "type"), ("cast",),
    ("function", "procedure"), ("aggregate",), ("access method",), ("operator",),
    ("operator family", "operator class"), ("conversion",), ("text search parser",), ("text search template",),
    ("text search dictionary",), ("text search configuration",), ("foreign-data wrapper",),
    ("server", "user mapping"), ("table", "view", "materialized view", "sequence", "foreign table"),
    ("partition attach", "sequence owned by"), ("default", "check constraint", "domain constraint"),
    ("constraint",), ("index",), ("index attach",), ("statistics",), ("rule",), ("trigger",), ("foreign key",),
    ("row security", "policy"), ("refresh",),
)) for kind in kinds}


class OrderError(Exception):
    """The objects cannot be ordered: a dependency loop, or a table that needs what comes after the data."""

    def __init__(self, what: str) -> None:
        self.what = what  # "the dependency loop a -> b -> a", ...
        super().__init__(what)


@dataclass
class Node:
    id: str
    kind: str
    name: str
    statements: list[str]
    section: str
    sort_name: tuple[str, ...]
    fixed: bool = False  # stays before the data (a table: the rows need it)
    deps: set[str] = field(default_factory=set)
    # a view in a loop is split as pg_dump splits it: a stand-in with its columns (these statements),
    # then its real definition by CREATE OR REPLACE
    split: list[str] | None = None
    split_needs: list[tuple[str, int]] = field(default_factory=list)  # the stand-in's column types

    def key(self) -> tuple:
        return (PRIORITY.get(self.kind, len(PRIORITY)), self.sort_name, self.id)


@dataclass(slots=True)
class DependRow:
    """One row of pg_depend: (class, oid, column) depends on (class, oid, column). Thousands of
    tables have tens of thousands of them: slots, and one string per catalog name (`load_depend`)."""

    classid: str
    objid: int
    objsubid: int
    refclassid: str
    refobjid: int
    refobjsubid: int
    deptype: str


class Graph:
    """Nodes, the catalog objects each one creates, and the edges between them."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.aliases: dict[tuple[str, int], str] = {}
        self.comment_targets: dict[tuple[str, int, int], tuple[str, str]] = {}  # object -> (SQL name, node)
        self.depends: dict[tuple[str, int], list[DependRow]] = {}
        self.skip: set[tuple[str, int, str, int]] = set()  # pg_depend edges that a node of its own carries
        # (node, node it depends on) -> the node it needs instead: a type's support functions need its shell
        self.redirects: dict[tuple[str, str], str] = {}

    # --- building -----------------------------------------------------------------------------------
    def load_depend(self, rows: Iterable[tuple]) -> None:
        names: dict[str, str] = {}  # 'pg_class', ...: the same few names in every row, kept once
        for classid, objid, objsubid, refclassid, refobjid, refobjsubid, deptype in rows:
            dep = DependRow(names.setdefault(classid, classid), objid, objsubid,
                            names.setdefault(refclassid, refclassid), refobjid, refobjsubid,
                            names.setdefault(deptype, deptype))
            self.depends.setdefault((dep.classid, dep.objid), []).append(dep)

    def references(self, classid: str, objid: int, refclassid: str | None = None,
                   deptypes: str = "nai") -> list[DependRow]:
        """What the object depends on (optionally only objects of `refclassid`)."""
        return [dep for dep in self.depends.get((classid, objid), [])
                if dep.deptype in deptypes and (refclassid is None or dep.refclassid == refclassid)]

    def add(self, classid: str, oid: int, kind: str, name: str, statements: list[str], section: str = "pre",
            sort_name: tuple[str, ...] = (), fixed: bool = False, node_id: str | None = None) -> Node:
        """A node creating the catalog object (classid, oid); also its alias."""
        node_id = node_id or f"{classid}:{oid}"
        node = Node(id=node_id, kind=kind, name=name, statements=list(statements), section=section,
                    sort_name=sort_name or (name,), fixed=fixed)
        self.nodes[node_id] = node
        if oid:
            self.aliases.setdefault((classid, oid), node_id)
        return node

    def alias(self, classid: str, oid: int, node_id: str) -> None:
        """The catalog object (classid, oid) is created by the node `node_id`."""
        self.aliases[(classid, oid)] = node_id

    def comment_target(self, classid: str, oid: int, subid: int, target: str, node_id: str) -> None:
        """COMMENT ON `target` names the object; it exists once `node_id` ran."""
        self.comment_targets[(classid, oid, subid)] = (target, node_id)

    def resolve(self, classid: str, oid: int, subid: int = 0) -> str | None:
        """The node creating a catalog object (a column is its relation's)."""
        node_id = self.aliases.get((classid, oid))
        seen = 0
        while node_id is not None and node_id not in self.nodes and seen < 8:  # an alias of an alias
            classid, _, rest = node_id.partition(":")
            node_id = self.aliases.get((classid, int(rest))) if rest.isdigit() else None
            seen += 1
        return node_id

    def depend(self, node_id: str, on: str | None) -> None:
        if on is not None and on != node_id and on in self.nodes:
            self.nodes[node_id].deps.add(on)

    def link_catalog(self) -> None:
        """Every pg_depend edge between two carried objects, as an edge between their nodes."""
        for rows in self.depends.values():
            for dep in rows:
                if (dep.classid, dep.objid, dep.refclassid, dep.refobjid) in self.skip:
                    continue
                node = self.resolve(dep.classid, dep.objid, dep.objsubid)
                if node is not None:
                    on = self.resolve(dep.refclassid, dep.refobjid, dep.refobjsubid)
                    self.depend(node, self.redirects.get((node, on or ""), on))

    # --- ordering -----------------------------------------------------------------------------------
    def ordered(self) -> list[CatalogNode]:
        """Nodes in an order every dependency allows; raises OrderError naming a loop."""
        self._move_after_data()
        ordered: list[Node] = []
        for section in SECTIONS:
            ordered += self._sorted([node for node in self.nodes.values() if node.section == section])
        return [CatalogNode(kind=n.kind, name=n.name, statements=n.statements, section=n.section) for n in ordered]

    def _move_after_data(self) -> None:
        rank = {name: i for i, name in enumerate(SECTIONS)}
        changed = True
        while changed:
            changed = False
            for node in self.nodes.values():
                latest = max((self.nodes[dep].section for dep in node.deps), key=rank.__getitem__, default="pre")
                latest = "post" if latest == "refresh" and node.section != "refresh" else latest
                if rank[latest] > rank[node.section]:
                    if node.fixed:
                        blockers = [self.nodes[dep].name for dep in node.deps if self.nodes[dep].section != "pre"]
                        raise OrderError(f"{node.kind} {node.name} (it needs {', '.join(sorted(blockers))},"
                                         " which can only be created after the data)")
                    node.section = latest
                    changed = True

    def _sorted(self, nodes: list[Node]) -> list[Node]:
        section = nodes[0].section if nodes else "pre"
        for _ in range(len(nodes) + 1):
            out, stuck = self._kahn(nodes)
            if not stuck:
                return out
            loop = self._loop(stuck)
            if not self._split(loop):
                names = [self.nodes[n].name for n in loop]
                raise OrderError(f"the dependency loop {' -> '.join([*names, names[0]])}")
            nodes = [node for node in self.nodes.values() if node.section == section]
        raise OrderError(f"a dependency loop among {', '.join(node.name for node in nodes)}")

    def _kahn(self, nodes: list[Node]) -> tuple[list[Node], dict[str, set[str]]]:
        """Nodes in order as far as they go, and the deps of those a loop holds back."""
        members = {node.id for node in nodes}
        waiting = {node.id: {dep for dep in node.deps if dep in members} for node in nodes}
        needed_by: dict[str, list[str]] = {}
        for node_id, deps in waiting.items():
            for dep in deps:
                needed_by.setdefault(dep, []).append(node_id)
        # the heap holds each node's place in key order (keys are unique: the id is in them), an
        # int: comparing the keys themselves, tuples of names, was most of the ordering's time
        by_rank = sorted(nodes, key=Node.key)
        rank = {node.id: place for place, node in enumerate(by_rank)}
        ready = [rank[node_id] for node_id, deps in waiting.items() if not deps]
        heapq.heapify(ready)
        out: list[Node] = []
        while ready:
            node = by_rank[heapq.heappop(ready)]
            out.append(node)
            for other in needed_by.get(node.id, []):
                waiting[other].discard(node.id)
                if not waiting[other]:
                    heapq.heappush(ready, rank[other])
        return out, {node_id: deps for node_id, deps in waiting.items() if deps}

    def _loop(self, stuck: dict[str, set[str]]) -> list[str]:
        """The ids along one cycle among the nodes held back."""
        path: list[str] = []
        seen: dict[str, int] = {}
        node_id = min(stuck)
        while node_id not in seen:
            seen[node_id] = len(path)
            path.append(node_id)
            node_id = min(dep for dep in stuck[node_id] if dep in stuck)
        return path[seen[node_id]:]

    def _split(self, loop: list[str]) -> bool:
        """Break the loop at a view: its stand-in takes whatever needed the view."""
        view = next((self.nodes[n] for n in loop if self.nodes[n].split is not None), None)
        if view is None or view.split is None:
            return False
        stand_in = Node(id=f"stand-in:{view.id}", kind=view.kind, name=view.name, statements=view.split,
                        section=view.section, sort_name=view.sort_name,
                        deps={dep for dep in view.deps if self.nodes[dep].kind in ("schema", "extension")})
        for classid, oid in view.split_needs:
            self.depend(stand_in.id, self.resolve(classid, oid))
        self.nodes[stand_in.id] = stand_in
        for node in self.nodes.values():
            if view.id in node.deps and node is not stand_in:
                node.deps.discard(view.id)
                node.deps.add(stand_in.id)
        view.deps.add(stand_in.id)
        first = view.statements[0].replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1)
        view.statements, view.split = [first, *view.statements[1:]], None
        return True
