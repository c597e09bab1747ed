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


def measure(argv: list[str], env: dict[str, str] | None = None, stdin_text: str = "",
            pass_fds: tuple[int, ...] = ()) -> Measurement:
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
    return Measurement(wall_s=wall, peak_rss_mb=peak_kb / 1024)


def measure_child(settings_env: dict[str, str], mode: str, *args: str) -> Measurement:
    """One of our paths (bench.child MODE) in a fresh interpreter, configured by `settings_env`.

    Wall time includes the interpreter's start and imports (about 0.3 s), which a running worker
    pays once, not per task; the child also reports the operation's own time (`task_s`). The child
    may cache its compiled modules (PYTHONDONTWRITEBYTECODE is dropped), as an installed worker
    has them: otherwise every child would compile the project's sources again (0.08 s each)."""
    with tempfile.NamedTemporaryFile("r", suffix=".task") as task_file:
        inherited = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        env = {**inherited, **settings_env, "PYTHONPATH": str(ROOT), TASK_TIME_FILE: task_file.name}
        result = measure([sys.executable, "-m", "bench.child", mode, *args], env=env)
        reported = task_file.read().strip()
    return Measurement(result.wall_s, result.peak_rss_mb, float(reported) if reported else None)
