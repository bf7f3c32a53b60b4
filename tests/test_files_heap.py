"""files.heap.frozen_heap: the objects alive before a run are out of the collector's reach
during it and handed back after; garbage the run makes is still collected."""

from __future__ import annotations

import gc
import weakref

from pt2jax_migrate.files.heap import frozen_heap


class _Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the collector frees it


def test_freezes_for_the_block_and_hands_back():
    assert gc.get_freeze_count() == 0
    before = _Node()
    with frozen_heap():
        assert gc.get_freeze_count() > 0
        inside = _Node()
        del inside
        assert gc.collect() >= 1  # a cycle made in the block is garbage as usual
    assert gc.get_freeze_count() == 0
    assert gc.is_tracked(before)
    del before
    assert gc.collect() >= 1  # handed back: collectable again


def test_leaves_a_callers_freeze_and_a_disabled_collector_alone():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with frozen_heap():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen  # the caller's objects stay frozen
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        with frozen_heap():
            assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_settle_collects_young_garbage_and_freezes_what_stays():
    with frozen_heap() as settle:
        frozen = gc.get_freeze_count()
        kept = [_Node() for _ in range(3)]
        garbage = _Node()
        gone = weakref.ref(garbage)
        del garbage
        settle()
        assert gone() is None  # the young cycle was collected by settle(), not frozen
        assert gc.get_freeze_count() >= frozen + 3  # the survivors joined the frozen objects
        assert all(gc.is_tracked(node) for node in kept)
    assert gc.get_freeze_count() == 0
