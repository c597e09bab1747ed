"""The engines by name and URL scheme, imported when first used.

Adding a database is one package under `engines/` with an `Engine` subclass, and one line in
`ENGINES`: its name, the module:class that implements it, the URL schemes it serves, and the
client tools it runs with the variables that name them. Code outside `engines/` asks the
registry and the engine, never compares engine names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from backup_engine import errors

if TYPE_CHECKING:
    from backup_engine.dumpinfo import ClientTools
    from backup_engine.engines.base import Engine
    from backup_engine.targets import Target


@dataclass(frozen=True)
class Registration:
    implementation: str  # module:class
    schemes: tuple[str, ...]
    url_example: str
    tools: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # tool -> (variable, defaults)


ENGINES = {
    "postgresql": Registration("backup_engine.engines.postgresql.engine:PostgresEngine", ("postgresql",),
                               "postgresql://", {"pg_dump": ("PG_DUMP_BIN", ("pg_dump",)),
                                                 "psql": ("PSQL_BIN", ("psql",)),
                                                 "pg_restore": ("PG_RESTORE_BIN", ("pg_restore",))}),
    "sqlite": Registration("backup_engine.engines.sqlite.engine:SqliteEngine", ("sqlite",), "sqlite:///"),
    "mysql": Registration("backup_engine.engines.mysql.engine:MysqlEngine", ("mysql", "mariadb"), "mysql://",
                          {"mysqldump": ("MYSQLDUMP_BIN", ("mariadb-dump", "mysqldump")),
                           "mysql": ("MYSQL_BIN", ("mariadb", "mysql"))}),
}


@cache
def engine_class(name: str) -> type[Engine]:
    """The engine called `name` (its manifests' `dialect`)."""
    if name not in ENGINES:
        raise errors.InvalidRequest(errors.UNSUPPORTED_DIALECT, f"{name!r} (choose from {', '.join(ENGINES)})")
    module, _, cls = ENGINES[name].implementation.partition(":")
    return getattr(importlib.import_module(module), cls)


def engine_names() -> tuple[str, ...]:
    return tuple(ENGINES)


def engine_name_for_scheme(scheme: str) -> str:
    """The engine serving a URL's backend name (`postgresql`, `sqlite`, ...)."""
    for name, registration in ENGINES.items():
        if scheme in registration.schemes:
            return name
    examples = ", ".join(registration.url_example for registration in ENGINES.values())
    raise errors.ConfigError(errors.UNSUPPORTED_DIALECT, f"{scheme!r} (use {examples})")


def client_tools() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every engine's client tools: tool -> (the variable that names it, names to look for on PATH)."""
    return {tool: spec for registration in ENGINES.values() for tool, spec in registration.tools.items()}


def engine_for(target: Target, tools: ClientTools | None = None, scratch_dir: Path | None = None,
               jobs: int | None = None) -> Engine:
    """The engine working on `target`."""
    from backup_engine.dumpinfo import ClientTools

    return engine_class(target.dialect)(target, tools or ClientTools(), scratch_dir, jobs)
