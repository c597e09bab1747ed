"""Stores by URL scheme, imported when first used (as Celery's `app/backends.py` does).

Adding a store is one module with a `Store` subclass and one line in `STORES`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from urllib.parse import urlsplit

from backup_engine import errors
from backup_engine.storage.base import Store

STORES = {
    "file": "backup_engine.storage.local:LocalStore",
    "s3": "backup_engine.storage.s3:S3Store",
}


def store_class(url: str) -> type[Store]:
    scheme = urlsplit(url).scheme
    if scheme not in STORES:
        raise errors.ConfigError(errors.UNSUPPORTED_STORE, f"{scheme or url!r} (use file:// or s3://)")
    module, _, name = STORES[scheme].partition(":")
    return getattr(importlib.import_module(module), name)


def open_store(url: str, *, scratch_dir: Path) -> Store:
    """The store behind `url`; `scratch_dir` is local space for work that needs real files."""
    return store_class(url).from_url(url, scratch_dir=scratch_dir)
