"""One measured path of ours, run in its own process: `python -m bench.child MODE ARGS`.

Modes call the same functions the tasks and `--local` call (tasks.operations), with settings
read from the environment the parent sets: BACKUP_TARGETS (`bench` and `into`), BACKUP_DIR,
BACKUP_COMPRESSION. So a row costs what a task costs: hashing, compression, the manifest and
its signature, the checksum check and safety backup of a restore, the build beside and swap.
The operation's own time (without the interpreter's start and imports) goes to the file named by
BENCH_TASK_TIME_FILE.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from backup_engine.engines.collector import defer_collection
from bench.measure import TASK_TIME_FILE
from config.settings import Settings, load_settings
from tasks import operations


def main(argv: list[str]) -> None:
    mode, *rest = argv
    settings = load_settings(dotenv_path=None)
    defer_collection()  # as `--local` does: the process ends with the operation
    if imports_on_first_use(mode, rest):
        operations.warm_up(settings)  # as a running worker did at its start; the wall time keeps it
    started = time.perf_counter()
    run(mode, rest, settings)
    if os.environ.get(TASK_TIME_FILE):  # the operation alone: what a running worker pays per task
        Path(os.environ[TASK_TIME_FILE]).write_text(f"{time.perf_counter() - started:.4f}\n")


def imports_on_first_use(mode: str, rest: list[str]) -> bool:
    """Whether this path imports SQLAlchemy when it runs (the fallback, JSON, conversions), which
    a worker imported once at its start (`operations.warm_up`), not in a task."""
    if mode == "backup":
        return rest[0].startswith("json") or rest[1] == "sqlalchemy"
    return mode == "convert" or ".json" in rest[0]


def run(mode: str, rest: list[str], settings: Settings) -> None:
    if mode == "backup":  # backup FORMAT METHOD NAME_FILE (FORMAT json+twin: a JSON backup with its twin)
        backup_format, method, name_file = rest
        manifest = operations.create(settings, target="bench", format=backup_format.removesuffix("+twin"),
                                     method=method, with_twin=backup_format.endswith("+twin"),
                                     twin_alongside=backup_format.endswith("+twin"))
        Path(name_file).write_text(manifest["backup_filename"])
    elif mode == "convert":  # convert JSON_NAME NAME_FILE
        json_name, name_file = rest
        Path(name_file).write_text(operations.convert(settings, backup_filename=json_name)["backup_filename"])
    elif mode == "restore":  # restore NAME  (into target `into`, as `backups.restore` does it)
        operations.restore(settings, backup_filename=rest[0], target="into", source_target="bench")
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
