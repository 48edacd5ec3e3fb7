"""The operator's garbage-collector settings (gctune.py): start-up objects frozen, rare young collections, and a
timed full collection that still frees cyclic garbage."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from purpcode_operator import gctune


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_tune_freezes_what_exists_and_raises_the_thresholds(restore_gc: None) -> None:
    survivor = _Node()
    gctune.tune((12_345, 7, 99))
    assert gc.get_threshold() == (12_345, 7, 99)
    assert gc.get_freeze_count() > 0
    # Objects alive at start-up are frozen: a full collection no longer tracks them as candidates.
    assert not any(o is survivor for o in gc.get_objects())
    # Objects made afterwards are collected as usual.
    ref = _cycle()
    gc.collect()
    assert ref() is None


def test_tune_collects_cycles_before_freezing(restore_gc: None) -> None:
    gc.disable()
    try:
        ref = _cycle()
        assert ref() is not None
        gctune.tune()
        assert ref() is None  # freed, not frozen forever
    finally:
        gc.enable()


async def test_the_timed_full_collection_frees_cycles(restore_gc: None) -> None:
    gc.disable()  # no automatic collection: only the timer can free the cycle
    try:
        ref = _cycle()
        task = asyncio.create_task(gctune.collect_periodically(0.01))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if ref() is None:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ref() is None
    finally:
        gc.enable()
