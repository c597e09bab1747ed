"""Tables known only by name (`TableShape`s) in foreign-key order: the order SQLAlchemy's
`sort_tables_and_constraints` gives the same tables built as `Table`s.

A script written from the catalog adds its foreign keys after the data, so the order of its
data matters to a data-only script, loaded into tables whose keys are checked row by row. It is
the order a script of `Table`s gets (`ScriptWriter.table_order`), through the same topological
sort (SQLAlchemy's own, on names instead of tables): tests/test_table_order.py compares the two
on random graphs.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.exc import CircularDependencyError
from sqlalchemy.util import topological

from backup_engine.formats.model import TableShape


def foreign_key_order(shapes: Iterable[TableShape], partitions: Iterable[tuple[str, str]]) -> list[TableShape]:
    """`shapes` with each partition after its parent ((parent, partition) keys in `partitions`)
    and each table after the tables its foreign keys refer to; ties keep the order given. Where
    foreign keys form a cycle, every key of a table on it is left out of the order (as SQLAlchemy
    leaves them, to be added after the tables)."""
    by_key = {shape.key: shape for shape in shapes}
    fixed = {(parent, child) for parent, child in partitions if parent in by_key and child in by_key}
    keyed = {(referred, shape.key) for shape in by_key.values() for referred in shape.refers_to
             if referred in by_key and referred != shape.key}
    try:
        order = list(topological.sort(fixed | keyed, list(by_key)))
    except CircularDependencyError as cycle:
        keyed = {(referred, child) for referred, child in keyed if child not in cycle.cycles}
        order = list(topological.sort(fixed | keyed, list(by_key)))
    return [by_key[key] for key in order]
