"""The JSON backup document: its schema part, its writer and its streaming reader.

The document is one JSON object in a fixed line layout (docs/FORMATS.md), one row per line:

    {"format": "backup-worker-json", "version": 1,
    "header": {...},
    "schema": {...},
    "data": [
    {"table": "public.t", "columns": ["id", "name"], "rows": [
    [1, "a"],
    [2, "b"]
    ]},
    {"table": "public.u", "columns": ["id"], "rows": [
    ]}
    ],
    "trailer": {"tables": 2, "rows": 2, "table_rows": {"public.t": 2, "public.u": 0}}}

Any JSON parser reads it whole; the worker reads it line by line instead (`JsonBackupReader`):
the header and schema lines are parsed as JSON values, and the rows of a table are streamed
from their byte range, so memory never grows with the data. A first pass checks the layout and
counts rows against the trailer before anything is converted, so a cut-off or edited file is
refused with the line where it goes wrong.

PostgreSQL rows are rendered by the server (`COPY (SELECT json_build_array(...)) TO STDOUT`,
one raw JSON array per line) and moved in 1 MiB blocks; SQLite rows are encoded in Python.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import (
    CheckConstraint,
    Column,
    Computed,
    ForeignKeyConstraint,
    Identity,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy.schema import DefaultClause

from backup_engine import errors, json_values
from backup_engine.dumpinfo import ByteSink, DumpResult, Progress, no_progress
from backup_engine.sqlgen import CatalogType, data_columns
from backup_engine.sqlite import quote_identifier
from backup_engine.sqlmodel import DatabaseModel, extras_from_dict, extras_to_dict
from backup_engine.targets import Target

FORMAT_NAME = "backup-worker-json"
FORMAT_VERSION = 1
METHOD_PG = "postgresql-json"
METHOD_SQLITE = "sqlite-json"
BLOCK = 1 << 20
SQLITE_FETCH_ROWS = 1000
FIRST_LINE = re.compile(rb'^\{"format": ("(?:[^"\\]|\\.)*"), "version": (-?\d+),\n$')
ROWS_SUFFIX = b', "rows": [\n'
CONTROL_BYTES = re.compile(rb"[\x00-\x09\x0b-\x1f]")
# The session pg_dump uses, plus hex bytea: the texts the server renders do not depend on settings.
def conversion_error(detail: str) -> errors.ConversionError:
    return errors.ConversionError(errors.JSON_CONVERSION_FAILED, detail)


# --- the schema: DatabaseModel <-> plain data -------------------------------------------------------------
def _default_text(column: Column) -> str | None:
    default = column.server_default
    if isinstance(default, DefaultClause):
        arg = default.arg
        return arg if isinstance(arg, str) else getattr(arg, "text", None) or str(arg)
    return None


def _spec(column: Column) -> str:
    return column.type.spec if isinstance(column.type, CatalogType) else str(column.type)


def _clause_text(clause: Any) -> str:
    return getattr(clause, "text", None) or str(clause)


def _identity(column: Column) -> dict[str, Any] | None:
    ident = column.identity
    if ident is None:
        return None
    return {name: getattr(ident, name) for name in ("always", "on_null", "start", "increment", "minvalue",
                                                    "maxvalue", "cycle", "cache")}


def _fk_dict(fk: ForeignKeyConstraint) -> dict[str, Any]:
    return {"name": fk.name, "columns": [element.parent.name for element in fk.elements],
            "referred_table": fk.elements[0].column.table.key,
            "referred_columns": [element.column.name for element in fk.elements],
            "ondelete": fk.ondelete, "onupdate": fk.onupdate, "match": fk.match,
            "deferrable": fk.deferrable, "initially": fk.initially}


def table_to_dict(table: Table, kinds: dict[str, tuple[str, str | None]], row_columns: list[str],
                  display_name: str) -> dict[str, Any]:
    columns = []
    for column in table.columns:
        kind, element = kinds.get(column.name, ("other", None))
        columns.append({
            "name": column.name, "type": _spec(column), "kind": kind, "element_kind": element,
            "nullable": bool(column.nullable), "default": _default_text(column),
            "generated": ({"sqltext": _clause_text(column.computed.sqltext), "persisted": column.computed.persisted}
                          if column.computed is not None else None),
            "identity": _identity(column), "comment": column.comment,
            "hidden": bool(column.info.get("hidden")),
            "integer": bool(getattr(column.type, "integer", False)),
        })
    unique, checks, fks = [], [], []
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            options = constraint.dialect_options["postgresql"] if constraint.dialect_options else {}
            unique.append({"name": constraint.name, "columns": [c.name for c in constraint.columns],
                           "deferrable": constraint.deferrable, "initially": constraint.initially,
                           "nulls_not_distinct": bool(options.get("nulls_not_distinct"))})
        elif isinstance(constraint, CheckConstraint):
            checks.append({"name": constraint.name, "sqltext": _clause_text(constraint.sqltext)})
        elif isinstance(constraint, ForeignKeyConstraint):
            fks.append(_fk_dict(constraint))
    pk = table.primary_key
    return {
        "key": table.key, "schema": table.schema, "name": table.name, "display_name": display_name,
        "comment": table.comment, "prefixes": list(getattr(table, "_prefixes", []) or []),
        "partition_by": (table.dialect_options["postgresql"].get("partition_by")
                         if "postgresql" in table.dialect_options else None),
        "rowid": table.info.get("rowid"),
        "columns": columns,
        "primary_key": ({"name": pk.name, "columns": [c.name for c in pk.columns],
                         "deferrable": pk.deferrable, "initially": pk.initially} if pk.columns else None),
        "foreign_keys": fks, "unique": unique, "checks": checks,
        "row_columns": row_columns,
    }


def model_to_dict(model: DatabaseModel, kinds: dict[str, dict[str, tuple[str, str | None]]],
                  row_columns: dict[str, list[str]], indexes: list[dict[str, Any]]) -> dict[str, Any]:
    tables = [table_to_dict(table, kinds.get(key, {}), row_columns[key],
                            model.extras.display_names.get(key) or key)
              for key, table in model.metadata.tables.items()]
    return {"dialect": model.dialect, "tables": tables, "portable_indexes": indexes,
            "extras": extras_to_dict(model.extras)}


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise conversion_error(f"schema: {what} must be a string, got {type(value).__name__}")
    return value


def _identity_from(data: dict[str, Any] | None) -> Identity | None:
    if not data:
        return None
    return Identity(**{k: v for k, v in data.items() if k in ("always", "on_null", "start", "increment", "minvalue",
                                                               "maxvalue", "cycle", "cache")})


def model_from_dict(schema: dict[str, Any]) -> DatabaseModel:
    """Rebuild the source's model (same dialect) from the document's schema."""
    try:
        dialect = _str(schema["dialect"], "dialect")
        metadata = MetaData()
        specs = schema["tables"]
        for spec in specs:
            columns = []
            for col in spec["columns"]:
                kind = col.get("kind")
                if kind not in json_values.KINDS:
                    raise conversion_error(f"schema: table {spec.get('key')!r} column {col.get('name')!r}: "
                                           f"unknown kind {kind!r}")
                args: list[Any] = []
                if col.get("generated"):
                    args.append(Computed(literal_column(col["generated"]["sqltext"]),
                                         persisted=col["generated"].get("persisted")))
                ident = _identity_from(col.get("identity"))
                if ident is not None:
                    args.append(ident)
                column = Column(_str(col["name"], "column name"),
                                CatalogType(_str(col["type"], "column type"), integer=bool(col.get("integer"))),
                                *args, nullable=bool(col.get("nullable", True)), comment=col.get("comment"))
                column.autoincrement = False  # serial and identity come from the schema, never SERIAL
                if col.get("default") is not None and not col.get("generated"):
                    column.server_default = DefaultClause(literal_column(_str(col["default"], "default")),
                                                          _reflected=True)
                if col.get("hidden"):
                    column.info["hidden"] = True
                columns.append(column)
            kwargs: dict[str, Any] = {}
            if spec.get("partition_by"):
                kwargs["postgresql_partition_by"] = spec["partition_by"]
            table = Table(_str(spec["name"], "table name"), metadata, *columns, schema=spec.get("schema"),
                          comment=spec.get("comment"), prefixes=list(spec.get("prefixes") or []), **kwargs)
            if spec.get("rowid"):
                table.info["rowid"] = spec["rowid"]
            pk = spec.get("primary_key")
            if pk:
                table.append_constraint(PrimaryKeyConstraint(*pk["columns"], name=pk.get("name"),
                                                             deferrable=pk.get("deferrable"),
                                                             initially=pk.get("initially")))
            for uq in spec.get("unique", []):
                options = {"postgresql_nulls_not_distinct": True} if uq.get("nulls_not_distinct") else {}
                table.append_constraint(UniqueConstraint(*uq["columns"], name=uq.get("name"),
                                                         deferrable=uq.get("deferrable"),
                                                         initially=uq.get("initially"), **options))
            for check in spec.get("checks", []):
                table.append_constraint(CheckConstraint(literal_column(_str(check["sqltext"], "check")),
                                                        name=check.get("name")))
        for spec in specs:
            table = metadata.tables[spec["key"]]
            for fk in spec.get("foreign_keys", []):
                referred = metadata.tables.get(fk["referred_table"])
                if referred is None:
                    raise conversion_error(f"schema: foreign key {fk.get('name')!r} refers to an unknown table")
                table.append_constraint(ForeignKeyConstraint(
                    fk["columns"], [referred.c[name] for name in fk["referred_columns"]], name=fk.get("name"),
                    ondelete=fk.get("ondelete"), onupdate=fk.get("onupdate"), match=fk.get("match"),
                    deferrable=fk.get("deferrable"), initially=fk.get("initially")))
        extras = extras_from_dict(schema.get("extras") or {})
        return DatabaseModel(dialect=dialect, metadata=metadata, extras=extras,
                             server_version=str(schema.get("server_version", "")))
    except errors.BackupError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise conversion_error(f"schema: {type(exc).__name__}: {exc}") from exc


# --- writing ------------------------------------------------------------------------------------------------
class DocumentWriter:
    """Writes the document's lines into a byte sink; rows are appended by the caller."""

    def __init__(self, out: ByteSink) -> None:
        self.out = out
        self.table_rows: dict[str, int] = {}

    def line(self, text: str) -> None:
        self.out.write(text.encode("utf-8") + b"\n")

    def start(self, header: dict[str, Any], schema: dict[str, Any]) -> None:
        self.line(f'{{"format": "{FORMAT_NAME}", "version": {FORMAT_VERSION},')
        self.line(f'"header": {json.dumps(header, ensure_ascii=False, sort_keys=True)},')
        self.line(f'"schema": {json.dumps(schema, ensure_ascii=False, allow_nan=False)},')
        self.line('"data": [')

    def open_table(self, key: str, columns: list[str]) -> None:
        head = json.dumps({"table": key, "columns": columns}, ensure_ascii=False)
        self.out.write(head[:-1].encode("utf-8") + ROWS_SUFFIX)

    def close_table(self, key: str, rows: int, last: bool) -> None:
        self.table_rows[key] = rows
        self.line("]}" if last else "]},")

    def finish(self) -> None:
        trailer = {"tables": len(self.table_rows), "rows": sum(self.table_rows.values()),
                   "table_rows": self.table_rows}
        self.line("],")
        self.line(f'"trailer": {json.dumps(trailer, ensure_ascii=False)}}}')


