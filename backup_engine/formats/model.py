"""What a SQL script is generated from: SQLAlchemy `MetaData` plus the extras it cannot hold.

`DatabaseModel` is the hand-over point between a source (an engine's reflection of a live
database, or a JSON backup's schema) and an engine's script writer. Every field of the extras
is plain data (strings, numbers, lists), so a JSON schema can carry it and rebuild it with
`extras_from_dict(extras_to_dict(...))`.

Names are unquoted; the writer quotes them with the dialect's preparer. Fields holding SQL
text (`definition`, `bound`, `default`, check `definition`s) are the catalog's own rendering
(pg_get_*def) and are written as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import Integer, MetaData, Table
from sqlalchemy.types import UserDefinedType


class CatalogType(UserDefinedType):
    """A column type written exactly as the catalog spells it (format_type(), a SQLite declared type)."""

    cache_ok = True

    def __init__(self, spec: str, integer: bool = False) -> None:
        self.spec = spec
        self.integer = integer

    def get_col_spec(self, **_: Any) -> str:
        return self.spec

    @property
    def _type_affinity(self) -> Any:  # lets SQLite's compiler see INTEGER PRIMARY KEY AUTOINCREMENT
        return Integer if self.integer else UserDefinedType

    def __repr__(self) -> str:
        return f"CatalogType({self.spec!r})"


def type_spec(column: Any) -> str:
    """A column's type as text: the catalog's spelling when reflected, else SQLAlchemy's."""
    return column.type.spec if isinstance(column.type, CatalogType) else str(column.type)


