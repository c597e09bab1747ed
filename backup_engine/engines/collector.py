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
        with _frozen_lock:
            if _frozen_depth:  # built to be kept (inside a frozen block): frozen with the rest
                gc.freeze()    # else the collector's first passes would walk all of it, young
        if enabled:
            gc.enable()


_frozen_depth = 0
_frozen_lock = threading.Lock()
_deferring = 0      # open task scopes (`defer_collection`): the last frozen block leaves the thaw to them
_thaw_due = False   # a frozen block ended while deferring: `collect_deferred` thaws and collects


@contextmanager
def frozen_gc() -> Iterator[None]:
    """Everything alive at the block's start is out of the collector's sight until its end.

    A dump builds its model inside the block (in a `paused_gc`, which freezes what it built),
    then streams for as long as the data takes; each collection meanwhile would walk the whole
    model again (a sixth of a fallback dump at 2,000 tables). Frozen (`gc.freeze`), the model is
    only freed by reference counting until the block ends, when `gc.unfreeze` hands everything
    back to the collector (in a task, at its end: `defer_collection`), so a worker that runs task
    after task keeps nothing. Blocks may nest and overlap across threads: the last one out
    unfreezes (and thaws anything frozen before, by anyone: nothing else in the worker freezes)."""
    global _frozen_depth, _thaw_due
    with _frozen_lock:
        _frozen_depth += 1
        gc.freeze()
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen_depth -= 1
            if _frozen_depth == 0 and _deferring:
                _thaw_due = True
            elif _frozen_depth == 0:
                gc.unfreeze()


def defer_collection() -> None:
    """A task begins: what frozen blocks hand back is collected at `collect_deferred`, once the
    task's result is out, rather than on its path. A model of thousands of tables is hundreds of
    thousands of objects in cycles (SQLAlchemy's tables and columns point at each other): the
    collection that frees them took 0.45 s of a JSON export at 5,000 tables, in its last step.
    A process about to exit (the CLI) never collects: its memory goes back whole."""
    global _deferring
    with _frozen_lock:
        _deferring += 1


def collect_deferred() -> None:
    """A task has ended (its result is out): thaw and collect what its frozen blocks kept, unless
    another task's scope or block is still open (then the last one to end does)."""
    global _deferring, _thaw_due
    with _frozen_lock:
        _deferring = max(0, _deferring - 1)
        due = _thaw_due and not _deferring and not _frozen_depth
        if due:
            _thaw_due = False
            gc.unfreeze()
    if due:
        gc.collect()
