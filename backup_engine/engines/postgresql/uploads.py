"""Uploaded SQL for PostgreSQL: checked before it is kept, run under psql's `\\restrict`.

(Interim: the text screen; the parser-based gate replaces it.)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from backup_engine import errors
from backup_engine.engines.base import ArtifactSource, UploadReport
from backup_engine.engines.postgresql.connect import client_run
from backup_engine.engines.postgresql.native import PlainDumpScanner
from backup_engine.engines.postgresql.psql import psql_argv, require_tool, stream_into_psql
from backup_engine.engines.postgresql.restore import reset_scripts
from backup_engine.engines.postgresql.screen import UploadScreen
from backup_engine.streams import lines
from backup_engine.targets import Target


def screened_lines(stream: BinaryIO, scanner: PlainDumpScanner | None = None) -> Iterator[bytes]:
    screen = UploadScreen()
    for line in lines(stream):
        line = screen.feed(line)
        if scanner is not None:
            scanner.feed(line)
        yield line
    screen.finish()


def check_upload(stream: BinaryIO) -> UploadReport:
    scanner = PlainDumpScanner()
    for _ in screened_lines(stream, scanner):
        pass
    return UploadReport(table_rows=scanner.table_rows)


class _Lines:
    """The screened upload as a readable stream."""

    def __init__(self, lines: Iterator[bytes]) -> None:
        self._lines = lines

    def read(self, _size: int = -1) -> bytes:
        return next(self._lines, b"")


def restore_untrusted(target: Target, source: ArtifactSource, include_data: str, tables: Iterable[str],
                      psql_path: str | None) -> None:
    psql = require_tool(psql_path, "psql", errors.RestoreError)
    around = reset_scripts(target, include_data, tables)
    with client_run(target) as run, source.open() as content:
        scripts = [run.memory_file(around.before), run.memory_file(f"\\restrict {secrets.token_hex(16)}\n"), "-"]
        if around.after:
            scripts.append(run.memory_file(around.after))
        stream_into_psql(target, run, psql_argv(psql, scripts, single_transaction=True),
                         _Lines(screened_lines(content)), lambda _tail: source.verify())
