"""Property-based: random tables and values round-trip exactly through a JSON backup.

PostgreSQL: random columns of many types, values inserted with bound parameters, JSON export,
conversion, psql restore into a second database; compared as the server's text of every row.
SQLite: random storage classes in columns of random declared types; compared with typeof().
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg2 import sql
from psycopg2.extras import Json

from backup_engine.dumpinfo import ClientTools
from backup_engine.targets import Target
from tests import richdb_pg
from tests.engine_api import convert, json_format, postgresql, sqlite

TOOLS = ClientTools(pg_dump=shutil.which("pg_dump"), psql=shutil.which("psql"))
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
floats = st.floats(allow_nan=True, allow_infinity=True)
PG_TYPES = {  # every generator may give -0 (floats(): -0.0), kept apart from 0 all the way through
    "bigint": st.integers(-2**63, 2**63 - 1),
    "integer": st.integers(-2**31, 2**31 - 1),
    "double precision": floats,
    "real": st.floats(width=32, allow_nan=True, allow_infinity=True),
    "numeric": st.one_of(st.decimals(allow_nan=False, allow_infinity=False, places=6),
                         st.sampled_from(["NaN", "Infinity", "-Infinity"])),
    "text": text,
    "varchar(30)": text,
    "boolean": st.booleans(),
    "bytea": st.binary(max_size=20),
    "date": st.dates(),
    "timestamp": st.datetimes(),
    "timestamptz": st.datetimes(timezones=st.just(dt.UTC)),
    "time": st.times(),
    "interval": st.timedeltas(min_value=dt.timedelta(days=-10**6), max_value=dt.timedelta(days=10**6)),
    "uuid": st.uuids(),
    "jsonb": st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | text,
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                          max_leaves=5),
    "json": st.sampled_from(['{"a":  1, "a": 2}', "[1 ,2]", '"\\u00e9"', "null", "{}"]),
    "integer[]": st.lists(st.one_of(st.none(), st.integers(-2**31, 2**31 - 1)), max_size=4),
    "text[]": st.lists(st.one_of(st.none(), text), max_size=4),
    "double precision[]": st.lists(st.one_of(st.none(), floats, st.just(-0.0)), max_size=3),
}
CASTS = {"numeric": "::numeric", "json": "::json", "jsonb": "::jsonb", "integer[]": "::integer[]",
         "text[]": "::text[]", "double precision[]": "::double precision[]"}


@st.composite
def pg_tables(draw):
    types = draw(st.lists(st.sampled_from(sorted(PG_TYPES)), min_size=1, max_size=6))
    rows = draw(st.lists(st.tuples(*[st.one_of(st.none(), PG_TYPES[t]) for t in types]), max_size=8))
    return types, rows


def float_text(value: float | None) -> str:
    """A float as the text float8in reads back to the same bits: psycopg2 would send -0.0 as the SQL
    expression `-0.0` (numeric negation, which loses the sign)."""
    if value is None:
        return "NULL"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def adapt(value, type_name):
    if value is None:
        return None
    if type_name in ("double precision", "real"):
        return float_text(value)
    if type_name == "double precision[]":
        return "{" + ",".join(float_text(v) for v in value) + "}"
    if type_name == "jsonb":
        return Json(value)
    if type_name == "uuid":
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


@pytest.fixture(scope="module")
def pg_pair(pg_server):
    names = [f"jprop_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("src", "dst")]
    urls = [pg_server.create_database(name) for name in names]
    yield urls
    for name in names:
        pg_server.drop_database(name)


def rows_text(url: str) -> list:
    conn = richdb_pg.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT t::text FROM public.\"r t\" t ORDER BY 1")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


@pytest.mark.skipif(not TOOLS.psql, reason="psql not installed")
@SETTINGS
@given(table=pg_tables())
@example(table=(["double precision[]", "double precision", "real"],
                [([-0.0, 0.0, None, float("nan")], -0.0, -0.0), ([-0.0], 0.0, 0.0)]))
def test_random_postgresql_tables_round_trip(pg_pair, tmp_path_factory, table):
    types, rows = table
    source, restored = pg_pair
    conn = richdb_pg.connect(source)
    with conn.cursor() as cur:
        cur.execute('DROP TABLE IF EXISTS public."r t"')
        columns = [sql.SQL("{} {}").format(sql.Identifier(f"c{i} {t}"), sql.SQL(t)) for i, t in enumerate(types)]
        cur.execute(sql.SQL('CREATE TABLE public."r t" ({})').format(sql.SQL(", ").join(columns)))
        placeholders = ", ".join("%s" + CASTS.get(t, "") for t in types)
        for row in rows:
            cur.execute(f'INSERT INTO public."r t" VALUES ({placeholders})',  # noqa: S608 - placeholders only
                        [adapt(v, t) for v, t in zip(row, types, strict=True)])
    conn.commit()
    conn.close()
    folder = tmp_path_factory.mktemp("prop")
    with open(folder / "d.json", "wb") as handle:
        json_format.export_postgresql(Target.from_url("s", source), handle, "full")
    convert.convert_json_to_sql(folder / "d.json", folder / "d.sql")
    postgresql.restore_sql(Target.from_url("r", restored), folder / "d.sql", "full", [], TOOLS)
    assert rows_text(restored) == rows_text(source)


def test_negative_zero_keeps_its_sign(pg_pair, tmp_path):
    source, restored = pg_pair
    conn = richdb_pg.connect(source)
    with conn.cursor() as cur:
        cur.execute('DROP TABLE IF EXISTS public."r t"; CREATE TABLE public."r t" (f float8, r real);'
                    """INSERT INTO public."r t" VALUES ('-0', '-0'), ('0', '0')""")
    conn.commit()
    conn.close()
    with open(tmp_path / "d.json", "wb") as handle:
        json_format.export_postgresql(Target.from_url("s", source), handle, "full")
    assert b"[-0, -0]" in (tmp_path / "d.json").read_bytes()
    convert.convert_json_to_sql(tmp_path / "d.json", tmp_path / "d.sql")
    postgresql.restore_sql(Target.from_url("r", restored), tmp_path / "d.sql", "full", [], TOOLS)
    assert rows_text(restored) == ["(-0,-0)", "(0,0)"]


# --- SQLite -------------------------------------------------------------------------------------------------
sqlite_values = st.one_of(
    st.none(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False), st.binary(max_size=16),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=16))
DECLARED = ["INTEGER", "REAL", "TEXT", "BLOB", "", "NUMERIC", "VARCHAR(5)", "DATE", "BOOLEAN", "JSON"]


@st.composite
def sqlite_tables(draw):
    declared = draw(st.lists(st.sampled_from(DECLARED), min_size=1, max_size=5))
    rows = draw(st.lists(st.tuples(*[sqlite_values for _ in declared]), max_size=8))
    return declared, rows


def sqlite_rows(path: Path) -> list:
    with sqlite3.connect(path) as conn:
        width = len(conn.execute('SELECT * FROM "r t" LIMIT 0').description)
        exprs = ", ".join(f'typeof("c{i}"), "c{i}"' for i in range(width))
        rows = conn.execute(f'SELECT rowid, {exprs} FROM "r t" ORDER BY rowid').fetchall()  # noqa: S608
    return [tuple(("real", v.hex()) if isinstance(v, float) else v for v in row) for row in rows]


@SETTINGS
@given(table=sqlite_tables())
def test_random_sqlite_tables_round_trip(tmp_path_factory, table):
    declared, rows = table
    folder = tmp_path_factory.mktemp("sqlite_prop")
    source = folder / "src.db"
    with sqlite3.connect(source) as conn:
        conn.execute(f'CREATE TABLE "r t" ({", ".join(f"c{i} {d}" for i, d in enumerate(declared))})')
        for row in rows:
            conn.execute(f'INSERT INTO "r t" VALUES ({", ".join("?" for _ in row)})', row)  # noqa: S608
            # values as stored: the column affinity may have converted them
    with open(folder / "d.json", "wb") as handle:
        json_format.export_sqlite(Target.from_url("s", f"sqlite:///{source}"), handle, "full")
    convert.convert_json_to_sql(folder / "d.json", folder / "d.sql")
    restored = folder / "dst.db"
    sqlite.restore_sql(Target.from_url("r", f"sqlite:///{restored}"), folder / "d.sql", "full")
    assert sqlite_rows(restored) == sqlite_rows(source)
