"""One operation per target at a time, across processes, workers and machines.

The lock lives with the target (`Engine.exclusive`): a session advisory lock on a PostgreSQL or
MySQL server, an flock beside a SQLite file. Any broker will do, and a worker killed with -9 frees
its target at once (the server or the kernel sees its holder die): a redelivered task starts
without waiting out an expiry. Its name is namespaced by deployment (store and prefix), so two
deployments sharing a server never block each other, and two workers of one deployment always do.
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager

from backup_engine.engines.base import Engine
from config.settings import Settings


def namespace(settings: Settings) -> str:
    """The deployment a lock belongs to: its store and prefix."""
    identity = f"{settings.storage_url}|{settings.file_prefix or ''}"
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]


def target_lock(settings: Settings, engine: Engine, wait_s: float | None = None) -> AbstractContextManager[None]:
    """Hold the engine's target's lock for the block; wait up to `wait_s` (default
    `settings.lock_wait_s`), then fail with TargetBusy."""
    return engine.exclusive(namespace(settings), settings.lock_wait_s if wait_s is None else wait_s)
