# ruff: noqa: S608 - the queries are constants
"""The whole catalog of a PostgreSQL database as a `PgCatalog`: every object pg_dump carries, in
dependency order, with what cannot be carried (refused: the backup fails naming it) and what a
dump of one database leaves out (not carried: the manifest names it).

One query per kind of object, whatever the number of objects: the cost of a backup grows with
its data, not with its catalog reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backup_engine.engines.postgresql.catalog_common import Reading
from backup_engine.engines.postgresql.catalog_functions import (
    read_aggregates,
    read_casts,
    read_conversions,
    read_functions,
    read_operator_classes,
    read_operators,
)
from backup_engine.engines.postgresql.catalog_misc import (
    read_access_methods,
    read_comments,
    read_database_level,
    read_foreign_data,
    read_languages,
    read_large_objects,
    read_text_search,
    read_transforms,
)
from backup_engine.engines.postgresql.catalog_order import OrderError
from backup_engine.engines.postgresql.catalog_post import read_post_data
from backup_engine.engines.postgresql.catalog_relations import CONSTRAINTS_SQL, Relation
from backup_engine.engines.postgresql.catalog_tables import read_relations
from backup_engine.engines.postgresql.catalog_types import (
    read_collations,
    read_extensions,
    read_schemas,
    read_types,
)
from backup_engine.formats.model import LargeObjectDef, PgCatalog

DEPEND_SQL = """
SELECT d.classid::regclass::text, d.objid, d.objsubid, d.refclassid::regclass::text, d.refobjid, d.refobjsubid,
       d.deptype::text
FROM pg_depend d WHERE d.deptype IN ('n', 'a', 'i') AND d.objid >= 16384 AND d.refobjid >= 16384"""

READERS = (read_schemas, read_extensions, read_collations, read_types, read_functions, read_aggregates,
           read_operators, read_operator_classes, read_casts, read_conversions, read_languages, read_access_methods,
           read_transforms, read_text_search, read_foreign_data)


@dataclass
class CatalogReading:
    catalog: PgCatalog
    refused: list[str]  # objects the script cannot carry: the backup must fail, naming them


def read_catalog(cur: Any) -> CatalogReading:
    """Every user object of the database behind `cur` (a snapshot session, search_path = pg_catalog)."""
    r = Reading(cur)
    r.graph.load_depend(r.stream(DEPEND_SQL))
    for read in READERS:
        read(r)
    constraints = r.rows(CONSTRAINTS_SQL)
    relations = read_relations(r, constraints)
    read_post_data(r, relations, constraints)
    read_comments(r)
    read_database_level(r)
    _refuse_inherited_column_order(r, relations)
    r.graph.link_catalog()
    _refresh_order(r)
    try:
        nodes = r.graph.ordered()
    except OrderError as exc:
        r.refused.append(exc.what)
        nodes = []
    large_objects = [LargeObjectDef(oid=oid, comment=comment) for oid, comment in read_large_objects(r)]
    catalog = PgCatalog(nodes=nodes, large_objects=large_objects, not_carried=list(r.not_carried))
    return CatalogReading(catalog=catalog, refused=list(r.refused))


def _refuse_inherited_column_order(r: Reading, relations: dict[int, Relation]) -> None:
    """An inheritance child is re-created with INHERITS, which puts inherited columns first (in
    its parents' order) and its own after them; a child whose columns stand in another order (a
    column added to a parent later, ALTER TABLE ... INHERIT) cannot be re-created as it is."""
    for rel in relations.values():
        parents = [relations[p] for p in rel.parents if p in relations]
        if rel.is_partition or rel.of_type or not parents:
            continue
        expected: list[str] = []
        for parent in parents:
            expected += [c.name for c in parent.columns if c.name not in expected]
        expected += [c.name for c in rel.columns if c.local and c.name not in expected]
        if expected != [c.name for c in rel.columns]:
            r.refused.append(f"the column order of {rel.name} (inherited columns after its own:"
                             f" re-created with INHERITS they would come first)")


def _refresh_order(r: Reading) -> None:
    """A materialized view is refreshed after the ones it reads from."""
    for node_id, node in r.graph.nodes.items():
        if node.kind != "refresh":
            continue
        view = r.graph.nodes.get(f"pg_class:{node_id.split(':', 1)[1]}")
        for dep in view.deps if view else ():
            source = f"refresh:{dep.split(':', 1)[1]}" if dep.startswith("pg_class:") else ""
            r.graph.depend(node_id, source if source in r.graph.nodes else None)
