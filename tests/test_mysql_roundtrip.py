"""MySQL/MariaDB round trips against a throwaway mariadbd: the rich database restores identical
(rows by ordered hash, AUTO_INCREMENT and sequence positions, definitions from information_schema)
from a native dump, from the SQLAlchemy fallback and from its JSON backup; the swap replaces
whatever the target held; the verify drill and the exports agree with the manifest."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy.engine import make_url

from backup_engine import errors
from backup_engine.dumpinfo import ClientTools
from backup_engine.formats import csv_zip
from backup_engine.targets import Target
from backup_engine.verify import verify_backup
from tests import richdb_mysql
from tests.engine_api import BackupStore, create_backup, engine, restore_backup

TOOLS = ClientTools(mysqldump=shutil.which("mariadb-dump") or shutil.which("mysqldump"),
                    mysql=shutil.which("mariadb") or shutil.which("mysql"))
pytestmark = pytest.mark.skipif(not (TOOLS.mysql and TOOLS.mysqldump), reason="MariaDB client tools not installed")


def database_of(url: str) -> str:
    return make_url(url).database


@pytest.fixture
def rich(mariadb_server, make_mariadb_database):
    url = make_mariadb_database("rich")
    richdb_mysql.build_rich_database(mariadb_server, database_of(url))
    return url


def leftovers(server) -> list[str]:
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE 'bw\\_%'")
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def clutter(server, database: str, fk_name: str = "fk_order_customer") -> None:
    """Objects in a target that a restore must replace: a view named like one of the backup's tables,
    a trigger, a routine and an event with the backup's names, tables the backup does not have, a
    foreign key named like one of the backup's (names of keys are unique in a database)."""
    server.execute("CREATE TABLE stale (id INT PRIMARY KEY, b INT)", "INSERT INTO stale VALUES (1, 2)",
                   f"CREATE TABLE stale_child (id INT PRIMARY KEY, s INT, CONSTRAINT {fk_name} "
                   "FOREIGN KEY (s) REFERENCES stale (id))",
                   "CREATE VIEW customers AS SELECT 1 AS id",
                   "CREATE TRIGGER orders_bi BEFORE INSERT ON stale FOR EACH ROW SET NEW.b = 0",
                   "CREATE FUNCTION doubled(x INT) RETURNS INT DETERMINISTIC RETURN x * 3",
                   "CREATE EVENT parked ON SCHEDULE AT '2037-12-01 00:00:00' DO SELECT 1", dbname=database)


@pytest.mark.parametrize("method", ["native", "sqlalchemy"])
def test_rich_database_restores_identical(tmp_path, mariadb_server, make_mariadb_database, rich, method):
    source = database_of(rich)
    state, definitions = richdb_mysql.database_state(mariadb_server, source), \
        richdb_mysql.definitions(mariadb_server, source)
    store = BackupStore(tmp_path / "backups")
    manifest = create_backup(Target.from_url("src", rich), store, tools=TOOLS, method=method)
    assert manifest["method"] == ("mysqldump" if method == "native" else "sqlalchemy")
    assert store.read_manifest(manifest["backup_filename"])["table_rows"] == richdb_mysql.row_counts(state)

    target_url = make_mariadb_database("restored")
    clutter(mariadb_server, database_of(target_url))
    result = restore_backup(Target.from_url("dst", target_url), store, manifest["backup_filename"], tools=TOOLS)
    assert result["safety_backup"]["table_rows"] == {"stale": 1, "stale_child": 0}
    restored = database_of(target_url)
    assert richdb_mysql.database_state(mariadb_server, restored) == state
    assert richdb_mysql.definitions(mariadb_server, restored) == definitions
    assert leftovers(mariadb_server) == []


def test_native_and_fallback_dumps_count_the_same_rows(tmp_path, rich):
    store = BackupStore(tmp_path / "b")
    target = Target.from_url("src", rich)
    native = create_backup(target, store, tools=TOOLS, method="native")
    fallback = create_backup(target, store, tools=TOOLS, method="sqlalchemy")
    assert store.read_manifest(native["backup_filename"])["table_rows"] == \
        store.read_manifest(fallback["backup_filename"])["table_rows"]
    assert native["rows"] == fallback["rows"] > 0


