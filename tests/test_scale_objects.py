"""Scale in objects (issue 16): 2,000 tables with keys and indexes and a table of 400 partitions, on a
throwaway PostgreSQL with default settings (max_locks_per_transaction 64: no single transaction can
create or drop them all). Every format restores beside the target and is swapped in: identical,
into a new database and over an existing one; a restore killed with -9 at each phase leaves the
target entirely as it was (or entirely restored, once the swap committed); its leftovers are swept;
sessions on the target are ended and counted; without CREATEDB the restore is refused up front.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from backup_engine import errors
from backup_engine.engines.postgresql.connect import LOCK_WINDOW_TABLES
from backup_engine.engines.postgresql.scratch import count_rows
from backup_engine.targets import Target
from config.settings import load_settings
from tasks import operations
from tests.processes import ROOT
from tests.reliability_helpers import wait_until

TABLES = 2000
PARTITIONS = 400
pytestmark = pytest.mark.slow

TABLES_BATCH = """
DO $$ BEGIN
  FOR i IN {first}..{last} LOOP
    EXECUTE format('CREATE TABLE public.t%s (id serial PRIMARY KEY, v integer, note text)', i);
    EXECUTE format('CREATE INDEX t%s_v ON public.t%s (v)', i, i);
    EXECUTE format('INSERT INTO public.t%s (v, note) SELECT g, ''n'' || g FROM generate_series(1, %s) g', i, i % 3);
  END LOOP;
END $$;"""
PARTITIONS_SQL = f"""
CREATE TABLE public.events (day date NOT NULL, id bigint NOT NULL, body text) PARTITION BY RANGE (day);
DO $$ BEGIN
  FOR i IN 0..{PARTITIONS - 1} LOOP
    EXECUTE format('CREATE TABLE public.events_%s PARTITION OF public.events FOR VALUES FROM (%L) TO (%L)', i,
                   DATE '2024-01-01' + i, DATE '2024-01-01' + i + 1);
  END LOOP;
