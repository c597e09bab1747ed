"""The safety backup runs while the restore is built: every engine changes its target only after `ready`.

`Engine.restore` calls `ready` once, just before the target is first changed; the worker's
`ready` waits for the safety backup. Checked on each engine with real servers: when `ready` runs,
the target still holds its old rows; a `ready` that raises (a safety backup that failed) stops the
restore with the target untouched and nothing left beside it; and through `restore_backup`, a
safety backup that fails for want of room fails the restore the same way.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from backup_engine import errors
from backup_engine.dumpinfo import ClientTools
from backup_engine.restore import restore_request
from backup_engine.targets import Target
from tests.engine_api import BackupStore, create_backup, engine, restore_backup

TOOLS = ClientTools(pg_dump=shutil.which("pg_dump"), psql=shutil.which("psql"),
                    mysqldump=shutil.which("mariadb-dump") or shutil.which("mysqldump"),
                    mysql=shutil.which("mariadb") or shutil.which("mysql"))


class Side:
    """One engine's target: make a database holding one value, and read that value back."""

    def __init__(self, make: Callable[..., str], read: Callable[[str], Any], leftovers: Callable[[str], list]):
        self.make, self.read, self.leftovers = make, read, leftovers  # make(value, padded=False)


def _pg_side(make_pg_database, pg_server) -> Side:
    def make(value: str, padded: bool = False) -> str:
        url = make_pg_database("ready")
        pg_server.execute(url, f"CREATE TABLE t (v text); INSERT INTO t VALUES ('{value}')")
        if padded:  # 3.2 MB that no compression shrinks
            pg_server.execute(url, "CREATE TABLE pad AS SELECT decode(md5(random()::text) || md5(random()::text), "
                                   "'hex') AS b FROM generate_series(1, 100000)")
        return url

    def read(url: str) -> Any:
        with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
            cur.execute("SELECT v FROM t")
            return cur.fetchall()

    def leftovers(_url: str) -> list:
        with closing(pg_server.connect()) as conn, conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bw\\_%'")
            return cur.fetchall()

    return Side(make, read, leftovers)


def _sqlite_side(tmp_path: Path) -> Side:
    def make(value: str, padded: bool = False) -> str:
        path = tmp_path / f"{value}.db"
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE t (v TEXT)")
            conn.execute("INSERT INTO t VALUES (?)", (value,))
            if padded:
                conn.execute("CREATE TABLE pad AS SELECT randomblob(3200000) AS b")
            conn.commit()
        return f"sqlite:///{path}"

    def read(url: str) -> Any:
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            return conn.execute("SELECT v FROM t").fetchall()

    def leftovers(url: str) -> list:
        path = Path(url.removeprefix("sqlite:///"))
        return sorted(p.name for p in path.parent.glob(f".{path.name}.restore-*"))

    return Side(make, read, leftovers)


def _mariadb_side(make_mariadb_database, mariadb_server) -> Side:
    def make(value: str, padded: bool = False) -> str:
        url = make_mariadb_database("ready")
        database = url.rsplit("/", 1)[1]
        mariadb_server.execute("CREATE TABLE t (v varchar(10))", f"INSERT INTO t VALUES ('{value}')", dbname=database)
        if padded:
            mariadb_server.execute("CREATE TABLE pad (b varbinary(1024))",
                                   "INSERT INTO pad SELECT RANDOM_BYTES(1024) FROM seq_1_to_3200", dbname=database)
        return url

    def read(url: str) -> Any:
        conn = mariadb_server.connect(url.rsplit("/", 1)[1])
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT v FROM t")
                return [tuple(row) for row in cur.fetchall()]
        finally:
            conn.close()

    def leftovers(_url: str) -> list:
        conn = mariadb_server.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW DATABASES LIKE 'bw\\_%'")
                return list(cur.fetchall())
        finally:
            conn.close()

    return Side(make, read, leftovers)


@pytest.fixture(params=["postgresql", "sqlite", "mariadb"])
def side(request, tmp_path) -> Side:
    if request.param == "postgresql":
        return _pg_side(request.getfixturevalue("make_pg_database"), request.getfixturevalue("pg_server"))
    if request.param == "sqlite":
        return _sqlite_side(tmp_path)
    return _mariadb_side(request.getfixturevalue("make_mariadb_database"), request.getfixturevalue("mariadb_server"))


def _backup_of_new(side: Side, store: BackupStore) -> str:
    source = Target.from_url("src", side.make("new"))
    return create_backup(source, store, tools=TOOLS)["backup_filename"]


def test_the_target_is_changed_only_after_ready(side, tmp_path):
    store = BackupStore(tmp_path / "backups")
    name = _backup_of_new(side, store)
    url = side.make("old")
    target = Target.from_url("dst", url)
    chosen = engine(target, store, TOOLS)
    entry = store.catalogue.entry(name)
    seen: list[Any] = []

    chosen.restore(store.catalogue.source(entry), restore_request(entry), ready=lambda: seen.append(side.read(url)))
    assert seen == [[("old",)]]  # called once, before the target changed
    assert side.read(url) == [("new",)]


def test_a_ready_that_raises_leaves_the_target_untouched(side, tmp_path):
    store = BackupStore(tmp_path / "backups")
    name = _backup_of_new(side, store)
    url = side.make("old")
    target = Target.from_url("dst", url)
    entry = store.catalogue.entry(name)

    def refuse() -> None:
        raise errors.WriteFailed(errors.WRITE_FAILED, "the safety backup could not be written")

    with pytest.raises(errors.WriteFailed):
        engine(target, store, TOOLS).restore(store.catalogue.source(entry), restore_request(entry), ready=refuse)
    assert side.read(url) == [("old",)]
    assert side.leftovers(url) == []


def test_a_failed_safety_backup_fails_the_restore_and_changes_nothing(side, full_disk):
    """The store has room for the backup restored, not for the safety backup of the bigger target."""
    store = BackupStore(full_disk)
    name = _backup_of_new(side, store)
    url = side.make("old", padded=True)

    with pytest.raises(errors.WriteFailed, match="No space left on device|disk is full"):
        restore_backup(Target.from_url("dst", url), store, name, tools=TOOLS)
    assert side.read(url) == [("old",)]
    assert side.leftovers(url) == []
    assert [entry["backup_filename"] for entry in store.list()] == [name]
