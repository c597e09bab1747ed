"""CSV backups: one CSV per table in a streamed zip, row counts, NULL vs '', round trip through csv."""

from __future__ import annotations

import csv
import io
import sqlite3
import uuid
import zipfile

import pytest
from psycopg2 import sql

from backup_engine.formats import csv_zip as csv_format
from backup_engine.targets import Target
from tests import richdb_pg
from tests.engine_api import BackupStore, create_backup
from tests.test_sqlite_engine import make_rich_db as make_rich_sqlite


@pytest.fixture(scope="module")
def rich_csv(pg_server, tmp_path_factory):
    name = f"csv_rich_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name)
    richdb_pg.build_rich_database(url, rows_per_table=40, seed=2)
    store = BackupStore(tmp_path_factory.mktemp("csv"))
    manifest = create_backup(Target.from_url("rich", url), store, format="csv")
    yield url, manifest
    pg_server.drop_database(name)


def server_text_rows(url: str, table: str, columns: list[str]) -> list[tuple]:
    conn = richdb_pg.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET DateStyle = ISO; SET TimeZone = 'UTC'; SET extra_float_digits = 3")
            as_output = sql.SQL("CASE WHEN {0} IS NOT NULL THEN format('%s', {0}) END")  # the output function's text
            cur.execute(sql.SQL("SELECT {} FROM ONLY {}").format(
                sql.SQL(", ").join(as_output.format(sql.Identifier(c)) for c in columns), sql.SQL(table)))
            return cur.fetchall()
    finally:
        conn.close()


def test_every_table_has_its_file_and_row_count(rich_csv):
    url, manifest = rich_csv
    assert manifest["backup_filename"].endswith(".zip") and manifest["format"] == "csv"
    inside = csv_format.read_manifest(manifest["path"])
    counts = richdb_pg.table_row_counts(url)
    counts.pop("public.events")  # the partitioned parent: its rows are in its partitions' files
    assert {t["table"]: t["rows"] for t in inside["tables"]} == counts
    assert inside["rows"] == manifest["rows"] == sum(counts.values())
    with zipfile.ZipFile(manifest["path"]) as archive:
        assert archive.testzip() is None
        for table in inside["tables"]:
            with archive.open(table["file"]) as member:
                records = list(csv.reader(io.TextIOWrapper(member, encoding="utf-8", newline="")))
            assert records[0] == table["columns"]
            assert len(records) - 1 == table["rows"]


def test_values_round_trip_through_the_csv_module_and_null_differs_from_empty(rich_csv):
    url, manifest = rich_csv
    inside = csv_format.read_manifest(manifest["path"])
    seen_null = seen_empty = False
    for table in inside["tables"]:
        expected = server_text_rows(url, table["table"], table["columns"])
        header, records = csv_format.read_table(manifest["path"], table["table"])
        exact = [tuple(r) for r in records]
        assert sorted(exact, key=repr) == sorted(expected, key=repr), table["table"]
        with zipfile.ZipFile(manifest["path"]) as archive, archive.open(table["file"]) as member:
            plain = list(csv.reader(io.TextIOWrapper(member, encoding="utf-8", newline="")))[1:]
        # Python's csv module: the same values, NULL read as ''
        assert sorted(map(tuple, plain)) == sorted(tuple("" if v is None else v for v in row) for row in expected)
        seen_null |= any(v is None for row in exact for v in row)
        seen_empty |= any(v == "" for row in exact for v in row)
    assert seen_null and seen_empty


def test_sqlite_csv_backup(tmp_path):
    source = tmp_path / "src.db"
    make_rich_sqlite(source)
    store = BackupStore(tmp_path / "b")
    manifest = create_backup(Target.from_url("s", f"sqlite:///{source}"), store, format="csv")
    inside = csv_format.read_manifest(manifest["path"])
    with sqlite3.connect(source) as conn:
        for table in inside["tables"]:
            quoted = '"' + table["table"].replace('"', '""') + '"'
            assert conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0] == table["rows"]  # noqa: S608
        kv = dict(conn.execute("SELECT k, v FROM kv").fetchall())
    _, records = csv_format.read_table(manifest["path"], "kv")
    assert {k: v for k, v in records} == {k: None if v is None else "\\x" + v.hex() for k, v in kv.items()}


def test_parse_records_handles_quotes_newlines_and_nulls():
    text = 'a,b,c\n"x","",\n,"multi\nline ""q""","\\N"\n'
    assert list(csv_format.parse_records(iter(io.StringIO(text)))) == [
        ["a", "b", "c"], ["x", "", None], [None, 'multi\nline "q"', "\\N"]]
