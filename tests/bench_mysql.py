"""Bench of the MySQL engine against the bare tools (not a test: `python -m tests.bench_mysql [rows] [repeat]`).

A throwaway mariadbd gets a table of `rows` rows (and 5x as many in a second database); then:
- `mariadb-dump` with the engine's flags into a file, against the engine's native backup
  (a fresh worker process: its wall time and its own peak RSS);
- `mariadb db < that file` into an empty database, against the engine's restore of the same
  backup (built beside, counted, swapped in; no safety backup);
- the SQLAlchemy fallback's dump, for information.
Each is run `repeat` times, interleaved with its bare counterpart, and the best of each is
compared (a shared machine is noisy); every run's time is printed too. Asserts nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from backup_engine.engines.mysql.native import BASE_FLAGS, INCLUDE_DATA_FLAGS
from tests.servers import ThrowawayMariaDB

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import json, resource, sys, time
from pathlib import Path
from backup_engine.dumpinfo import ClientTools
from backup_engine.targets import Target
from tests.engine_api import BackupStore, create_backup, restore_backup
spec = json.loads(sys.argv[1])
tools = ClientTools(mysqldump=spec["dump"], mysql=spec["client"])
store = BackupStore(Path(spec["store"]))
started = time.perf_counter()
if spec["op"] == "backup":
    result = create_backup(Target.from_url("bench", spec["url"]), store, tools=tools, method=spec["method"])
else:
    result = restore_backup(Target.from_url("bench", spec["url"]), store, spec["backup"], tools=tools,
                            safety_backup=False)
wall = time.perf_counter() - started
print(json.dumps({"wall_s": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "backup": result["backup_filename"], "rows": result["rows"], "size": result.get("size_bytes")}))
"""


def populate(server: ThrowawayMariaDB, database: str, rows: int) -> None:
    server.execute(
        "CREATE TABLE events (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, created DATETIME(6) NOT NULL, "
        "kind VARCHAR(20) NOT NULL, amount DECIMAL(12,2), payload VARCHAR(120), flag TINYINT, tag VARBINARY(16), "
        "KEY by_kind (kind, created))",
        f"INSERT INTO events (created, kind, amount, payload, flag, tag) SELECT "
        f"'2024-01-01' + INTERVAL seq SECOND, ELT(1 + seq % 5, 'click', 'view', 'buy', 'it''s', 'emoji 😀'), "
        f"(seq % 100000) / 100, REPEAT(CHAR(97 + seq % 26), 40 + seq % 60), seq % 2, UNHEX(MD5(seq)) "
        f"FROM seq_1_to_{rows}", dbname=database)


def child(spec: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed(argv: list[str], stdin: Path | None = None, stdout: Path | None = None) -> float:
    started = time.perf_counter()
    with open(stdin or os.devnull, "rb") as source, open(stdout or os.devnull, "wb") as sink:
        subprocess.run(argv, stdin=source, stdout=sink, check=True)
    return time.perf_counter() - started


def bench(rows: int, repeat: int = 3) -> list[dict]:
    server = ThrowawayMariaDB()
    results = []
    try:
        server.init().start()
        work = Path(tempfile.mkdtemp(prefix="bw-bench-mysql-"))
        options = work / "client.cnf"
        options.touch(mode=0o600)
        options.write_text(f'[client]\nuser={server.superuser}\npassword="{server.password}"\nhost={server.host}\n'
                           f"port={server.port}\nprotocol=TCP\n")
        dump_tool, client_tool = "/usr/bin/mariadb-dump", "/usr/bin/mariadb"
        for scale in (1, 5):
            count = rows * scale
            source = make_url(server.create_database(f"bench_src_{scale}")).database
            populate(server, source, count)
            raw_file = work / f"raw_{scale}.sql"
            store = work / f"store_{scale}"
            spec = {"url": server.url(source), "store": str(store), "dump": dump_tool, "client": client_tool}
            raw_dumps, ours, raw_restores, restores = [], [], [], []
            for attempt in range(repeat):  # interleaved, so that a busy moment of the machine hits both
                raw_dumps.append(timed([dump_tool, f"--defaults-extra-file={options}", *BASE_FLAGS,
                                        *INCLUDE_DATA_FLAGS["full"], "--", source], stdout=raw_file))
                ours.append(child({**spec, "op": "backup", "method": "native"}))
                raw_target = make_url(server.create_database(f"bench_raw_{scale}_{attempt}")).database
                raw_restores.append(timed([client_tool, f"--defaults-extra-file={options}",
                                           f"--database={raw_target}"], stdin=raw_file))
                our_target = server.create_database(f"bench_ours_{scale}_{attempt}")
                restores.append(child({**spec, "op": "restore", "url": our_target, "backup": ours[0]["backup"]}))
            fallback = child({**spec, "op": "backup", "method": "sqlalchemy"})
            best_dump, best_backup = min(raw_dumps), min(r["wall_s"] for r in ours)
            best_raw_restore, best_restore = min(raw_restores), min(r["wall_s"] for r in restores)
            line = {"scale": scale, "rows": count, "dump_mb": round(raw_file.stat().st_size / 2**20, 1),
                    "raw_dump_s": round(best_dump, 2), "native_backup_s": round(best_backup, 2),
                    "backup_ratio": round(best_backup / best_dump, 2),
                    "backup_rss_mb": round(max(r["rss_mb"] for r in ours), 1),
                    "fallback_backup_s": round(fallback["wall_s"], 2), "fallback_rss_mb": round(fallback["rss_mb"], 1),
                    "raw_restore_s": round(best_raw_restore, 2), "restore_s": round(best_restore, 2),
                    "restore_ratio": round(best_restore / best_raw_restore, 2),
                    "restore_rss_mb": round(max(r["rss_mb"] for r in restores), 1),
                    "all_s": {"raw_dump": [round(x, 2) for x in raw_dumps],
                              "native_backup": [round(r["wall_s"], 2) for r in ours],
                              "raw_restore": [round(x, 2) for x in raw_restores],
                              "restore": [round(r["wall_s"], 2) for r in restores]}}
            print(json.dumps(line), flush=True)
            results.append(line)
    finally:
        server.destroy()
    return results


if __name__ == "__main__":
    summary = bench(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000,
                    int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    print(json.dumps(summary, indent=1))
