"""Timing one child process: wall seconds and that child's own peak RSS.

Peak RSS comes from GNU time (`/usr/bin/time -f %M`): a child forked straight from this
(large) Python process would report this process's RSS as its own, since Linux keeps the
pre-exec high-water mark in `ru_maxrss`. Without GNU time, os.wait4's figure is used and
marked as an upper bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Measurement:
    wall_s: float
    peak_rss_mb: float
    task_s: float | None = None  # the operation alone, as a running worker pays it (our paths only)


GNU_TIME = "/usr/bin/time"
TASK_TIME_FILE = "BENCH_TASK_TIME_FILE"


TASK_STARTS, TASK_ENDS = "bench: the task starts", "bench: the task ends"


def measure(argv: list[str], env: dict[str, str] | None = None, stdin_text: str = "",
            pass_fds: tuple[int, ...] = ()) -> Measurement:
    return measure_with_stderr(argv, env, stdin_text, pass_fds)[0]


def measure_with_stderr(argv: list[str], env: dict[str, str] | None = None, stdin_text: str = "",
                        pass_fds: tuple[int, ...] = ()) -> tuple[Measurement, str]:
    """`measure`, and what the process wrote to stderr."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        wrapped = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *argv] if Path(GNU_TIME).exists() else argv
        started = time.perf_counter()
        process = subprocess.Popen(wrapped, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, pass_fds=pass_fds)
        assert process.stdin is not None and process.stderr is not None
        process.stdin.write(stdin_text.encode())
        process.stdin.close()
        stderr = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(argv[:4])} failed: {stderr.decode(errors='replace')[-2000:]}")
        reported = rss_file.read().strip().splitlines()
    peak_kb = int(reported[-1]) if wrapped is not argv and reported else usage.ru_maxrss
    return Measurement(wall_s=wall, peak_rss_mb=peak_kb / 1024), stderr.decode(errors="replace")


def measure_child(settings_env: dict[str, str], mode: str, *args: str) -> Measurement:
    """One of our paths (bench.child MODE) in a fresh interpreter, configured by `settings_env`.

    Wall time includes the interpreter's start and imports (0.15 s; SQLAlchemy's 0.17 s more on
    the paths that use it), as a `--local` run pays them; a running worker pays them once, at its
    start. The child also reports the operation's own time, from which the imports it made on
    first use are taken off (`task_s`: what a running worker pays per task). The child may cache
    its compiled modules (PYTHONDONTWRITEBYTECODE is dropped), as an installed worker has them:
    otherwise every child would compile the project's sources again (0.08 s each)."""
    with tempfile.NamedTemporaryFile("r", suffix=".task") as task_file:
        inherited = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        env = {**inherited, **settings_env, "PYTHONPATH": str(ROOT), TASK_TIME_FILE: task_file.name,
               "PYTHONPROFILEIMPORTTIME": "1"}
        result, stderr = measure_with_stderr([sys.executable, "-m", "bench.child", mode, *args], env=env)
        reported = task_file.read().strip()
    task_s = float(reported) - imports_during_task(stderr) if reported else None
    return Measurement(result.wall_s, result.peak_rss_mb, task_s)


def imports_during_task(stderr: str) -> float:
    """Seconds the child spent importing modules between its task's marks: the outermost imports'
    cumulative times (`PYTHONPROFILEIMPORTTIME` lines, nested ones indented further)."""
    lines = stderr.splitlines()
    if TASK_STARTS not in lines or TASK_ENDS not in lines:
        return 0.0
    total_us = 0
    for line in lines[lines.index(TASK_STARTS) + 1:lines.index(TASK_ENDS)]:
        if line.startswith("import time:"):
            _, cumulative, name = line.split("|", 2)
            if cumulative.strip().isdigit() and not name.startswith("  "):  # an outermost import
                total_us += int(cumulative)
    return total_us / 1e6
