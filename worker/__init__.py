"""The Celery application, its beat schedule, and the `python -m worker` command line.

`celery -A worker worker` works (Celery's convention finds `worker.app`), as does
`-A worker.app`; the app is built only when asked for, so the command line starts fast.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from worker.app import app

        return app
    raise AttributeError(name)
