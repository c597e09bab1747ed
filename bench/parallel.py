"""Big databases in parallel: the `pgdump` format against plain pg_dump and psql, same data, same run.

    .venv/bin/python -m bench.parallel --rows 1000000 --tables 4

The main benchmark's data, with `events` copied into `tables - 1` more tables of the same size
(keys and indexes included), so there are several large tables for the jobs to share. Rows:
plain `pg_dump` and `psql --single-transaction` (the references), pg_dump's own directory archive
with `-j` and `pg_restore -j` (what the tools do alone), then our `pgdump` backup (snapshot,
archive, tar, zstd, hash, manifest) and its restore (checksum, unpack, pg_restore -j into a
database beside the target, row check, swap), each in its own process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from bench.__main__ import RESULTS, Row, _row, child_env, markdown_table, print_table
from bench.dataset import load_postgresql
from bench.measure import measure, measure_child

COPY_TABLE = """
CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
INSERT INTO {name} SELECT * FROM events;
"""


def bench_parallel(server, rows: int, tables: int, jobs: int, work: Path) -> list[Row]:
    from backup_engine.engines.postgresql.connect import client_run
    from backup_engine.targets import Target

    url = load_postgresql(server, "parallel_src", rows)
    conn = server.connect("parallel_src")
    with conn.cursor() as cur:
        for index in range(2, tables + 1):
            cur.execute(COPY_TABLE.format(name=f"events_{index}"))
        cur.execute("ANALYZE")
    conn.commit()
    conn.close()
    total = rows * tables + rows // 10
    pg_dump, psql, pg_restore = shutil.which("pg_dump"), shutil.which("psql"), shutil.which("pg_restore")
    plain, directory = work / "plain.sql", work / "archive"
    out: list[Row] = []
    with client_run(Target.from_url("bench", url)) as run:
        dump_ref = measure([pg_dump, "--format=plain", "--no-owner", "--no-privileges", "--no-password",
                            "-f", str(plain)], env=run.env, pass_fds=tuple(run.pass_fds))
        dump_dir = measure([pg_dump, "--format=directory", f"--jobs={jobs}", "--compress=0", "--no-owner",
                            "--no-privileges", "--no-password", "-f", str(directory)], env=run.env,
                           pass_fds=tuple(run.pass_fds))
    size = plain.stat().st_size
    out.append(_row(tables, total, "pg_dump (plain), raw", "-", dump_ref, None, size))
    out.append(_row(tables, total, f"pg_dump -Fd -j {jobs}, raw", "pg_dump", dump_dir, dump_ref, size))
    def raw_restore(argv: list[str]):
        into = server.create_database("raw_restore")
        with client_run(Target.from_url("raw", into)) as run:
            result = measure(argv, env=run.env, pass_fds=tuple(run.pass_fds))
        server.drop_database("raw_restore")
        return result

    psql_ref = raw_restore([psql, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                            "-f", str(plain)])
    out.append(_row(tables, total, "psql --single-transaction, raw", "-", psql_ref, None, size))
    restored = raw_restore([pg_restore, f"--jobs={jobs}", "--no-owner", "--no-privileges", "--exit-on-error",
                            "--no-password", "-d", "raw_restore", str(directory)])
    out.append(_row(tables, total, f"pg_restore -j {jobs}, raw", "psql", restored, psql_ref, size))
    plain.unlink()
    shutil.rmtree(directory)
    folder, name_file = work / "store", work / "name"
    folder.mkdir()
    env = {**child_env(folder, url, "zstd"), "BACKUP_JOBS": str(jobs)}
    result = measure_child(env, "backup", "pgdump", "native", str(name_file))
    name = name_file.read_text()
    out.append(_row(tables, total, f"our pgdump (-j {jobs}), zstd", "pg_dump", result, dump_ref,
                    (folder / name).stat().st_size))
    into = server.create_database("ours_restore")
    result = measure_child({**child_env(folder, url, "zstd", into), "BACKUP_JOBS": str(jobs)}, "restore", name)
    out.append(_row(tables, total, f"restore of our pgdump (-j {jobs}, beside + swap)", "psql", result, psql_ref,
                    (folder / name).stat().st_size))
    server.drop_database("ours_restore")
    server.drop_database("parallel_src")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of each large table")
    parser.add_argument("--tables", type=int, default=4, help="large tables")
    parser.add_argument("--jobs", type=int, default=2, help="parallel jobs (BACKUP_JOBS)")
    args = parser.parse_args()

    from tests.servers import ThrowawayPostgres

    server = ThrowawayPostgres().init()
    server.start()
    work = Path(tempfile.mkdtemp(prefix="bw-bench-parallel-"))
    try:
        rows = bench_parallel(server, args.rows, args.tables, args.jobs, work)
    finally:
        server.destroy()
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "parallel.json").write_text(json.dumps([row.__dict__ for row in rows], indent=2))
    (RESULTS / "parallel.md").write_text(markdown_table(rows, scale="large tables", unit=""))


if __name__ == "__main__":
    main()
