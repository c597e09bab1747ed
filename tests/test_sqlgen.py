"""The SQLAlchemy fallback (`backup_engine.sqlgen`) against real PostgreSQL, psql and SQLite files.

Round trips compare everything a restore may change: richdb_pg.database_state (rows, sequence
positions) and richdb_pg.schema_fingerprint (the catalog) for PostgreSQL; the SQLite engine
tests' db_state (DDL, rows with storage classes, rowids, sqlite_sequence) for SQLite.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    select,
)

from backup_engine import errors
from backup_engine.dumpinfo import ClientTools, DumpResult
from backup_engine.engines.postgresql import literals as pg_literals
from backup_engine.engines.postgresql.native import END_MARKER, PlainDumpScanner
from backup_engine.formats import FORMATS
from backup_engine.formats.model import DatabaseModel, SchemaExtras, extras_from_dict, extras_to_dict
from backup_engine.targets import Target
from tests import richdb_pg
from tests.engine_api import BackupStore, postgresql, restore_backup, sqlgen, sqlite
from tests.test_sqlite_engine import db_state as sqlite_state
from tests.test_sqlite_engine import make_rich_db as make_rich_sqlite

PG_DUMP, PSQL = shutil.which("pg_dump"), shutil.which("psql")
TOOLS = ClientTools(pg_dump=PG_DUMP, psql=PSQL)
needs_psql = pytest.mark.skipif(not PSQL, reason="psql not installed")


# --- helpers -------------------------------------------------------------------------------------------------
def dump(target: Target, path: Path, include_data: str = "full") -> DumpResult:
    with open(path, "wb") as handle:
        return sqlgen.dump_sql(target, handle, include_data)


def pg_target(url: str, name: str = "t") -> Target:
    return Target.from_url(name, url)


def restore_pg(url: str, path: Path, include_data: str, result: DumpResult) -> None:
    postgresql.restore_sql(pg_target(url), path, include_data, list(result.table_rows), TOOLS)


def snapshot(url: str) -> tuple[dict, dict]:
    return richdb_pg.database_state(url), richdb_pg.schema_fingerprint(url)


def execute(url: str, statements: str, params: Any = None) -> None:
    conn = richdb_pg.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(statements, params)
        conn.commit()
    finally:
        conn.close()


def round_trip(url: str, make_pg_database, tmp_path: Path, include_data: str = "full") -> tuple[str, DumpResult]:
    path = tmp_path / f"dump_{include_data}.sql"
    result = dump(pg_target(url), path, include_data)
    restored = make_pg_database("restored")
    restore_pg(restored, path, include_data, result)
    return restored, result


# --- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rich_url(pg_server) -> str:
    """The rich database, built once for the module and never changed by the tests."""
    name = f"sqlgen_rich_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name)
    richdb_pg.build_rich_database(url, rows_per_table=120, seed=3)
    yield url
    pg_server.drop_database(name)


@pytest.fixture(scope="module")
def rich_snapshot(rich_url: str) -> tuple[dict, dict]:
    return snapshot(rich_url)


@pytest.fixture(scope="module")
def rich_full(rich_url: str, tmp_path_factory) -> tuple[Path, DumpResult]:
    path = tmp_path_factory.mktemp("sqlgen") / "rich_full.sql"
    return path, dump(pg_target(rich_url, "rich"), path, "full")


# --- PostgreSQL: the rich database ---------------------------------------------------------------------------
@needs_psql
def test_rich_database_restores_identically(rich_url, rich_full, rich_snapshot, make_pg_database):
    path, result = rich_full
    restored = make_pg_database("restored")
    restore_pg(restored, path, "full", result)
    state, schema = snapshot(restored)
    assert schema == rich_snapshot[1]
    assert state == rich_snapshot[0]


def test_dump_reports_pg_dump_style_table_names_and_rows(rich_url, rich_full):
    path, result = rich_full
    assert result.method == "sqlalchemy"
    assert result.server_version.split()[0].split(".")[0].isdigit()
    assert result.table_rows == richdb_pg.table_row_counts(rich_url)
    assert richdb_pg.ODD_TABLE_QUALIFIED in result.table_rows
    assert result.rows == richdb_pg.total_rows(rich_url) > 0


def test_dump_ends_like_pg_dump_and_passes_its_completeness_check(rich_full):
    path, _ = rich_full
    data = path.read_bytes()
    scanner = PlainDumpScanner()
    for start in range(0, len(data), 4096):
        scanner.feed(data[start:start + 4096])
    scanner.check_complete()
    assert END_MARKER in data[-100:]
    assert data.rstrip().endswith(b"--")


def test_script_has_no_owner_or_privilege_statements(rich_full):
    text = rich_full[0].read_text(encoding="utf-8")
    for word in ("OWNER TO", "GRANT ", "REVOKE ", "SET ROLE", "SET SESSION AUTHORIZATION"):
        assert word not in text


@needs_psql
def test_restore_backup_facade_restores_a_published_fallback_backup(rich_url, rich_snapshot, backup_dir,
                                                                    make_pg_database):
    """The way backup.py will publish it: streamed through the artifact, table_rows in the manifest."""
    store = BackupStore(backup_dir)
    with store.catalogue.new_artifact(FORMATS["sql"], "rich", dt.datetime.now(dt.UTC)) as artifact:
        result = sqlgen.dump_sql(pg_target(rich_url, "rich"), artifact, "full")
        manifest = artifact.publish(
            format="sql", target="rich", dialect="postgresql", server_version=result.server_version,
            method=result.method, include_data="full", tables=result.tables, rows=result.rows,
            table_rows=result.table_rows).as_result()
    target = pg_target(make_pg_database("facade"), "facade")
    execute(target.url.render_as_string(hide_password=False),
            "CREATE TABLE leftover (x int); CREATE SCHEMA other; CREATE TABLE other.t (y int)")
    outcome = restore_backup(target, store, manifest["backup_filename"], tools=TOOLS, safety_backup=False)
    assert outcome["rows"] == result.rows
    assert snapshot(target.url.render_as_string(hide_password=False)) == rich_snapshot


@needs_psql
def test_schema_only_restores_the_schema_with_no_rows(rich_url, rich_snapshot, make_pg_database, tmp_path):
    restored, result = round_trip(rich_url, make_pg_database, tmp_path, "schema")
    assert set(result.table_rows) == set(richdb_pg.user_tables(rich_url))
    assert result.rows == 0
    assert richdb_pg.schema_fingerprint(restored) == rich_snapshot[1]
    assert richdb_pg.total_rows(restored) == 0
    assert "COPY " not in (tmp_path / "dump_schema.sql").read_text(encoding="utf-8")


@needs_psql
def test_data_only_replaces_the_rows_of_an_existing_schema(rich_url, rich_snapshot, make_pg_database, tmp_path):
    path = tmp_path / "data.sql"
    result = dump(pg_target(rich_url), path, "data")
    assert result.rows == richdb_pg.total_rows(rich_url)
    assert "CREATE TABLE" not in path.read_text(encoding="utf-8")
    target_url = make_pg_database("data")
    conn = richdb_pg.connect(target_url)
    try:
        richdb_pg.create_rich_schema(conn)
        richdb_pg.populate(conn, rows_per_table=30, seed=9)  # other rows, and products' audit trigger fired
    finally:
        conn.close()
    assert richdb_pg.database_state(target_url) != rich_snapshot[0]
    restore_pg(target_url, path, "data", result)
    assert snapshot(target_url) == rich_snapshot  # the trigger stayed quiet during the load, and is back


# --- PostgreSQL: more objects, odd names, cycles ---------------------------------------------------------------
MORE_OBJECTS_SQL = r'''
CREATE EXTENSION citext WITH SCHEMA public;
CREATE SCHEMA "Odd Schema; ""q""";
CREATE TYPE "Odd Schema; ""q"""."odd enum" AS ENUM ('it''s', 'back\slash', 'ünï', '');
CREATE DOMAIN public.short_text AS text COLLATE "C" DEFAULT 'x' NOT NULL CHECK (length(VALUE) < 50);
CREATE DOMAIN public.shorter_text AS public.short_text CHECK (length(VALUE) < 20);
ALTER DOMAIN public.short_text ADD CONSTRAINT not_blank CHECK (VALUE <> ' ') NOT VALID;
CREATE SEQUENCE "Odd Schema; ""q""".cyc_seq AS smallint INCREMENT BY -3 MINVALUE -100 MAXVALUE 50 START 10 CYCLE;
CREATE UNLOGGED TABLE public.scratch (id int PRIMARY KEY, note public.shorter_text, ci public.citext);
CREATE TABLE "Odd Schema; ""q"""."Table ""One""" (
    "select" int PRIMARY KEY,
    "from;" "Odd Schema; ""q"""."odd enum"[] DEFAULT '{}',
    other_id int,
    "Ünï Côde" text COLLATE "C" DEFAULT 'a :colon %percent \backslash',
    period tsrange,
    ident bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 100 INCREMENT BY 5),
    EXCLUDE USING gist (period WITH &&),
    CONSTRAINT "uniq ""deferred""" UNIQUE ("Ünï Côde") DEFERRABLE INITIALLY DEFERRED
);
CREATE TABLE public.other (
    id int PRIMARY KEY,
    one_id int REFERENCES "Odd Schema; ""q"""."Table ""One""" ("select") DEFERRABLE INITIALLY DEFERRED,
    parent_id int REFERENCES public.other (id)
);
ALTER TABLE "Odd Schema; ""q"""."Table ""One"""
    ADD CONSTRAINT one_other_fk FOREIGN KEY (other_id) REFERENCES public.other (id) DEFERRABLE INITIALLY DEFERRED;