class _RowLines(io.RawIOBase):
    """Receives COPY output (one JSON array per line) in large blocks; writes it with `,` between rows."""

    def __init__(self, out: ByteSink) -> None:
        self.out = out
        self.rows = 0
        self._held = b""

    def writable(self) -> bool:
        return True

    def write(self, block: Any) -> int:
        data = bytes(block)
        if data:
            self.rows += data.count(b"\n")
            data = self._held + data.replace(b"\n", b",\n")
            self.out.write(data[:-2])
            self._held = data[-2:]
        return len(block)

    def close_rows(self) -> None:
        if self._held:
            self.out.write(b"\n")  # the last row: no comma
        self._held = b""


def _header(dialect: str, server_version: str, include_data: str) -> dict[str, Any]:
    return {"source_dialect": dialect, "server_version": server_version, "include_data": include_data,
            "created_at": datetime.now(UTC).isoformat(), "encoding": "UTF-8"}


PG_PORTABLE_INDEXES_SQL = """
SELECT n.nspname, c.relname, ic.relname, i.indisunique,
       array(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = ic.relam
WHERE c.relkind = 'r' AND i.indexprs IS NULL AND i.indpred IS NULL AND am.amname = 'btree'
  AND NOT i.indisprimary AND NOT (0 = ANY (i.indkey::int2[]))
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid AND co.contype IN ('u', 'x'))
ORDER BY 1, 2, 3"""


