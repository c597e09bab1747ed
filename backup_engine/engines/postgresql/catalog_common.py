# ruff: noqa: S608 - the queries are constants; f-strings only splice other constants
"""What every catalog reader shares: the filters for user objects, quoting, and the reading context.

Every query runs in the snapshot session, whose `search_path` is `pg_catalog` alone: the
server's deparsers and `format_type`/`regproc` outputs then qualify every user name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from backup_engine.engines.postgresql.catalog_order import Graph

FIRST_NORMAL_OID = 16384  # objects made after initdb (casts, languages, ... have no schema)
USER_NS = "{n}.nspname <> 'information_schema' AND {n}.nspname !~ '^pg_'"


def user_ns(alias: str = "n") -> str:
    return USER_NS.format(n=alias)


def not_member(catalog: str, oid: str) -> str:
    """SQL: the object is not a member of an extension (CREATE EXTENSION makes those)."""
    return (f"NOT EXISTS (SELECT 1 FROM pg_depend ext_dep WHERE ext_dep.classid = '{catalog}'::regclass"
            f" AND ext_dep.objid = {oid} AND ext_dep.deptype = 'e')")


def user_object(catalog: str, oid: str, ns: str = "n") -> str:
    return f"{user_ns(ns)} AND {not_member(catalog, oid)}"


def made_by_user(catalog: str, alias: str) -> str:
    """SQL: an object of a catalog without schemas, made after initdb, not an extension's."""
    return f"{alias}.oid >= {FIRST_NORMAL_OID} AND {not_member(catalog, alias + '.oid')}"


def qualified(ns: str, name: str) -> str:
    """SQL: the schema-qualified, quoted name of an object."""
    return f"quote_ident({ns}.nspname) || '.' || quote_ident({name})"


def options_sql(column: str) -> str:
    """SQL: an options array (`{key=value}`) as `key 'value', ...` (NULL when empty)."""
    return (f"(SELECT string_agg(quote_ident(o.option_name) || ' ' || quote_literal(o.option_value), ', ')"
            f" FROM pg_options_to_table({column}) o)")


def literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings = on)."""
    return "'" + text.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    """Quote an identifier as quote_ident() would when it must: always, which is always correct."""
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Reading:
    """One pass over the catalog: the cursor, the graph being built, and what cannot be carried."""

    cur: Any
    graph: Graph = field(default_factory=Graph)
    refused: list[str] = field(default_factory=list)  # "event trigger x" ...: the backup fails, naming them
    not_carried: list[str] = field(default_factory=list)  # database-level objects pg_dump leaves out too

    def rows(self, query: str, params: Any = None) -> list[tuple]:
        self.cur.execute(query, params)
        return self.cur.fetchall()

    def stream(self, query: str, params: Any = None) -> Iterator[tuple]:
        """The rows one at a time, for one pass before the next query: the biggest queries' rows
        (thousands of tables' dependencies and columns), held as a list, were most of the
        reading's peak memory."""
        self.cur.execute(query, params)
        return iter(self.cur)

    def comment(self, classid: str, oid: int, target: str, node_id: str, subid: int = 0) -> None:
        self.graph.comment_target(classid, oid, subid, target, node_id)
