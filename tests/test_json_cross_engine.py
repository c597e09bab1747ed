"""JSON backups across engines: SQLite into PostgreSQL and PostgreSQL into SQLite (docs/FORMATS.md)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from backup_engine import errors
from backup_engine.dumpinfo import ClientTools
from backup_engine.targets import Target
from tests import richdb_pg
from tests.engine_api import BackupStore, convert, create_backup, restore_backup

TOOLS = ClientTools(pg_dump=shutil.which("pg_dump"), psql=shutil.which("psql"))
pytestmark = pytest.mark.skipif(not TOOLS.psql, reason="psql not installed")

SQLITE_SCHEMA = """
CREATE TABLE authors (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, born DATE,
                      rating REAL DEFAULT 0.5, active BOOLEAN DEFAULT 1);
CREATE TABLE books (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL REFERENCES authors(id) ON DELETE CASCADE,
                    title VARCHAR(200) NOT NULL, cover BLOB, price NUMERIC(8,2), meta JSON, pages INT);
CREATE INDEX books_author ON books(author_id, title);
CREATE UNIQUE INDEX books_title ON books(title);
CREATE TABLE "odd ""names"" 表" ("key ✓" TEXT PRIMARY KEY, "select" INTEGER);
"""
AUTHORS = [(1, "Ada Lovelace", "1815-12-10", 4.75, 1), (2, "Émile Zola ✍", None, None, 0),
           (3, "李白", "0701-02-28", -0.0, 1), (7, "it's \"quoted\"\\", "2000-01-01", 1e300, None)]
BOOKS = [(1, 1, "Notes", b"\x00\x01\xff", 12.5, '{"k": [1, "ü"]}', 120),
         (2, 1, "Second\nline\ttab", b"", None, None, None),
         (3, 3, "静夜思 🌙", bytes(range(256)), 0.1, "[]", 1),
         (4, 7, "\\.", None, 99999.99, '"s"', -5)]
ODD = [("a", 1), ("", None), ("😀", -9223372036854775808)]


def make_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(SQLITE_SCHEMA)
        conn.executemany("INSERT INTO authors VALUES (?, ?, ?, ?, ?)", AUTHORS)
        conn.executemany("INSERT INTO books VALUES (?, ?, ?, ?, ?, ?, ?)", BOOKS)
        conn.executemany('INSERT INTO "odd ""names"" 表" VALUES (?, ?)', ODD)
        conn.execute("INSERT INTO authors (name) VALUES ('gone')")
        conn.execute("DELETE FROM authors WHERE name = 'gone'")  # AUTOINCREMENT position 8, max(id) 7


def pg_rows(url: str, query: str) -> list[tuple]:
    conn = richdb_pg.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in cur.fetchall()]
    finally:
        conn.rollback()
        conn.close()


def test_sqlite_backup_restores_into_postgresql(tmp_path, make_pg_database):
    source = tmp_path / "src.db"
    make_sqlite(source)
    store = BackupStore(tmp_path / "backups")
    manifest = create_backup(Target.from_url("lite", f"sqlite:///{source}"), store, format="json")
    url = make_pg_database("from_sqlite")
    result = restore_backup(Target.from_url("pg", url), store, manifest["backup_filename"], tools=TOOLS)
    assert result["rows"] == len(AUTHORS) + len(BOOKS) + len(ODD)

    authors = pg_rows(url, "SELECT id, name, born, rating, active FROM public.authors ORDER BY id")
    assert authors == [(i, n, dt.date.fromisoformat(b) if b else None, r, None if a is None else bool(a))
                       for i, n, b, r, a in AUTHORS]
    books = pg_rows(url, "SELECT id, author_id, title, cover, price, meta::text, pages FROM public.books ORDER BY id")
    assert books == [(i, a, t, c, None if p is None else Decimal(str(p)), m, n) for i, a, t, c, p, m, n in BOOKS]
    odd = pg_rows(url, 'SELECT "key ✓", "select" FROM public."odd ""names"" 表" ORDER BY 1')
    assert odd == sorted(ODD)
    # constraints, indexes and the rowid alias as an identity that continues after the AUTOINCREMENT position
    fp = richdb_pg.schema_fingerprint(url)
    kinds = sorted((c[0], c[2]) for c in fp["constraints"])
    assert ("public.books", "f") in kinds and ("public.authors", "u") in kinds
    assert {i[2] for i in fp["indexes"]} >= {"books_author", "books_title"}
    assert pg_rows(url, "INSERT INTO public.authors (name) VALUES ('new') RETURNING id") == [(9,)]


def test_postgresql_backup_restores_into_sqlite(tmp_path, make_pg_database):
    url = make_pg_database("to_sqlite")
    conn = richdb_pg.connect(url)
    with conn.cursor() as cur:
        cur.execute("""
            CREATE SCHEMA sales;
            CREATE TYPE mood AS ENUM ('sad', 'ok');
            CREATE TABLE people (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL UNIQUE,
                                 mood mood DEFAULT 'ok', born date, seen timestamptz, balance numeric(10,2) DEFAULT 0,
                                 score double precision, ok boolean DEFAULT true, photo bytea, tags text[],
                                 prefs jsonb, token uuid, nums int[], span interval,
                                 doubled bigint GENERATED ALWAYS AS (id * 2) STORED);
            CREATE INDEX people_born ON people (born);
            CREATE TABLE sales.orders (id serial PRIMARY KEY, person_id bigint REFERENCES people (id), note text);
            CREATE TABLE parted (id int, at date) PARTITION BY RANGE (at);
            CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM ('2000-01-01') TO ('2010-01-01');
            CREATE TABLE parted_b PARTITION OF parted DEFAULT;
            INSERT INTO parted VALUES (1, '2001-01-01'), (2, '2020-01-01');
            INSERT INTO people (name, mood, born, seen, balance, score, ok, photo, tags, prefs, token, nums, span)
            VALUES ('Ann ✓', 'sad', '1990-05-06', '2024-01-02 03:04:05.678+00', 12.50, 'NaN', false, '\\x00ff',
                    ARRAY['a', NULL, 'c"d'], '{"x": [1, 2.50]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
                    '{{1,2},{3,NULL}}', '1 day 02:00:00'),
                   ('Bob', NULL, NULL, NULL, NULL, -1.5e-300, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
            INSERT INTO sales.orders (person_id, note) VALUES (1, 'first'), (NULL, E'multi\\nline');
        """)
    conn.commit()
    conn.close()
    store = BackupStore(tmp_path / "backups")
    manifest = create_backup(Target.from_url("pg", url), store, format="json")
    twin = convert.convert_backup(store, manifest["backup_filename"], dialect="sqlite")
    assert twin["dialect"] == "sqlite" and twin["converted_from"] == manifest["backup_filename"]
    target = tmp_path / "restored.db"
    restore_backup(Target.from_url("lite", f"sqlite:///{target}"), store, manifest["backup_filename"])
    with sqlite3.connect(target) as lite:
        people = lite.execute("SELECT * FROM people ORDER BY id").fetchall()
        orders = lite.execute('SELECT * FROM "sales.orders" ORDER BY id').fetchall()
        parted = lite.execute("SELECT * FROM parted ORDER BY id").fetchall()
        indexes = {row[0] for row in lite.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        fks = lite.execute("SELECT * FROM pragma_foreign_key_list('sales.orders')").fetchall()
        lite.execute("INSERT INTO people (name) VALUES ('new')")
        assert lite.execute("SELECT id, mood, balance, ok FROM people WHERE name = 'new'").fetchone() == (3, "ok", 0, 1)
    ann, bob = people
    assert ann[:8] == (1, "Ann ✓", "sad", "1990-05-06", "2024-01-02T03:04:05.678+00:00", 12.5, None, 0)
    assert ann[8] == b"\x00\xff" and json.loads(ann[9]) == ["a", None, 'c"d']
    assert json.loads(ann[10]) == {"x": [1, 2.5]} and ann[11] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert json.loads(ann[12]) == [[1, 2], [3, None]] and ann[13] == "1 day 02:00:00" and ann[14] == 2
    assert bob[:8] == (2, "Bob", None, None, None, None, -1.5e-300, None)
    assert orders == [(1, 1, "first"), (2, None, "multi\nline")]
    assert parted == [(1, "2001-01-01"), (2, "2020-01-01")]
    assert "people_born" in indexes
    assert [(fk[2], fk[3], fk[4]) for fk in fks] == [("people", "person_id", "id")]


def test_text_that_postgresql_cannot_hold_fails_conversion_clearly(tmp_path, make_pg_database):
    source = tmp_path / "src.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, "ok"), (2, "nul\x00inside")])
    store = BackupStore(tmp_path / "b")
    manifest = create_backup(Target.from_url("s", f"sqlite:///{source}"), store, format="json")
    url = make_pg_database("nul")
    before = richdb_pg.database_state(url)
    with pytest.raises(errors.ConversionError, match=r"table 't', row 2, column 'v': .*NUL"):
        restore_backup(Target.from_url("pg", url), store, manifest["backup_filename"], tools=TOOLS)
    assert richdb_pg.database_state(url) == before
