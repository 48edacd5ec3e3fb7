"""The work queue: one reconcile per run at a time, deduplicated, with timers and per-key backoff."""

from __future__ import annotations

import asyncio

import pytest

from purpcode_operator.metrics import OperatorMetrics
from purpcode_operator.workqueue import HIGH, LOW, WorkQueue


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


async def test_high_keys_go_first_and_low_keys_wait_for_a_quiet_queue() -> None:
    q: WorkQueue[str] = WorkQueue("t", quiet=1.0, max_low_wait=60)
    q.add("status", LOW)
    q.add("new-run")  # HIGH
    assert q.waiting(HIGH) == 1 and q.waiting(LOW) == 1
    assert await q.get() == "new-run"
    q.done("new-run")
    # A HIGH key was added just now: a burst may still be arriving, so the LOW key waits ...
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.get(), 0.1)
    # ... until no HIGH key came for `quiet` seconds (a timer wakes the worker: no polling).
    assert await asyncio.wait_for(q.get(), 3.0) == "status"


async def test_a_low_key_that_waited_too_long_passes_newer_high_keys() -> None:
    q: WorkQueue[str] = WorkQueue("t", quiet=60, max_low_wait=0.05)
    q.add("old-status", LOW)
    await asyncio.sleep(0.1)
    q.add("a")
    q.add("b")
    assert await q.get() == "old-status"  # aged: served in arrival order with the HIGH keys
    assert [await q.get(), await q.get()] == ["a", "b"]


async def test_an_aged_low_key_does_not_pass_older_high_keys() -> None:
    q: WorkQueue[str] = WorkQueue("t", quiet=60, max_low_wait=0.05)
    q.add("a")
    q.add("status", LOW)
    await asyncio.sleep(0.1)
    assert await q.get() == "a"
    assert await asyncio.wait_for(q.get(), 1.0) == "status"


async def test_a_waiting_low_key_added_at_high_moves_up_and_priority_never_drops() -> None:
    q: WorkQueue[str] = WorkQueue("t", quiet=60, max_low_wait=60)
    q.add("run", LOW)
    q.add("other")
    q.add("run")  # an event for it: HIGH now, behind the HIGH keys already waiting
    q.add("run", LOW)  # a later LOW add does not push it down again
    assert (q.waiting(HIGH), q.waiting(LOW), len(q)) == (2, 0, 2)
    assert [await q.get(), await asyncio.wait_for(q.get(), 0.5)] == ["other", "run"]


async def test_a_key_in_progress_is_requeued_at_the_highest_priority_asked() -> None:
    q: WorkQueue[str] = WorkQueue("t", quiet=60, max_low_wait=60)
    q.add("a")
    key = await q.get()
    q.add("a", LOW)  # e.g. the reconcile left its status for later
    q.done(key)
    assert (q.waiting(HIGH), q.waiting(LOW)) == (0, 1)
    with pytest.raises(TimeoutError):  # LOW: it waits for a quiet queue
        await asyncio.wait_for(q.get(), 0.1)
    q.add("a")  # an event: HIGH
    key = await asyncio.wait_for(q.get(), 0.5)
    q.add("a", LOW)
    q.add("a")
    q.done(key)
    assert (q.waiting(HIGH), q.waiting(LOW)) == (1, 0)


async def test_every_idle_worker_is_woken_for_a_burst() -> None:
    q: WorkQueue[int] = WorkQueue("t")
    got: list[int] = []
    release, all_done = asyncio.Event(), asyncio.Event()

    async def worker() -> None:
        while True:
            key = await q.get()
            got.append(key)
            await release.wait()
            q.done(key)
            if len(got) == 8:
                all_done.set()

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    await asyncio.sleep(0)  # all four wait
    for i in range(8):
        q.add(i)
    for _ in range(5):
        await asyncio.sleep(0)
    assert got == [0, 1, 2, 3]  # one add, one woken worker: four at once, in order
    release.set()
    await asyncio.wait_for(all_done.wait(), 2.0)
    assert got == list(range(8))
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)


async def test_a_woken_worker_cancelled_before_it_runs_passes_the_key_on() -> None:
    """Found in review: an add wakes one idle worker; cancelled before it ran, it took the wake-up with it and
    the key stayed queued while the other workers slept."""
    q: WorkQueue[str] = WorkQueue("t")
    a = asyncio.create_task(q.get())
    b = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("k")
    a.cancel()
    await asyncio.gather(a, return_exceptions=True)
    assert await asyncio.wait_for(b, 1.0) == "k"
