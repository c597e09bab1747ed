"""Real worker, beat and Flower processes for the tests, with logs kept for assertions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def clean_environment(**overrides: str) -> dict[str, str]:
    """The test's environment without any BACKUP_/CELERY_ settings of the machine. Backups are not
    compressed here unless a test says so (BACKUP_COMPRESSION="" gives the product's default, zstd):
    most tests read a backup's bytes directly; compression and encryption have tests of their own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "CELERY_", "FLOWER_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["BACKUP_COMPRESSION"] = "none"
    env.update(overrides)
    return env


def run_local(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m worker ARGS --local` in `cwd`, which must succeed."""
    done = subprocess.run([sys.executable, "-m", "worker", *args, "--local"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def imported_modules(stderr: str) -> set[str]:
    """The modules a process imported, from the lines `PYTHONPROFILEIMPORTTIME=1` wrote to its stderr."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


class ManagedProcess:
    """A child process whose output goes to a log file the test can read."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.argv, self.env, self.cwd, self.log = argv, env, cwd, log
        self.process: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=handle, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        handle.close()
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"{self.argv[:4]} exited {self.process.returncode}:\n{self.output()[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"{text!r} not seen in {timeout}s:\n{self.output()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def celery_worker(env: dict[str, str], cwd: Path, name: str = "w1", concurrency: int = 2,
                  beat: bool = False) -> ManagedProcess:
    argv = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--events", "--loglevel=INFO",
            f"--concurrency={concurrency}", "-n", f"{name}@%h", "--without-gossip", "--without-mingle"]
    if beat:
        argv += ["--beat", f"--schedule={cwd / 'celerybeat-schedule'}"]
    return ManagedProcess(argv, env, cwd, cwd / f"{name}.log").start()
