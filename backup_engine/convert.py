"""JSON backups to SQL: for the source's engine or any other, streaming, checked first.

The document is rebuilt as a model (`formats.json_schema`) for its own engine, or mapped through
the portable column kinds for another (`cross_engine_model`: each engine says which type a kind
becomes, how a default reads and where a table goes), and written by the target engine's script
writer, so the script ends with that engine's end marker and restores like its own dumps.

Before anything is written the whole document is scanned (`json_document.read_document`):
layout, version, table names against the schema, row counts against the trailer. A truncated or
edited file therefore fails before a byte of SQL exists, and a restore from JSON touches nothing.
The conversion of an upload stays an upload: its manifest keeps `origin: upload`.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Column, Identity, Index, MetaData, PrimaryKeyConstraint, Table, UniqueConstraint
from sqlalchemy.schema import CreateIndex, DefaultClause, ForeignKeyConstraint
from sqlalchemy.sql import literal_column

from backup_engine import errors
from backup_engine.dumpinfo import INCLUDE_DATA_MODES, ByteSink, Progress, no_progress
from backup_engine.engines.base import Engine, TableMap
from backup_engine.engines.collector import frozen_gc, paused_gc
from backup_engine.formats import FORMATS
from backup_engine.formats.json_document import JsonBackupReader, conversion_error, read_document
from backup_engine.formats.json_schema import model_from_dict
from backup_engine.formats.model import CatalogType, DatabaseModel, SchemaExtras, SequenceDef
from backup_engine.formats.sql_script import CopyData, RowData, ScriptTable
from backup_engine.registry import engine_class
from backup_engine.storage.catalogue import Catalogue, Entry, prefix_of

METHOD = "json-conversion"


def cross_engine_model(reader: JsonBackupReader, engine: type[Engine]) -> tuple[DatabaseModel, dict[str, TableMap]]:
    """The document's schema as the nearest faithful model for another engine (docs/FORMATS.md)."""
    schema = reader.schema
    source = engine_class(schema["dialect"])
    extras = schema.get("extras") or {}
    specs = {spec["key"]: spec for spec in schema["tables"]}
    parents = {p["table"]: p["parent"] for p in extras.get("partitions", [])}

    def root(key: str) -> str:
        seen = set()
        while key in parents and key not in seen:
            seen.add(key)
            key = parents[key]
        return key

    metadata = MetaData()
    maps: dict[str, TableMap] = {}
    model_extras = SchemaExtras()
    tables: dict[str, Table] = {}
    for key, spec in specs.items():
        if root(key) != key:
            continue  # a partition: its rows go into the table at the root of its tree
        schema_name, name = engine.place_table(spec.get("schema"), spec["name"])
        columns, column_map, kinds = [], {}, {}
        identity_columns: dict[str, SequenceDef] = {}
        pk = (spec.get("primary_key") or {}).get("columns") or []
        for col in spec["columns"]:
            if col.get("hidden") or (col.get("generated") and col["name"] not in spec["row_columns"]):
                continue
            kind = col["kind"]
            type_text = engine.column_type(kind, col["type"], sole_key=pk == [col["name"]])
            args: list[Any] = []
            # An INTEGER key that was a rowid alias keeps handing out keys as an identity column.
            rowid_alias = (engine.identity_for_rowid_alias and pk == [col["name"]] and kind == "integer"
                           and bool(col.get("integer")))
            if rowid_alias:
                args.append(Identity(always=False))
            column = Column(col["name"], CatalogType(type_text, integer=type_text == "INTEGER"), *args,
                            nullable=bool(col.get("nullable", True)) and col["name"] not in pk,
                            comment=col.get("comment") if engine.carries_comments else None)
            column.autoincrement = False
            default = None if col.get("generated") else engine.render_default(
                source.portable_default(col.get("default")), kind)
            if default is not None and not rowid_alias:
                column.server_default = DefaultClause(literal_column(default))
            columns.append(column)
            column_map[col["name"]] = col["name"]
            kinds[col["name"]] = kind
            if rowid_alias:
                sequence = SequenceDef(schema=schema_name, name=f"{name}_{col['name']}_seq", identity=True,
                                       owned_by=[schema_name, name, col["name"]], exact_name=False)
                model_extras.sequences.append(sequence)
                identity_columns[col["name"]] = sequence
        if engine.skips_empty_tables and not columns:
            continue
        table = Table(name, metadata, *columns, schema=schema_name,
                      comment=spec.get("comment") if engine.carries_comments else None)
        if pk and all(c in column_map for c in pk):
            table.append_constraint(PrimaryKeyConstraint(*pk))
        for uq in spec.get("unique", []):
            if all(c in column_map for c in uq["columns"]):
                table.append_constraint(UniqueConstraint(*uq["columns"]))
        tables[key] = table
        leaves = [k for k in specs if root(k) == key and k in reader.tables] or ([key] if key in reader.tables else [])
        maps[table.key] = TableMap(sources=leaves, columns=column_map, kinds=kinds, sequences=identity_columns,
                                   floor=next((int(seq) for seq_name, seq in extras.get("sqlite_sequence", [])
                                               if seq_name == spec["name"]), 0))
    for key, spec in specs.items():
        table = tables.get(key)
        if table is None:
            continue
        for fk in spec.get("foreign_keys", []):
            referred = tables.get(root(fk["referred_table"]))
            if referred is None or not all(c in table.c for c in fk["columns"]) \
                    or not all(c in referred.c for c in fk["referred_columns"]):
                continue
            table.append_constraint(ForeignKeyConstraint(
                fk["columns"], [referred.c[c] for c in fk["referred_columns"]], name=fk.get("name"),
                ondelete=fk.get("ondelete"), onupdate=fk.get("onupdate")))
    dialect = engine.sql_dialect()
    used_names: set[str] = set()
    for index in schema.get("portable_indexes", []):
        table = tables.get(index["table"])
        if table is None or not all(c in table.c for c in index["columns"]):
            continue
        source_schema = specs[index["table"]].get("schema")
        _, name = engine.place_table(source_schema, index["name"])
        if name in used_names:
            continue
        used_names.add(name)
        statement = CreateIndex(Index(name, *[table.c[c] for c in index["columns"]], unique=index["unique"]))
        model_extras.raw_post_data.append(str(statement.compile(dialect=dialect)).strip())
        table.indexes.clear()
    return DatabaseModel(dialect=engine.name, metadata=metadata, extras=model_extras,
                         server_version=str(reader.header.get("server_version", ""))), maps