def export_postgresql(target: Target, out: ByteSink, include_data: str,
                      progress: Progress = no_progress) -> DumpResult:
    """Write the JSON document of a PostgreSQL target into `out`; rows are rendered by the server."""
    from backup_engine.pgconnect import snapshot_connection
    from backup_engine.sqlgen import reflect_postgresql, sqlalchemy_connection

    with snapshot_connection(target, errors.NATIVE_BACKUP_FAILED, "JSON export: ") as raw, \
            sqlalchemy_connection(raw, "postgresql+psycopg2://") as conn:
        model = reflect_postgresql(conn)
        with raw.cursor() as cur:
            column_kinds = json_values.pg_column_kinds(cur)
            cur.execute(PG_PORTABLE_INDEXES_SQL)
            indexes = [{"table": f"{s}.{t}", "name": name, "unique": unique, "columns": list(cols)}
                       for s, t, name, unique, cols in cur.fetchall()]
        result = _write_postgresql(raw, model, column_kinds, indexes, out, include_data, progress)
    return result


def _pg_row_columns(table: Table) -> list[str]:
    """Columns a PostgreSQL document holds per row: the dump's columns plus generated ones (for other engines)."""
    return [column.name for column in table.columns]


def _write_postgresql(raw: Any, model: DatabaseModel, column_kinds: dict, indexes: list[dict[str, Any]],
                      out: ByteSink, include_data: str, progress: Progress) -> DumpResult:
    from psycopg2 import sql

    metadata = model.metadata
    kinds = {key: {c.name: column_kinds.get((table.schema, table.name, c.name), ("other", None))
                   for c in table.columns} for key, table in metadata.tables.items()}
    row_columns = {key: _pg_row_columns(table) for key, table in metadata.tables.items()}
    schema = model_to_dict(model, kinds, row_columns, indexes)
    schema["server_version"] = model.server_version
    writer = DocumentWriter(out)
    writer.start(_header("postgresql", model.server_version, include_data), schema)
    tables = [(key, table) for key, table in metadata.tables.items()
              if include_data != "schema" and not model.extras.partition_keys.get(key)]
    for index, (key, table) in enumerate(tables):
        columns = row_columns[key]
        writer.open_table(key, columns)
        rows = 0
        if columns:
            expressions = [json_values.pg_export_expression(sql.Identifier(name).as_string(raw), kinds[key][name][0])
                           for name in columns]
            query = (f"COPY (SELECT pg_catalog.json_build_array({', '.join(expressions)}) FROM ONLY "  # noqa: S608
                     f"{sql.Identifier(table.schema, table.name).as_string(raw)}) TO STDOUT "
                     "WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')")
            forwarder = _RowLines(out)
            with io.BufferedWriter(forwarder, buffer_size=BLOCK) as buffered, raw.cursor() as cur:
                cur.copy_expert(query, buffered, size=BLOCK)
                buffered.flush()
            forwarder.close_rows()
            rows = forwarder.rows
        else:
            with raw.cursor() as cur:
                cur.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(table.schema, table.name)))
                rows = cur.fetchone()[0]
            out.write(b",\n".join([b"[]"] * rows) + (b"\n" if rows else b""))
        writer.close_table(key, rows, index == len(tables) - 1)
        progress(phase="dump", tables=index + 1, rows=sum(writer.table_rows.values()))
    writer.finish()
    names = {key: model.extras.display_names.get(key) or key for key in metadata.tables}
    table_rows = {names[key]: writer.table_rows.get(key, 0) for key in metadata.tables}
    return DumpResult(method=METHOD_PG, server_version=model.server_version, table_rows=table_rows)


