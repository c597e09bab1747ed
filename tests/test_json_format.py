"""JSON backups of PostgreSQL and SQLite: the document, its `.sql` twin, restores, and bad files.

Round trips compare richdb_pg.database_state (rows, sequence positions) and schema_fingerprint
for PostgreSQL, and the SQLite engine tests' db_state for SQLite. Bad files (truncated, a
table name that is SQL, a wrong value, an unknown version) must fail clearly and change nothing.
"""

from __future__ import annotations

import json
import random
import shutil
import uuid
from dataclasses import asdict
from pathlib import Path

import ijson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup_engine import errors
from backup_engine.dumpinfo import ClientTools
from backup_engine.engines.postgresql.native import END_MARKER
from backup_engine.formats.model import (
    ON_DEMAND_ITEMS,
    CatalogNode,
    IndexDef,
    PgCatalog,
    SchemaExtras,
    extras_to_dict,
)
from backup_engine.targets import Target
from tests import richdb_pg
from tests.engine_api import BackupStore, convert, create_backup, json_format, restore_backup, sqlite
from tests.test_sqlite_engine import db_state as sqlite_state
from tests.test_sqlite_engine import make_rich_db as make_rich_sqlite

TOOLS = ClientTools(pg_dump=shutil.which("pg_dump"), psql=shutil.which("psql"))
needs_psql = pytest.mark.skipif(not TOOLS.psql, reason="psql not installed")
EVIL = '"; DROP TABLE x; --'


def snapshot(url: str) -> tuple[dict, dict]:
    return richdb_pg.database_state(url), richdb_pg.schema_fingerprint(url)


def execute(url: str, statements: str) -> None:
    conn = richdb_pg.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(statements)
        conn.commit()
    finally:
        conn.close()


def publish_json(store: BackupStore, data: bytes, dialect: str = "postgresql") -> str:
    """A (possibly broken) JSON file published with a valid manifest: only conversion can catch it."""
    manifest = store.publish_bytes(data, "crafted", {"format": "json", "target": "crafted", "dialect": dialect,
                                                     "include_data": "full", "tables": 0, "rows": 0})
    return manifest["backup_filename"]


@pytest.fixture(scope="module")
def rich_url(pg_server) -> str:
    name = f"json_rich_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name)
    richdb_pg.build_rich_database(url, rows_per_table=60, seed=5)
    yield url
    pg_server.drop_database(name)


@pytest.fixture(scope="module")
def rich_snapshot(rich_url: str) -> tuple[dict, dict]:
    return snapshot(rich_url)


@pytest.fixture(scope="module")
def rich_backup(rich_url: str, tmp_path_factory) -> tuple[BackupStore, dict]:
    store = BackupStore(tmp_path_factory.mktemp("json_backups"))
    manifest = convert.create_json_backup_with_twin(Target.from_url("rich", rich_url), store)
    return store, manifest


# --- PostgreSQL: the rich database ---------------------------------------------------------------------------
@needs_psql
def test_rich_json_backup_restores_identically(rich_backup, rich_snapshot, make_pg_database):
    store, manifest = rich_backup
    assert manifest["format"] == "json" and manifest["backup_filename"].endswith(".json")
    assert manifest["rows"] == sum(state["rows"] for state in rich_snapshot[0]["tables"].values()
                                   if state is not None) - rich_snapshot[0]["tables"]["public.events"]["rows"]
    url = make_pg_database("from_json")
    execute(url, "CREATE TABLE leftover (x int)")
    result = restore_backup(Target.from_url("restored", url), store, manifest["backup_filename"], tools=TOOLS)
    assert result["safety_backup"]["format"] == "sql"
    assert snapshot(url) == rich_snapshot
    assert not list(store.folder.glob(".partial.*")), "the converted temp file is removed"


@needs_psql
def test_the_twin_exists_names_its_source_and_restores_the_same(rich_backup, rich_snapshot, make_pg_database):
    store, manifest = rich_backup
    (twin_name,) = manifest["companions"]
    path, twin = store.verified(twin_name)
    assert twin["format"] == "sql" and twin["converted_from"] == manifest["backup_filename"]
    assert twin["dialect"] == "postgresql" and twin["rows"] == manifest["rows"]
    assert twin["table_rows"] == manifest["table_rows"]
    assert path.stat().st_size > 0 and END_MARKER in path.read_bytes()[-200:]
    url = make_pg_database("from_twin")
    restore_backup(Target.from_url("twin", url), store, twin_name, tools=TOOLS, safety_backup=False)
    assert snapshot(url) == rich_snapshot


