"""Running a trusted script through psql, streamed, with the commit held until it checks out.

psql reads the script from a pipe. Nothing ends the input until the whole content has been
read, its checksum matches the manifest and it ends with the dump's end marker; if anything is
wrong psql is killed instead, before it ever sees the end of its input, and the server rolls
the open transaction back. psql never decides success by itself: ON_ERROR_STOP, its exit code.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from typing import BinaryIO

from backup_engine import errors
from backup_engine.dumpinfo import dies_with_worker
from backup_engine.engines.postgresql.connect import ClientRun, classify_failure
from backup_engine.targets import Target

BLOCK = 1 << 20
TAIL_BYTES = 4096


def require_tool(path: str | None, name: str, error: type[errors.BackupError] = errors.DumpError) -> str:
    if not path or not shutil.which(path):
        raise error(errors.TOOL_NOT_FOUND, f"{name} ({path or 'not on PATH'})")
    return path


def psql_argv(psql: str, scripts: Sequence[str], *, single_transaction: bool) -> list[str]:
    argv = [psql, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1"]
    if single_transaction:
        argv.append("--single-transaction")
    for script in scripts:
        argv += ["-f", script]
    return argv


def stream_into_psql(target: Target, run: ClientRun, argv: list[str], content: BinaryIO,
                     before_end: Callable[[bytes], None]) -> None:
    """Run psql with `content` on its standard input (`-f -` among argv's scripts).

    `before_end(tail)` runs once all content is written and before psql may see the end of its
    input; when it raises, psql is killed (its transaction rolls back) and the error goes on.
    """
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(dies_with_worker(argv), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=stderr, env=run.env, pass_fds=run.pass_fds)
        assert process.stdin is not None
        tail = b""
        try:
            try:
                while chunk := content.read(BLOCK):
                    process.stdin.write(chunk)
                    tail = (tail + chunk)[-TAIL_BYTES:]
                before_end(tail)
            except BrokenPipeError:
                pass  # psql stopped on an error: its exit code and message say which
            except BaseException:
                process.send_signal(signal.SIGKILL)
                process.wait()
                raise
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
            returncode = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if returncode != 0:
            stderr.seek(0)
            message = stderr.read().decode("utf-8", "replace") or f"psql exited with {returncode}"
            raise classify_failure(message, default=errors.RestoreError, default_message=errors.RESTORE_FAILED,
                                   target=target)