SQLITE_INDEXES_SQL = """
SELECT m.tbl_name, il.name, il."unique", il.partial, il.origin
FROM sqlite_master m, pragma_index_list(m.name) il
WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"""


def _sqlite_indexes(raw: sqlite3.Connection) -> list[dict[str, Any]]:
    found = []
    for table, name, unique, partial, origin in raw.execute(SQLITE_INDEXES_SQL).fetchall():
        if origin != "c" or partial:
            continue
        columns = [row[2] for row in raw.execute("SELECT seqno, cid, name FROM pragma_index_info(?) ORDER BY seqno",
                                                 (name,)).fetchall()]
        if columns and all(isinstance(c, str) for c in columns):
            found.append({"table": table, "name": name, "unique": bool(unique), "columns": columns})
    return found


def export_sqlite(target: Target, out: ByteSink, include_data: str, progress: Progress = no_progress) -> DumpResult:
    """Write the JSON document of a SQLite target into `out`, in one read transaction."""
    from backup_engine.sqlgen import reflect_sqlite, sqlalchemy_connection
    from backup_engine.sqlite import existing_database_path, snapshot_connection

    path = existing_database_path(target)
    with snapshot_connection(path, errors.NATIVE_BACKUP_FAILED, "JSON export: ") as raw, \
            sqlalchemy_connection(raw, "sqlite://") as conn:
        return _write_sqlite(raw, reflect_sqlite(conn), out, include_data, progress)


