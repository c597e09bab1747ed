"""A JSON backup's `.sql` twin made alongside it, from the JSON export's own exported snapshot.

The twin is written by the same catalog reading and script writer as the SQLAlchemy fallback, so
it carries exactly what the document carries (pg_dump would differ: it leaves out comments the
document keeps, and it carries event triggers and publications the document names as not
carried), and from the same snapshot, so it holds exactly the document's data. It is made while
the server renders the document instead of converted from the document afterwards (which costs
several times a dump: Python decodes every row). The export's transaction stays open until the
twin is written. A twin that fails is only a missing twin: the JSON stands on its own, and the
twin is converted from it afterwards, as for every other engine.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, DumpResult
from backup_engine.engines.postgresql import generated
from backup_engine.targets import Target


class TwinDump:
    """The generated script of an exported snapshot, written into the twin's sink on a thread."""

    def __init__(self, target: Target, out: ByteSink, include_data: str) -> None:
        self.target, self.out, self.include_data = target, out, include_data
        self.result: DumpResult | None = None
        self.failure: str | None = None

    @contextmanager
    def running(self, snapshot: str) -> Iterator[None]:
        """The twin is written while the block runs; leaving waits for it (the exporting
        transaction, which the caller ends after the block, must outlive the twin's import)."""
        thread = threading.Thread(target=self._dump, args=(snapshot,), name="json-twin", daemon=True)
        thread.start()
        try:
            yield
        finally:
            thread.join()

    def _dump(self, snapshot: str) -> None:
        try:  # no progress from this thread: the task's reporter belongs to the export's thread
            self.result = generated.dump_generated(self.target, self.out, self.include_data, snapshot=snapshot)
        except errors.BackupError as exc:
            self.failure = str(exc)
        except Exception as exc:  # noqa: BLE001 - any failure only costs the twin, never the JSON
            self.failure = f"{type(exc).__name__}: {exc}"
