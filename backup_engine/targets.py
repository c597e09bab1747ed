"""A named database the worker backs up and restores.

Targets come from configuration only; a task names one and never carries a URL. The URL
is kept as a SQLAlchemy `URL` whose `repr` and `str` hide the password.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import URL, make_url

from backup_engine import errors

SUPPORTED_DIALECTS = ("postgresql", "sqlite")


def mask_url(url: URL | str) -> str:
    """The URL as text with any password replaced by `***`."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


@dataclass(frozen=True)
class Target:
    name: str
    url: URL = field(repr=False)

    @classmethod
    def from_url(cls, name: str, url: str | URL) -> Target:
        try:
            parsed = make_url(url)
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several types here
            raise errors.ConfigError(errors.CONFIG_INVALID, f"target {name!r}: not a database URL") from exc
        if parsed.get_backend_name() not in SUPPORTED_DIALECTS:
            raise errors.ConfigError(
                errors.UNSUPPORTED_DIALECT,
                f"target {name!r}: {parsed.get_backend_name()!r} (use postgresql:// or sqlite:///)",
            )
        if parsed.get_backend_name() == "sqlite" and not parsed.database:
            raise errors.ConfigError(errors.CONFIG_INVALID, f"target {name!r}: SQLite needs a file path")
        return cls(name=name, url=parsed)

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"Target(name={self.name!r}, url={self.masked_url!r})"
