"""One measured path of ours, run in its own process: `python -m bench.child MODE ARGS`.

Modes call the same functions the tasks and `--local` call (tasks.operations), with settings
read from the environment the parent sets: BACKUP_TARGETS (`bench` and `into`), BACKUP_DIR,
BACKUP_COMPRESSION. So a row costs what a task costs: hashing, compression, the manifest and
its signature, the checksum check and safety backup of a restore, the build beside and swap.
The operation's own time (without the interpreter's start and imports) goes to the file named by
BENCH_TASK_TIME_FILE; the modules the operation imports on first use (SQLAlchemy for the fallback
and JSON), which a running worker imported at its start, are timed by `PYTHONPROFILEIMPORTTIME`
between two marks on stderr and taken off by the parent (`measure_child`).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from backup_engine.engines.collector import defer_collection
from bench.measure import TASK_ENDS, TASK_STARTS, TASK_TIME_FILE
from config.settings import Settings, load_settings
from tasks import operations


def main(argv: list[str]) -> None:
    mode, *rest = argv
    settings = load_settings(dotenv_path=None)
    defer_collection()  # as `--local` does: the process ends with the operation
    sys.stderr.write(f"{TASK_STARTS}\n")  # the imports the operation makes come between the marks
    sys.stderr.flush()
    started = time.perf_counter()
    run(mode, rest, settings)
    elapsed = time.perf_counter() - started
    sys.stderr.write(f"{TASK_ENDS}\n")
    sys.stderr.flush()
    if os.environ.get(TASK_TIME_FILE):  # the operation alone (its imports taken off by the parent)
        Path(os.environ[TASK_TIME_FILE]).write_text(f"{elapsed:.4f}\n")


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