def write_sql(reader: JsonBackupReader, out: ByteSink, dialect: str | None = None, include_data: str | None = None,
              progress: Progress = no_progress, *, trusted: bool = True) -> dict[str, Any]:
    """Write the SQL script of a scanned document into `out`; returns what was written. The schema
    of a document that is not ours is vetted by the target engine first."""
    source = engine_class(reader.schema["dialect"])
    engine = engine_class(dialect or source.name)
    if not trusted:
        reader.schema = engine.vet_json_schema(reader.schema)
    document_mode = reader.header.get("include_data")
    include_data = include_data or document_mode
    if include_data not in INCLUDE_DATA_MODES:
        raise errors.InvalidRequest(errors.UNKNOWN_INCLUDE_DATA, repr(include_data))
    if document_mode == "schema" and include_data != "schema":
        raise conversion_error(f"{reader.name}: the backup holds no data (include_data=schema)")
    if document_mode == "data" and include_data != "data":
        raise conversion_error(f"{reader.name}: the backup holds no schema (include_data=data)")
    with frozen_gc():  # the model lives through the script
        with paused_gc():  # thousands of tables' objects, all kept: the collector's passes would only slow it
            if engine is source:
                model = model_from_dict(reader.schema)
                keys = [shape.key for shape in model.table_shapes or []] or list(model.metadata.tables)
                maps = {key: TableMap(sources=[key] if key in reader.tables else [], columns={}, kinds={})
                        for key in keys}
            else:
                model, maps = cross_engine_model(reader, engine)
        writer = engine.script_writer(out, model, progress)

        def data_for(table: ScriptTable, columns: list[str]) -> CopyData | RowData:
            return engine.json_rows(reader, maps[table.key], columns, source.natural_json)

        try:
            table_rows = writer.write_script(model, include_data, data_for if include_data != "schema" else None)
        except errors.BackupError:
            raise
        except Exception as exc:  # noqa: BLE001 - a schema the writer cannot render is a conversion failure
            raise conversion_error(f"{reader.name}: {type(exc).__name__}: {exc}") from exc
    return {"dialect": engine.name, "source_dialect": source.name, "include_data": include_data,
            "server_version": str(reader.header.get("server_version", "")), "table_rows": table_rows,
            "tables": len(table_rows), "rows": sum(table_rows.values())}


def convert_backup(catalogue: Catalogue, backup_filename: str, dialect: str | None = None, *,
                   progress: Progress = no_progress) -> Entry:
    """Convert a published JSON backup into a published `.sql` beside it.

    The JSON is read through the stages into scratch space and checked against its manifest
    first; the new manifest names it under `converted_from` and keeps its origin (an upload's
    conversion is an upload; so is the conversion of a file whose manifest is not ours).
    """
    started = time.monotonic()
    entry = catalogue.entry(backup_filename)
    manifest = entry.manifest
    if manifest.format != "json":
        raise errors.InvalidRequest(errors.UNKNOWN_FORMAT, f"{entry.name} is a {manifest.format!r} backup, not JSON")
    if dialect is not None:
        engine_class(dialect)  # an unknown dialect is refused before any work
    catalogue.readable(entry)
    with catalogue.source(entry).local_file() as path:
        reader = read_document(path, entry.name)
        prefix = prefix_of(entry.name) or manifest.prefix or manifest.target
        with catalogue.new_artifact(FORMATS["sql"], prefix, manifest.created) as artifact:
            result = write_sql(reader, artifact, dialect, None, progress, trusted=entry.trusted)
            return artifact.publish(
                format="sql", target=manifest.target, dialect=result["dialect"],
                server_version=manifest.server_version, method=METHOD, include_data=result["include_data"],
                tables=result["tables"], rows=result["rows"], table_rows=result["table_rows"],
                duration_s=round(time.monotonic() - started, 3), converted_from=entry.name,
                source_dialect=result["source_dialect"], origin="worker" if entry.trusted else "upload")
