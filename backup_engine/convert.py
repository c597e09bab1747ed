"""JSON backups to SQL: for the source's engine or across engines, streaming, checked first.

`convert_json_to_sql(json_path, sql_path, include_data, dialect)` writes a restorable SQL script
(the same `sqlgen.SqlScriptWriter` the fallback dumps use, so it ends with the engine's end
marker and restores with `postgresql.restore_sql` / `sqlite.restore_sql`).

- PostgreSQL to PostgreSQL: the rows are not decoded in Python at all. Each table's JSON lines
  are copied verbatim into a `COPY pg_temp.bw_json_rows (doc) FROM stdin` block (CSV format with
  quote and delimiter bytes that JSON never holds raw), followed by an `INSERT ... SELECT` that
  lets the server decode each element with the column's own input function
  (`(doc->>i)::type`; arrays through `jsonb_populate_record`). Conversion is a byte copy; a
  value of the wrong type is reported by the server at restore, which then rolls back.
- Any conversion involving SQLite decodes every value in Python (`json_values`), so a value that
  does not fit its column is reported here: "Failed to convert JSON backup to SQL format: file,
  line, table, row, column: what".

Before anything is written the whole document is scanned (`json_format.read_document`): layout,
version, table names against the schema, row counts against the trailer. A truncated or edited
file therefore fails before a byte of SQL exists, and a restore from JSON touches nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Identity, Index, MetaData, PrimaryKeyConstraint, Table, UniqueConstraint
from sqlalchemy.schema import CreateIndex, DefaultClause, ForeignKeyConstraint
from sqlalchemy.sql import literal_column

from backup_engine import errors, json_values, sqlliterals
from backup_engine.artifacts import BackupStore
from backup_engine.dumpinfo import INCLUDE_DATA_MODES, ByteSink, Progress, no_progress
from backup_engine.json_format import JsonBackupReader, conversion_error, model_from_dict, read_document
from backup_engine.sqlgen import CatalogType, CopyData, RowData, SqlScriptWriter, data_columns
from backup_engine.sqlmodel import DatabaseModel, SchemaExtras, SequenceDef

METHOD = "json-conversion"
DIALECTS = ("postgresql", "sqlite")
STAGING = "pg_temp.bw_json_rows"
COPY_BLOCK = 1 << 20


class _TableMap:
    """How a table of the SQL script is filled from the document: its source tables and columns."""

    def __init__(self, sources: list[str], columns: dict[str, str], kinds: dict[str, str]) -> None:
        self.sources = sources  # document table keys (a merged partitioned table has several)
        self.columns = columns  # script column -> document column
        self.kinds = kinds  # script column -> kind
        self.max_id: dict[str, int] = {}
        self.sequences: dict[str, SequenceDef] = {}  # identity columns made from SQLite rowid aliases
        self.floor: int = 0  # sqlite_sequence position of an AUTOINCREMENT table


class JsonScriptWriter(SqlScriptWriter):
    """SqlScriptWriter whose PostgreSQL data may come as staged JSON lines (no Python decoding)."""

    def __init__(self, out: ByteSink, dialect_name: str, reader: JsonBackupReader, model: DatabaseModel,
                 staged: bool, **kwargs: Any) -> None:
        super().__init__(out, dialect_name, **kwargs)
        self.reader = reader
        self.model = model
        self.staged = staged
        self._staging_ready = False
        self._specs = {spec["key"]: spec for spec in reader.schema["tables"]}

    def table_data(self, table: Table, data_for: Any) -> int:
        if not self.staged:
            return super().table_data(table, data_for)
        doc = self.reader.tables.get(table.key)
        if doc is None or doc.rows == 0:
            return 0
        columns = data_columns(table)
        positions = {name: index for index, name in enumerate(doc.columns)}
        kinds = {col["name"]: (col["kind"], col.get("element_kind")) for col in self._specs[table.key]["columns"]}
        missing = [name for name in columns if name not in positions]
        if missing:
            raise conversion_error(f"table {table.key!r}: no values for column(s) {missing}")
        if not self._staging_ready:
            self.statement(f"CREATE TEMPORARY TABLE {STAGING.split('.', 1)[1]} (doc pg_catalog.json)")
            self._staging_ready = True
        self.write(f"COPY {STAGING} (doc) FROM stdin WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');\n")
        for block in self.reader.row_blocks(table.key):
            self.write_bytes(block)
        self.write("\\.\n")
        table_sql = self.table_name(table)
        expressions = []
        for name in columns:
            kind, element = kinds[name]
            spec = table.c[name].type.spec if isinstance(table.c[name].type, CatalogType) else str(table.c[name].type)
            expression = None
            if kind == "array":
                expression = json_values.pg_staging_array_expression("r.doc", positions[name], element, spec)
            expressions.append(expression or json_values.pg_staging_expression(
                "r.doc", positions[name], kind, spec, table_sql, self.preparer.quote(name),
                sqlliterals.pg_string(name)))
        self.statement(f"INSERT INTO {table_sql} ({self.column_list(columns)}) OVERRIDING SYSTEM VALUE\n"
                       f"SELECT {', '.join(expressions)}\n"
                       f"FROM {STAGING} AS s, LATERAL (SELECT s.doc::pg_catalog.jsonb AS doc OFFSET 0) AS r")
        self.statement(f"TRUNCATE {STAGING}")
        self.write("\n")
        self.rows += doc.rows
        return doc.rows

    def footer(self) -> None:
        if self._staging_ready:
            self.statement(f"DROP TABLE {STAGING}")
        super().footer()


# --- cross-engine models -----------------------------------------------------------------------------------
_PG_STRING_DEFAULT = re.compile(r"^'((?:[^']|'')*)'(?:::[\w .\"]+)?$")
_NUMBER = re.compile(r"^\(?'?(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)'?\)?(?:::[\w .\"]+)?$")
_SQLITE_STRING_DEFAULT = re.compile(r"^'((?:[^']|'')*)'$")
_NOW = {"now()", "current_timestamp", "current_timestamp()", "localtimestamp", "('now'::text)::timestamp"}
_TEXTUAL_KINDS = {"text", "enum", "uuid", "interval", "time", "timetz", "date", "timestamp", "timestamptz", "json",
                  "jsonb", "other", "any"}


def _translate_default(text: str | None, kind: str, target: str) -> str | None:
    """A column default that means the same in the other engine, or None (left out)."""
    if text is None:
        return None
    value = text.strip()
    lowered = value.lower()
    if lowered in ("null",):
        return None
    if lowered in _NOW or lowered == "current_timestamp":
        return "CURRENT_TIMESTAMP" if kind in ("timestamp", "timestamptz", "any", "text") else None
    if lowered in ("true", "false"):
        if kind != "boolean":
            return None
        return ("1" if lowered == "true" else "0") if target == "sqlite" else lowered
    number = _NUMBER.match(value)
    if number and "[]" not in value:
        if kind == "boolean" and number.group(1) in ("0", "1"):
            return number.group(1) if target == "sqlite" else ("true" if number.group(1) == "1" else "false")
        return number.group(1) if kind in ("integer", "float", "numeric", "any") else None
    pattern = _PG_STRING_DEFAULT if target == "sqlite" else _SQLITE_STRING_DEFAULT
    string = pattern.match(value)
    if string and "[]" not in value and kind in _TEXTUAL_KINDS:
        return f"'{string.group(1)}'"
    return None


def _target_name(spec: dict[str, Any], target: str) -> tuple[str | None, str]:
    if target == "postgresql":
        return "public", spec["name"]
    schema = spec.get("schema")
    return None, (spec["name"] if schema in (None, "public", "main") else f"{schema}.{spec['name']}")


def cross_engine_model(reader: JsonBackupReader, target: str) -> tuple[DatabaseModel, dict[str, _TableMap]]:
    """The document's schema as the nearest faithful model for the other engine (docs/FORMATS.md)."""
    schema = reader.schema
    source = schema["dialect"]
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
    maps: dict[str, _TableMap] = {}
    model_extras = SchemaExtras()
    tables: dict[str, Table] = {}
    for key, spec in specs.items():
        if root(key) != key:
            continue  # a partition: its rows go into the table at the root of its tree
        schema_name, name = _target_name(spec, target)
        columns, column_map, kinds = [], {}, {}
        identity_columns: dict[str, SequenceDef] = {}
        pk = (spec.get("primary_key") or {}).get("columns") or []
        for col in spec["columns"]:
            if col.get("hidden") or (col.get("generated") and col["name"] not in spec["row_columns"]):
                continue
            kind = col["kind"]
            if target == "sqlite":
                type_text = json_values.sqlite_type_for(kind, col["type"])
                if kind == "integer" and pk == [col["name"]]:
                    type_text = "INTEGER"  # the rowid alias: new rows keep getting keys
            else:
                type_text = json_values.pg_type_for(kind, col["type"])
            args: list[Any] = []
            rowid_alias = (source == "sqlite" and target == "postgresql" and pk == [col["name"]] and kind == "integer"
                           and bool(col.get("integer")))
            if rowid_alias:
                args.append(Identity(always=False))
            column = Column(col["name"], CatalogType(type_text, integer=type_text == "INTEGER"), *args,
                            nullable=bool(col.get("nullable", True)) and col["name"] not in pk,
                            comment=col.get("comment") if target == "postgresql" else None)
            column.autoincrement = False
            default = None if col.get("generated") else _translate_default(col.get("default"), kind, target)
            if default is not None and not rowid_alias:
                column.server_default = DefaultClause(literal_column(default))
            columns.append(column)
            column_map[col["name"]] = col["name"]
            kinds[col["name"]] = kind
            if rowid_alias:
                sequence = SequenceDef(schema="public", name=f"{name}_{col['name']}_seq", identity=True,
                                       owned_by=["public", name, col["name"]])
                model_extras.sequences.append(sequence)
                identity_columns[col["name"]] = sequence
        if target == "postgresql" and not columns:
            continue
        table = Table(name, metadata, *columns, schema=schema_name, comment=spec.get("comment")
                      if target == "postgresql" else None)
        if pk and all(c in column_map for c in pk):
            table.append_constraint(PrimaryKeyConstraint(*pk))
        for uq in spec.get("unique", []):
            if all(c in column_map for c in uq["columns"]):
                table.append_constraint(UniqueConstraint(*uq["columns"]))
        tables[key] = table
        leaves = [k for k in specs if root(k) == key and k in reader.tables] or ([key] if key in reader.tables else [])
        maps[table.key] = _TableMap(sources=leaves, columns=column_map, kinds=kinds)
        maps[table.key].sequences = identity_columns
        maps[table.key].floor = next((int(seq) for seq_name, seq in extras.get("sqlite_sequence", [])
                                      if seq_name == spec["name"]), 0)
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
    from backup_engine.sqlgen import make_dialect

    dialect = make_dialect(target)
    used_names: set[str] = set()
    for index in schema.get("portable_indexes", []):
        table = tables.get(index["table"])
        if table is None or not all(c in table.c for c in index["columns"]):
            continue
        source_schema = specs[index["table"]].get("schema")
        name = index["name"] if source_schema in (None, "public", "main") else f"{source_schema}.{index['name']}"
        if name in used_names:
            continue
        used_names.add(name)
        statement = CreateIndex(Index(name, *[table.c[c] for c in index["columns"]], unique=index["unique"]))
        model_extras.raw_post_data.append(str(statement.compile(dialect=dialect)).strip())
        table.indexes.clear()
    model_extras.display_names = {table.key: (f"{table.schema}.{table.name}" if table.schema else table.name)
                                  for table in tables.values()}
    return DatabaseModel(dialect=target, metadata=metadata, extras=model_extras,
                         server_version=str(reader.header.get("server_version", ""))), maps


