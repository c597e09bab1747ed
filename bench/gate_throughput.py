"""Throughput of the upload gate (engines/postgresql/gate.check_upload) on a large clean pg_dump file.

    .venv/bin/python -m bench.gate_throughput --rows 3000000            # plain (COPY) dump
    .venv/bin/python -m bench.gate_throughput --rows 300000 --inserts   # pg_dump --inserts

Starts a throwaway PostgreSQL (tests.servers), loads the benchmark's events and customers
(bench.dataset), writes a plain pg_dump of it to a temp file, and times check_upload over that
file three times (wall and CPU time, best run), reporting MB/s and the rows the gate counted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from backup_engine.engines.postgresql.gate import check_upload
from bench.dataset import load_postgresql
from tests.servers import ThrowawayPostgres


def dump(server: ThrowawayPostgres, database: str, target: Path, flags: list[str]) -> None:
    passfile = target.with_suffix(".pgpass")
    passfile.write_text(f"{server.host}:{server.port}:*:{server.superuser}:"
                        + server.password.replace("\\", "\\\\").replace(":", "\\:") + "\n")
    passfile.chmod(0o600)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["PGPASSFILE"] = str(passfile)
    subprocess.run(["pg_dump", "-h", server.host, "-p", str(server.port), "-U", server.superuser, *flags,
                    "-f", str(target), database], env=env, check=True)


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--rows", type=int, default=3_000_000)
    arguments.add_argument("--inserts", action="store_true", help="pg_dump --inserts instead of COPY")
    options = arguments.parse_args()
    server = ThrowawayPostgres().init()
    server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bw-gate-bench-") as folder:
            load_postgresql(server, "gate_bench", options.rows)
            path = Path(folder) / "dump.sql"
            dump(server, "gate_bench", path, ["--inserts"] if options.inserts else [])
            size = path.stat().st_size
            runs = []
            for _ in range(3):
                wall, cpu = time.perf_counter(), time.process_time()
                with path.open("rb") as handle:
                    report = check_upload(handle)
                runs.append((time.perf_counter() - wall, time.process_time() - cpu))
            wall, cpu = min(runs)
            print(f"dump: {size / 1e6:.1f} MB, {report.statements} statements, "
                  f"{sum(report.table_rows.values())} COPY rows counted, kinds {report.kinds}")
            print(f"check_upload: best of 3 {wall:.2f}s wall ({size / 1e6 / wall:.0f} MB/s), "
                  f"{cpu:.2f}s CPU ({size / 1e6 / cpu:.0f} MB/s)")
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