END $$;
CREATE INDEX events_id ON public.events (id);
INSERT INTO public.events SELECT DATE '2024-01-01' + (g % {PARTITIONS}), g, 'e' || g FROM generate_series(1, 4000) g;
"""
SHAPE_SQL = """
SELECT count(*) FILTER (WHERE c.relkind IN ('r', 'p')), count(*) FILTER (WHERE c.relkind = 'i'),
       count(*) FILTER (WHERE c.relkind = 'S'), array_agg(c.relname::text) FILTER (WHERE c.relname = ANY(%s))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"""
WATCHED = ["events", "t1999", "before", "keep"]  # tables whose rows are compared, where they exist


def shape(url: str) -> tuple:
    """Counts of relations by kind, and the rows of the watched tables that exist."""
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute(SHAPE_SQL, (WATCHED,))
        tables, indexes, sequences, present = cur.fetchone()
        rows = []
        for name in sorted(present or []):
            cur.execute(sql.SQL("SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {} t").format(
                sql.Identifier("public", name)))
            rows.append((name, *cur.fetchone()))
    conn.close()
    return tables, indexes, sequences, tuple(rows)


@pytest.fixture(scope="module")
def many(pg_server, tmp_path_factory):
    """The source database, its shape, and one backup of each kind."""
    root = tmp_path_factory.mktemp("scale")
    name = f"scale_src_{uuid.uuid4().hex[:6]}"
    url = pg_server.create_database(name)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:  # in batches: one transaction cannot create them all on default settings
        for first in range(1, TABLES + 1, 200):
            cur.execute(TABLES_BATCH.format(first=first, last=min(first + 199, TABLES)))
        cur.execute(PARTITIONS_SQL)
    conn.close()
    targets = {"src": url, "dst": pg_server.create_database(f"scale_dst_{uuid.uuid4().hex[:6]}")}
    config = {"BACKUP_TARGETS": json.dumps(targets), "BACKUP_DIR": str(root / "backups"),
              "BACKUP_UPLOAD_DIR": str(root / "uploads")}
    settings = load_settings(config, dotenv_path=None)
    backups = {
        "native": operations.create(settings, target="src"),
        "fallback": operations.create(settings, target="src", method="sqlalchemy"),
        "json": operations.create(settings, target="src", format="json"),  # its twin written alongside
        "json_converted": operations.create(settings, target="src", format="json", twin_alongside=False),
        "pgdump": operations.create(settings, target="src", format="pgdump"),
    }
    yield {"url": url, "shape": shape(url), "settings": settings, "config": config, "backups": backups,
           "root": root, "targets": targets}
    pg_server.drop_database(name)


def leftovers(pg_server) -> list[str]:
    conn = pg_server.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bw\\_%' ORDER BY 1")
        names = [n for (n,) in cur.fetchall()]
    conn.close()
    return names


def test_the_source_is_too_big_for_one_transaction(many, pg_server):
    tables, indexes, sequences, rows = many["shape"]
    assert tables >= TABLES + PARTITIONS + 1 and indexes >= 2 * TABLES and sequences >= TABLES
    assert dict((name, count) for name, count, _ in rows)["events"] == 4000
    conn = pg_server.connect()
    with conn.cursor() as cur:
        cur.execute("SHOW max_locks_per_transaction")
        assert cur.fetchone()[0] == "64"
    conn.close()


def test_the_row_counts_a_restore_checks_are_exact_for_every_table(many):
    """`count_rows` counts halves of the batches on two sessions: every table once, exactly."""
    counts = count_rows(Target.from_url("src", many["url"]))
    expected = {f"public.t{i}": i % 3 for i in range(1, TABLES + 1)}
    expected |= {f"public.events_{i}": 4000 // PARTITIONS for i in range(PARTITIONS)} | {"public.events": 0}
    assert counts == expected


@pytest.mark.parametrize("kind", ["native", "fallback", "json", "json_converted", "pgdump"])
def test_each_format_restores_identical_into_a_new_and_over_an_existing_database(many, pg_server, kind):
    settings = many["settings"]
    name = many["backups"][kind]["backup_filename"]
    if kind.startswith("json"):  # through its twin: written alongside, or converted from the document
        [twin] = many["backups"][kind]["companions"]
        method = operations.catalogue_for(settings).entry(twin).manifest.method
        assert method == ("sqlalchemy" if kind == "json" else "json-conversion")
    result = operations.restore(settings, backup_filename=name, target="dst", source_target="src")
    assert result["built_beside"] is True
    assert shape(many["targets"]["dst"]) == many["shape"]
    again = operations.restore(settings, backup_filename=name, target="dst", source_target="src")  # over itself
    assert again["built_beside"] is True and shape(many["targets"]["dst"]) == many["shape"]
    assert leftovers(pg_server) == []


def test_sessions_on_the_target_are_ended_and_counted(many, pg_server):
    settings = many["settings"]
    holder = psycopg2.connect(many["targets"]["dst"])
    holder.autocommit = True
    result = operations.restore(settings, backup_filename=many["backups"]["native"]["backup_filename"],
                                target="dst", source_target="src")
    assert result["sessions_ended"] >= 1
    with pytest.raises(psycopg2.OperationalError), holder.cursor() as cur:
        cur.execute("SELECT 1")
    assert shape(many["targets"]["dst"]) == many["shape"]


# argv: settings, backup, and the phase at whose start the restore waits for its kill (or "").
RESTORER = """
import json, sys, time
from config.settings import load_settings
from tasks import operations
settings = load_settings(json.loads(sys.argv[1]), dotenv_path=None)
def progress(**meta):
    print(json.dumps(meta, default=str), flush=True)
    if meta.get("phase") == sys.argv[3]:
        time.sleep(60)  # the kill lands here: a swap of a small database is over in milliseconds
