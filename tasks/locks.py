"""One operation per target at a time, across processes and workers.

With a Redis broker the lock lives in Redis, with a short expiry that a background thread
keeps renewing: a worker killed with -9 frees the target within `LOCK_TTL_S` instead of
blocking it for a whole time limit. With the embedded broker (a single host) an flock on a
file does the same, released by the kernel when the process dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import redis
from redis.lock import Lock

from backup_engine import errors
from config.settings import Settings

LOCK_TTL_S = 30
RENEW_EVERY_S = 10
POLL_S = 0.2
LOCK_PREFIX = "backup-worker:"


def namespace(settings: Settings) -> str:
    """The deployment a lock belongs to: its store and prefix. Two deployments on one Redis never
    block each other; two workers of one deployment (same store, same prefix) always share."""
    identity = f"{settings.storage_url}|{settings.file_prefix or ''}"
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]


@contextmanager
def target_lock(settings: Settings, target_name: str, wait_s: float | None = None) -> Iterator[None]:
    """Hold the target's lock for the block; wait up to `wait_s` (default `settings.lock_wait_s`),
    then fail with TargetBusy."""
    wait = settings.lock_wait_s if wait_s is None else wait_s
    if settings.broker_url.startswith(("redis://", "rediss://")):
        key = f"{LOCK_PREFIX}{namespace(settings)}:target-lock:{target_name}"
        with _redis_lock(settings.broker_url, key, target_name, wait):
            yield
    else:
        with _file_lock(settings.backup_dir / ".locks" / f"{target_name}.lock", target_name, wait):
            yield


def _busy(target_name: str, waited: float) -> errors.TargetBusy:
    return errors.TargetBusy(errors.TARGET_BUSY,
                             f"another backup or restore of {target_name!r} is running (waited {waited:.0f}s)")


@contextmanager
def _redis_lock(url: str, key: str, target_name: str, wait_s: float) -> Iterator[None]:
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
    lock = Lock(client, key, timeout=LOCK_TTL_S, sleep=POLL_S,
                blocking_timeout=wait_s, thread_local=False)
    try:
        acquired = lock.acquire(blocking=wait_s > 0)
    except redis.RedisError as exc:
        raise errors.TargetUnavailable(errors.LOCK_UNAVAILABLE, f"redis: {exc}") from exc
    if not acquired:
        raise _busy(target_name, wait_s)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(lock, stop), name=f"lock-{target_name}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        with suppress(redis.RedisError):  # expired or Redis gone: the TTL frees it anyway
            lock.release()
        client.close()


def _renew(lock: Lock, stop: threading.Event) -> None:
    while not stop.wait(RENEW_EVERY_S):
        try:
            lock.reacquire()
        except redis.RedisError:
            continue  # Redis briefly away: try again; the TTL is three renewals long


@contextmanager
def _file_lock(path: Path, target_name: str, wait_s: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    started = time.monotonic()
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= wait_s:
                    raise _busy(target_name, waited) from None
                time.sleep(POLL_S)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