def test_document_is_json_with_header_schema_rows_per_line_and_trailer(rich_backup, rich_url):
    store, manifest = rich_backup
    path = Path(manifest["path"])
    with path.open("rb") as handle:  # any streaming JSON parser reads the whole document
        fmt = next(ijson.items(handle, "format"))
    assert fmt == json_format.FORMAT_NAME
    document = json.loads(path.read_bytes())
    assert document["version"] == json_format.FORMAT_VERSION
    assert document["header"]["source_dialect"] == "postgresql"
    assert document["header"]["include_data"] == "full"
    counts = richdb_pg.table_row_counts(rich_url)
    assert document["trailer"]["rows"] == sum(counts.values()) == manifest["rows"]
    zoo = next(t for t in document["schema"]["tables"] if t["key"] == "public.type_zoo")
    kinds = {c["name"]: c["kind"] for c in zoo["columns"]}
    assert kinds["c_bytea"] == "bytes" and kinds["c_numeric"] == "numeric" and kinds["c_int_arr"] == "array"
    assert kinds["c_mood"] == "enum" and kinds["c_email"] == "text" and kinds["c_inet"] == "other"
    lines = path.read_bytes().split(b"\n")
    assert lines[0].startswith(b'{"format": "backup-worker-json"')
    row_lines = [line for line in lines if line.startswith(b"[")]
    assert len(row_lines) == manifest["rows"]


def test_values_are_encoded_by_kind(rich_backup):
    store, manifest = rich_backup
    document = json.loads(Path(manifest["path"]).read_bytes())
    zoo = next(t for t in document["data"] if t["table"] == "public.type_zoo")
    columns = zoo["columns"]
    values = {name: [row[i] for row in zoo["rows"]] for i, name in enumerate(columns)}
    assert "NaN" in values["c_numeric_free"] and "Infinity" in values["c_numeric_free"]
    assert "NaN" in values["c_real"] and "Infinity" in values["c_real"]
    assert all(v is None or v.startswith("\\x") for v in values["c_bytea"])
    assert all(v is None or isinstance(v, str) for v in values["c_json"] + values["c_jsonb"])
    assert [1, None, 3] in values["c_int_arr"]
    assert "infinity" in values["c_date"] and any(v and v.endswith(" BC") for v in values["c_date"])


# --- SQLite ---------------------------------------------------------------------------------------------------
def test_rich_sqlite_json_round_trips_exactly(tmp_path):
    source = tmp_path / "src.db"
    make_rich_sqlite(source)
    store = BackupStore(tmp_path / "backups")
    manifest = convert.create_json_backup_with_twin(Target.from_url("s", f"sqlite:///{source}"), store)
    restored = tmp_path / "restored.db"
    restore_backup(Target.from_url("r", f"sqlite:///{restored}"), store, manifest["backup_filename"])
    assert sqlite_state(restored) == sqlite_state(source)
    twin_restored = tmp_path / "twin.db"
    restore_backup(Target.from_url("r", f"sqlite:///{twin_restored}"), store, manifest["companions"][0])
    assert sqlite_state(twin_restored) == sqlite_state(source)


def test_schema_only_and_data_only_documents(tmp_path):
    source = tmp_path / "src.db"
    make_rich_sqlite(source)
    target = Target.from_url("s", f"sqlite:///{source}")
    store = BackupStore(tmp_path / "backups")
    schema_only = create_backup(target, store, format="json", include_data="schema")
    assert schema_only["rows"] == 0
    with pytest.raises(errors.ConversionError, match="holds no data"):
        convert.convert_json_to_sql(schema_only["path"], tmp_path / "x.sql", include_data="full")
    convert.convert_json_to_sql(schema_only["path"], tmp_path / "schema.sql")
    empty = tmp_path / "empty.db"
    sqlite.restore_sql(Target.from_url("e", f"sqlite:///{empty}"), tmp_path / "schema.sql", "schema")
    assert sqlite_state(empty)["master"] == sqlite_state(source)["master"]
    data_only = create_backup(target, store, format="json", include_data="data")
    restore_backup(Target.from_url("e", f"sqlite:///{empty}"), store, data_only["backup_filename"])
    assert sqlite_state(empty) == sqlite_state(source)


# --- bad files: clear errors, nothing changed -----------------------------------------------------------------
@pytest.fixture
def small_pg(make_pg_database) -> tuple[str, Target]:
    url = make_pg_database("small")
    execute(url, "CREATE TABLE x (id int PRIMARY KEY, name text); INSERT INTO x VALUES (1, 'keep'), (2, 'me');"
                 "CREATE TABLE y (n bigint, t text); INSERT INTO y VALUES (5, 'five')")
    return url, Target.from_url("small", url)


