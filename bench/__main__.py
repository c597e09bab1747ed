"""The benchmark suite: every path of ours against pg_dump / psql / sqlite3 on the same data, same run.

    make bench                                   # 1M rows, then 5x
    .venv/bin/python -m bench --rows 200000 --scales 1 --skip-celery    # a quick look

For each scale: a throwaway PostgreSQL (tests.servers) loaded with `rows` events and
`rows/10` customers, and a SQLite file with the same tables and counts. Every step runs in
its own process; wall time and that process's peak RSS come from os.wait4. Ratios are to the
raw tool doing the same job: backups to `pg_dump --format=plain`, restores to
`psql --single-transaction` of pg_dump's file into an empty database, SQLite to the
`sqlite3` shell's `.backup` / `.dump`. Prints a table, writes bench/results/bench.json and
bench/results/bench.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.dataset import load_postgresql, load_sqlite
from bench.measure import ROOT, Measurement, measure, measure_child

RESULTS = ROOT / "bench" / "results"


@dataclass
class Row:
    scale: int
    rows: int
    path: str
    reference: str
    wall_s: float
    ratio: float | None
    rows_per_s: float
    mb_per_s: float
    peak_rss_mb: float
    size_mb: float
    task_s: float | None = None  # our paths: the operation alone, without the interpreter's start
    task_ratio: float | None = None


def _row(scale: int, rows: int, path: str, reference: str, result: Measurement, ref: Measurement | None,
         size_bytes: int) -> Row:
    return Row(scale=scale, rows=rows, path=path, reference=reference, wall_s=round(result.wall_s, 2),
               ratio=round(result.wall_s / ref.wall_s, 2) if ref else None,
               rows_per_s=round(rows / result.wall_s), mb_per_s=round(size_bytes / 2**20 / result.wall_s, 1),
               peak_rss_mb=round(result.peak_rss_mb, 1), size_mb=round(size_bytes / 2**20, 1),
               task_s=round(result.task_s, 2) if result.task_s is not None else None,
               task_ratio=round(result.task_s / ref.wall_s, 2) if ref and result.task_s is not None else None)


def bench_postgresql(server, scale: int, rows: int, work: Path, compression: str, s3=None) -> list[Row]:
    from backup_engine.engines.postgresql.connect import client_run
    from backup_engine.targets import Target

    total = rows + rows // 10
    url = load_postgresql(server, f"bench_{scale}", rows)
    folder = work / f"pg_{scale}"
    folder.mkdir()
    name_file = work / "name"
    pg_dump, psql = shutil.which("pg_dump"), shutil.which("psql")
    raw_dump = work / "raw.sql"
    with client_run(Target.from_url("bench", url)) as run:
        dump_ref = measure([pg_dump, "--format=plain", "--no-owner", "--no-privileges", "--no-password",
                            "-f", str(raw_dump)], env=run.env, pass_fds=tuple(run.pass_fds))
    restore_db = server.create_database(f"raw_restore_{scale}")
    with client_run(Target.from_url("raw", restore_db)) as run:
        restore_ref = measure([psql, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                               "-f", str(raw_dump)], env=run.env, pass_fds=tuple(run.pass_fds))
    server.drop_database(f"raw_restore_{scale}")
    size = raw_dump.stat().st_size
    rows_out = [_row(scale, total, "pg_dump (plain), raw", "-", dump_ref, None, size),
                _row(scale, total, "psql --single-transaction, raw", "-", restore_ref, None, size)]
    zstd_ref = None
    if shutil.which("zstd"):  # the reference for a compressed backup: pg_dump | zstd -3
        piped = work / "raw.sql.zst"
        with client_run(Target.from_url("bench", url)) as run:
            zstd_ref = measure(["sh", "-c", f"{pg_dump} --format=plain --no-owner --no-privileges --no-password "
                                f"| zstd -3 -q -o '{piped}'"], env=run.env, pass_fds=tuple(run.pass_fds))
        rows_out.append(_row(scale, total, "pg_dump | zstd -3, raw", "-", zstd_ref, None, piped.stat().st_size))
        piped.unlink()

    def backup(label: str, backup_format: str, method: str, level: str = compression) -> str:
        result = measure_child(child_env(folder, url, level), "backup", backup_format, method, str(name_file))
        name = name_file.read_text()
        rows_out.append(_row(scale, total, label, "pg_dump", result, dump_ref, (folder / name).stat().st_size))
        return name

    def restore(label: str, name: str) -> None:
        database = f"restore_{scale}_{len(rows_out)}"
        into = server.create_database(database)
        result = measure_child(child_env(folder, url, compression, into), "restore", name)
        rows_out.append(_row(scale, total, label, "psql", result, restore_ref, (folder / name).stat().st_size))
        server.drop_database(database)

    sql_name = backup(f"our sql (pg_dump), {compression}", "sql", "native")
    local = rows_out[-1]
    if zstd_ref is not None and compression.startswith("zstd"):
        rows_out.append(Row(**{**asdict(local), "path": f"our sql (pg_dump), {compression}", "reference": "pg|zstd",
                               "ratio": round(local.wall_s / zstd_ref.wall_s, 2),
                               "task_ratio": round(local.task_s / zstd_ref.wall_s, 2) if local.task_s else None}))
    if s3 is not None:
        s3_env = {**child_env(folder, url, compression), **s3.env(),
                  "BACKUP_STORAGE_URL": f"s3://{s3.bucket}/bench-{scale}"}
        result = measure_child(s3_env, "backup", "sql", "native", str(name_file))
        s3_row = _row(scale, total, f"our sql (pg_dump), {compression}, into S3 (moto)", "local",
                      result, Measurement(local.wall_s, 0), int(local.size_mb * 2**20))
        if result.task_s is not None and local.task_s:  # both in a running worker: S3 against local
            s3_row.task_ratio = round(result.task_s / local.task_s, 2)
        rows_out.append(s3_row)
    if compression != "none":
        backup("our sql (pg_dump), uncompressed", "sql", "native", "none")
    backup(f"our sql (SQLAlchemy fallback), {compression}", "sql", "sqlalchemy")
    json_name = backup(f"our json export, {compression}", "json", "auto")
    backup(f"our json backup with its .sql twin, {compression}", "json+twin", "auto")
    result = measure_child(child_env(folder, url, compression), "convert", json_name, str(name_file))
    converted = name_file.read_text()
    rows_out.append(_row(scale, total, "JSON -> SQL conversion", "pg_dump", result, dump_ref,
                         (folder / converted).stat().st_size))
    backup(f"our csv export, {compression}", "csv", "auto")
    pgdump_name = backup(f"our pgdump (-j, 2 tables), {compression}", "pgdump", "native")
    restore("restore of our sql (beside + swap)", sql_name)
    restore("restore of our json (through its .sql)", json_name)
    restore("restore of our pgdump (pg_restore -j, beside + swap)", pgdump_name)
    server.drop_database(f"bench_{scale}")
    shutil.rmtree(folder)
    raw_dump.unlink()
    return rows_out


def child_env(folder: Path, url: str, compression: str, into: str | None = None) -> dict[str, str]:
    """The settings of one measured child: target `bench` (and `into` for restores), the store."""
    targets = {"bench": url, **({"into": into} if into else {})}
    return {"BACKUP_TARGETS": json.dumps(targets), "BACKUP_DATABASE_URL": url, "BACKUP_DIR": str(folder),
            "BACKUP_UPLOAD_DIR": str(folder.parent / "uploads"), "BACKUP_COMPRESSION": compression,
            "BACKUP_SIGNING_KEY": "bench-signing-key-0123456789"}


def bench_sqlite(scale: int, rows: int, work: Path, compression: str) -> list[Row]:
    total = rows + rows // 10
    source = work / f"source_{scale}.sqlite3"
    url = load_sqlite(source, rows)
    sqlite3_bin = shutil.which("sqlite3")
    folder = work / f"lite_{scale}"
    folder.mkdir()
    name_file = work / "name"
    copy, text = work / "copy.sqlite3", work / "dump.sql"
    backup_ref = measure([sqlite3_bin, str(source), f".backup '{copy}'"])
    dump_ref = measure(["sh", "-c", f"{sqlite3_bin} '{source}' .dump > '{text}'"])
    out = [_row(scale, total, "sqlite3 .backup, raw", "-", backup_ref, None, copy.stat().st_size),
           _row(scale, total, "sqlite3 .dump, raw", "-", dump_ref, None, text.stat().st_size)]
    zstd_ref = None
    if shutil.which("zstd"):  # a compressed snapshot's fair reference: .backup, then zstd -3 on both cores
        packed = work / "copy.sqlite3.zst"
        copy.unlink()
        zstd_ref = measure(["sh", "-c", f"{sqlite3_bin} '{source}' \".backup '{copy}'\" "
                            f"&& zstd -3 -T0 -q '{copy}' -o '{packed}'"])
        out.append(_row(scale, total, "sqlite3 .backup + zstd -3 -T0, raw", "-", zstd_ref, None,
                        packed.stat().st_size))
        packed.unlink()
    for label, backup_format, ref, ref_name in (("our sqlite snapshot", "sqlite", backup_ref, ".backup"),
                                                ("our sqlite sql", "sql", dump_ref, ".dump")):
        result = measure_child(child_env(folder, url, compression), "backup", backup_format, "native",
                               str(name_file))
        out.append(_row(scale, total, f"{label}, {compression}", ref_name, result, ref,
                        (folder / name_file.read_text()).stat().st_size))
        if backup_format == "sqlite" and zstd_ref is not None and compression.startswith("zstd"):
            out.append(_row(scale, total, f"{label}, {compression}", ".backup|zstd", result, zstd_ref,
                            (folder / name_file.read_text()).stat().st_size))
    for path in (source, copy, text):
        path.unlink()
    shutil.rmtree(folder)
    return out


def bench_celery(server, work: Path, samples: int = 30) -> dict[str, float]:
    """Queue overhead (send_task -> task-started event) and a small create -> convert -> restore chain."""
    import threading

    from celery import Celery

    from bench.dataset import load_postgresql
    from tests.processes import celery_worker, clean_environment
    from tests.servers import ThrowawayRedis

    redis = ThrowawayRedis()
    redis.start()
    source = load_postgresql(server, "celery_src", 2000)
    target = server.create_database("celery_dst")
    env = clean_environment(BACKUP_TARGETS=json.dumps({"src": source, "dst": target}),
                            BACKUP_DIR=str(work / "celery"), BACKUP_UPLOAD_DIR=str(work / "uploads"),
                            CELERY_BROKER_URL=redis.url, CELERY_RESULT_BACKEND=redis.url)
    worker = celery_worker(env, work, name="bench", concurrency=1)
    started: dict[str, float] = {}
    receivers: list = []
    try:
        worker.wait_for("ready.", timeout=60)
        app = Celery(broker=redis.url, backend=redis.url)

        def listen() -> None:
            with app.connection() as connection:
                receiver = app.events.Receiver(connection, handlers={
                    "task-started": lambda event: started.__setitem__(event["uuid"], event["timestamp"])})
                receivers.append(receiver)
                receiver.capture(limit=None, timeout=None, wakeup=True)

        threading.Thread(target=listen, daemon=True).start()
        time.sleep(1.0)
        delays = []
        for _ in range(samples):
            sent = time.time()
            result = app.send_task("backups.list", kwargs={"target": "src"})
            result.get(timeout=30)
            deadline = time.monotonic() + 5
            while result.id not in started and time.monotonic() < deadline:
                time.sleep(0.005)
            if result.id in started:
                delays.append((started[result.id] - sent) * 1000)
        chain_started = time.perf_counter()
        created = app.send_task("backups.create", kwargs={"target": "src", "format": "json"}).get(timeout=120)
        app.send_task("backups.restore", kwargs={"backup_filename": created["backup_filename"],
                                                 "target": "dst", "source_target": "src"}).get(timeout=120)
        chain_s = time.perf_counter() - chain_started
    finally:
        for receiver in receivers:
            receiver.should_stop = True
        worker.stop()
        redis.destroy()
        server.drop_database("celery_src")
        server.drop_database("celery_dst")
    return {"send_to_start_median_ms": round(statistics.median(delays), 1),
            "send_to_start_p90_ms": round(sorted(delays)[int(len(delays) * 0.9) - 1], 1),
            "samples": len(delays), "json_chain_create_convert_restore_s": round(chain_s, 2)}


def print_table(rows: list[Row]) -> None:
    header = (f"{'scale':>5} {'rows':>10}  {'path':<44} {'wall s':>7} {'ratio':>6} {'vs':<8} {'rows/s':>10} "
              f"{'MB/s':>7} {'RSS MB':>7} {'size MB':>8} {'task s':>7} {'task ratio':>10}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row.scale:>4}x {row.rows:>10,}  {row.path:<44} {row.wall_s:>7.2f} {_fixed(row.ratio):>6} "
              f"{row.reference:<8} {row.rows_per_s:>10,} {row.mb_per_s:>7.1f} {row.peak_rss_mb:>7.1f} "
              f"{row.size_mb:>8.1f} {_fixed(row.task_s):>7} {_fixed(row.task_ratio):>10}")


def _fixed(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else ""


def markdown_table(rows: list[Row], scale: str = "scale", unit: str = "x") -> str:
    """The table as the README shows it (`bench/results/*.md`, pasted under Performance)."""
    lines = [f"| {scale} | rows | path | wall s | ratio | vs | rows/s | MB/s | peak RSS MB | size MB | task s "
             "| task ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        path, reference = row.path.replace("|", "\\|"), row.reference.replace("|", "\\|")
        lines.append(f"| {row.scale:,}{unit} | {row.rows:,} | {path} | {row.wall_s:.2f} | {_fixed(row.ratio)} | "
                     f"{reference} | {row.rows_per_s:,} | {row.mb_per_s:.1f} | {row.peak_rss_mb:.1f} | "
                     f"{row.size_mb:.1f} | {_fixed(row.task_s)} | {_fixed(row.task_ratio)} |")
    return "\n".join(lines) + "\n"


def chart(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = list(dict.fromkeys(row.path for row in rows))
    scales = sorted({row.scale for row in rows})
    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(15, 7))
    width = 0.8 / len(scales)
    for index, scale in enumerate(scales):
        by_path = {row.path: row for row in rows if row.scale == scale}
        positions = [i + index * width for i in range(len(paths))]
        time_axis.barh(positions, [by_path[p].wall_s if p in by_path else 0 for p in paths], width,
                       label=f"{scale}x")
        memory_axis.barh(positions, [by_path[p].peak_rss_mb if p in by_path else 0 for p in paths], width,
                         label=f"{scale}x")
    for axis, title in ((time_axis, "wall time (s)"), (memory_axis, "peak RSS of the process (MB)")):
        axis.set_yticks([i + width * (len(scales) - 1) / 2 for i in range(len(paths))])
        axis.set_yticklabels(paths if axis is time_axis else [""] * len(paths))
        axis.invert_yaxis()
        axis.set_title(title)
        axis.legend()
    figure.suptitle("backup worker vs pg_dump / psql / sqlite3, same data, same run")
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="events at scale 1 (customers: a tenth)")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--compression", default="zstd", help="BACKUP_COMPRESSION of our paths (default: zstd)")
    args = parser.parse_args()

    from tests.servers import ThrowawayPostgres

    RESULTS.mkdir(parents=True, exist_ok=True)
    server = ThrowawayPostgres().init()
    server.start()
    work = Path(tempfile.mkdtemp(prefix="bw-bench-"))
    rows: list[Row] = []
    celery: dict[str, float] = {}
    from tests.s3_server import ThrowawayS3

    s3 = ThrowawayS3().start()
    try:
        for scale in args.scales:
            count = args.rows * scale
            rows += bench_postgresql(server, scale, count, work, args.compression, s3)
            if not args.skip_sqlite:
                rows += bench_sqlite(scale, count, work, args.compression)
            print_table([row for row in rows if row.scale == scale])
            print()
        if not args.skip_celery:
            celery = bench_celery(server, work)
    finally:
        server.destroy()
        s3.destroy()
        shutil.rmtree(work, ignore_errors=True)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
               "pg_dump": subprocess.run(["pg_dump", "--version"], capture_output=True, text=True).stdout.strip()}
    print_table(rows)
    if celery:
        print("\nCelery:", json.dumps(celery))
    (RESULTS / "bench.json").write_text(json.dumps({"machine": machine, "rows": [asdict(r) for r in rows],
                                                    "celery": celery}, indent=2))
    (RESULTS / "bench.md").write_text(markdown_table(rows))
    try:
        chart(rows, RESULTS / "bench.png")
    except ImportError:  # `make bench` installs matplotlib; `python -m bench` alone may not have it
        print(f"\nwrote {RESULTS / 'bench.json'} and bench.md; no chart: matplotlib is not installed "
              "(make bench installs bench/requirements.txt)")
        return
    print(f"\nwrote {RESULTS / 'bench.json'}, bench.md and {RESULTS / 'bench.png'}")


if __name__ == "__main__":
    main()