def _write_sqlite(raw: sqlite3.Connection, model: DatabaseModel, out: ByteSink, include_data: str,
                  progress: Progress) -> DumpResult:
    metadata = model.metadata
    kinds: dict[str, dict[str, tuple[str, str | None]]] = {}
    for key, table in metadata.tables.items():
        kinds[key] = {c.name: (json_values.sqlite_kind(_spec(c)), None) for c in table.columns}
        if table.info.get("rowid"):
            kinds[key][table.info["rowid"]] = ("integer", None)
    row_columns = {key: data_columns(table) for key, table in metadata.tables.items()}
    schema = model_to_dict(model, kinds, row_columns, _sqlite_indexes(raw))
    schema["server_version"] = model.server_version
    writer = DocumentWriter(out)
    writer.start(_header("sqlite", model.server_version, include_data), schema)
    tables = list(metadata.tables.items()) if include_data != "schema" else []
    for index, (key, table) in enumerate(tables):
        columns = row_columns[key]
        writer.open_table(key, columns)
        column_kinds = [kinds[key].get(name, ("any", None))[0] for name in columns]
        bytes_at = [i for i, kind in enumerate(column_kinds) if kind == "bytes"]
        names = ", ".join(quote_identifier(name) for name in columns) or "1"
        cursor = raw.execute(f"SELECT {names} FROM {quote_identifier(table.name)}")  # noqa: S608 - quoted names
        rows = 0
        parts: list[str] = []
        size = 0
        while batch := cursor.fetchmany(SQLITE_FETCH_ROWS):
            for row in batch:
                values = row if columns else ()
                text = None
                if all(type(v) in _JSON_NATIVE for v in values) and not any(type(values[i]) is str for i in bytes_at):
                    try:
                        text = json.dumps(values, ensure_ascii=False, allow_nan=False)
                    except ValueError:  # an infinite REAL
                        text = None
                if text is None:
                    text = json.dumps([json_values.sqlite_encode(v, k) for v, k in zip(values, column_kinds,
                                                                                       strict=True)],
                                      ensure_ascii=False, allow_nan=False)
                parts.append(text)
                size += len(text)
                rows += 1
            if size >= BLOCK:  # hold the last row back: it may be the table's last (no comma)
                out.write((",\n".join(parts[:-1]) + ",\n").encode("utf-8"))
                parts, size = parts[-1:], len(parts[-1])
        if parts:
            out.write((",\n".join(parts) + "\n").encode("utf-8"))
        writer.close_table(key, rows, index == len(tables) - 1)
        progress(phase="dump", tables=index + 1, rows=sum(writer.table_rows.values()))
    writer.finish()
    table_rows = {key: writer.table_rows.get(key, 0) for key in metadata.tables}
    return DumpResult(method=METHOD_SQLITE, server_version=model.server_version, table_rows=table_rows)


_JSON_NATIVE = (int, float, str, type(None))


# --- reading ------------------------------------------------------------------------------------------------
@dataclass
class TableData:
    """Where a table's rows are in the file: the byte range of its row lines."""

    key: str
    columns: list[str]
    start: int
    end: int
    rows: int
    first_line: int  # line number of the first row