# --- data sources --------------------------------------------------------------------------------------------
def _fail_value(reader: JsonBackupReader, key: str, number: int, column: str, exc: Exception) -> errors.ConversionError:
    line = reader.tables[key].first_line + number - 1
    return reader.fail(line, f"table {key!r}, row {number}, column {column!r}: {exc}")


def _sqlite_rows(reader: JsonBackupReader, mapping: _TableMap, columns: list[str],
                 natural: bool) -> Iterator[list[Any]]:
    for key in mapping.sources:
        positions = {name: i for i, name in enumerate(reader.tables[key].columns)}
        kinds = {col["name"]: col["kind"] for col in _spec(reader, key)["columns"]}
        picks = []
        for name in columns:
            doc_name = mapping.columns.get(name, name)
            if doc_name not in positions:
                raise conversion_error(f"table {key!r}: no values for column {name!r}")
            picks.append((positions[doc_name], kinds.get(doc_name, "any"), name))
        for number, values in reader.rows(key):
            row = []
            for position, kind, name in picks:
                try:
                    row.append(json_values.to_sqlite(values[position], kind, natural))
                except (ValueError, ArithmeticError, RecursionError) as exc:
                    raise _fail_value(reader, key, number, name, exc) from None
            yield row


def _spec(reader: JsonBackupReader, key: str) -> dict[str, Any]:
    return next(spec for spec in reader.schema["tables"] if spec["key"] == key)