operations.restore(settings, backup_filename=sys.argv[2], target="dst", source_target="src", progress=progress)
print("DONE", flush=True)
"""


@pytest.mark.parametrize(("kind", "phase"), [("native", "restore"), ("native", "swap"), ("pgdump", "restore")])
def test_a_restore_killed_at_each_phase_leaves_the_target_whole(many, pg_server, make_pg_database, kind, phase):
    """Killed while the new database is loading, or as the swap begins (the restore waits there for
    the kill), the target is exactly as it was; leftovers are swept next time. (The swap itself is
    one transaction of two renames: the server's own all or nothing.)"""
    url = make_pg_database("scale_kill")
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE public.before (x int); INSERT INTO public.before VALUES (1), (2)")
    conn.close()
    old = shape(url)
    config = {**many["config"], "BACKUP_TARGETS": json.dumps({**many["targets"], "dst": url})}
    child = subprocess.Popen([sys.executable, "-c", RESTORER, json.dumps(config),
                              many["backups"][kind]["backup_filename"], "" if phase == "restore" else phase],
                             cwd=ROOT, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("{") and json.loads(line).get("phase") == phase:
            if phase == "restore":
                time.sleep(1.0)  # well into the load
            os.killpg(child.pid, signal.SIGKILL)
            break
    child.wait(timeout=60)
    now = shape(url)
    assert now == old
    assert leftovers(pg_server), "the kill should leave a database beside the target"
    # The killed process's server session may outlive it a moment (holding its advisory lock, so a
    # sweep rightly leaves the database alone): sweep until that session is gone too.
    engine = operations.engine_of(many["settings"], many["settings"].targets["dst"])
    swept: list[str] = []
    wait_until(lambda: swept.extend(engine.sweep()) or not leftovers(pg_server), timeout=30, interval=0.2,
               what="the leftover database swept")
    assert swept and leftovers(pg_server) == []


def test_without_createdb_a_restore_that_cannot_fit_is_refused_up_front(many, make_app_database):
    url = make_app_database("scale_app", "CREATE TABLE public.keep (x int); INSERT INTO public.keep VALUES (7)")
    config = {**many["config"], "BACKUP_TARGETS": json.dumps({**many["targets"], "app": url})}
    settings = load_settings(config, dotenv_path=None)
    before = shape(url)
    with pytest.raises(errors.RestoreError, match=errors.LOCKS_WONT_FIT) as caught:
        operations.restore(settings, backup_filename=many["backups"]["native"]["backup_filename"],
                           target="app", source_target="src")
    assert "grant CREATEDB" in str(caught.value) and "max_locks_per_transaction to at least" in str(caught.value)
    assert shape(url) == before


def test_the_target_keeps_its_owner_settings_and_grants(many, pg_server):
    """What a database is besides its contents survives the swap."""
    admin = pg_server.connect()
    admin.autocommit = True
    role = f"scale_owner_{uuid.uuid4().hex[:6]}"
    database = many["targets"]["dst"].rsplit("/", 1)[1]
    with admin.cursor() as cur:
        cur.execute(f'CREATE ROLE "{role}" NOLOGIN')
        cur.execute(f'ALTER DATABASE "{database}" OWNER TO "{role}"')
        cur.execute(f'ALTER DATABASE "{database}" SET search_path TO "$user", public, extra')
        cur.execute(f'ALTER DATABASE "{database}" SET work_mem TO \'8MB\'')
        cur.execute(f'REVOKE CONNECT ON DATABASE "{database}" FROM PUBLIC')
        cur.execute(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
        cur.execute(f'COMMENT ON DATABASE "{database}" IS \'the target\'')
        query = ("SELECT pg_get_userbyid(d.datdba), d.datacl::text, shobj_description(d.oid, 'pg_database'), "
                 "(SELECT setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0) "
                 "FROM pg_database d WHERE datname = %s")
        cur.execute(query, (database,))
        before = cur.fetchone()
    operations.restore(many["settings"], backup_filename=many["backups"]["native"]["backup_filename"], target="dst",
                       source_target="src")
    with admin.cursor() as cur:
        cur.execute(query, (database,))
        after = cur.fetchone()
        cur.execute(f'ALTER DATABASE "{database}" OWNER TO CURRENT_USER')
        cur.execute(f'ALTER DATABASE "{database}" RESET ALL')
        cur.execute(f'GRANT ALL ON DATABASE "{database}" TO PUBLIC')
        cur.execute(f'DROP ROLE "{role}"')
    admin.close()
    assert after[0] == before[0] and after[2] == before[2] and after[3] == before[3]
    assert sorted(after[1].strip("{}").split(",")) == sorted(before[1].strip("{}").split(","))
    assert Path(many["root"]).exists()


@pytest.mark.parametrize(("backup_format", "method"), [("json", "auto"), ("csv", "auto"), ("sql", "sqlalchemy")])
def test_exports_hold_few_locks_at_a_time_whatever_the_number_of_tables(many, backup_format, method):
    """A `COPY (SELECT ...)` locks its table and every index until the transaction ends; the exports
    release them every LOCK_WINDOW_TABLES tables (a savepoint rolled back), so 5,000 tables fit a
    default server: what is held at once is bounded by the window, not by the number of tables."""
    watcher = psycopg2.connect(many["url"])
    watcher.autocommit = True
    peaks: list[int] = []

    def progress(**meta):
        if meta.get("phase") == "dump":
            with watcher.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                            "WHERE d.datname = current_database() AND l.locktype = 'relation' "
                            "AND l.pid <> pg_backend_pid()")
                peaks.append(cur.fetchone()[0])

    try:
        operations.create(many["settings"], target="src", format=backup_format, method=method, progress=progress,
                          with_twin=False, twin_alongside=False)  # the export's own locks, not pg_dump's
    finally:
        watcher.close()
    # each table of `many` has a key and an index: three relation locks; the rest is the catalog's
    assert len(peaks) >= TABLES and max(peaks) < 50 + 3 * LOCK_WINDOW_TABLES < TABLES / 10, max(peaks)
