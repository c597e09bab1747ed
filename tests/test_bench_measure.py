"""The bench's task time leaves out what the operation imported on first use (a running worker
imported it at its start): read from the child's own `PYTHONPROFILEIMPORTTIME` lines."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.measure import TASK_ENDS, TASK_STARTS, imports_during_task

CHILD = f"""
import sys
import json  # before the task: not counted
sys.stderr.write({TASK_STARTS!r} + "\\n"); sys.stderr.flush()
import decimal, fractions  # during the task: counted, each with what it imports in turn
sys.stderr.write({TASK_ENDS!r} + "\\n"); sys.stderr.flush()
import csv  # after: not counted
"""


def test_only_the_outermost_imports_between_the_marks_are_counted():
    done = subprocess.run([sys.executable, "-c", CHILD], env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
                          capture_output=True, text=True, check=True)
    lines = done.stderr.splitlines()
    cumulative = {line.split("|")[2].strip(): int(line.split("|")[1]) for line in lines
                  if line.startswith("import time:") and line.split("|")[1].strip().isdigit()}
    within = lines[lines.index(TASK_STARTS) + 1:lines.index(TASK_ENDS)]
    assert any(line.split("|")[2].startswith("  ") for line in within)  # nested imports are there, not summed
    expected = (cumulative["decimal"] + cumulative["fractions"]) / 1e6
    assert imports_during_task(done.stderr) == expected > 0


def test_without_marks_nothing_is_taken_off():
    assert imports_during_task("import time:       100 |        200 | json\n") == 0.0
