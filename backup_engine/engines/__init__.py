"""One package per database engine, each with an `Engine` subclass (`base.py`); the registry
that names them is `backup_engine.registry`."""
