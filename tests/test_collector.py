"""The collector's pause and freeze around model building: always handed back, whatever nests."""

from __future__ import annotations

import gc
import threading

import pytest

from backup_engine.engines.collector import frozen_gc, paused_gc


def test_a_pause_restores_the_collector_as_it_found_it():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause found it off and left it off
    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc():
        raise RuntimeError("inside")
    assert gc.isenabled()


def test_frozen_objects_come_back_to_the_collector_when_the_last_block_ends():
    assert gc.get_freeze_count() == 0
    model = [[] for _ in range(1000)]
    inner_started, outer_done = threading.Event(), threading.Event()
    seen: list[int] = []

    def other_thread() -> None:  # a twin's dump, overlapping the export's block
        with frozen_gc():
            inner_started.set()
            outer_done.wait(10)
            seen.append(gc.get_freeze_count())

    with frozen_gc():
        assert gc.get_freeze_count() >= len(model)
        helper = threading.Thread(target=other_thread)
        helper.start()
        inner_started.wait(10)
    outer_done.set()
    helper.join(10)
    assert seen and seen[0] >= len(model)  # the first block's end did not thaw the other's model
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), frozen_gc():
        raise RuntimeError("inside")
    assert gc.get_freeze_count() == 0
