"""`python -m worker COMMAND`: the task contract from a shell.

With `--local` the work runs in this process through the same operations the tasks call;
otherwise the task is enqueued by name and awaited (`--no-wait` prints its id). The result
is JSON on stdout; a failure exits non-zero with its reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from backup_engine.dumpinfo import INCLUDE_DATA_MODES, METHODS
from backup_engine.errors import BackupError

EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("run", help="start the worker with its beat (embedded SQLite broker when none is set)")

    backup = commands.add_parser("backup", help="create a backup (backups.create)")
    backup.add_argument("--target", default="default")
    backup.add_argument("--format", default="sql")
    backup.add_argument("--include-data", default="full", choices=INCLUDE_DATA_MODES)
    backup.add_argument("--method", default="auto", choices=METHODS)

    restore = commands.add_parser("restore", help="restore a backup (backups.restore)")
    restore.add_argument("backup_filename")
    restore.add_argument("--target", default="default")

    listing = commands.add_parser("list", help="list backups, newest first (backups.list)")
    listing.add_argument("--target", default=None)

    for sub in (backup, restore, listing):
        sub.add_argument("--local", action="store_true", help="run in this process, without a broker")
        sub.add_argument("--no-wait", action="store_true", help="enqueue, print the task id and return")
        sub.add_argument("--timeout", type=float, default=None, help="seconds to wait for the result")
    return parser


TASK_NAMES = {"backup": "backups.create", "restore": "backups.restore", "list": "backups.list"}


def task_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "backup":
        return {"target": args.target, "format": args.format, "include_data": args.include_data,
                "method": args.method}
    if args.command == "restore":
        return {"backup_filename": args.backup_filename, "target": args.target}
    return {"target": args.target}


def run_local(command: str, kwargs: dict[str, Any]) -> Any:
    from config.settings import load_settings
    from tasks import operations

    settings = load_settings()
    local = {"backup": operations.create, "restore": operations.restore, "list": operations.list_backups}
    return local[command](settings, **kwargs)


def run_remote(command: str, kwargs: dict[str, Any], wait: bool, timeout: float | None) -> Any:
    from worker.app import app

    result = app.send_task(TASK_NAMES[command], kwargs=kwargs)
    if not wait:
        return {"task_id": result.id}
    value = result.get(timeout=timeout, propagate=False)
    if result.failed():
        raise RemoteTaskFailed(str(value))
    return value


class RemoteTaskFailed(Exception):
    """The task ran on a worker and failed; its reason comes from the result backend."""


def run_worker() -> int:
    from backup_engine.artifacts import BackupStore
    from config.settings import ensure_demo_database
    from worker.app import app, settings

    ensure_demo_database(settings)
    BackupStore(settings.backup_dir).sweep_temp_files()
    print(json.dumps({"starting_worker": settings.describe()}, indent=2), file=sys.stderr)
    app.worker_main(["worker", "--beat", "--events", "--loglevel=INFO", "--concurrency=2",
                     f"--schedule={settings.backup_dir.parent / 'celerybeat-schedule'}"])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return run_worker()
        kwargs = task_kwargs(args)
        if args.local:
            result = run_local(args.command, kwargs)
        else:
            result = run_remote(args.command, kwargs, wait=not args.no_wait, timeout=args.timeout)
    except (BackupError, RemoteTaskFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0
