"""The work queue: one reconcile per run at a time, deduplicated, with timers and per-key backoff."""

from __future__ import annotations

import asyncio

from purpcode_operator.metrics import OperatorMetrics
from purpcode_operator.workqueue import WorkQueue


async def test_adds_are_deduplicated() -> None:
    q: WorkQueue[str] = WorkQueue("t")
    for _ in range(3):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert await q.get() == "a" and await q.get() == "b"


async def test_a_key_in_progress_is_requeued_once_when_done() -> None:
    q: WorkQueue[str] = WorkQueue("t")
    q.add("a")
    key = await q.get()
    q.add("a")
    q.add("a")  # events while processing: not a second concurrent reconcile
    assert len(q) == 0
    q.done(key)
    assert len(q) == 1 and await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_add_after_keeps_the_earliest_timer() -> None:
    q: WorkQueue[str] = WorkQueue("t")
    q.add_after("a", 5.0)
    q.add_after("a", 0.05)
    q.add_after("a", 10.0)
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 1.0) == "a"


async def test_rate_limited_retries_back_off_and_forget_resets() -> None:
    metrics = OperatorMetrics()
    q: WorkQueue[str] = WorkQueue("t", metrics, base_delay=0.01, max_delay=0.04)
    delays = [q.add_rate_limited("a") for _ in range(4)]
    assert delays == [0.01, 0.02, 0.04, 0.04]
    q.forget_failures("a")
    assert q.add_rate_limited("a") == 0.01
    assert metrics.queue_retries.labels("t")._value.get() == 5


async def test_forget_cancels_timers() -> None:
    q: WorkQueue[str] = WorkQueue("t")
    q.add_after("a", 0.05)
    q.forget("a")
    await asyncio.sleep(0.1)
    assert len(q) == 0


async def test_depth_gauge_follows_the_queue() -> None:
    metrics = OperatorMetrics()
    q: WorkQueue[str] = WorkQueue("purpcoderun", metrics)
    q.add("a")
    q.add("b")
    assert metrics.queue_depth.labels("purpcoderun")._value.get() == 2
    await q.get()
    assert metrics.queue_depth.labels("purpcoderun")._value.get() == 1
