"""A second session in a dump's snapshot, reading on a thread while the first reads too.

Reading the model of a database of thousands of tables is a series of catalog queries, each a
wait on the server, and of Python building objects from their rows; in one session the two take
turns. Part of the model (`reflect._read_aside`) only needs the snapshot, so a second
session that imported it (`pg_export_snapshot` / `SET TRANSACTION SNAPSHOT`: both read exactly
the same catalog) reads it on a thread while the first reads every object's definition: each
one's server time overlaps the other's Python (psycopg2 lets go of the GIL while it waits).

It is a shortcut only: when no second session can be opened (no connection to spare), the work
runs in the first session, as before. Either way the model is the same.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from backup_engine import errors
from backup_engine.engines.postgresql.connect import import_snapshot, locks_released, snapshot_connection
from backup_engine.targets import Target

log = logging.getLogger(__name__)
T = TypeVar("T")


class SessionAside:
    """Runs work on a thread, with a cursor of the second session (one piece of work at a time),
    in a savepoint rolled back afterwards: whatever it locked is let go, as in the first session
    (`locks_released`)."""

    def __init__(self, connection: Any, pool: ThreadPoolExecutor) -> None:
        self._connection = connection
        self._pool = pool

    def submit(self, work: Callable[[Any], T]) -> Future[T]:
        def run() -> T:
            with locks_released(self._connection), self._connection.cursor() as cur:
                return work(cur)

        return self._pool.submit(run)


def run_here(raw: Any, work: Callable[[Any], T]) -> Future[T]:
    """`work` run now on `raw`'s session, as a done Future (where no second session is)."""
    done: Future[T] = Future()
    with raw.cursor() as cur:
        done.set_result(work(cur))
    return done


@contextmanager
def session_aside(target: Target, raw: Any) -> Iterator[SessionAside | None]:
    """A `SessionAside` in the snapshot of `raw` (a snapshot_connection at its transaction's top
    level, before any savepoint: a subtransaction cannot export its snapshot), or None when no
    second session could be opened. Work still running when the block ends is waited for."""
    with raw.cursor() as cur:
        cur.execute("SELECT pg_catalog.pg_export_snapshot()")
        snapshot = cur.fetchone()[0]
    stack = contextlib.ExitStack()
    try:
        connection = stack.enter_context(snapshot_connection(target, errors.JSON_BACKUP_FAILED, "second session: "))
        import_snapshot(connection, snapshot)
    except Exception as exc:  # noqa: BLE001 - a shortcut only: the first session reads it all instead
        stack.close()
        log.info("the model is read in one session: %s", type(exc).__name__)
        yield None
        return
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="session-aside") as pool:
            yield SessionAside(connection, pool)
    finally:
        stack.close()  # not given the block's exception: snapshot_connection would relabel it as its own
