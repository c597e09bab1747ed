"""The collector's pause and freeze around model building: always handed back, whatever nests."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
import weakref

import pytest

from backup_engine.engines.collector import collect_deferred, defer_collection, frozen_gc, paused_gc
from tests.processes import clean_environment


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


class Node:
    """An object in a cycle: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_what_a_pause_builds_inside_a_frozen_block_is_frozen_with_it():
    """A model is built in a pause inside the block that keeps it: the pause's end freezes it, or
    the collector's first passes after it would walk every object it built, young."""
    with frozen_gc():
        before = gc.get_freeze_count()
        with paused_gc():
            built = [[] for _ in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= before + len(built)
    assert gc.get_freeze_count() == 0
    with paused_gc():  # outside any frozen block a pause freezes nothing
        [[] for _ in range(1000)]
    assert gc.get_freeze_count() == 0


def test_in_a_task_what_frozen_blocks_kept_is_collected_when_the_task_ends():
    """The collection that frees a model is deferred to the end of the task (after its result is
    out), and happens then: a worker running task after task keeps nothing."""
    assert gc.get_freeze_count() == 0
    defer_collection()
    try:
        with frozen_gc():
            node = Node()
            freed = weakref.ref(node)
            del node
        assert gc.get_freeze_count() > 0 and freed() is not None  # the block ended, the task has not
        defer_collection()  # a second task overlapping (a threads pool): the last one to end collects
        collect_deferred()
        assert gc.get_freeze_count() > 0 and freed() is not None
    finally:
        collect_deferred()
    assert gc.get_freeze_count() == 0 and freed() is None


WORKER_TASK_PROBE = """
import gc, json, weakref
from celery.signals import task_postrun, task_prerun
from worker.app import app
from backup_engine.engines.collector import frozen_gc

app.loader.import_default_modules()

class Node:
    def __init__(self):
        self.me = self

task = app.tasks["backups.list"]
task_prerun.send(sender=task, task_id="probe", task=task, args=(), kwargs={})
with frozen_gc():
    node = Node()
    freed = weakref.ref(node)
    del node
during = gc.get_freeze_count()
task_postrun.send(sender=task, task_id="probe", task=task, args=(), kwargs={}, retval=None, state="SUCCESS")
print(json.dumps({"during": during, "after": gc.get_freeze_count(), "freed": freed() is None}))
"""


def test_the_worker_collects_a_tasks_model_when_the_task_ends(tmp_path):
    """The worker's own app defers the collection at a task's start and makes it at its end
    (Celery's task_prerun and task_postrun, as a worker sends them)."""
    env = clean_environment(BACKUP_TARGETS=json.dumps({"a": f"sqlite:///{tmp_path}/a.db"}),
                            BACKUP_DIR=str(tmp_path / "backups"), BACKUP_UPLOAD_DIR=str(tmp_path / "uploads"))
    done = subprocess.run([sys.executable, "-c", WORKER_TASK_PROBE], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    probed = json.loads(done.stdout.splitlines()[-1])
    assert probed["during"] > 0 and probed["after"] == 0 and probed["freed"]