def _copy_from_sqlite(reader: JsonBackupReader, mapping: _TableMap, columns: list[str]) -> Any:
    def copy_to(file: Any) -> None:
        for key in mapping.sources:
            positions = {name: i for i, name in enumerate(reader.tables[key].columns)}
            kinds = {col["name"]: col["kind"] for col in _spec(reader, key)["columns"]}
            picks = [(positions[name], kinds.get(name, "any"), name) for name in columns]
            for number, values in reader.rows(key):
                fields = []
                for position, kind, name in picks:
                    try:
                        value = json_values.to_sqlite(values[position], kind, True)
                        if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
                            current = mapping.max_id.get(name)
                            if current is None or value > current:
                                mapping.max_id[name] = value
                        fields.append(json_values.sqlite_value_to_copy(value, kind))
                    except (ValueError, ArithmeticError, RecursionError) as exc:
                        raise _fail_value(reader, key, number, name, exc) from None
                file.write(("\t".join(fields) + "\n").encode("utf-8"))
        for name, sequence in mapping.sequences.items():
            position = max(mapping.max_id.get(name, 0), mapping.floor)
            if position > 0:
                sequence.last_value, sequence.is_called = position, True

    return copy_to


def write_sql(reader: JsonBackupReader, out: ByteSink, dialect: str | None = None, include_data: str | None = None,
              progress: Progress = no_progress) -> dict[str, Any]:
    """Write the SQL script of a scanned document into `out`; returns what was written."""
    source = reader.schema["dialect"]
    dialect = dialect or source
    if dialect not in DIALECTS:
        raise errors.InvalidRequest(errors.UNSUPPORTED_DIALECT, f"{dialect!r} (choose from {', '.join(DIALECTS)})")
    document_mode = reader.header.get("include_data")
    include_data = include_data or document_mode
    if include_data not in INCLUDE_DATA_MODES:
        raise errors.InvalidRequest(errors.UNKNOWN_INCLUDE_DATA, repr(include_data))
    if document_mode == "schema" and include_data != "schema":
        raise conversion_error(f"{reader.path.name}: the backup holds no data (include_data=schema)")
    if document_mode == "data" and include_data != "data":
        raise conversion_error(f"{reader.path.name}: the backup holds no schema (include_data=data)")
    if dialect == source:
        model = model_from_dict(reader.schema)
        maps = {key: _TableMap(sources=[key] if key in reader.tables else [], columns={}, kinds={})
                for key in model.metadata.tables}
    else:
        model, maps = cross_engine_model(reader, dialect)
    staged = dialect == "postgresql" and source == "postgresql"
    writer = JsonScriptWriter(out, dialect, reader, model, staged, reserved_words=model.extras.reserved_words,
                              progress=progress)

    def data_for(table: Table, columns: list[str]) -> CopyData | RowData:
        mapping = maps[table.key]
        if dialect == "sqlite":
            return RowData(columns=columns, rows=_sqlite_rows(reader, mapping, columns, natural=source == "sqlite"))
        return CopyData(columns=columns, copy_to=_copy_from_sqlite(reader, mapping, columns))

    try:
        table_rows = writer.write_script(model, include_data, data_for if include_data != "schema" else None)
    except errors.BackupError:
        raise
    except Exception as exc:  # noqa: BLE001 - a schema the writer cannot render is a conversion failure
        raise conversion_error(f"{reader.path.name}: {type(exc).__name__}: {exc}") from exc
    return {"dialect": dialect, "source_dialect": source, "include_data": include_data,
            "server_version": str(reader.header.get("server_version", "")), "table_rows": table_rows,
            "tables": len(table_rows), "rows": sum(table_rows.values())}


