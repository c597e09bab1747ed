"""Property tests of the SQLAlchemy fallback: random types, values and names, real servers.

- every literal `sqlliterals` renders reads back, type by type, as the value a bound
  parameter gives (PostgreSQL literals, COPY text fields, SQLite literals);
- restore(dump(db)) == db for random tables of random column types, awkward values and odd
  names, on PostgreSQL (psql) and SQLite.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import sqlite3
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg2 import sql
from psycopg2.extras import Json

from backup_engine.dumpinfo import ClientTools
from backup_engine.engines.postgresql import literals as pg_literals
from backup_engine.engines.sqlite import literals as sqlite_literals
from backup_engine.targets import Target
from tests import richdb_pg
from tests.engine_api import postgresql, sqlgen, sqlite
from tests.test_sqlite_engine import db_state as sqlite_state

PSQL = shutil.which("psql")
TOOLS = ClientTools(pg_dump=shutil.which("pg_dump"), psql=PSQL)
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                             HealthCheck.too_slow])
LITERALS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# --- value strategies, per PostgreSQL type ----------------------------------------------------------------------
texts = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30) | \
    st.sampled_from(richdb_pg.SPECIAL_STRINGS)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**15, 10**15) | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12)
decimals = st.decimals(allow_nan=True, allow_infinity=True, places=None).filter(lambda d: not d.is_snan()) | \
    st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal("-0"), Decimal("1E-30"),
                     Decimal("123456789012345678901234567890.123456789")])
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-0.0, 5e-324, 1.7976931348623157e308])
datetimes = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59))
# PostgreSQL values Python cannot hold, written as text: infinities, BC and far-future dates
SPECIAL_DATES = ["infinity", "-infinity", "4713-01-01 BC", "0001-01-01 BC", "5874897-12-31"]
SPECIAL_TIMESTAMPS = ["infinity", "-infinity", "4713-01-01 00:00:00 BC", "294276-12-31 23:59:59.999999"]

# type -> (strategy of Python values, strategy of text-only extremes or None)
PG_TYPES: dict[str, tuple[Any, Any]] = {
    "smallint": (st.integers(-2**15, 2**15 - 1), None),
    "integer": (st.integers(-2**31, 2**31 - 1), None),
    "bigint": (st.integers(-2**63, 2**63 - 1), None),
    "numeric": (decimals, None),
    "double precision": (floats, None),
    "real": (st.floats(width=32, allow_nan=True, allow_infinity=True), None),
    "text": (texts, None),
    "varchar(40)": (texts, None),
    "bytea": (st.binary(max_size=40), None),
    "boolean": (st.booleans(), None),
    "date": (st.dates(), st.sampled_from(SPECIAL_DATES)),
    "timestamp": (datetimes, st.sampled_from(SPECIAL_TIMESTAMPS)),
    "timestamptz": (datetimes.map(lambda d: d.replace(tzinfo=dt.UTC)), st.sampled_from(SPECIAL_TIMESTAMPS)),
    "time": (st.times(), None),
    "interval": (st.timedeltas(min_value=dt.timedelta(days=-10**6), max_value=dt.timedelta(days=10**6)), None),
    "uuid": (st.uuids(), None),
    "jsonb": (json_values, None),
    "json": (json_values, None),
    "text[]": (st.lists(st.none() | texts, max_size=5), None),
    "integer[]": (st.lists(st.none() | st.integers(-2**31, 2**31 - 1), max_size=5), None),
    "integer[][]": (st.sampled_from([[], [[1, 2], [3, None]], [[None]]]), None),
}
KINDS = {"jsonb": pg_literals.JSON, "json": pg_literals.JSON}


def pg_values(type_name: str) -> Any:
    values, extremes = PG_TYPES[type_name]
    strategy = st.none() | values
    return strategy | extremes if extremes is not None else strategy


def adapt(value: Any, type_name: str) -> Any:
    """A bound parameter for `value` (psycopg2's own adaptation: the reference)."""
    if type_name in ("json", "jsonb") and not isinstance(value, str | type(None)):
        return Json(value)
    if type_name in ("json", "jsonb") and isinstance(value, str):
        return Json(value)
    if isinstance(value, Decimal):
        return "NaN" if value.is_nan() else str(value)
    if isinstance(value, float):  # psycopg2 sends -0.0 as a numeric, losing the sign
        return {math.inf: "Infinity", -math.inf: "-Infinity"}.get(value, repr(value).replace("nan", "NaN"))
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def text_of(cur, expression: sql.Composable, params: tuple | None = None) -> Any:
    cur.execute(sql.SQL("SELECT ({})::text").format(expression), params)
    return cur.fetchone()[0]


# --- fixtures -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg_pair(pg_server):
    """(source URL, restore URL): two databases reused by every example."""
    names = [f"prop_src_{uuid.uuid4().hex[:8]}", f"prop_dst_{uuid.uuid4().hex[:8]}"]
    urls = [pg_server.create_database(name) for name in names]
    yield urls
    for name in names:
        pg_server.drop_database(name)


@pytest.fixture(scope="module")
def pg_conn(pg_pair):
    conn = richdb_pg.connect(pg_pair[0])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'; SET extra_float_digits = 3")
    yield conn
    conn.close()


# --- literals, type by type -----------------------------------------------------------------------------------
@pytest.mark.parametrize("type_name", sorted(PG_TYPES))
def test_pg_literal_reads_back_like_a_bound_parameter(pg_conn, type_name):
    @LITERALS
    @given(value=pg_values(type_name))
    def check(value):
        kind = KINDS.get(type_name)
        literal = pg_literals.pg_literal(value, kind)
        with pg_conn.cursor() as cur:
            cast = sql.SQL("::" + type_name + ("::jsonb" if type_name == "json" else ""))  # json keeps its text
            rendered = text_of(cur, sql.SQL("(") + sql.SQL(literal) + sql.SQL(")") + cast)
            expected = text_of(cur, sql.SQL("(%s)") + cast, (adapt(value, type_name),))
        assert rendered == expected, literal

    check()


@pytest.mark.parametrize("type_name", sorted(PG_TYPES))
def test_pg_copy_field_loads_like_a_bound_parameter(pg_conn, type_name):
    import io

    @LITERALS
    @given(values=st.lists(pg_values(type_name), min_size=1, max_size=4))
    def check(values):
        kind = KINDS.get(type_name)
        data = "".join(pg_literals.pg_copy_row([v], [kind]) for v in values)
        with pg_conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE TEMP TABLE copied (n serial, v {})").format(sql.SQL(type_name)))
            try:
                cur.copy_expert("COPY copied (v) FROM STDIN", io.StringIO(data))
                as_text = "::jsonb" if type_name == "json" else ""  # json keeps its text as written
                cur.execute(f"SELECT v{as_text}::text FROM copied ORDER BY n")
                loaded = [row[0] for row in cur.fetchall()]
                expected = [text_of(cur, sql.SQL("(%s)::" + type_name + as_text), (adapt(v, type_name),))
                            for v in values]
            finally:
                cur.execute("DROP TABLE copied")
        assert loaded == expected, data

    check()


sqlite_values = (st.none() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False)
                 | st.text(st.characters(blacklist_categories=("Cs",)), max_size=20) | st.binary(max_size=20)
                 | st.sampled_from([0.0, -0.0, float("inf"), float("-inf"), 5e-324, -2.2606631148481385e-299,
                                    "a\x00b", "'", "\\", "\n", b"", b"\x00"]))


