"""freeze_heap: cycles are collected first, then the survivors are frozen."""

from __future__ import annotations

import gc
import weakref

from worker.resources import freeze_heap


class _Node:
    other: object = None


def test_freeze_collects_garbage_cycles_then_freezes_the_rest() -> None:
    cycle = _Node()
    cycle.other = cycle
    gone = weakref.ref(cycle)
    kept = _Node()
    kept.other = kept
    del cycle
    try:
        freeze_heap()
        assert gone() is None  # collected before the freeze, not frozen forever
        assert gc.get_freeze_count() > 0
        assert not any(obj is kept for obj in gc.get_objects())  # out of the collector's sight
        freeze_heap()  # again (a model swap): unfreezes first, so the count does not pile up
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    assert any(obj is kept for obj in gc.get_objects())
