"""Settings from the environment (and `.env`), validated once at start."""

from config.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
