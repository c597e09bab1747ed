"""What a dump or restore reports back, whatever produced it."""

from __future__ import annotations

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

    @property
    def tables(self) -> int:
        return len(self.table_rows)

    @property
    def rows(self) -> int:
        return sum(self.table_rows.values())


@dataclass(frozen=True)
class ClientTools:
    """Paths of the PostgreSQL client tools; None when not configured and not on PATH."""

    pg_dump: str | None = None
    psql: str | None = None
