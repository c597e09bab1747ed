"""The CSV zip of a PostgreSQL target: one `COPY ... TO STDOUT (FORMAT csv)` per table.

Every table is read in one REPEATABLE READ snapshot. The server quotes every value
(`FORCE_QUOTE *`), so NULL is the only unquoted empty field; the header is ours, quoted too.
"""

from __future__ import annotations

import io

from psycopg2 import sql

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, DumpResult, Progress, no_progress
from backup_engine.engines.postgresql.connect import LockWindow, snapshot_connection
from backup_engine.formats import csv_zip
from backup_engine.targets import Target

METHOD = "postgresql-csv"
TABLES_SQL = """
    SELECT n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
           array(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                 AND NOT a.attisdropped ORDER BY a.attnum)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid
                      AND e.deptype = 'e')
    ORDER BY 1, 2"""


def _column(name: str, csv_safe: bool) -> sql.Composable:
    """A column as the CSV shows it; with `csv_safe`, a formula-looking value gets a leading quote
    (in the server: no per-value work in Python)."""
    if not csv_safe:
        return sql.Identifier(name)
    text = sql.SQL("{}::text").format(sql.Identifier(name))
    return sql.SQL("CASE WHEN {text} ~ {formula} AND {text} !~ {number} THEN {quote} || {text} ELSE {text} END").format(
        text=text, formula=sql.Literal(csv_zip.FORMULA_PATTERN), number=sql.Literal(csv_zip.NUMBER_PATTERN),
        quote=sql.Literal("'"))


def export_csv(target: Target, out: ByteSink, include_data: str, progress: Progress = no_progress, *,
               csv_safe: bool = False) -> DumpResult:
    """Write the CSV zip of `target` into `out` (schema-only: the header rows alone)."""
    with snapshot_connection(target, errors.NATIVE_BACKUP_FAILED, "CSV export: ") as raw:
        with raw.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
            cur.execute(TABLES_SQL)
            tables = cur.fetchall()
        entries = []
        with csv_zip.open_zip(out) as archive, LockWindow(raw) as window:
            for index, (schema, name, display, columns) in enumerate(tables):
                entry = csv_zip.entry_name(index, f"{schema}.{name}")
                select = sql.SQL("SELECT {} FROM ONLY {}").format(
                    sql.SQL(", ").join(_column(c, csv_safe) for c in columns) if columns else sql.SQL(""),
                    sql.Identifier(schema, name)).as_string(raw)
                if include_data == "schema":
                    select += " LIMIT 0"
                query = f"COPY ({select}) TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)"
                with archive.open(entry, "w", force_zip64=True) as member:
                    member.write(csv_zip.header_line(columns))
                    with window.table(), \
                            io.BufferedWriter(csv_zip.MemberWriter(member), buffer_size=csv_zip.BLOCK) as buffered, \
                            raw.cursor() as cur:
                        cur.copy_expert(query, buffered, size=csv_zip.BLOCK)
                        buffered.flush()
                        rows = max(cur.rowcount, 0)
                entries.append({"table": display, "file": entry, "columns": list(columns), "rows": rows})
                progress(phase="dump", tables=index + 1, rows=sum(e["rows"] for e in entries))
            archive.writestr(csv_zip.MANIFEST_NAME,
                             csv_zip.manifest_bytes("postgresql", version, include_data, entries, csv_safe))
    return DumpResult(method=METHOD, server_version=version, table_rows={e["table"]: e["rows"] for e in entries})