def sqlite_key(value: Any) -> Any:
    return ("real", value.hex()) if isinstance(value, float) else value


@LITERALS
@given(values=st.lists(sqlite_values, min_size=1, max_size=10))
def test_sqlite_literal_stores_the_same_value_and_class(values):
    literals = sqlite_literals.SqliteLiterals()
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE a (n INTEGER PRIMARY KEY, v)")
        conn.execute("CREATE TABLE b (n INTEGER PRIMARY KEY, v)")
        for n, value in enumerate(values):
            conn.execute("INSERT INTO a VALUES (?, ?)", (n, value))
            conn.execute(f"INSERT INTO b VALUES ({n}, {literals.literal(value)})")  # noqa: S608
        rows = [[(kind, sqlite_key(v)) for kind, v in conn.execute(f"SELECT typeof(v), v FROM {t} ORDER BY n")]
                for t in ("a", "b")]
        assert rows[0] == rows[1]
    finally:
        conn.close()
        literals.close()


def test_sqlite_raw_text_and_nan():
    literals = sqlite_literals.SqliteLiterals()
    assert literals.literal(sqlite_literals.RawText(b"\xff\x00")) == "CAST(X'ff00' AS TEXT)"
    assert literals.literal(float("nan")) == "NULL"
    assert literals.literal(True) == "1"
    literals.close()


# --- restore(dump(db)) == db ------------------------------------------------------------------------------------
identifier = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=1,
                     max_size=12).filter(lambda s: len(s.encode()) <= 60 and s.strip() == s and s) | \
    st.sampled_from(["select", "from", "user", "a b", 'q"uote', "semi;colon", "Mixed", "列", "🎉", "order", "1st"])


@st.composite
def pg_tables(draw) -> tuple[str, list[tuple[str, str]], list[list[Any]]]:
    name = draw(identifier)
    columns = draw(st.lists(st.tuples(identifier, st.sampled_from(sorted(PG_TYPES))), min_size=1, max_size=6,
                            unique_by=lambda c: c[0]))
    rows = draw(st.lists(st.tuples(*[pg_values(t) for _, t in columns]), max_size=6))
    return name, columns, [list(r) for r in rows]


