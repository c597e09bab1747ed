"""`python -m worker COMMAND`: the task contract from a shell.

With `--local` the work runs in this process through the same operations the tasks call;
otherwise the task is enqueued by name and awaited (`--no-wait` prints its id), showing its
progress on a terminal. The result is JSON on stdout; a failure exits non-zero with its
reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backup_engine.dumpinfo import INCLUDE_DATA_MODES, METHODS
from backup_engine.errors import BackupError
from backup_engine.registry import engine_names

EXIT_FAILED = 1
POLL_S = 0.2


@dataclass(frozen=True)
class Command:
    """One CLI command: its task, the operation `--local` calls, and its arguments."""

    task: str
    operation: str
    positional: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()  # true/false switches


COMMANDS = {
    "backup": Command("backups.create", "create", options=("target", "format", "include_data", "method"),
                      flags=("csv_safe",)),
    "restore": Command("backups.restore", "restore", positional=("backup_filename",),
                       options=("target", "source_target")),
    "restore-upload": Command("backups.restore_upload", "restore_upload", positional=("path",), options=("target",)),
    "convert": Command("backups.convert_json_to_sql", "convert", positional=("backup_filename",),
                       options=("dialect",)),
    "verify": Command("backups.verify", "verify", positional=("backup_filename",)),
    "list": Command("backups.list", "list_backups", options=("target",)),
    "prune": Command("backups.prune", "prune", options=("target",)),
}
OPTION_DEFAULTS = {"format": "sql", "include_data": "full", "method": "auto"}
OPTION_CHOICES = {"include_data": INCLUDE_DATA_MODES, "method": METHODS, "dialect": engine_names()}
OPTION_ALIASES = {"source_target": ("--from",)}
TARGET_DEFAULT = {"backup": "default", "restore": "default", "restore-upload": "default"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the worker with its beat (embedded SQLite broker when none is set)")
    status = commands.add_parser("status", help="a table per target: newest good backup, last verify and failure")
    status.add_argument("--json", action="store_true", help="the same, as JSON")
    metrics = commands.add_parser("metrics", help="serve Prometheus metrics read from the store")
    metrics.add_argument("--addr", default="127.0.0.1")
    metrics.add_argument("--port", type=int, default=9808)
    metrics.add_argument("--once", action="store_true", help="print the page once and exit")
    sweep = commands.add_parser("sweep", help="remove what dead writers and killed restores left behind")
    sweep.add_argument("--targets-only", action="store_true", help="only the targets' servers, not the store")
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=f"task {command.task}")
        for positional in command.positional:
            sub.add_argument(positional)
        for option in command.options:
            default = TARGET_DEFAULT.get(name) if option == "target" else OPTION_DEFAULTS.get(option)
            spellings = [f"--{option.replace('_', '-')}", *OPTION_ALIASES.get(option, ())]
            sub.add_argument(*spellings, dest=option, default=default, choices=OPTION_CHOICES.get(option))
        for flag in command.flags:
            sub.add_argument(f"--{flag.replace('_', '-')}", dest=flag, action="store_true")
        sub.add_argument("--local", action="store_true", help="run in this process, without a broker")
        sub.add_argument("--no-wait", action="store_true", help="enqueue, print the task id and return")
        sub.add_argument("--timeout", type=float, default=None, help="seconds to wait for the result")
    return parser


def task_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    command = COMMANDS[args.command]
    kwargs = {name: getattr(args, name) for name in (*command.positional, *command.options, *command.flags)}
    return {name: value for name, value in kwargs.items() if value is not None or name in command.positional}


# The operation a local failure is recorded and notified as (a worker does the same for its tasks).
REPORTED = {"create": "backup", "restore": "restore", "restore_upload": "restore", "verify": "verify"}


def run_local(command: Command, kwargs: dict[str, Any]) -> Any:
    from backup_engine.engines.collector import defer_collection
    from config.settings import load_settings
    from tasks import operations

    settings = load_settings()
    defer_collection()  # the process ends with the operation: its memory goes back whole, uncollected
    try:
        return getattr(operations, command.operation)(settings, **kwargs)
    except BackupError as exc:
        operation = REPORTED.get(command.operation)
        if operation:
            file = kwargs.get("backup_filename") or kwargs.get("path")
            target = kwargs.get("target") or (file and operations.backup_target(settings, file))
            operations.report(settings, operation, target, "failure", str(exc), file)
        raise


class RemoteTaskFailed(Exception):
    """The task ran on a worker and failed; its reason comes from the result backend."""


def run_remote(command: Command, kwargs: dict[str, Any], wait: bool, timeout: float | None) -> Any:
    from worker.app import app

    result = app.send_task(command.task, kwargs=kwargs)
    if not wait:
        return {"task_id": result.id}
    show_progress = sys.stderr.isatty()
    deadline = None if timeout is None else time.monotonic() + timeout
    while not result.ready():
        if deadline is not None and time.monotonic() > deadline:
            raise RemoteTaskFailed(f"no result within {timeout:g}s (task {result.id} is still {result.state})")
        if show_progress:
            _show(result.state, result.info)
        time.sleep(POLL_S)
    if show_progress:
        print(file=sys.stderr)
    if result.failed():
        raise RemoteTaskFailed(str(result.result))
    return result.result


def _show(state: str, info: Any) -> None:
    """One progress line, rewritten in place: phase, tables, rows, bytes."""
    details = ""
    if isinstance(info, dict):
        details = " ".join(f"{key}={value}" for key, value in info.items() if key in ("phase", "tables", "rows",
                                                                                         "bytes"))
    print(f"\r{state:<9} {details}"[:100].ljust(100), end="", file=sys.stderr, flush=True)


def run_worker() -> int:
    from config.settings import ensure_demo_database
    from worker.app import app, settings

    ensure_demo_database(settings)
    print(json.dumps({"starting_worker": settings.describe()}, indent=2), file=sys.stderr)
    app.worker_main(["worker", "--beat", "--events", "--loglevel=INFO", "--concurrency=2",
                     f"--schedule={settings.backup_dir.parent / 'celerybeat-schedule'}"])
    return 0


def observe(args: argparse.Namespace) -> int:
    from config.settings import load_settings
    from worker import observe as views

    settings = load_settings()
    if args.command == "status":
        report = views.status(settings)
        print(json.dumps(report, indent=2, sort_keys=True) if args.json else views.status_table(report))
    elif args.once:
        sys.stdout.write(views.metrics_text(settings).decode())
    else:
        views.serve_metrics(settings, args.addr, args.port)
    return 0


def sweep(args: argparse.Namespace) -> int:
    from config.settings import load_settings
    from tasks import operations

    settings = load_settings()
    swept = {} if args.targets_only else {"store": operations.sweep_store(settings)}
    print(json.dumps({**swept, "targets": operations.sweep_targets(settings)}, indent=2, sort_keys=True))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return run_worker()
        if args.command in ("status", "metrics"):
            return observe(args)
        if args.command == "sweep":
            return sweep(args)
        command = COMMANDS[args.command]
        kwargs = task_kwargs(args)
        if args.local:
            result = run_local(command, kwargs)
        else:
            result = run_remote(command, kwargs, wait=not args.no_wait, timeout=args.timeout)
    except (BackupError, RemoteTaskFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0
