"""A JSON backup's `.sql` twin made alongside it: pg_dump reads the JSON export's own snapshot.

The twin then holds exactly the document's data, written by pg_dump at pg_dump's pace while the
server renders the document, instead of converted from the document afterwards (which costs
several times a dump: Python decodes every row). The export's transaction stays open until
pg_dump has finished, so the snapshot it exported stays importable for pg_dump's whole start.
A twin that fails is only a missing twin: the JSON stands on its own, and the twin is converted
from it afterwards, as for every other engine.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from backup_engine import errors
from backup_engine.dumpinfo import ByteSink, ClientTools, DumpResult
from backup_engine.engines.postgresql import native
from backup_engine.targets import Target


class TwinDump:
    """pg_dump of an exported snapshot into the twin's sink, on a thread of its own."""

    def __init__(self, target: Target, out: ByteSink, include_data: str, tools: ClientTools) -> None:
        self.target, self.out, self.include_data, self.tools = target, out, include_data, tools
        self.result: DumpResult | None = None
        self.failure: str | None = None

    @contextmanager
    def running(self, snapshot: str) -> Iterator[None]:
        """pg_dump runs while the block does; leaving waits for it (the exporting transaction,
        which the caller ends after the block, must outlive pg_dump's import of the snapshot)."""
        thread = threading.Thread(target=self._dump, args=(snapshot,), name="json-twin-pg-dump", daemon=True)
        thread.start()
        try:
            yield
        finally:
            thread.join()

    def _dump(self, snapshot: str) -> None:
        try:  # no progress from this thread: the task's reporter belongs to the export's thread
            self.result = native.dump_sql(self.target, self.out, self.include_data, self.tools, snapshot=snapshot)
        except errors.BackupError as exc:
            self.failure = str(exc)
        except Exception as exc:  # noqa: BLE001 - any failure only costs the twin, never the JSON
            self.failure = f"{type(exc).__name__}: {exc}"
