"""Scale in objects: many small tables, ours against pg_dump and psql, same run.

    .venv/bin/python -m bench.objects --tables 1000 5000

For each count: a throwaway PostgreSQL (default settings) gets that many tables, each with a
serial key, an index and a few rows; then every backup path of ours runs against `pg_dump
--format=plain` (the `pgdump` path against `pg_dump --format=tar` too: its own format for a
database without big tables, which costs more than plain), and every restore (into an
existing, empty target: built beside and swapped in) against `psql` without a single
transaction (one transaction cannot hold the locks). Wall time
and each process's own peak RSS, as in `make bench`; every path (the references too) runs
`--repeat` times (3), round by round, each on a settled server (`settle`), and each row is its
median run (its highest peak RSS); writes bench/results/objects.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import psycopg2

from bench.__main__ import RESULTS, Row, _row, child_env, markdown_table, print_table
from bench.measure import Measurement, measure, measure_child

BATCH = """
DO $$ BEGIN
  FOR i IN {first}..{last} LOOP
    EXECUTE format('CREATE TABLE public.t%s (id serial PRIMARY KEY, v integer, note text)', i);
    EXECUTE format('CREATE INDEX t%s_v ON public.t%s (v)', i, i);
    EXECUTE format('INSERT INTO public.t%s (v, note) SELECT g, ''n'' || g FROM generate_series(1, 3) g', i, i);
  END LOOP;
END $$;"""


def load_tables(url: str, tables: int) -> None:
    connection = psycopg2.connect(url)
    connection.autocommit = True
    with connection.cursor() as cur:  # in batches: one transaction cannot create them all
        for first in range(1, tables + 1, 250):
            cur.execute(BATCH.format(first=first, last=min(first + 249, tables)))
    connection.close()


PATHS = (("our sql (pg_dump)", "sql", "native"), ("our sql (SQLAlchemy fallback)", "sql", "sqlalchemy"),
         ("our json export", "json", "auto"), ("our pgdump (-j)", "pgdump", "native"))


def bench_tables(server, tables: int, work: Path, compression: str, repeat: int) -> list[Row]:
    """Every path `repeat` times, round by round (the references too), each row its median run:
    on 2 cores one run of a second or two moves by a third from one round to the next."""
    from backup_engine.engines.postgresql.connect import client_run
    from backup_engine.targets import Target

    url = server.create_database(f"objects_{tables}")
    load_tables(url, tables)
    folder = work / f"objects_{tables}"
    folder.mkdir()
    name_file = work / "name"
    raw_dump, raw_tar = work / "raw.sql", work / "raw.tar"
    pg_dump, psql = shutil.which("pg_dump"), shutil.which("psql")
    runs: dict[str, list[Measurement]] = {}
    names: dict[str, str] = {}
    for _ in range(repeat):
        settle(server)
        with client_run(Target.from_url("bench", url)) as run:
            runs.setdefault("dump", []).append(measure(
                [pg_dump, "--format=plain", "--no-owner", "--no-privileges", "--no-password", "-f", str(raw_dump)],
                env=run.env, pass_fds=tuple(run.pass_fds)))
        settle(server)
        with client_run(Target.from_url("bench", url)) as run:
            runs.setdefault("tar dump", []).append(measure(
                [pg_dump, "--format=tar", "--no-owner", "--no-privileges", "--no-password", "-f", str(raw_tar)],
                env=run.env, pass_fds=tuple(run.pass_fds)))
        into = server.create_database(f"objects_raw_{tables}")
        settle(server)
        with client_run(Target.from_url("raw", into)) as run:
            runs.setdefault("restore", []).append(measure(
                [psql, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "-f", str(raw_dump)],
                env=run.env, pass_fds=tuple(run.pass_fds)))
        server.drop_database(f"objects_raw_{tables}")
        for label, backup_format, method in PATHS:
            settle(server)
            runs.setdefault(label, []).append(
                measure_child(child_env(folder, url, compression), "backup", backup_format, method, str(name_file)))
            names[label] = name_file.read_text()
            target = server.create_database(f"objects_into_{tables}")
            settle(server)
            runs.setdefault(f"restore of {label}", []).append(
                measure_child(child_env(folder, url, compression, target), "restore", names[label]))
            server.drop_database(f"objects_into_{tables}")
    dump_ref, restore_ref, tar_ref = median_run(runs["dump"]), median_run(runs["restore"]), median_run(runs["tar dump"])
    size = raw_dump.stat().st_size
    rows = [_row(tables, tables, "pg_dump (plain), raw", "-", dump_ref, None, size),
            _row(tables, tables, "pg_dump (tar), raw", "-", tar_ref, None, raw_tar.stat().st_size),
            _row(tables, tables, "psql (no single transaction), raw", "-", restore_ref, None, size)]
    for label, backup_format, _ in PATHS:
        stored = (folder / names[label]).stat().st_size
        rows.append(_row(tables, tables, f"{label}, {compression}", "pg_dump", median_run(runs[label]), dump_ref,
                         stored))
        if backup_format == "pgdump":
            rows.append(_row(tables, tables, f"{label}, {compression}", "pg_dump -Ft", median_run(runs[label]),
                             tar_ref, stored))
        rows.append(_row(tables, tables, f"restore of {label}", "psql", median_run(runs[f"restore of {label}"]),
                         restore_ref, stored))
    server.drop_database(f"objects_{tables}")
    shutil.rmtree(folder)
    raw_dump.unlink()
    raw_tar.unlink()
    return rows


def settle(server, timeout_s: float = 60) -> None:
    """A checkpoint, then no autovacuum worker for half a second (or `timeout_s`), before every
    measurement: loading thousands of tables, and each restore, leave the server vacuuming and
    analyzing its catalogs for seconds, which on 2 cores would be charged to whichever run follows."""
    connection = server.connect()
    connection.autocommit = True
    deadline, quiet_since = time.monotonic() + timeout_s, None
    with connection.cursor() as cur:
        cur.execute("CHECKPOINT")
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'autovacuum worker'")
            if cur.fetchone()[0]:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= 0.5:
                break
            time.sleep(0.1)
    connection.close()


def median_run(runs: list[Measurement]) -> Measurement:
    """The median wall time and task time of `runs`, and the highest peak RSS of any."""
    tasks = [run.task_s for run in runs if run.task_s is not None]
    return Measurement(wall_s=statistics.median(run.wall_s for run in runs),
                       peak_rss_mb=max(run.peak_rss_mb for run in runs),
                       task_s=statistics.median(tasks) if tasks else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--compression", default="zstd")
    parser.add_argument("--repeat", type=int, default=3, help="runs of every path; each row is its median run")
    args = parser.parse_args()

    from tests.servers import ThrowawayPostgres

    RESULTS.mkdir(parents=True, exist_ok=True)
    server = ThrowawayPostgres().init()
    server.start()
    work = Path(tempfile.mkdtemp(prefix="bw-bench-objects-"))
    rows: list[Row] = []
    try:
        for tables in args.tables:
            rows += bench_tables(server, tables, work, args.compression, args.repeat)
            print_table([row for row in rows if row.scale == tables])
            print()
    finally:
        server.destroy()
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows)
    (RESULTS / "objects.json").write_text(json.dumps({"rows": [asdict(row) for row in rows]}, indent=2))
    (RESULTS / "objects.md").write_text(markdown_table(rows, scale="tables", unit=""))


if __name__ == "__main__":
    main()
