"""A table from dialect name to the module that implements it, imported when first used.

As in Celery's `app/backends.py`: adding a database is one line here and one module.
Each module offers `dump_sql`, `restore_sql`; SQLite also `snapshot`, `restore_snapshot`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from backup_engine import errors

NATIVE_MODULES = {"postgresql": "backup_engine.postgresql", "sqlite": "backup_engine.sqlite"}


def native(dialect: str) -> ModuleType:
    try:
        return importlib.import_module(NATIVE_MODULES[dialect])
    except KeyError:
        raise errors.InvalidRequest(errors.UNSUPPORTED_DIALECT, dialect) from None
