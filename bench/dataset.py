"""The benchmark's data: the same rows in a PostgreSQL database and a SQLite file.

`rows` events (ints, text, numeric, timestamptz, double, jsonb, bytea, int[]) referencing
`rows / 10` customers (text, numeric, timestamptz, text[], jsonb), with a foreign key and
indexes, all generated server-side with generate_series (SQLite: a recursive CTE).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

SETUP_SQL = """
CREATE TABLE customers (
    id bigint PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text,
    created_at timestamptz NOT NULL,
    balance numeric(12, 2) NOT NULL DEFAULT 0,
    tags text[],
    prefs jsonb
);
CREATE TABLE events (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    kind text NOT NULL,
    happened_at timestamptz NOT NULL,
    amount numeric(12, 2),
    score double precision,
    payload jsonb,
    blob bytea,
    flags integer[]
);
"""
LOAD_CUSTOMERS = """
INSERT INTO customers
SELECT g, 'user' || g || '@example.com', 'Customer ' || md5(g::text),
       timestamptz '2020-01-01 00:00:00+00' + g * interval '17 seconds',
       (g % 100000) / 100.0, ARRAY['tag' || (g % 7), 'grp' || (g % 13)],
       jsonb_build_object('theme', CASE WHEN g % 2 = 0 THEN 'dark' ELSE 'light' END, 'n', g)
FROM generate_series(1, {customers}) AS g
"""
LOAD_EVENTS = """
INSERT INTO events (customer_id, kind, happened_at, amount, score, payload, blob, flags)
SELECT 1 + (g % {customers}), (ARRAY['click', 'view', 'buy', 'refund'])[1 + g % 4],
       timestamptz '2023-01-01 00:00:00+00' + g * interval '1 second',
       (g % 100000) / 100.0, g / 7.0,
       jsonb_build_object('page', '/p/' || (g % 1000), 'ref', md5(g::text), 'items', jsonb_build_array(g % 10, 'x')),
       decode(md5(g::text), 'hex'), ARRAY[g % 3, g % 5]
FROM generate_series(1, {rows}) AS g
"""
INDEX_SQL = """
CREATE INDEX events_customer_idx ON events (customer_id);
CREATE INDEX events_happened_idx ON events (happened_at);
CREATE INDEX customers_created_idx ON customers (created_at);
ANALYZE;
"""

SQLITE_SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, created_at TEXT NOT NULL,
                        balance NUMERIC NOT NULL DEFAULT 0, tags TEXT, prefs TEXT);
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, customer_id INTEGER NOT NULL REFERENCES customers (id),
                     kind TEXT NOT NULL, happened_at TEXT NOT NULL, amount NUMERIC, score REAL, payload TEXT,
                     blob BLOB, flags TEXT);
CREATE INDEX events_customer_idx ON events (customer_id);
CREATE INDEX events_happened_idx ON events (happened_at);
"""
SQLITE_LOAD = """
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {customers})
INSERT INTO customers SELECT x, 'user' || x || '@example.com', 'Customer ' || hex(randomblob(16)),
       datetime(1577836800 + x * 17, 'unixepoch'), (x % 100000) / 100.0,
       json_array('tag' || (x % 7), 'grp' || (x % 13)), json_object('n', x) FROM g;
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {rows})
INSERT INTO events (customer_id, kind, happened_at, amount, score, payload, blob, flags)
SELECT 1 + (x % {customers}), CASE x % 4 WHEN 0 THEN 'click' WHEN 1 THEN 'view' WHEN 2 THEN 'buy' ELSE 'refund' END,
       datetime(1672531200 + x, 'unixepoch'), (x % 100000) / 100.0, x / 7.0,
       json_object('page', '/p/' || (x % 1000), 'ref', hex(randomblob(16))), randomblob(16),
       json_array(x % 3, x % 5) FROM g;
"""


def load_postgresql(server, dbname: str, rows: int) -> str:
    """A new database on the throwaway server with the benchmark's rows; returns its URL."""
    url = server.create_database(dbname)
    conn = server.connect(dbname)
    with conn.cursor() as cur:
        cur.execute(SETUP_SQL)
        cur.execute(LOAD_CUSTOMERS.format(customers=max(1, rows // 10)))
        cur.execute(LOAD_EVENTS.format(rows=rows, customers=max(1, rows // 10)))
        cur.execute(INDEX_SQL)
    conn.commit()
    conn.close()
    return url


def load_sqlite(path: Path, rows: int) -> str:
    """A SQLite file with the same tables and row counts; returns its URL."""
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(SQLITE_SCHEMA)
        conn.executescript(SQLITE_LOAD.format(rows=rows, customers=max(1, rows // 10)))
        conn.commit()
    return f"sqlite:///{path}"