def _doc(store: BackupStore, target: Target) -> bytes:
    manifest = create_backup(target, store, format="json")
    return Path(manifest["path"]).read_bytes()


@needs_psql
@pytest.mark.parametrize("cut", ["in_rows", "before_trailer", "in_trailer", "in_schema", "first_line"])
def test_truncated_json_is_refused_and_changes_nothing(small_pg, backup_dir, cut):
    url, target = small_pg
    store = BackupStore(backup_dir)
    data = _doc(store, target)
    positions = {"in_rows": data.index(b"[1, ") + 3, "before_trailer": data.index(b'"trailer"'),
                 "in_trailer": len(data) - 5, "in_schema": data.index(b'"schema"') + 50, "first_line": 10}
    name = publish_json(store, data[:positions[cut]])
    before = snapshot(url)
    backups_before = sorted(p.name for p in backup_dir.iterdir())
    with pytest.raises(errors.ConversionError) as failure:
        restore_backup(target, store, name, tools=TOOLS)
    assert str(failure.value).startswith(errors.JSON_CONVERSION_FAILED + ": ")
    assert name in str(failure.value)
    assert snapshot(url) == before
    assert sorted(p.name for p in backup_dir.iterdir()) == backups_before, "no safety backup, no temp file"


@needs_psql
def test_unknown_version_is_refused(small_pg, backup_dir):
    url, target = small_pg
    store = BackupStore(backup_dir)
    data = _doc(store, target).replace(b'"version": 1,', b'"version": 99,', 1)
    name = publish_json(store, data)
    before = snapshot(url)
    with pytest.raises(errors.ConversionError, match="unsupported format version 99"):
        restore_backup(target, store, name, tools=TOOLS)
    with pytest.raises(errors.ConversionError, match="unsupported format version 99"):
        convert.convert_backup(store, name)
    assert snapshot(url) == before


@needs_psql
def test_a_table_name_outside_the_schema_is_refused(small_pg, backup_dir):
    url, target = small_pg
    store = BackupStore(backup_dir)
    data = _doc(store, target).replace(b'{"table": "public.x"', b'{"table": ' + json.dumps(EVIL).encode(), 1)
    name = publish_json(store, data)
    before = snapshot(url)
    with pytest.raises(errors.ConversionError, match="is not in the document's schema"):
        restore_backup(target, store, name, tools=TOOLS)
    assert snapshot(url) == before


@needs_psql
def test_a_table_named_like_sql_is_only_ever_an_identifier(make_pg_database, backup_dir):
    url = make_pg_database("evil")
    execute(url, 'CREATE TABLE x (id int); INSERT INTO x VALUES (1);'
                 'CREATE TABLE """; DROP TABLE x; --" ("""; DROP TABLE x; --" text);'
                 'INSERT INTO """; DROP TABLE x; --" VALUES (\'v\')')
    store = BackupStore(backup_dir)
    manifest = create_backup(Target.from_url("evil", url), store, format="json")
    restored = make_pg_database("evil_restored")
    restore_backup(Target.from_url("r", restored), store, manifest["backup_filename"], tools=TOOLS,
                   safety_backup=False)
    assert snapshot(restored) == snapshot(url)
    assert richdb_pg.table_row_counts(restored) == {"public.x": 1, 'public."""; DROP TABLE x; --"': 1}


@needs_psql
def test_a_value_of_the_wrong_type_fails_the_restore_which_changes_nothing(small_pg, backup_dir):
    """PostgreSQL to PostgreSQL: the server decodes values at restore; a bad one rolls it back."""
    url, target = small_pg
    store = BackupStore(backup_dir)
    data = _doc(store, target).replace(b'[5, "five"]', b'["abc", "five"]', 1)
    name = publish_json(store, data)
    before = snapshot(url)
    with pytest.raises(errors.RestoreError, match='invalid input syntax for type bigint: "abc"'):
        restore_backup(target, store, name, tools=TOOLS)
    assert snapshot(url) == before


