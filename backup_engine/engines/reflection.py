"""What every engine's SQLAlchemy reflection shares: a connection over an open snapshot, and
reflected SQL text kept verbatim."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import MetaData, create_engine, literal_column
from sqlalchemy.engine import Connection
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import DefaultClause
from sqlalchemy.sql.elements import TextClause


@contextmanager
def sqlalchemy_connection(raw: Any, url: str) -> Iterator[Connection]:
    """A SQLAlchemy connection over an open DB-API connection (reflection inside its snapshot)."""
    engine = create_engine(url, creator=lambda: raw, poolclass=StaticPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def verbatim(clause: Any) -> Any:
    """Reflected SQL text as a verbatim element (TextClause would read `:name` as a parameter)."""
    if isinstance(clause, TextClause):
        return literal_column(clause.text)
    return clause


def freeze_reflected_text(metadata: MetaData) -> None:
    """Defaults, generated columns and check constraints as the server printed them."""
    for table in metadata.tables.values():
        for column in table.columns:
            default = column.server_default
            if isinstance(default, DefaultClause) and isinstance(default.arg, TextClause):
                column.server_default = DefaultClause(literal_column(default.arg.text), _reflected=True)
            if column.computed is not None:
                column.computed.sqltext = verbatim(column.computed.sqltext)
        for constraint in table.constraints:
            if hasattr(constraint, "sqltext"):
                constraint.sqltext = verbatim(constraint.sqltext)