def test_json_backup_restores_identical_through_its_sql_twin(tmp_path, mariadb_server, make_mariadb_database, rich):
    source = database_of(rich)
    state = richdb_mysql.database_state(mariadb_server, source)
    definitions = richdb_mysql.definitions(mariadb_server, source)
    store = BackupStore(tmp_path / "b")
    manifest = create_backup(Target.from_url("src", rich), store, format="json")
    target_url = make_mariadb_database("from_json")
    result = restore_backup(Target.from_url("dst", target_url), store, manifest["backup_filename"], tools=TOOLS)
    assert result["converted_file"].endswith(".sql")
    restored = database_of(target_url)
    assert richdb_mysql.database_state(mariadb_server, restored) == state
    assert richdb_mysql.definitions(mariadb_server, restored) == definitions


@pytest.mark.parametrize("method", ["native", "sqlalchemy"])
def test_schema_only_and_data_only_restores(tmp_path, mariadb_server, make_mariadb_database, rich, method):
    source = database_of(rich)
    state = richdb_mysql.database_state(mariadb_server, source)
    store = BackupStore(tmp_path / "b")
    target = Target.from_url("src", rich)
    schema = create_backup(target, store, tools=TOOLS, include_data="schema", method=method)
    data = create_backup(target, store, tools=TOOLS, include_data="data", method=method)
    assert all(rows == 0 for rows in store.read_manifest(schema["backup_filename"])["table_rows"].values())
    dest_url = make_mariadb_database("split")
    dest = Target.from_url("dst", dest_url)
    restore_backup(dest, store, schema["backup_filename"], tools=TOOLS)
    assert richdb_mysql.definitions(mariadb_server, database_of(dest_url)) == \
        richdb_mysql.definitions(mariadb_server, source)
    restore_backup(dest, store, data["backup_filename"], tools=TOOLS)
    restored = richdb_mysql.database_state(mariadb_server, database_of(dest_url))
    assert restored["tables"] == state["tables"]
    assert richdb_mysql.definitions(mariadb_server, database_of(dest_url)) == \
        richdb_mysql.definitions(mariadb_server, source)


def test_verify_drills_in_a_scratch_database(tmp_path, mariadb_server, rich):
    store = BackupStore(tmp_path / "b")
    target = Target.from_url("src", rich)
    for method in ("native", "sqlalchemy"):
        manifest = create_backup(target, store, tools=TOOLS, method=method)
        result = verify_backup(store.catalogue, manifest["backup_filename"],
                               lambda _entry: engine(target, store, TOOLS))
        assert result["drill_ok"] is True
        assert result["table_rows"] == store.read_manifest(manifest["backup_filename"])["table_rows"]
    assert leftovers(mariadb_server) == []


def test_csv_export_holds_every_table(tmp_path, mariadb_server, rich):
    store = BackupStore(tmp_path / "b")
    manifest = create_backup(Target.from_url("src", rich), store, format="csv")
    path, _ = store.verified(manifest["backup_filename"])
    listing = csv_zip.read_manifest(path)
    state = richdb_mysql.database_state(mariadb_server, database_of(rich))
    assert {t["table"]: t["rows"] for t in listing["tables"]} == richdb_mysql.row_counts(state)
    header, records = csv_zip.read_table(path, "types_all")
    assert "t_invisible" in header and "t_virtual" in header
    first = next(records)
    assert first[header.index("t_big_u")] == "18446744073709551615"
    assert first[header.index("t_bit64")] == "18446744073709551615"
    assert first[header.index("t_date")] == "0000-00-00"


def test_a_target_database_that_does_not_exist_is_refused(tmp_path, mariadb_server, rich):
    store = BackupStore(tmp_path / "b")
    manifest = create_backup(Target.from_url("src", rich), store, tools=TOOLS)
    missing = Target.from_url("dst", mariadb_server.url("no_such_database_here"))
    with pytest.raises(errors.InvalidRequest, match=errors.TARGET_MISSING):
        restore_backup(missing, store, manifest["backup_filename"], tools=TOOLS)
    assert leftovers(mariadb_server) == []
