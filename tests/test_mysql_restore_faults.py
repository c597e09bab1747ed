"""A MySQL restore is all or nothing although MySQL commits DDL by itself: the restore runs in a
child process that is killed with -9 at each moment of its work (while the client loads the
scratch database, at every step of the swap, after it), or fails at its very last statement, and
the target is then exactly as before (or, killed after the commit, exactly the backup), once
the sweep that every later backup and restore starts with has run. Nothing is mocked: a real
mariadbd, a real client, real kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from backup_engine import errors
from backup_engine.registry import engine_for
from backup_engine.targets import Target
from tests import richdb_mysql
from tests.engine_api import BackupStore, create_backup, restore_backup
from tests.test_mysql_roundtrip import TOOLS, leftovers

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.skipif(not (TOOLS.mysql and TOOLS.mysqldump), reason="MariaDB client tools not installed"),
              pytest.mark.reliability]
BULK_ROWS = 40000  # about 10 MB of dump: the client is still loading when the first megabyte is in

# (step, nth) -> whether the target ends as the backup (killed after the commit) or as before.
KILL_POINTS = [
    (("load", 2), "before"),  # the client has the first megabyte and is loading the scratch database
    (("loaded", 1), "before"),
    (("checked", 1), "before"),
    (("prepared", 1), "before"),  # journal written
    (("triggers_dropped", 1), "before"),  # the target's triggers are gone: only the journal has them
    (("renamed", 1), "before"),  # the swap's RENAME is done, nothing created yet
    (("object", 1), "before"),  # in the middle of creating routines, events, views, triggers
    (("assembled", 1), "before"),  # everything created, the commit marker not yet renamed
    (("committed", 1), "after"),
    (("cleaned", 1), "after"),
]


def database_of(url: str) -> str:
    return make_url(url).database


@pytest.fixture
def scene(tmp_path, mariadb_server, make_mariadb_database):
    """A backup of one rich database (with a bulk table), and a target holding another."""
    source_url = make_mariadb_database("faults_src")
    source = database_of(source_url)
    richdb_mysql.build_rich_database(mariadb_server, source, rows=40, seed=1)
    mariadb_server.execute("CREATE TABLE bulk (id INT PRIMARY KEY, pad VARCHAR(255))",
                           f"INSERT INTO bulk SELECT seq, REPEAT(CHAR(65 + seq % 26), 200) FROM seq_1_to_{BULK_ROWS}",
                           dbname=source)
    store = BackupStore(tmp_path / "backups")
    manifest = create_backup(Target.from_url("src", source_url), store, tools=TOOLS, method="native")
    target_url = make_mariadb_database("faults_dst")
    target = database_of(target_url)
    richdb_mysql.build_rich_database(mariadb_server, target, rows=25, seed=7)
    mariadb_server.execute(  # objects the backup does not have, and ones it has with other definitions
        "CREATE TABLE stale (id INT PRIMARY KEY, b INT)", "INSERT INTO stale VALUES (1, 2)",
        "CREATE TABLE stale_child (id INT PRIMARY KEY, s INT, "
        "CONSTRAINT fk_stale FOREIGN KEY (s) REFERENCES stale (id))",
        "CREATE VIEW stale_view AS SELECT b FROM stale",
        "CREATE TRIGGER stale_bi BEFORE INSERT ON stale FOR EACH ROW SET NEW.b = 0",
        "DROP FUNCTION doubled", "CREATE FUNCTION doubled(x INT) RETURNS INT DETERMINISTIC RETURN x * 3",
        "CREATE PROCEDURE stale_proc() SELECT 1",
        "CREATE EVENT stale_event ON SCHEDULE AT '2037-12-01 00:00:00' DO SELECT 1", dbname=target)
    return {"store": store, "backup": manifest["backup_filename"], "url": target_url, "target": target,
            "source": source}


def snapshot(server, database: str) -> tuple:
    return richdb_mysql.database_state(server, database), richdb_mysql.definitions(server, database)


def run_child(scene, **spec) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BW_CHILD_SPEC": json.dumps({
        "url": scene["url"], "store": str(scene["store"].folder), "backup": scene["backup"],
        "tools": TOOLS.as_dict(), **spec})}
    return subprocess.Popen([sys.executable, "-m", "tests.mysql_restore_child"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_pause(child: subprocess.Popen, step: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    assert child.stdout is not None
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if line.startswith(f"PAUSED {step}"):
            return
        if not line and child.poll() is not None:
            raise AssertionError(f"the child ended before {step}: {child.stderr.read()[-3000:]}")
    raise AssertionError(f"no pause at {step}")


def kill9(child: subprocess.Popen) -> None:
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=30)


def sweep_until_clean(target: Target, server, timeout: float = 30) -> list[str]:
    """The sweep, again until the server has noticed the killed connections (their locks go with them)."""
    removed: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        removed += engine_for(target).sweep()
        if not leftovers(server) or time.monotonic() > deadline:
            return removed
        time.sleep(0.2)


@pytest.mark.parametrize(("point", "ends_as"), KILL_POINTS, ids=[f"{p[0]}-{p[1]}" for p, _ in KILL_POINTS])
def test_kill9_at_each_moment_leaves_the_target_whole(mariadb_server, scene, point, ends_as):
    step, nth = point
    before = snapshot(mariadb_server, scene["target"])
    child = run_child(scene, pause_at=step, nth=nth)
    try:
        wait_for_pause(child, step)
    finally:
        kill9(child)
    if ends_as == "before" and step in ("load", "loaded", "checked", "prepared"):
        assert snapshot(mariadb_server, scene["target"]) == before, "the target was touched before the swap"
    target = Target.from_url("dst", scene["url"])
    removed = sweep_until_clean(target, mariadb_server)
    assert removed or step == "cleaned", "the sweep found nothing to settle"
    assert leftovers(mariadb_server) == []
    if ends_as == "before":
        assert snapshot(mariadb_server, scene["target"]) == before
    else:
        assert snapshot(mariadb_server, scene["target"]) == snapshot(mariadb_server, scene["source"])


def test_a_killed_restore_is_settled_by_the_next_backup_before_it_reads(tmp_path, mariadb_server, scene):
    before = snapshot(mariadb_server, scene["target"])
    child = run_child(scene, pause_at="renamed")
    try:
        wait_for_pause(child, "renamed")
    finally:
        kill9(child)
    time.sleep(0.5)
    store = BackupStore(tmp_path / "later")
    target = Target.from_url("dst", scene["url"])
    manifest = create_backup(target, store, tools=TOOLS)  # rolls the swap back first, then dumps
    assert snapshot(mariadb_server, scene["target"]) == before
    assert store.read_manifest(manifest["backup_filename"])["table_rows"] == richdb_mysql.row_counts(before[0])
    assert leftovers(mariadb_server) == []


def test_the_sweep_leaves_a_live_restore_alone(mariadb_server, scene):
    child = run_child(scene, pause_at="load", nth=2)
    target = Target.from_url("dst", scene["url"])
    try:
        wait_for_pause(child, "load")
        in_use = leftovers(mariadb_server)
        assert len(in_use) == 2  # the journal and the scratch database being loaded
        assert engine_for(target).sweep() == []
        assert sorted(leftovers(mariadb_server)) == sorted(in_use)
        with pytest.raises(errors.TargetBusy):
            engine_for(target).settle()  # a backup waits for the live restore rather than read mid-way
    finally:
        kill9(child)
    assert sorted(sweep_until_clean(target, mariadb_server)) == sorted(in_use)


def test_failing_at_the_last_statement_of_the_swap_rolls_it_all_back(mariadb_server, scene):
    before = snapshot(mariadb_server, scene["target"])
    triggers = [row[0] for row in richdb_mysql.definitions(mariadb_server, scene["source"])["triggers"]]
    last, previous = "orders_bi_2", "orders_bi"  # created in ACTION_ORDER: orders_au, orders_bi, orders_bi_2
    assert last in triggers
    statement = f"CREATE TRIGGER {last} BEFORE DELETE ON audit FOR EACH ROW SET @x = 1"
    child = run_child(scene, sabotage={"after": previous, "statement": statement})
    out, err = child.communicate(timeout=300)
    assert child.returncode == 1, out + err
    assert "FAILED RestoreError" in out and "already exists" in out
    assert leftovers(mariadb_server) == []
    assert snapshot(mariadb_server, scene["target"]) == before


def test_failing_at_the_last_statement_of_the_dump_leaves_the_target_untouched(mariadb_server, scene):
    store = scene["store"]
    path, manifest = store.verified(scene["backup"])
    body = path.read_bytes()
    cut = body.rindex(b"-- Dump completed")
    broken = body[:cut] + b"INSERT INTO no_such_table VALUES (1);\n" + body[cut:]
    fields = {key: manifest[key] for key in ("format", "target", "method", "include_data", "tables", "rows")}
    fields.update(dialect="mysql", table_rows=store.read_manifest(scene["backup"])["table_rows"])
    published = store.publish_bytes(broken, "src", fields)
    before = snapshot(mariadb_server, scene["target"])
    with pytest.raises(errors.RestoreError, match="no_such_table"):
        restore_backup(Target.from_url("dst", scene["url"]), store, published["backup_filename"], tools=TOOLS)
    assert snapshot(mariadb_server, scene["target"]) == before
    assert leftovers(mariadb_server) == []


def test_a_restore_that_completes_in_a_child_process_matches_the_backup(mariadb_server, scene):
    child = run_child(scene)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, out + err
    assert snapshot(mariadb_server, scene["target"]) == snapshot(mariadb_server, scene["source"])
    assert leftovers(mariadb_server) == []
