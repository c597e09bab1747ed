"""Running a trusted script through psql, streamed, with the commit held until it checks out.

psql reads the script from a pipe fed by `engines.clients.feed_client`: nothing ends its input
until the whole content has been read, its checksum matches the manifest and it ends with the
dump's end marker; otherwise psql is killed first and the server rolls the open transaction back.
psql never decides success by itself: ON_ERROR_STOP, its exit code, and whether it read it all.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from typing import BinaryIO

from backup_engine import errors
from backup_engine.engines.clients import feed_client
from backup_engine.engines.postgresql.connect import ClientRun, classify_failure
from backup_engine.targets import Target


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
    """Run psql with `content` on its standard input (`-f -` among argv's scripts), the end of
    input held back until `before_end(tail)` accepts the content (`engines.clients`)."""
    ended = feed_client(argv, run.env, run.pass_fds, content, before_end)
    if ended.returncode != 0:
        raise classify_failure(ended.stderr or f"psql exited with {ended.returncode}", default=errors.RestoreError,
                               default_message=errors.RESTORE_FAILED, target=target)
    if ended.stopped_reading:
        raise errors.RestoreError(errors.RESTORE_FAILED, errors.CLIENT_STOPPED_READING)