@dataclass
class JsonBackupReader:
    """Checks a document's layout and row counts (`scan`), then streams a table's rows on request.

    Memory holds the header, the schema and one block of rows at a time.
    """

    path: Path
    header: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] = field(default_factory=dict)
    trailer: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, TableData] = field(default_factory=dict)
    version: int = 0

    def fail(self, line: int | None, what: str) -> errors.ConversionError:
        where = f"{self.path.name}, line {line}" if line else self.path.name
        return conversion_error(f"{where}: {what}")

    def scan(self) -> JsonBackupReader:
        try:
            with self.path.open("rb") as handle:
                self._scan(handle)
        except OSError as exc:
            raise self.fail(None, f"cannot read: {exc}") from exc
        return self

    def _json_line(self, line: bytes, number: int, prefix: bytes, suffix: bytes, what: str) -> Any:
        if not line.startswith(prefix) or not line.endswith(suffix):
            raise self.fail(number, f"expected the {what} line" + self._ended(line))
        try:
            value = json.loads(line[len(prefix):len(line) - len(suffix)])
        except (ValueError, RecursionError) as exc:
            raise self.fail(number, f"the {what} is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise self.fail(number, f"the {what} must be a JSON object")
        return value

    @staticmethod
    def _ended(line: bytes) -> str:
        return " but the file ends there (truncated?)" if not line.endswith(b"\n") else ""

    def _scan(self, handle: BinaryIO) -> None:
        first = handle.readline()
        match = FIRST_LINE.match(first)
        if not match:
            if not first:
                raise self.fail(1, "the file is empty")
            raise self.fail(1, "not a backup-worker JSON document (expected "
                               f'{{"format": "{FORMAT_NAME}", "version": N, in the canonical line layout)')
        name = json.loads(match.group(1))
        if name != FORMAT_NAME:
            raise self.fail(1, f"unknown document format {name!r} (expected {FORMAT_NAME!r})")
        self.version = int(match.group(2))
        if self.version != FORMAT_VERSION:
            raise self.fail(1, f"unsupported format version {self.version} (this worker reads version "
                               f"{FORMAT_VERSION})")
        self.header = self._json_line(handle.readline(), 2, b'"header": ', b",\n", "header")
        self.schema = self._json_line(handle.readline(), 3, b'"schema": ', b",\n", "schema")
        self._check_schema()
        number = 4
        line = handle.readline()
        if line != b'"data": [\n':
            raise self.fail(number, 'expected "data": [' + self._ended(line))
        offset = handle.tell()
        known = {spec["key"]: spec for spec in self.schema["tables"]}
        closed_last = False
        while True:
            line = handle.readline()
            number += 1
            offset += len(line)
            if line == b"],\n":
                if self.tables and not closed_last:
                    raise self.fail(number, "the last table is followed by a comma")
                break
            if closed_last:
                raise self.fail(number, "expected ], after the last table")
            if not line.startswith(b'{"table": ') or not line.endswith(ROWS_SUFFIX):
                raise self.fail(number, "expected a table's opening line or ], (end of data)" + self._ended(line))
            try:
                opening = json.loads(line[:-len(ROWS_SUFFIX)] + b"}")
            except (ValueError, RecursionError) as exc:
                raise self.fail(number, f"the table's opening line is not valid JSON: {exc}") from None
            key, columns = opening.get("table"), opening.get("columns")
            if not isinstance(key, str) or key not in known:
                raise self.fail(number, f"table {str(key)[:200]!r} is not in the document's schema")
            if key in self.tables:
                raise self.fail(number, f"table {key!r} has its rows twice")
            if columns != known[key].get("row_columns"):
                raise self.fail(number, f"the columns of table {key!r} differ from its schema")
            start, rows, first_line = offset, 0, number + 1
            last_ended = True
            for row in handle:
                number += 1
                if row[:1] != b"[":
                    if row == b"]},\n" or row == b"]}\n":
                        break
                    raise self.fail(number, f"expected a row of table {key!r} or ]}}" + self._ended(row))
                if not last_ended:
                    raise self.fail(number - 1, f"a row of table {key!r} that is not the last ends without a comma")
                rows += 1
                offset += len(row)
                if row[-3:] == b"],\n":
                    continue
                if row[-2:] != b"]\n":
                    raise self.fail(number, f"row {rows} of table {key!r} does not end as a row line"
                                            + self._ended(row))
                last_ended = False
            else:
                raise self.fail(number, f"the file ends inside the rows of table {key!r} (truncated?)")
            if rows and last_ended:
                raise self.fail(number - 1, f"the last row of table {key!r} ends with a comma")
            self.tables[key] = TableData(key=key, columns=columns, start=start, end=offset, rows=rows,
                                         first_line=first_line)
            offset += len(row)
            closed_last = row == b"]}\n"
            handle.seek(offset)
        number += 1
        line = handle.readline()
        self.trailer = self._json_line(line, number, b'"trailer": ', b"}\n", "trailer")
        if handle.read(1):
            raise self.fail(number + 1, "text after the trailer")
        partitioned = (self.schema.get("extras") or {}).get("partition_keys") or {}
        missing = [key for key in known if key not in self.tables and key not in partitioned]
        if self.header.get("include_data") != "schema" and missing:
            raise self.fail(number, f"no rows section for table(s) {', '.join(map(repr, missing[:5]))}")
        counted = {key: table.rows for key, table in self.tables.items()}
        if self.trailer.get("table_rows") != counted:
            raise self.fail(number, "the trailer's row counts differ from the rows in the file")

    def _check_schema(self) -> None:
        schema = self.schema
        if schema.get("dialect") not in ("postgresql", "sqlite"):
            raise self.fail(3, f"unknown source dialect {schema.get('dialect')!r}")
        tables = schema.get("tables")
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise self.fail(3, "the schema's tables must be a list of objects")
        for spec in tables:
            if not isinstance(spec.get("key"), str) or not isinstance(spec.get("columns"), list):
                raise self.fail(3, "every table needs a key and columns")
            names = set()
            for col in spec["columns"]:
                if not isinstance(col, dict) or not isinstance(col.get("name"), str):
                    raise self.fail(3, f"table {spec['key']!r}: every column needs a name")
                if col.get("kind") not in json_values.KINDS:
                    raise self.fail(3, f"table {spec['key']!r} column {col['name']!r}: "
                                       f"unknown kind {col.get('kind')!r}")
                names.add(col["name"])
            rowid = spec.get("rowid")
            row_columns = spec.get("row_columns")
            if not isinstance(row_columns, list) or not all(c in names or c == rowid for c in row_columns):
                raise self.fail(3, f"table {spec['key']!r}: row_columns must name its columns")
        if self.header.get("include_data") not in ("full", "schema", "data"):
            raise self.fail(2, f"unknown include_data {self.header.get('include_data')!r}")

    # streaming ----------------------------------------------------------------------------------
    def row_blocks(self, key: str) -> Iterator[bytes]:
        """The table's row lines in large blocks, each line a bare JSON array ending in a newline."""
        table = self.tables[key]
        with self.path.open("rb") as handle:
            handle.seek(table.start)
            remaining = table.end - table.start
            carry = b""
            while remaining > 0:
                chunk = handle.read(min(BLOCK, remaining))
                if not chunk:
                    raise self.fail(None, f"the file changed while reading table {key!r}")
                remaining -= len(chunk)
                data = carry + chunk
                cut = data.rfind(b"\n") + 1
                carry, data = data[cut:], data[:cut]
                if CONTROL_BYTES.search(data):
                    raise self.fail(None, f"table {key!r}: a row holds a raw control character (not valid JSON)")
                yield data.replace(b"],\n", b"]\n")
            if carry:
                raise self.fail(None, f"table {key!r}: the last row has no newline")

    def rows(self, key: str) -> Iterator[tuple[int, list[Any]]]:
        """(row number, values) of the table, values decoded by `json_values.loads_row`."""
        table = self.tables[key]
        width = len(table.columns)
        number = 0
        for block in self.row_blocks(key):
            for line in block.splitlines():
                number += 1
                try:
                    values = json_values.loads_row(line)
                except (ValueError, RecursionError) as exc:
                    raise self.fail(table.first_line + number - 1,
                                    f"table {key!r}, row {number}: not valid JSON ({exc})") from None
                if type(values) is not list or len(values) != width:
                    raise self.fail(table.first_line + number - 1,
                                    f"table {key!r}, row {number}: expected an array of {width} values")
                yield number, values


def read_document(path: Path) -> JsonBackupReader:
    """A checked reader of the JSON backup at `path` (raises ConversionError with what and where)."""
    return JsonBackupReader(Path(path)).scan()
