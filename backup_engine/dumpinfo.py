"""What a dump or restore reports back, whatever produced it, and the small types every layer shares."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

INCLUDE_DATA_MODES = ("full", "schema", "data")
METHODS = ("auto", "native", "sqlalchemy")

# progress(phase="dump", tables=3, rows=1200, bytes=...) - the task layer forwards it to Celery.
Progress = Callable[..., None]


def no_progress(**_: Any) -> None:
    """The default progress sink."""


class ByteSink(Protocol):
    """Where a dump writes: an artifact's hashing stream (or any binary writer)."""

    def write(self, data: bytes) -> int: ...


@dataclass
class DumpResult:
    method: str
    server_version: str
    table_rows: dict[str, int] = field(default_factory=dict)
    fallback_reason: str | None = None
    not_carried: list[str] = field(default_factory=list)  # objects left out on purpose, named in the manifest
    twin: DumpResult | None = None  # a JSON backup's `.sql` twin, when the engine made it alongside
    twin_failure: str | None = None  # why it did not (the twin is then converted afterwards)

    @property
    def tables(self) -> int:
        return len(self.table_rows)

    @property
    def rows(self) -> int:
        return sum(self.table_rows.values())


class ClientTools:
    """Paths of the engines' client tools by name (`pg_dump`, `psql`, `mysqldump`, ...); a tool
    not configured and not on PATH is None, and reported when an engine needs it."""

    def __init__(self, **paths: str | None) -> None:
        self._paths = dict(paths)

    def get(self, name: str) -> str | None:
        return self._paths.get(name)

    def __getattr__(self, name: str) -> str | None:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._paths.get(name)

    def as_dict(self) -> dict[str, str | None]:
        return dict(self._paths)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClientTools) and other._paths == self._paths

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._paths.items())))

    def __repr__(self) -> str:
        return f"ClientTools({self._paths!r})"


SETPRIV = shutil.which("setpriv")


def dies_with_worker(argv: list[str]) -> list[str]:
    """A client tool's argv, so that the kernel kills the tool when the worker thread that started
    it dies (`setpriv --pdeathsig KILL`, util-linux; where it is missing the argv is unchanged).

    A worker killed with -9 would otherwise leave its pg_dump, psql or mariadb-dump running on
    the target, while the target's lock, which died with the worker, lets the redelivered task
    start: two operations on one target. The tool keeps its pid (setpriv execs it)."""
    return [SETPRIV, "--pdeathsig", "KILL", "--", *argv] if SETPRIV else list(argv)
