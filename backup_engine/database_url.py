"""A database URL, read by SQLAlchemy's grammar without importing SQLAlchemy.

Every process reads every target's URL when its settings load: the worker, `--local`, the CLI.
SQLAlchemy's `make_url` cost its whole package there (0.17 s and 16 MB of each start, 60% of
the imports) on the paths that never use it: pg_dump, pg_restore, psql, mariadb-dump and every
restore but the fallback's. This is SQLAlchemy 2.0's `engine/url.py` grammar and rendering,
kept exactly: `tests/test_database_url.py` holds both to `make_url` on generated URLs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote

from backup_engine import errors

QueryValue = str | tuple[str, ...]  # a key given more than once keeps its values in order

# SQLAlchemy's `_parse_url` pattern, as it is.
_GRAMMAR = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


@dataclass(frozen=True)
class DatabaseURL:
    """`driver://user:password@host:port/database?key=value`; `str` and `repr` hide the password."""

    drivername: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query_pairs: tuple[tuple[str, QueryValue], ...] = ()  # in the URL's order

    @classmethod
    def parse(cls, text: str) -> DatabaseURL:
        """The URL `text` stands for, as `sqlalchemy.engine.make_url` reads it (ValueError if none)."""
        match = _GRAMMAR.match(text)
        if match is None:
            raise ValueError(errors.URL_UNREADABLE)
        parts = match.groupdict()
        query: dict[str, QueryValue] = {}
        for key, value in parse_qsl(parts["query"] or ""):
            earlier = query.get(key)
            query[key] = value if earlier is None else (*_as_tuple(earlier), value)
        username, password = parts["username"], parts["password"]
        return cls(drivername=parts["name"],
                   username=None if username is None else unquote(username),
                   password=None if password is None else unquote(password),
                   host=parts["ipv4host"] or parts["ipv6host"],
                   port=None if parts["port"] is None else int(parts["port"]),  # "" too is refused
                   database=parts["database"],
                   query_pairs=tuple(query.items()))

    @property
    def query(self) -> dict[str, QueryValue]:
        return dict(self.query_pairs)

    def get_backend_name(self) -> str:
        """The scheme's database part: `postgresql` of `postgresql+psycopg2`."""
        return self.drivername.split("+")[0]

    def set(self, **changes: Any) -> DatabaseURL:
        """This URL with some parts changed (`set(database=...)`), as SQLAlchemy's `URL.set`."""
        return replace(self, **changes)

    def with_query_values(self, values: dict[str, str]) -> DatabaseURL:
        """This URL with the values of these query keys replaced (one value each)."""
        return replace(self, query_pairs=tuple((key, values.get(key, value)) for key, value in self.query_pairs))

    def render_as_string(self, hide_password: bool = True) -> str:
        """The URL as SQLAlchemy writes it: the password `***` unless `hide_password` is false,
        query keys sorted."""
        text = self.drivername + "://"
        if self.username is not None:
            text += quote(self.username, safe=" +")
            if self.password is not None:
                text += ":" + ("***" if hide_password else quote(str(self.password), safe=" +"))
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            text += ":" + str(self.port)
        if self.database is not None:
            text += "/" + self.database
        if self.query_pairs:
            text += "?" + "&".join(f"{quote_plus(key)}={quote_plus(value)}"
                                   for key, values in sorted(self.query_pairs, key=lambda pair: pair[0])
                                   for value in _as_tuple(values))
        return text

    def __str__(self) -> str:
        return self.render_as_string()


def _as_tuple(value: QueryValue) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)
