"""Loading a trusted script into one database with the `mariadb` / `mysql` client, streamed.

The client reads the script from a pipe and stops at the first error (no `--force`); its exit
code and its first error line decide, never its silence. It only ever loads a scratch database
made for the purpose, so a cut-off or mismatching file is simply thrown away with it: `before_end`
checks the checksum and the completion line before the client may see the end of its input, and
kills it instead when they do not hold.

MariaDB's dumps open with `/*M!999999\\- enable the sandbox mode */`, which the MariaDB client
takes as a command (no shell escapes for the rest of the file) and MySQL's client refuses as an
unknown one: for a MySQL client that first line is left out.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from typing import BinaryIO

from backup_engine import errors
from backup_engine.engines.clients import feed_client
from backup_engine.engines.mysql.connect import ClientRun, classify_failure
from backup_engine.targets import Target

SANDBOX_PREFIX = b"/*M!999999\\- enable the sandbox mode */"
CLIENT_FLAGS = ("--batch", "--binary-mode", "--default-character-set=utf8mb4", "--max-allowed-packet=1073741824",
                "--skip-column-names", "--no-auto-rehash")


def require_tool(path: str | None, name: str, error: type[errors.BackupError] = errors.RestoreError) -> str:
    if not path or not shutil.which(path):
        raise error(errors.TOOL_NOT_FOUND, f"{name} ({path or 'not on PATH'})")
    return path


@cache
def is_mariadb_client(path: str) -> bool:
    """Whether the client is MariaDB's (`--version` says so); MySQL's client does not know the sandbox line."""
    try:
        result = subprocess.run([path, "--version"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
                                env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    except (OSError, subprocess.SubprocessError):
        return True
    return b"mariadb" in result.stdout.lower()


def strip_sandbox_line(first_block: bytes) -> bytes:
    """The block without MariaDB's sandbox first line (for a MySQL client)."""
    if first_block.startswith(SANDBOX_PREFIX):
        end = first_block.find(b"\n")
        return first_block[end + 1:] if end != -1 else b""
    return first_block


def load_argv(run: ClientRun, client: str, database: str) -> list[str]:
    return run.argv(client, *CLIENT_FLAGS, f"--database={database}")


def stream_into_client(target: Target, run: ClientRun, argv: list[str], content: BinaryIO,
                       before_end: Callable[[bytes], None], *, mariadb_client: bool = True,
                       progress: Callable[[int], None] = lambda _size: None) -> None:
    """Run the client with `content` on its standard input, the end of input held back until
    `before_end(tail)` accepts the content (`engines.clients`); a MySQL client gets the dump
    without MariaDB's sandbox first line."""
    ended = feed_client(argv, run.env, run.pass_fds, content, before_end, progress=progress,
                        first_block=(lambda block: block) if mariadb_client else strip_sandbox_line)
    if ended.returncode != 0:
        raise classify_failure(ended.stderr or f"the client exited with {ended.returncode}",
                               default=errors.RestoreError, default_message=errors.RESTORE_FAILED, target=target)
    if ended.stopped_reading:
        raise errors.RestoreError(errors.RESTORE_FAILED, errors.CLIENT_STOPPED_READING)
