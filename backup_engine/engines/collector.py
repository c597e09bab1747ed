"""Python's cyclic garbage collector, paused while an engine builds a big graph of objects.

Building the model of a database of thousands of tables (catalog rows, SQLAlchemy `Table`s,
graph nodes) or the parse trees of a big upload allocates hundreds of thousands of objects that
all live on. Each allocation burst triggers the collector, whose passes over everything alive
grow with what was built: at 2,000 tables they were a fifth of a fallback dump. Nothing those
builders make needs the collector inside the block; any cycles among them are collected after.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside the block (the previous state is restored after).

    The switch is process-wide: a nested or concurrent pause that found it off leaves it off,
    and the outermost one turns it back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_frozen_depth = 0
_frozen_lock = threading.Lock()


@contextmanager
def frozen_gc() -> Iterator[None]:
    """Everything alive at the block's start is out of the collector's sight until its end.

    A dump builds its model first, then streams for as long as the data takes; each collection
    meanwhile would walk the whole model again (a sixth of a fallback dump at 2,000 tables). Frozen
    (`gc.freeze`), the model is only freed by reference counting until the block ends, when
    `gc.unfreeze` hands everything back to the collector, so a worker that runs task after task
    keeps nothing. Blocks may nest and overlap across threads: the last one out unfreezes (and
    thaws anything frozen before, by anyone: nothing else in the worker freezes)."""
    global _frozen_depth
    with _frozen_lock:
        _frozen_depth += 1
        gc.freeze()
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen_depth -= 1
            if _frozen_depth == 0:
                gc.unfreeze()
