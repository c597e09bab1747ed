"""A named database the worker backs up and restores.

Targets come from configuration only; a task names one and never carries a URL. The URL is
kept as a `DatabaseURL` (SQLAlchemy's grammar) whose `repr` and `str` hide the password. The
engine that works on a target is chosen by the URL's scheme through `backup_engine.engines`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backup_engine import errors
from backup_engine.database_url import DatabaseURL

# Query parameters that carry a secret: never shown, and refused (the password goes in the userinfo).
SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pass", "pwd", "sslpassword", "secret", "token"})


def mask_url(url: DatabaseURL | str) -> str:
    """The URL as text with the password and any secret query value replaced by `***`."""
    parsed = DatabaseURL.parse(url) if isinstance(url, str) else url
    hidden = {key: "***" for key in parsed.query if key.lower() in SECRET_QUERY_KEYS}
    return parsed.with_query_values(hidden).render_as_string(hide_password=True)


@dataclass(frozen=True)
class Target:
    name: str
    url: DatabaseURL = field(repr=False)
    dialect: str = ""  # the engine's name, from the URL's scheme
    queue: str | None = None  # the Celery queue its tasks and schedule go to (a worker next to it)

    @classmethod
    def from_url(cls, name: str, url: str | DatabaseURL, queue: str | None = None) -> Target:
        from backup_engine.registry import engine_class, engine_name_for_scheme

        try:
            parsed = DatabaseURL.parse(url) if isinstance(url, str) else url
        except ValueError as exc:  # no URL, or a port that is not a number
            raise errors.ConfigError(errors.CONFIG_INVALID, f"target {name!r}: not a database URL") from exc
        secret = sorted(key for key in parsed.query if key.lower() in SECRET_QUERY_KEYS)
        if secret:
            raise errors.ConfigError(errors.CONFIG_INVALID, f"target {name!r}: a secret in the URL's query "
                                     f"({', '.join(secret)}); put the password in the URL as user:password@host")
        try:
            dialect = engine_name_for_scheme(parsed.get_backend_name())
        except errors.BackupError as exc:
            raise errors.ConfigError(exc.message, f"target {name!r}: {exc.detail}") from None
        target = cls(name=name, url=parsed, dialect=dialect, queue=queue)
        engine_class(dialect).check_url(target)
        return target

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"Target(name={self.name!r}, url={self.masked_url!r})"
