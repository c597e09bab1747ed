"""A live PostgreSQL database as a `DatabaseModel`: SQLAlchemy reflection plus the catalog.

Reflection gives tables, columns, keys and constraints in a form SQLAlchemy can order and
compile (what a conversion to another engine reads); `catalog.py` adds the typed lists of
objects a document that is not ours may restore from; `catalog_read.py` reads every object
pg_dump carries, catalog-exact and in dependency order (`extras.catalog`, what our own scripts
are written from). Whatever the catalog holds that cannot be carried fails the backup here,
before anything is written, naming each object.
"""

from __future__ import annotations

import warnings

from sqlalchemy import MetaData, literal_column
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SAWarning
from sqlalchemy.schema import DefaultClause

from backup_engine import errors
from backup_engine.engines.postgresql import catalog
from backup_engine.engines.postgresql.catalog_misc import large_object_chunks
from backup_engine.engines.postgresql.catalog_read import read_catalog
from backup_engine.engines.postgresql.table_shapes import table_shapes
from backup_engine.engines.reflection import freeze_reflected_text
from backup_engine.formats.model import CatalogType, DatabaseModel, PgCatalog

ENGINE_NAME = "postgresql"
# Large objects travel inside a JSON document's schema line; past this many bytes a JSON backup
# refuses them (the sql format streams any size).
JSON_LARGE_OBJECT_LIMIT = 16 << 20
# Tables reflected per call: SQLAlchemy reads a call's tables in bulk and holds every answer until
# the call ends. At 5,000 tables one call peaked 8 MiB higher (206 MiB RSS for a JSON export, over
# the 200 MiB budget) than batches of 1,000, which cost about 15 % more reflection time there
# (each call scans the schema's catalog again); up to 1,000 tables it is one call, as before.
REFLECT_BATCH = 1000


def reflect_postgresql(conn: Connection, *, failure: str = errors.FALLBACK_FAILED,
                       large_object_data: bool = False, shapes_only: bool = False) -> DatabaseModel:
    """The model of the database behind `conn` (a session with search_path = pg_catalog).

    Raises DumpError(failure, "cannot carry ...") naming every object the script cannot carry;
    with `large_object_data` the large objects' bytes are read into the model (a JSON document
    holds them), up to JSON_LARGE_OBJECT_LIMIT. With `shapes_only` the tables carry only their
    columns and foreign keys (`table_shapes`): enough for a script written from the catalog.
    """
    cur = conn.connection.dbapi_connection.cursor()
    reading = read_catalog(cur)
    if large_object_data:
        reading.refused += _read_large_object_data(cur, reading.catalog)
    if reading.refused:
        raise errors.DumpError(failure, f"{errors.CANNOT_CARRY} {', '.join(reading.refused)}")
    info = catalog.read_table_info(cur)
    extras = catalog.read_extras(cur, info)
    extras.catalog = reading.catalog
    cur.execute("SHOW server_version")
    version = cur.fetchone()[0]
    metadata = table_shapes(cur, info.names) if shapes_only else _reflected(conn, info)
    cur.close()
    return DatabaseModel(dialect=ENGINE_NAME, metadata=metadata, extras=extras, server_version=version)


def _reflected(conn: Connection, info: catalog.TableInfo) -> MetaData:
    """The tables as SQLAlchemy reflects them, with exact types, defaults and flags from the catalog."""
    metadata = MetaData()
    schemas = sorted({schema for schema, _ in info.names.values()})
    for schema in schemas:
        names = [name for table_schema, name in info.names.values() if table_schema == schema]
        for first in range(0, len(names), REFLECT_BATCH):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SAWarning)  # unknown types: replaced by catalog types below
                metadata.reflect(conn, schema=schema, only=names[first:first + REFLECT_BATCH],
                                 postgresql_ignore_search_path=True, resolve_fks=False)
    freeze_reflected_text(metadata)
    for key, table in metadata.tables.items():
        table.indexes.clear()  # from the catalog, exactly as defined
        for column in table.columns:
            column_key = (table.schema, table.name, column.name)
            column.type = CatalogType(info.column_types[column_key])
            column.autoincrement = False  # serial and identity come from the catalog, never SERIAL
            if column.computed is None:
                default = info.column_defaults.get(column_key)
                column.server_default = DefaultClause(literal_column(default), _reflected=True) if default else None
        if key in info.unlogged:
            table._prefixes = ["UNLOGGED"]
        if key in info.partition_keys:
            table.dialect_options["postgresql"]["partition_by"] = info.partition_keys[key]
        for constraint in table.constraints:
            options = constraint.dialect_options["postgresql"] if constraint.dialect_options else None
            if options is not None and options.get("nulls_not_distinct") is False:
                options["nulls_not_distinct"] = None  # the default: no PG15-only syntax in the script
            flags = info.constraint_flags.get((table.schema, table.name, constraint.name or ""))
            if flags and flags[0]:
                constraint.deferrable = True
                constraint.initially = "DEFERRED" if flags[1] else "IMMEDIATE"
    return metadata


def _read_large_object_data(cur: object, catalog: PgCatalog) -> list[str]:
    total = 0
    for large_object in catalog.large_objects:
        chunks = []
        for _, data in large_object_chunks(cur, large_object.oid):
            total += len(data)
            if total > JSON_LARGE_OBJECT_LIMIT:
                return [f"large objects of more than {JSON_LARGE_OBJECT_LIMIT >> 20} MiB in all in a JSON backup"
                        f" ({len(catalog.large_objects)} large objects; the sql format carries any size)"]
            chunks.append(data.hex())
        large_object.data = "".join(chunks)
    return []