@dataclass(frozen=True)
class TableShape:
    """A table as a script written from its database's catalog needs it (`DatabaseModel.table_shapes`):
    its name, the columns its data fills and the tables its foreign keys refer to (its own name
    left out), which order its data. No SQLAlchemy `Table`: at 5,000 tables those were 38 MB and
    half a second of a fallback backup, built only to be named and sorted."""

    schema: str | None
    name: str
    data_columns: tuple[str, ...]
    refers_to: tuple[str, ...] = ()  # keys (`schema.name`) of the referred tables

    @property
    def key(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def data_columns(table: Table | TableShape) -> list[str]:
    """Columns a dump writes: all but generated and hidden ones, after the implicit rowid if kept."""
    if isinstance(table, TableShape):
        return list(table.data_columns)
    rowid = [table.info["rowid"]] if table.info.get("rowid") else []
    return rowid + [column.name for column in table.columns
                    if column.computed is None and not column.info.get("hidden")]


@dataclass
class EnumType:
    schema: str | None
    name: str
    labels: list[str]


@dataclass
class DomainCheck:
    name: str
    definition: str  # "CHECK (...)" as pg_get_constraintdef prints it
    validated: bool = True


@dataclass
class DomainType:
    schema: str | None
    name: str
    base_type: str  # format_type() text, schema-qualified
    not_null: bool = False
    default: str | None = None
    collation: str | None = None  # already quoted, e.g. pg_catalog."C"
    checks: list[DomainCheck] = field(default_factory=list)


@dataclass
class SequenceDef:
    schema: str | None
    name: str
    data_type: str = "bigint"
    start: int = 1
    increment: int = 1
    min_value: int | None = None
    max_value: int | None = None
    cache: int = 1
    cycle: bool = False
    # (schema, table, column) of an OWNED BY column; identity sequences are created by their column
    owned_by: list[str | None] | None = None
    identity: bool = False
    last_value: int | None = None
    is_called: bool = False
    # False for an identity the server will name itself (made by a conversion): set through its column
    exact_name: bool = True


@dataclass
class PartitionDef:
    table: str  # MetaData key of the partition ("schema.name")
    parent: str  # MetaData key of the partitioned table
    bound: str  # "FOR VALUES ..." or "DEFAULT"


@dataclass
class IndexDef:
    schema: str | None
    table: str
    name: str
    definition: str  # CREATE [UNIQUE] INDEX ... as pg_get_indexdef prints it
    attach_to: list[str | None] | None = None  # (schema, name) of the partitioned index it belongs to


@dataclass
class ConstraintDef:
    """A table constraint added with ALTER TABLE (exclusion constraints, a partition's own ones)."""

    schema: str | None
    table: str
    name: str
    definition: str  # as pg_get_constraintdef prints it
    post_data: bool = True


@dataclass
class ViewDef:
    schema: str | None
    name: str
    definition: str  # the SELECT, as pg_get_viewdef prints it
    materialized: bool = False
    options: list[str] = field(default_factory=list)  # reloptions except check_option
    check_option: str | None = None  # "local" / "cascaded"
    indexes_follow: bool = True


@dataclass
class RoutineDef:
    schema: str | None
    name: str
    definition: str  # CREATE OR REPLACE FUNCTION ... as pg_get_functiondef prints it
    after_tables: bool = False  # its signature uses a table's row type


@dataclass
class TriggerDef:
    schema: str | None
    table: str
    name: str
    definition: str  # CREATE TRIGGER ... as pg_get_triggerdef prints it
    enabled: str = "O"  # pg_trigger.tgenabled: O, D, R, A


@dataclass
class CommentDef:
    target: str  # SQL after COMMENT ON, e.g. "VIEW public.v", already quoted
    text: str


@dataclass
class Extension:
    name: str
    schema: str | None


@dataclass
class CatalogNode:
    """One object of a catalog-exact script: the statements that create it, in the server's own words
    (pg_get_*def, format_type, quote_ident), every name schema-qualified."""

    kind: str  # "table", "aggregate", "operator class", ... (messages, and what an untrusted document may hold)
    name: str  # its identity, e.g. "zoo.root_sum_sq(numeric)"
    statements: list[str] = field(default_factory=list)
    section: str = "pre"  # "pre" (before the data), "post" (after it) or "refresh" (a matview's data, last)


@dataclass
class LargeObjectDef:
    oid: int
    comment: str | None = None
    data: str | None = None  # hex; only where the rows travel in the document itself (JSON)


@dataclass
class PgCatalog:
    """A PostgreSQL source's objects in dependency order (pg_depend), as pg_dump would write them.

    Written by our own readers only: a document that is not ours restores from the typed lists of
    `SchemaExtras` instead (what they can carry), never from these statements.
    """

    nodes: list[CatalogNode] = field(default_factory=list)
    large_objects: list[LargeObjectDef] = field(default_factory=list)
    # database-level objects a dump of one database leaves out (event triggers, publications, ...)
    not_carried: list[str] = field(default_factory=list)


@dataclass
class SchemaExtras:
    schemas: list[str] = field(default_factory=list)  # schemas to create (not "public")
    extensions: list[Extension] = field(default_factory=list)
    enums: list[EnumType] = field(default_factory=list)
    domains: list[DomainType] = field(default_factory=list)
    sequences: list[SequenceDef] = field(default_factory=list)
    routines: list[RoutineDef] = field(default_factory=list)
    partition_keys: dict[str, str] = field(default_factory=dict)  # table key -> pg_get_partkeydef
    partitions: list[PartitionDef] = field(default_factory=list)
    constraints: list[ConstraintDef] = field(default_factory=list)
    indexes: list[IndexDef] = field(default_factory=list)
    views: list[ViewDef] = field(default_factory=list)
    triggers: list[TriggerDef] = field(default_factory=list)
    comments: list[CommentDef] = field(default_factory=list)
    # verbatim SQL of objects, for sources that keep it (SQLite's sqlite_master)
    table_ddl: dict[str, str] = field(default_factory=dict)  # table key -> CREATE TABLE ...
    raw_post_data: list[str] = field(default_factory=list)  # CREATE INDEX / VIEW / TRIGGER ...
    sqlite_sequence: list[list[Any]] = field(default_factory=list)  # [name, seq]
    pragmas: dict[str, int] = field(default_factory=dict)  # user_version, application_id
    # words the preparer must quote besides its own list (e.g. the server's pg_get_keywords())
    reserved_words: list[str] = field(default_factory=list)
    # table key -> name as reported in table_rows (pg_dump style quote_ident names)
    display_names: dict[str, str] = field(default_factory=dict)
    # every object, catalog-exact and in dependency order (PostgreSQL sources read by this worker)
    catalog: PgCatalog | None = None


@dataclass(slots=True)
class ColumnSpec:
    """A column as a JSON document describes it (without its portable kind: the export's own)."""

    name: str
    type: str  # the source's exact spelling
    nullable: bool
    default: str | None
    generated: dict[str, Any] | None  # {"sqltext", "persisted"}
    identity: dict[str, Any] | None  # {"always", "on_null", "start", ...}
    comment: str | None
    hidden: bool = False
    integer: bool = False


@dataclass(slots=True)
class TableSpec:
    """A table as a JSON document describes it, without the export's own parts (its columns'
    portable kinds, the columns of its rows, its display name): what `json_schema.table_spec`
    reads from a SQLAlchemy `Table`, or what an engine builds from its catalog's rows directly
    (PostgreSQL's `tables_from_catalog.table_specs`: at thousands of tables, building SQLAlchemy
    `Table`s only to describe them was a sixth of a JSON export). Constraints in a fixed order,
    each kind by name, then columns or text."""

    key: str
    schema: str | None
    name: str
    comment: str | None
    prefixes: list[str]
    partition_by: str | None
    rowid: str | None
    columns: list[ColumnSpec]
    primary_key: dict[str, Any] | None  # {"name", "columns", "deferrable", "initially"}
    foreign_keys: list[dict[str, Any]]
    unique: list[dict[str, Any]]
    checks: list[dict[str, Any]]


@dataclass
class DatabaseModel:
    dialect: str  # the engine's name
    metadata: MetaData
    extras: SchemaExtras = field(default_factory=SchemaExtras)
    server_version: str = ""
    # The tables described, where a reader built no SQLAlchemy tables (`metadata` is then empty):
    # only for writing a JSON document (`json_schema.model_to_dict`), never for a script.
    table_specs: list[TableSpec] | None = None
    # The tables as shapes, where a reader built no SQLAlchemy tables either: only for a script
    # written from `extras.catalog`, whose statements create them (`sql_script.table_order`).
    table_shapes: list[TableShape] | None = None


_LIST_TYPES = {
    "extensions": Extension, "enums": EnumType, "domains": DomainType, "sequences": SequenceDef,
    "routines": RoutineDef, "partitions": PartitionDef, "constraints": ConstraintDef, "indexes": IndexDef,
    "views": ViewDef, "triggers": TriggerDef, "comments": CommentDef,
}


def extras_to_dict(extras: SchemaExtras, on_demand: Callable[[Iterator[Any]], Any] | None = None
                   ) -> dict[str, Any]:
    """Plain JSON-ready data (what `dataclasses.asdict` gives, without deep-copying every string:
    at thousands of tables that copy was a twentieth of a JSON export). With `on_demand`, each
    list of more than ON_DEMAND_ITEMS items (the catalog's nodes: tens of thousands) is handed to
    it as an iterator of its items made one at a time, for a writer that makes them as it writes
    (`json_document.ItemsOnDemand`): they are never all held as dicts at once."""
    return _plain(extras) if on_demand is None else _plain_fields(extras, on_demand)


ON_DEMAND_ITEMS = 64


def _plain_fields(value: Any, on_demand: Callable[[Iterator[Any]], Any]) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for name in _field_names(value):
        item = getattr(value, name)
        if type(item) is list and len(item) > ON_DEMAND_ITEMS:
            plain[name] = on_demand(_plain(element) for element in item)
        elif hasattr(item, "__dataclass_fields__"):
            plain[name] = _plain_fields(item, on_demand)
        else:
            plain[name] = _plain(item)
    return plain


_ATOMS = frozenset({str, int, float, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # a dataclass -> its fields' names (`fields()` is slow)


def _field_names(value: Any) -> tuple[str, ...]:
    kind = type(value)
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(item.name for item in fields(value))
    return names


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in _ATOMS:  # most of the values: the catalog's text
        return value
    if kind is list:
        return [item if type(item) in _ATOMS else _plain(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in _field_names(value)}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


# Kinds of catalog nodes the typed lists above also carry (what a document that is not ours
# restores from, every fragment vetted); the others only travel in the catalog section.
TYPED_KINDS = frozenset({
    "schema", "extension", "enum", "domain", "domain constraint", "function", "procedure", "sequence",
    "sequence owned by", "table", "partition attach", "default", "check constraint", "constraint", "foreign key",
    "index", "index attach", "view", "materialized view", "refresh", "trigger",
})


def catalog_only_objects(data: dict[str, Any] | None) -> list[str]:
    """What a document's catalog section holds that its typed lists do not: "aggregate x", ..."""
    if not isinstance(data, dict):
        return []
    nodes = data.get("nodes") or []
    found = [f"{node.get('kind')} {node.get('name')}" for node in nodes
             if isinstance(node, dict) and node.get("kind") not in TYPED_KINDS]
    found += [f"large object {lo.get('oid')}" for lo in data.get("large_objects") or [] if isinstance(lo, dict)]
    return found


def catalog_from_dict(data: dict[str, Any] | None) -> PgCatalog | None:
    if data is None:
        return None
    return PgCatalog(nodes=[CatalogNode(**node) for node in data.get("nodes", [])],
                     large_objects=[LargeObjectDef(**lo) for lo in data.get("large_objects", [])],
                     not_carried=list(data.get("not_carried", [])))


def extras_from_dict(data: dict[str, Any]) -> SchemaExtras:
    known = {f.name for f in fields(SchemaExtras)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            continue
        if key == "catalog":
            values[key] = catalog_from_dict(value)
            continue
        if key in _LIST_TYPES:
            kind = _LIST_TYPES[key]
            items = []
            for item in value:
                if kind is DomainType:
                    item = {**item, "checks": [DomainCheck(**check) for check in item.get("checks", [])]}
                items.append(kind(**item))
            value = items
        values[key] = value
    return SchemaExtras(**values)