CREATE TABLE public.measure (city text NOT NULL, at date NOT NULL, temp numeric) PARTITION BY LIST (city);
CREATE TABLE public.measure_north PARTITION OF public.measure FOR VALUES IN ('Oslo', 'Umeå')
    PARTITION BY RANGE (at);
CREATE TABLE public.measure_north_2024 PARTITION OF public.measure_north
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
ALTER TABLE public.measure_north_2024 ADD CONSTRAINT sane_temp CHECK (temp > -90);
CREATE TABLE public.measure_rest PARTITION OF public.measure DEFAULT;
CREATE FUNCTION public.one_rows(min int) RETURNS SETOF "Odd Schema; ""q"""."Table ""One"""
    LANGUAGE sql STABLE AS $$ SELECT * FROM "Odd Schema; ""q"""."Table ""One""" WHERE "select" >= min $$;
CREATE PROCEDURE public.bump(n int) LANGUAGE plpgsql AS $$ BEGIN PERFORM n; END $$;
CREATE FUNCTION public.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER "quiet; trigger" BEFORE UPDATE ON public.other FOR EACH ROW EXECUTE FUNCTION public.noop();
ALTER TABLE public.other DISABLE TRIGGER "quiet; trigger";
CREATE TRIGGER always_trigger BEFORE INSERT ON public.other FOR EACH ROW EXECUTE FUNCTION public.noop();
ALTER TABLE public.other ENABLE ALWAYS TRIGGER always_trigger;
CREATE VIEW public.v1 WITH (security_barrier = true) AS SELECT id, one_id FROM public.other WHERE id > 0
    WITH LOCAL CHECK OPTION;