def test_a_value_of_the_wrong_type_is_reported_at_conversion_when_python_decodes(tmp_path):
    source = tmp_path / "src.db"
    import sqlite3

    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB, r REAL)")
        conn.execute("INSERT INTO t VALUES (1, x'00ff', 1.5)")
    store = BackupStore(tmp_path / "b")
    manifest = create_backup(Target.from_url("s", f"sqlite:///{source}"), store, format="json")
    data = Path(manifest["path"]).read_bytes().replace(b'[1, "\\\\x00ff", 1.5]', b'[1, "zz", 1.5]')
    assert data != Path(manifest["path"]).read_bytes()
    bad = tmp_path / "bad.json"
    bad.write_bytes(data)
    with pytest.raises(errors.ConversionError, match=r"table 't', row 1, column 'b': expected bytes"):
        convert.convert_json_to_sql(bad, tmp_path / "out.sql", dialect="sqlite")
    with pytest.raises(errors.ConversionError, match=r"table 't', row 1, column 'b'"):
        convert.convert_json_to_sql(bad, tmp_path / "out.sql", dialect="postgresql")


def test_not_json_and_empty_files_are_refused(tmp_path):
    for content, match in [(b"", "empty"), (b"garbage\n", "not a backup-worker JSON document"),
                           (b'{"format": "other", "version": 1,\n', "unknown document format")]:
        path = tmp_path / "f.json"
        path.write_bytes(content)
        with pytest.raises(errors.ConversionError, match=match):
            convert.convert_json_to_sql(path, tmp_path / "o.sql")


def test_restoring_a_csv_backup_is_refused_and_touches_nothing(tmp_path):
    source = tmp_path / "src.db"
    make_rich_sqlite(source)
    store = BackupStore(tmp_path / "b")
    target = Target.from_url("s", f"sqlite:///{source}")
    manifest = create_backup(target, store, format="csv")
    before = sqlite_state(source)
    with pytest.raises(errors.InvalidRequest, match=errors.UNSUPPORTED_SQLITE_RESTORE):
        restore_backup(target, store, manifest["backup_filename"])
    assert sqlite_state(source) == before


@needs_psql
def test_restoring_a_csv_backup_into_postgresql_is_refused(small_pg, backup_dir):
    url, target = small_pg
    store = BackupStore(backup_dir)
    manifest = create_backup(target, store, format="csv")
    before = snapshot(url)
    with pytest.raises(errors.InvalidRequest, match=errors.UNSUPPORTED_PG_RESTORE):
        restore_backup(target, store, manifest["backup_filename"], tools=TOOLS)
    assert snapshot(url) == before


def test_unreachable_server_is_transient():
    target = Target.from_url("down", "postgresql://u:secret-pw@127.0.0.1:1/db")
    with pytest.raises(errors.TargetUnavailable) as failure, open("/dev/null", "wb") as sink:
        json_format.export_postgresql(target, sink, "full")
    assert "secret-pw" not in str(failure.value)



def test_a_missing_table_section_is_refused(tmp_path):
    import sqlite3

    source = tmp_path / "src.db"
    with sqlite3.connect(source) as conn:
        conn.executescript("CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1); CREATE TABLE b (y TEXT);")
    store = BackupStore(tmp_path / "b")
    manifest = create_backup(Target.from_url("s", f"sqlite:///{source}"), store, format="json")
    lines = Path(manifest["path"]).read_bytes().split(b"\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(b'{"table": "a"'))
    edited = tmp_path / "edited.json"
    edited.write_bytes(b"\n".join(lines[:start] + lines[start + 3:]))
    with pytest.raises(errors.ConversionError, match="no rows section for table"):
        convert.convert_json_to_sql(edited, tmp_path / "out.sql")


@needs_psql
def test_a_big_table_is_read_in_two_streams_from_one_snapshot_and_restores_identical(pg_server, tmp_path):
    """Past SPLIT_BYTES a table's rows come from two connections over its two halves of pages, in the
    export's one snapshot; every row is in the document once, and a row written during the export
    is in neither half."""
    from backup_engine.engines.postgresql.split_copy import SPLIT_BYTES

    source = pg_server.create_database(f"split_src_{uuid.uuid4().hex[:6]}")
    execute(source, "CREATE TABLE big (id int PRIMARY KEY, note text, marks int[], raw bytea);"
                    f"INSERT INTO big SELECT g, repeat(md5(g::text), 6), ARRAY[g, -g], decode(md5(g::text), 'hex') "
                    f"FROM generate_series(1, {SPLIT_BYTES // 200}) g;"
                    "UPDATE big SET marks = '[0:1]={7,8}' WHERE id = 3;"
                    "CREATE TABLE a_small (id int PRIMARY KEY); INSERT INTO a_small VALUES (1), (2);")
    streams: dict[str, int] = {}
    late_writes: list[int] = []

    def progress(**meta):
        if meta.get("phase") == "dump" and "table" in meta:
            streams[meta["table"]] = meta["streams"]
            if not late_writes:  # after the first table, before `big`: a new row lands in its second half
                execute(source, "INSERT INTO big VALUES (0, 'late', NULL, NULL)")
                late_writes.append(0)

    store = BackupStore(tmp_path / "backups")
    before = snapshot(source)
    manifest = create_backup(Target.from_url("src", source), store, format="json", progress=progress)
    assert streams == {"public.a_small": 1, "public.big": 2}
    assert manifest["table_rows"] == {"public.a_small": 2, "public.big": SPLIT_BYTES // 200}
    restored = pg_server.create_database(f"split_dst_{uuid.uuid4().hex[:6]}")
    restore_backup(Target.from_url("dst", restored), store, manifest["backup_filename"], tools=TOOLS,
                   safety_backup=False)
    assert snapshot(restored) == before



@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(), lambda children: st.lists(children, max_size=8)
                    | st.dictionaries(st.text(), children, max_size=8), max_leaves=60),
       st.integers(min_value=0, max_value=4), st.integers(min_value=1, max_value=4))
