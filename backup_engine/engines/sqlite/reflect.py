"""A SQLite database as a `DatabaseModel`: SQLAlchemy reflection plus SQLite's own CREATE texts."""

from __future__ import annotations

import sqlite3
import warnings

from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SAWarning

from backup_engine import errors
from backup_engine.engines.collector import paused_gc
from backup_engine.engines.reflection import freeze_reflected_text
from backup_engine.engines.sqlite import files
from backup_engine.formats.model import CatalogType, DatabaseModel, SchemaExtras

ENGINE_NAME = "sqlite"


def inventory(raw: sqlite3.Connection) -> list[str]:
    """What a script cannot carry, named: a virtual table whose module this SQLite lacks (its rows
    cannot be read, nor the table created again). Every other object (tables, virtual tables such
    as FTS5 and R*Tree with their rowids, indexes, views, triggers) is carried verbatim."""
    refused = []
    for kind, name, _, sql in files.schema_objects(raw):
        if kind != "table" or not sql.lstrip()[:30].upper().replace(" ", "").startswith("CREATEVIRTUALTABLE"):
            continue
        try:
            raw.execute(f"SELECT 1 FROM {files.quote_identifier(name)} LIMIT 0").fetchall()  # noqa: S608
        except sqlite3.Error as exc:
            refused.append(f"virtual table {name} ({exc})")
    return refused


@paused_gc()  # thousands of tables' reflected objects, all kept: the collector's passes would only slow it
def reflect_sqlite(conn: Connection, *, failure: str = errors.FALLBACK_FAILED) -> DatabaseModel:
    """The model of a SQLite database: MetaData for order and columns, and the CREATE statements
    SQLite keeps verbatim (tables, indexes, views, triggers), which are exact where reflection is not.

    Implicit rowids are kept (other data may refer to them; a full-text table's rowid links it to
    its content): a table with a rowid but no INTEGER PRIMARY KEY column, and every virtual table
    with a rowid, gets it dumped under the first free name of rowid/_rowid_/oid. Which objects are
    the user's (not internal, not a virtual table's shadow tables) is `files.schema_objects`.
    """
    raw: sqlite3.Connection = conn.connection.dbapi_connection
    refused = inventory(raw)
    if refused:
        raise errors.DumpError(failure, f"{errors.CANNOT_CARRY} {', '.join(refused)}")
    extras = SchemaExtras()
    objects = files.schema_objects(raw)
    kinds = files.table_kinds(raw)
    table_names = files.user_table_names(raw)
    metadata = MetaData()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # unknown declared types: replaced just below
        metadata.reflect(conn, only=table_names, resolve_fks=False)
    freeze_reflected_text(metadata)
    for kind, name, _, sql in objects:
        if kind == "table" and name in metadata.tables:
            extras.table_ddl[name] = sql
        elif kind in ("index", "view", "trigger"):
            extras.raw_post_data.append(sql)
    for table in metadata.tables.values():
        table.indexes.clear()  # verbatim CREATE INDEX statements instead
        declared = {row[1]: (row[2], row[5], row[6]) for row in
                    raw.execute("SELECT * FROM pragma_table_xinfo(?)", (table.name,)).fetchall()}
        pk_columns = [name for name, (_, pk, _) in declared.items() if pk]
        for column in table.columns:
            spec, _, hidden = declared[column.name]
            column.type = CatalogType(spec, integer=spec.upper() == "INTEGER")
            if not column.type.integer:
                column.autoincrement = False
            if hidden:
                column.info["hidden"] = True
        kind, without_rowid = kinds[table.name]
        aliased = len(pk_columns) == 1 and declared[pk_columns[0]][0].upper() == "INTEGER"
        if not without_rowid and (kind == "virtual" or not aliased):
            taken = {name.lower() for name in declared}
            table.info["rowid"] = next((n for n in ("rowid", "_rowid_", "oid") if n not in taken), None)
    if raw.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        extras.sqlite_sequence = [list(row) for row in raw.execute("SELECT name, seq FROM sqlite_sequence")]
    for pragma in ("user_version", "application_id"):
        extras.pragmas[pragma] = int(raw.execute(f"PRAGMA {pragma}").fetchone()[0])
    extras.display_names = {name: name for name in metadata.tables}
    return DatabaseModel(dialect=ENGINE_NAME, metadata=metadata, extras=extras, server_version=sqlite3.sqlite_version)