CREATE VIEW "Odd Schema; ""q""".v2 AS SELECT v1.id FROM public.v1 JOIN public.other o USING (id);
CREATE MATERIALIZED VIEW public.mv AS SELECT count(*) AS n FROM public.other;
CREATE UNIQUE INDEX mv_n ON public.mv (n);
CREATE INDEX other_cover ON public.other (one_id) INCLUDE (parent_id) WITH (fillfactor = 70);
COMMENT ON INDEX public.other_cover IS 'covering; 100% \ ''index'' here';
COMMENT ON SEQUENCE "Odd Schema; ""q""".cyc_seq IS 'cycles';
COMMENT ON CONSTRAINT one_other_fk ON "Odd Schema; ""q"""."Table ""One""" IS 'cycle member';
COMMENT ON TRIGGER always_trigger ON public.other IS 'always';
COMMENT ON DOMAIN public.short_text IS 'short';
COMMENT ON TYPE "Odd Schema; ""q"""."odd enum" IS 'odd';
COMMENT ON VIEW public.v1 IS 'view';
COMMENT ON COLUMN public.v1.id IS 'view column';
COMMENT ON MATERIALIZED VIEW public.mv IS 'mat';
COMMENT ON PROCEDURE public.bump(int) IS 'proc';
COMMENT ON TABLE "Odd Schema; ""q"""."Table ""One""" IS E'multi\nline';