def test_the_schema_written_in_pieces_is_exactly_json_dumps(value, spread, run):
    """The schema line is encoded in pieces (containers past `spread` items opened up, the items in
    between by the C encoder, `run` at a time): the same text as one json.dumps, whatever the nesting."""
    from backup_engine.formats.json_document import _json_pieces

    assert "".join(_json_pieces(value, spread, run=run)) == json.dumps(value, ensure_ascii=False, allow_nan=False)


def test_a_tables_constraints_are_written_in_the_same_order_however_they_were_added():
    """SQLAlchemy keeps a table's constraints in a set: the document orders them itself (by name,
    then columns or text), so one database gives one document."""
    from sqlalchemy import CheckConstraint, Column, ForeignKeyConstraint, Integer, MetaData, Table, UniqueConstraint

    from backup_engine.formats.json_schema import table_to_dict

    def table(order: list[int]) -> dict:
        metadata = MetaData()
        Table("parent", metadata, Column("id", Integer, primary_key=True))
        constraints = [CheckConstraint("a > 0", name="c_a"), CheckConstraint("b > 0", name="c_b"),
                       CheckConstraint("a < b"), CheckConstraint("a < 9"), UniqueConstraint("a", name="u_a"),
                       UniqueConstraint("b"), ForeignKeyConstraint(["a"], ["parent.id"], name="f_a"),
                       ForeignKeyConstraint(["b"], ["parent.id"])]
        child = Table("child", metadata, Column("a", Integer), Column("b", Integer))
        for index in order:
            child.append_constraint(constraints[index])
        return table_to_dict(child, {}, ["a", "b"], "child", "postgresql")

    forward = table(list(range(8)))
    assert [check["name"] for check in forward["checks"]] == [None, None, "c_a", "c_b"]
    for seed in range(20):
        order = list(range(8))
        random.Random(seed).shuffle(order)
        assert table(order) == forward


_texts = st.text(max_size=8)
_indexes = st.builds(IndexDef, schema=st.none() | _texts, table=_texts, name=_texts, definition=_texts,
                     attach_to=st.none() | st.lists(st.none() | _texts, max_size=2))
_nodes = st.builds(CatalogNode, kind=_texts, name=_texts, statements=st.lists(_texts, max_size=3),
                   section=st.sampled_from(["pre", "post", "refresh"]))


def _short_or_long(items: st.SearchStrategy) -> st.SearchStrategy:
    """Lists on both sides of ON_DEMAND_ITEMS (made on demand only past it)."""
    return st.lists(items, max_size=8) | st.lists(items, min_size=ON_DEMAND_ITEMS - 2, max_size=ON_DEMAND_ITEMS + 8)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)  # long lists
@given(st.builds(SchemaExtras, schemas=_short_or_long(_texts), indexes=_short_or_long(_indexes),
                 display_names=st.dictionaries(_texts, _texts, max_size=80),
                 partition_keys=st.dictionaries(_texts, _texts, max_size=3),
                 catalog=st.none() | st.builds(PgCatalog, nodes=_short_or_long(_nodes),
                                               not_carried=st.lists(_texts, max_size=3))))
def test_the_extras_made_as_they_are_written_are_the_extras_as_asdict_gives_them(extras):
    """The schema's extras are plain data as dataclasses.asdict gives them; written from the lists
    made on demand (the catalog's nodes: tens of thousands), they are the same text."""
    from backup_engine.formats.json_document import ItemsOnDemand, _json_pieces

    plain = extras_to_dict(extras)
    assert plain == asdict(extras)
    assert "".join(_json_pieces(extras_to_dict(extras, ItemsOnDemand))) == json.dumps(plain, ensure_ascii=False)
