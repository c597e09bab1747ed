"""Bench: the SQLAlchemy fallback (`backup_engine.sqlgen.dump_sql`) against pg_dump, same database, same run.

    .venv/bin/python -m bench.fallback --rows 1000000
    .venv/bin/python -m bench.fallback --rows 200000 1000000 --repeat 3 --verify

Starts its own throwaway PostgreSQL (tests.servers.ThrowawayPostgres), loads a realistic set of
tables with generate_series (ints, text, numeric, timestamptz, jsonb, bytea, arrays, a foreign
key, indexes; `rows` in the big table, a tenth of that in its parent), then times, for each size:

- `pg_dump --format=plain -f FILE` (the native path), and
- `python -m bench.fallback --child ...` running `dump_sql` into a plain buffered file,

each in its own subprocess, whose wall time and peak RSS (`os.wait4` rusage of that very
child) are reported. Best of `--repeat` runs. The password reaches the children through a
0600 PGPASSFILE / stdin, never argv.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
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
FROM generate_series(1, %(customers)s) AS g
"""
LOAD_EVENTS = """
INSERT INTO events (customer_id, kind, happened_at, amount, score, payload, blob, flags)
SELECT 1 + (g %% %(customers)s), (ARRAY['click', 'view', 'buy', 'refund'])[1 + g %% 4],
       timestamptz '2023-01-01 00:00:00+00' + g * interval '1 second',
       (g %% 100000) / 100.0, g / 7.0,
       jsonb_build_object('page', '/p/' || (g %% 1000), 'ref', md5(g::text), 'items', jsonb_build_array(g %% 10, 'x')),
       decode(md5(g::text), 'hex'), ARRAY[g %% 3, g %% 5]
FROM generate_series(1, %(rows)s) AS g
"""
INDEX_SQL = """
CREATE INDEX events_customer_idx ON events (customer_id);
CREATE INDEX events_happened_idx ON events (happened_at);
CREATE INDEX customers_created_idx ON customers (created_at);
ANALYZE;
"""


def child_dump(out_path: str) -> None:
    """Runs in the measured subprocess: dump_sql of the target (URL on stdin) into out_path."""
    from backup_engine.sqlgen import dump_sql
    from backup_engine.targets import Target

    target = Target.from_url("bench", sys.stdin.readline().strip())
    with open(out_path, "wb", buffering=1 << 20) as handle:
        result = dump_sql(target, handle, "full")
    print(json.dumps({"rows": result.rows, "tables": result.tables}))


def measure(argv: list[str], env: dict[str, str] | None = None, stdin_text: str | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stdin is not None
    process.stdin.write((stdin_text or "").encode())
    process.stdin.close()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read() if process.stderr else b""
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({process.returncode}): {stderr.decode()[-2000:]}")
    return wall, usage.ru_maxrss


def load(server, dbname: str, rows: int) -> str:
    import psycopg2

    url = server.create_database(dbname)
    conn = server.connect(dbname)
    with conn.cursor() as cur:
        cur.execute(SETUP_SQL)
        params = {"rows": rows, "customers": max(1, rows // 10)}
        cur.execute(LOAD_CUSTOMERS.replace("%(customers)s", str(params["customers"])))
        cur.execute(LOAD_EVENTS, params)
        cur.execute(INDEX_SQL)
    conn.commit()
    conn.close()
    del psycopg2
    return url


def verify(server, url: str, sql_file: Path, tools) -> str:
    from backup_engine.postgresql import restore_sql
    from backup_engine.targets import Target

    scratch = server.create_database("bench_verify")
    try:
        restore_sql(Target.from_url("verify", scratch), sql_file, "full", [], tools)
        counts = []
        for name in (url, scratch):
            conn = server.connect(name.rsplit("/", 1)[1])
            with conn.cursor() as cur:
                cur.execute("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM customers),"
                            " (SELECT md5(string_agg(e::text, '' ORDER BY id)) FROM events e)")
                counts.append(cur.fetchone())
            conn.close()
        return "restored, identical" if counts[0] == counts[1] else f"MISMATCH {counts}"
    finally:
        server.drop_database("bench_verify")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000], help="rows in the big table (one or more)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each tool per size; the best is reported")
    parser.add_argument("--verify", action="store_true", help="also restore the fallback's file and compare")
    parser.add_argument("--child", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_dump(args.child)
        return

    from backup_engine.dumpinfo import ClientTools
    from backup_engine.pgconnect import client_environment
    from backup_engine.targets import Target
    from tests.servers import ThrowawayPostgres

    pg_dump = os.environ.get("PG_DUMP_BIN") or shutil.which("pg_dump")
    tools = ClientTools(pg_dump=pg_dump, psql=os.environ.get("PSQL_BIN") or shutil.which("psql"))
    server = ThrowawayPostgres().init()
    server.start()
    workdir = Path(tempfile.mkdtemp(prefix="bw-bench-"))
    results = []
    try:
        for rows in args.rows:
            dbname = f"bench_{rows}"
            started = time.perf_counter()
            url = load(server, dbname, rows)
            print(f"loaded {rows:,} + {rows // 10:,} rows in {time.perf_counter() - started:.1f}s", file=sys.stderr)
            target = Target.from_url("bench", url)
            native_file, fallback_file = workdir / f"native_{rows}.sql", workdir / f"fallback_{rows}.sql"
            native, fallback = [], []
            with client_environment(target) as env:
                for _ in range(args.repeat):
                    native.append(measure([pg_dump, "--format=plain", "--no-owner", "--no-privileges",
                                           "--no-password", "-f", str(native_file)], env=env))
                    fallback.append(measure([sys.executable, "-m", "bench.fallback", "--child", str(fallback_file)],
                                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                                            stdin_text=url + "\n"))
            best_native, best_fallback = min(native), min(fallback)
            check = verify(server, url, fallback_file, tools) if args.verify else "-"
            results.append((rows, best_native, best_fallback, native_file.stat().st_size,
                            fallback_file.stat().st_size, check))
            server.drop_database(dbname)
    finally:
        server.destroy()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{'rows':>10} | {'tool':<22} | {'wall s':>7} | {'ratio':>5} | {'peak RSS MB':>11} | "
          f"{'output MB':>9} | check")
    print("-" * 90)
    for rows, (n_wall, n_rss), (f_wall, f_rss), n_size, f_size, check in results:
        print(f"{rows:>10,} | {'pg_dump (plain)':<22} | {n_wall:>7.2f} | {1:>5.2f} | {n_rss / 1024:>11.1f} | "
              f"{n_size / 2**20:>9.1f} |")
        print(f"{rows:>10,} | {'sqlgen.dump_sql':<22} | {f_wall:>7.2f} | {f_wall / n_wall:>5.2f} | "
              f"{f_rss / 1024:>11.1f} | {f_size / 2**20:>9.1f} | {check}")


if __name__ == "__main__":
    main()
