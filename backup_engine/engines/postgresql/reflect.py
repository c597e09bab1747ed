"""A live PostgreSQL database as a `DatabaseModel`: SQLAlchemy reflection plus the catalog.

Reflection gives tables, columns, keys and constraints in a form SQLAlchemy can order and
compile; the catalog (`catalog.py`) gives what reflection leaves out or gets approximately
(exact types, defaults, partitioning, deferrability, and every other kind of object).
"""

from __future__ import annotations

import warnings

from sqlalchemy import MetaData, literal_column
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SAWarning
from sqlalchemy.schema import DefaultClause

from backup_engine.engines.postgresql import catalog
from backup_engine.engines.reflection import freeze_reflected_text
from backup_engine.formats.model import CatalogType, DatabaseModel

ENGINE_NAME = "postgresql"


def reflect_postgresql(conn: Connection) -> DatabaseModel:
    """The model of the database behind `conn` (a session with search_path = pg_catalog)."""
    cur = conn.connection.dbapi_connection.cursor()
    info = catalog.read_table_info(cur)
    extras = catalog.read_extras(cur, info)
    cur.execute("SHOW server_version")
    version = cur.fetchone()[0]
    metadata = MetaData()
    schemas = sorted({key.rsplit(".", 1)[0] for key in info.kinds} | {"public"} | set(extras.schemas))
    for schema in schemas:
        names = [key.split(".", 1)[1] for key in info.kinds if key.split(".", 1)[0] == schema]
        if names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SAWarning)  # unknown types: replaced by catalog types below
                metadata.reflect(conn, schema=schema, only=names, postgresql_ignore_search_path=True,
                                 resolve_fks=False)
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
    cur.close()
    return DatabaseModel(dialect=ENGINE_NAME, metadata=metadata, extras=extras, server_version=version)