@pytest.mark.skipif(not PSQL, reason="psql not installed")
@PROPERTY
@given(table=pg_tables(), schema=st.sampled_from(["public", "Other Schema", 'we"ird']))
def test_random_postgresql_tables_round_trip(pg_pair, tmp_path, table, schema):
    source, restored = pg_pair
    name, columns, rows = table
    conn = richdb_pg.connect(source)
    try:
        with conn.cursor() as cur:
            cur.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier("Other Schema")))
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier('we"ird')))
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            cur.execute(sql.SQL("CREATE TABLE {}.{} (row_no serial PRIMARY KEY, {})").format(
                sql.Identifier(schema), sql.Identifier(name),
                sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns)))
            for row in rows:
                # With parameters, psycopg2 reads every % as a placeholder: names get theirs doubled.
                cur.execute(sql.SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
                    sql.Identifier(schema.replace("%", "%%")), sql.Identifier(name.replace("%", "%%")),
                    sql.SQL(", ").join(sql.Identifier(c.replace("%", "%%")) for c, _ in columns),
                    sql.SQL(", ").join(sql.SQL("(%s)::" + t) for _, t in columns)),
                    [adapt(v, t) for v, (_, t) in zip(row, columns, strict=True)])
        conn.commit()
    finally:
        conn.close()
    path = tmp_path / "prop.sql"
    with open(path, "wb") as handle:
        result = sqlgen.dump_sql(Target.from_url("src", source), handle, "full")
    assert result.rows == len(rows)
    postgresql.restore_sql(Target.from_url("dst", restored), path, "full", [], TOOLS)
    assert richdb_pg.database_state(restored) == richdb_pg.database_state(source)
    assert richdb_pg.schema_fingerprint(restored) == richdb_pg.schema_fingerprint(source)


SQLITE_DECLARED = ["INTEGER", "REAL", "TEXT", "BLOB", "NUMERIC", "", "VARCHAR(10)", "JSON", "DATETIME", "BOOLEAN"]


@st.composite
def sqlite_tables(draw) -> tuple[str, list[tuple[str, str]], list[list[Any]], bool]:
    name = draw(identifier.filter(lambda s: not s.lower().startswith("sqlite_")))
    columns = draw(st.lists(st.tuples(identifier, st.sampled_from(SQLITE_DECLARED)), min_size=1, max_size=6,
                            unique_by=lambda c: c[0].lower()))
    rows = draw(st.lists(st.tuples(*[sqlite_values for _ in columns]), max_size=8))
    return name, columns, [list(r) for r in rows], draw(st.booleans())


@PROPERTY
@given(table=sqlite_tables())
def test_random_sqlite_tables_round_trip(tmp_path_factory, table):
    folder = tmp_path_factory.mktemp("prop")
    name, columns, rows, integer_pk = table
    source = folder / "source.sqlite3"
    quote = sqlite.quote_identifier
    conn = sqlite3.connect(source)
    try:
        key = "pk INTEGER PRIMARY KEY, " if integer_pk else ""
        conn.execute(f"CREATE TABLE {quote(name)} ({key}{', '.join(f'{quote(c)} {t}' for c, t in columns)})")
        marks = ", ".join("?" for _ in columns)
        conn.executemany(f"INSERT INTO {quote(name)} ({', '.join(quote(c) for c, _ in columns)}) "  # noqa: S608
                         f"VALUES ({marks})", rows)
        conn.execute(f"DELETE FROM {quote(name)} WHERE rowid % 3 = 0")  # noqa: S608 - gaps in the rowids
        conn.commit()
    finally:
        conn.close()
    path = folder / "dump.sql"
    with open(path, "wb") as handle:
        sqlgen.dump_sql(Target.from_url("src", f"sqlite:///{source}"), handle, "full")
    restored = folder / "restored.sqlite3"
    sqlite.restore_sql(Target.from_url("dst", f"sqlite:///{restored}"), path, "full")
    assert sqlite_state(restored) == sqlite_state(source)


def test_nan_helpers_are_consistent():
    assert pg_literals.pg_text(float("nan")) == "NaN"
    assert math.isnan(float(pg_literals.pg_text(float("nan"))))
    assert pg_literals.pg_literal(Decimal("-Infinity")) == "'-Infinity'::numeric"
    assert pg_literals.pg_copy_field("a\tb\\c\nd\re") == "a\\tb\\\\c\\nd\\re"
    assert pg_literals.pg_literal(float("nan")) == "'NaN'::double precision"
    assert math.copysign(1.0, float(pg_literals.pg_text(-0.0))) == -1.0  # the sign of zero is kept
    assert float(pg_literals.pg_text(float("-inf"))) == float("-inf")
    assert pg_literals.pg_copy_field(None) == "\\N" and pg_literals.pg_copy_field("\\N") == "\\\\N"