def convert_json_to_sql(json_path: Path | str, sql_path: Path | str, include_data: str | None = None,
                        dialect: str | None = None, progress: Progress = no_progress) -> dict[str, Any]:
    """Convert the JSON backup at `json_path` into a SQL script at `sql_path` (created or replaced).

    Raises ConversionError("Failed to convert JSON backup to SQL format: <what and where>").
    """
    reader = read_document(Path(json_path))
    with open(sql_path, "wb", buffering=COPY_BLOCK) as handle:
        return write_sql(reader, handle, dialect, include_data, progress)


def convert_backup(store: BackupStore, backup_filename: str, dialect: str | None = None, *,
                   progress: Progress = no_progress) -> dict[str, Any]:
    """Convert a published JSON backup into a published `.sql` beside it; returns the new manifest.

    The JSON's checksum is verified first; the manifest names the source under `converted_from`.
    """
    started = time.monotonic()
    path, manifest = store.verified(backup_filename)
    if manifest.get("format") != "json":
        raise errors.InvalidRequest(errors.UNKNOWN_FORMAT, f"{path.name} is a {manifest.get('format')!r} backup, "
                                                           "not JSON")
    reader = read_document(path)
    with store.pending("sql") as artifact:
        result = write_sql(reader, artifact.stream(), dialect, None, progress)
        prefix = path.name.split("_db_backup_", 1)[0] if "_db_backup_" in path.name else manifest.get("target")
        record = {
            "format": "sql", "target": manifest.get("target"), "dialect": result["dialect"],
            "server_version": manifest.get("server_version"), "method": METHOD,
            "include_data": result["include_data"], "tables": result["tables"], "rows": result["rows"],
            "table_rows": result["table_rows"], "duration_s": round(time.monotonic() - started, 3),
            "converted_from": path.name, "source_dialect": result["source_dialect"],
        }
        return store.publish(artifact, prefix or "backup", record)


def create_json_backup_with_twin(target: Any, store: BackupStore, *, include_data: str = "full",
                                 progress: Progress = no_progress, **kwargs: Any) -> dict[str, Any]:
    """A JSON backup of `target` and its `.sql` twin; the JSON manifest lists the twin under `companions`."""
    from backup_engine.backup import create_backup

    manifest = create_backup(target, store, format="json", include_data=include_data, progress=progress, **kwargs)
    return with_companion(manifest, convert_backup(store, manifest["backup_filename"], progress=progress))


def with_companion(manifest: dict[str, Any], twin: dict[str, Any]) -> dict[str, Any]:
    """A JSON backup's manifest naming its `.sql` twin under `companions`."""
    return {**manifest, "companions": [*manifest.get("companions", []), twin["backup_filename"]]}


def sql_for_restore(path: Path, dialect: str, artifact: Any) -> dict[str, Any]:
    """Convert the (verified) JSON backup at `path` into `artifact` (a pending temp file) for a restore."""
    reader = read_document(path)
    result = write_sql(reader, artifact.stream(), dialect, None)
    artifact.finish()
    return result


__all__ = ["convert_backup", "convert_json_to_sql", "create_json_backup_with_twin", "sql_for_restore", "with_companion",
           "write_sql"]