INSERT INTO public.other (id) VALUES (1), (2), (3);
INSERT INTO "Odd Schema; ""q"""."Table ""One""" ("select", "from;", other_id, "Ünï Côde", period) VALUES
    (1, '{it''s,"back\\slash",ünï,""}', 2, 'one', '[2024-01-01,2024-02-01)'),
    (2, '{}', NULL, 'two', '[2024-03-01,2024-04-01)'),
    (3, NULL, 1, NULL, NULL);
UPDATE public.other SET one_id = id, parent_id = CASE WHEN id > 1 THEN id - 1 END;
INSERT INTO public.measure VALUES
    ('Oslo', '2024-05-01', -3.5), ('Paris', '2020-01-01', 'NaN'), ('Umeå', '2024-12-31', NULL);
INSERT INTO public.scratch VALUES (1, 'short', 'MiXeD');
SELECT nextval('"Odd Schema; ""q""".cyc_seq') FROM generate_series(1, 40);
REFRESH MATERIALIZED VIEW public.mv;
'''


@needs_psql
def test_odd_names_cycles_partitions_and_catalog_objects_round_trip(make_pg_database, tmp_path):
    source = make_pg_database("more")
    execute(source, MORE_OBJECTS_SQL)
    before = snapshot(source)
    restored, result = round_trip(source, make_pg_database, tmp_path)
    assert snapshot(restored) == before
    assert result.table_rows['"Odd Schema; ""q"""."Table ""One"""'] == 3
    text = (tmp_path / "dump_full.sql").read_text(encoding="utf-8")
    # cycle members and self-references are added after the data
    assert text.index("ADD CONSTRAINT one_other_fk") > text.index("COPY public.other ")
    assert text.index("ADD CONSTRAINT other_parent_id_fkey") > text.index("COPY public.other ")
    conn = richdb_pg.connect(restored)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT n FROM public.mv")
            assert cur.fetchone() == (3,)
            cur.execute('SELECT nextval(\'"Odd Schema; ""q""".cyc_seq\')')
            source_conn = richdb_pg.connect(source)
            with source_conn.cursor() as source_cur:
                source_cur.execute('SELECT nextval(\'"Odd Schema; ""q""".cyc_seq\')')
                assert cur.fetchone() == source_cur.fetchone()
            source_conn.close()
    finally:
        conn.close()


def without_trigger_states(schema: dict) -> dict:
    return {**schema, "triggers": sorted(row[:3] for row in schema["triggers"])}


def schema_then_data(source: str, make_pg_database, tmp_path: Path) -> str:
    restored, _ = round_trip(source, make_pg_database, tmp_path, "schema")
    assert richdb_pg.schema_fingerprint(restored) == richdb_pg.schema_fingerprint(source)
    data_path = tmp_path / "data.sql"
    result = dump(pg_target(source), data_path, "data")
    restore_pg(restored, data_path, "data", result)  # cycles, self-references, deferred FKs, triggers
    return restored


@needs_psql
def test_schema_and_data_modes_of_the_odd_database(make_pg_database, tmp_path):
    source = make_pg_database("more")
    execute(source, MORE_OBJECTS_SQL)
    state, schema = snapshot(source)
    restored = schema_then_data(source, make_pg_database, tmp_path)
    assert richdb_pg.database_state(restored) == state
    assert without_trigger_states(richdb_pg.schema_fingerprint(restored)) == without_trigger_states(schema)


@needs_psql
def test_data_only_restore_keeps_trigger_states(make_pg_database, tmp_path):
    source = make_pg_database("more")
    execute(source, MORE_OBJECTS_SQL)
    restored = schema_then_data(source, make_pg_database, tmp_path)
    assert richdb_pg.schema_fingerprint(restored)["triggers"] == richdb_pg.schema_fingerprint(source)["triggers"]


# --- PostgreSQL: failures ------------------------------------------------------------------------------------
def test_unreachable_server_is_transient(pg_server):
    from tests.servers import free_port

    target = Target.from_url("gone", f"postgresql://u:p@127.0.0.1:{free_port()}/nothing")
    with pytest.raises(errors.TargetUnavailable):
        sqlgen.dump_sql(target, RecordingSink(), "full")


def test_unreadable_table_fails_with_the_fallback_message_and_reason(pg_server, make_pg_database):
    role = f"weak_{uuid.uuid4().hex[:8]}"
    url = make_pg_database("perm")
    execute(url, f"CREATE ROLE {role} LOGIN PASSWORD 'weak-pw'; CREATE TABLE secret (x int); "
                 f"GRANT USAGE ON SCHEMA public TO {role}")
    try:
        weak = Target.from_url("weak", pg_server.url(url.rsplit("/", 1)[1], user=role, password="weak-pw"))
        with pytest.raises(errors.DumpError) as caught:
            sqlgen.dump_sql(weak, RecordingSink(), "full")
        assert str(caught.value).startswith(errors.FALLBACK_FAILED + ": ")
        assert "permission denied" in str(caught.value)
    finally:
        pg_server.drop_database(url.rsplit("/", 1)[1])
        conn = pg_server.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP ROLE IF EXISTS {role}")
        conn.close()


def test_unknown_include_data_is_refused(rich_url):
    with pytest.raises(errors.InvalidRequest):
        sqlgen.dump_sql(pg_target(rich_url), RecordingSink(), "everything")


# --- PostgreSQL: streaming --------------------------------------------------------------------------------------
class RecordingSink:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def write(self, data: bytes) -> int:
        self.sizes.append(len(data))
        return len(data)


def test_copy_data_moves_in_large_blocks(make_pg_database):
    url = make_pg_database("big")
    execute(url, "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 60000) g")
    sink = RecordingSink()
    result = sqlgen.dump_sql(pg_target(url), sink, "full")
    assert result.table_rows == {"public.big": 60000}
    assert max(sink.sizes) <= sqlgen.COPY_BLOCK
    assert sum(sink.sizes) > 2 * sqlgen.COPY_BLOCK
    assert len(sink.sizes) < 20  # blocks, not rows


# --- SQLite ------------------------------------------------------------------------------------------------------
def sqlite_target(path: Path) -> Target:
    return Target.from_url("lite", f"sqlite:///{path}")


def test_sqlite_rich_database_round_trips(tmp_path):
    source = tmp_path / "rich.sqlite3"
    make_rich_sqlite(source)
    dump_path = tmp_path / "rich.sql"
    result = dump(sqlite_target(source), dump_path)
    assert result.method == "sqlalchemy"
    assert result.table_rows == sqlite.count_rows(sqlite3.connect(source))
    assert dump_path.read_text(encoding="utf-8").rstrip().endswith(sqlite.END_MARKER)
    restored = tmp_path / "restored.sqlite3"
    sqlite.restore_sql(sqlite_target(restored), dump_path, "full")
    assert sqlite_state(restored) == sqlite_state(source)


def test_sqlite_schema_and_data_modes(tmp_path):
    source = tmp_path / "rich.sqlite3"
    make_rich_sqlite(source)
    schema_path, data_path = tmp_path / "schema.sql", tmp_path / "data.sql"
    schema_result = dump(sqlite_target(source), schema_path, "schema")
    data_result = dump(sqlite_target(source), data_path, "data")
    assert schema_result.rows == 0 and set(schema_result.table_rows) == set(data_result.table_rows)
    assert "INSERT INTO" not in schema_path.read_text(encoding="utf-8").replace('INSERT INTO log', '')
    assert "CREATE TABLE" not in data_path.read_text(encoding="utf-8")
    restored = tmp_path / "restored.sqlite3"
    sqlite.restore_sql(sqlite_target(restored), schema_path, "schema")
    assert sqlite_state(restored)["master"] == sqlite_state(source)["master"]
    sqlite.restore_sql(sqlite_target(restored), data_path, "data")
    assert sqlite_state(restored) == sqlite_state(source)


def test_sqlite_missing_file_is_an_error(tmp_path):
    with pytest.raises(errors.BackupError):
        sqlgen.dump_sql(sqlite_target(tmp_path / "nope.sqlite3"), RecordingSink(), "full")


# --- the writer on its own: MetaData and rows from Python (the JSON-to-SQL path) ------------------------------
def portable_metadata(schema: str | None) -> MetaData:
    metadata = MetaData(schema=schema)
    Table("authors", metadata,
          Column("id", Integer, primary_key=True),
          Column("name", String(80), nullable=False, unique=True),
          Column("mentor_id", Integer, ForeignKey("authors.id" if not schema else f"{schema}.authors.id")),
          comment="it's 100% \\ authors")
    Table("select", metadata,  # a reserved word
          Column("id", Integer, primary_key=True),
          Column("author id", Integer, ForeignKey("authors.id" if not schema else f"{schema}.authors.id")),
          Column("title; \"quoted\"", Text),
          Column("price", Numeric(10, 2)),
          Column("score", Float),
          Column("is_out", Boolean),
          Column("published", Date),
          Column("updated", DateTime),
          Column("cover", LargeBinary),
          Column("meta", JSON))
    return metadata


PORTABLE_ROWS = {
    "authors": [(1, "Ann", None), (2, "Bob 'B' \\ \"b\"", 1), (3, "Ωmega\ttab\nline", 2)],
    "select": [
        (1, 1, "it's", Decimal("12.50"), 0.1, True, dt.date(1, 1, 1), dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
         b"\x00\\.\n", {"a": [1, None, "ü"], "q": "\"\\"}),
        (2, None, "", Decimal("-0.01"), -0.0, False, dt.date(9999, 12, 31), dt.datetime(1970, 1, 1), b"", []),
        (3, 3, None, None, None, None, None, None, None, None),
    ],
}


def write_portable(path: Path, dialect: str, schema: str | None) -> dict[str, int]:
    metadata = portable_metadata(schema)

    def rows(table: Table, columns: list[str]) -> sqlgen.RowData:
        kinds = ["json" if isinstance(table.c[c].type, JSON) else None for c in columns]
        return sqlgen.RowData(columns=columns, rows=PORTABLE_ROWS[table.name], kinds=kinds)

    extras = extras_from_dict(extras_to_dict(SchemaExtras()))  # as a JSON schema would carry them
    with open(path, "wb") as handle:
        writer = sqlgen.SqlScriptWriter(handle, dialect)
        return writer.write_script(DatabaseModel(dialect=dialect, metadata=metadata, extras=extras), "full", rows)


def exact(value: object) -> object:
    """A value compared exactly: a float by its bits (`-0.0 == 0.0` would hide a lost sign)."""
    return ("float", value.hex()) if isinstance(value, float) else value


def read_portable(url: str, schema: str | None) -> dict[str, list[tuple]]:
    metadata = portable_metadata(schema)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {name: [tuple(exact(v) for v in row) for row in conn.execute(select(table).order_by(table.c.id))]
                    for name, table in ((t.name, t) for t in metadata.sorted_tables)}
    finally:
        engine.dispose()


def expected_portable(dialect: str) -> dict[str, list[tuple]]:
    """The rows as written, compared exactly. PostgreSQL keeps -0.0; SQLite stores an integral value
    of a REAL column as an integer, so -0.0 comes back from it as 0.0 (SQLite's doing: the script
    writes `-0.0`, and a column without affinity keeps the sign, see test_sqlite_engine)."""
    expected = {name: [list(row) for row in rows] for name, rows in PORTABLE_ROWS.items()}
    if dialect == "sqlite":
        assert math.copysign(1.0, expected["select"][1][4]) == -1.0
        expected["select"][1][4] = 0.0
    return {name: [tuple(exact(v) for v in row) for row in rows] for name, rows in expected.items()}


def test_writer_builds_a_sqlite_script_from_portable_metadata(tmp_path):
    path = tmp_path / "portable.sql"
    table_rows = write_portable(path, "sqlite", None)
    assert table_rows == {"authors": 3, "select": 3}
    restored = tmp_path / "portable.sqlite3"
    sqlite.restore_sql(sqlite_target(restored), path, "full")
    assert read_portable(f"sqlite:///{restored}", None) == expected_portable("sqlite")


@needs_psql
def test_writer_builds_a_postgresql_script_from_portable_metadata(tmp_path, make_pg_database):
    path = tmp_path / "portable.sql"
    table_rows = write_portable(path, "postgresql", "public")
    assert table_rows == {"public.authors": 3, 'public."select"': 3}
    url = make_pg_database("portable")
    postgresql.restore_sql(pg_target(url), path, "full", [], TOOLS)
    assert read_portable(url, "public") == expected_portable("postgresql")
    conn = psycopg2.connect(**{k: v for k, v in richdb_pg.connect(url).get_dsn_parameters().items()
                               if k in ("host", "port", "user", "dbname")}, password=pg_target(url).url.password)
    with conn.cursor() as cur:
        cur.execute("SELECT obj_description('public.authors'::regclass)")
        assert cur.fetchone()[0] == "it's 100% \\ authors"
    conn.close()


def test_sqlliterals_are_used_for_comment_text():
    assert pg_literals.pg_string("it's \\ %") == "'it''s \\ %'"
