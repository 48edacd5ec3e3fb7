"""A controller-runtime style work queue: deduplicated keys, delayed adds, per-key rate limiting.

Why: kopf delivers every watch event of every run, Job and Pod; many of them concern the same run. The queue
collapses them into one reconcile per run at a time (a key being processed is marked dirty and re-queued once
when it finishes), and never runs two reconciles of the same run concurrently. Delays (retry backoff, pending
timeouts, TTL) are timers, not polling.

Two priorities, like controller-runtime's priority queue: HIGH for what changed (a new or edited run, a child's
event, a timer) and LOW for work that can wait (the periodic resync, and a new run's status when other runs are
still waiting for their Jobs: see Controller._defer). Workers take a LOW key only when no HIGH key waits and none
was added for `quiet` seconds (a burst of new runs is over: its events arrive one by one, so an empty HIGH queue
alone does not say so), or when the oldest LOW key has waited `max_low_wait` seconds (no starvation under a steady
stream of events). Adding a queued key again at HIGH moves it up; a key's priority never drops while it waits.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from .metrics import OperatorMetrics

K = TypeVar("K", bound=Hashable)

HIGH = 0
LOW = 1


class WorkQueue(Generic[K]):
    def __init__(
        self,
        name: str,
        metrics: OperatorMetrics | None = None,
        *,
        base_delay: float = 0.5,
        max_delay: float = 300.0,
        quiet: float = 0.25,
        max_low_wait: float = 10.0,
    ) -> None:
        self.name = name
        self._metrics = metrics
        self._waiters: deque[asyncio.Future[None]] = deque()  # idle workers, woken one per add
        self._ready: tuple[deque[K], deque[K]] = (deque(), deque())
        self._queued: dict[K, int] = {}
        self._processing: set[K] = set()
        self._dirty: dict[K, int] = {}
        self._added_at: dict[K, float] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._failures: dict[K, int] = {}
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._quiet = quiet
        self._max_low_wait = max_low_wait
        self._last_high = float("-inf")
        self._shutdown = False
        # Each add and get updates these; the labelled series are looked up once.
        self._depth = metrics.queue_depth.labels(name) if metrics is not None else None
        self._adds = metrics.queue_adds.labels(name) if metrics is not None else None
        self._latency = metrics.queue_latency.labels(name) if metrics is not None else None

    def __len__(self) -> int:
        return len(self._queued)

    def _gauge(self) -> None:
        if self._depth is not None:
            self._depth.set(len(self._queued))

    def waiting(self, priority: int = HIGH) -> int:
        """How many keys wait at this priority."""
        return len(self._ready[priority])

    def busy_since(self, since: float) -> bool:
        """Whether HIGH keys wait, or one was added after `since` (time.monotonic()): a burst is arriving."""
        return bool(self._ready[HIGH]) or self._last_high > since

    def add(self, key: K, priority: int = HIGH) -> None:
        if self._shutdown:
            return
        if key in self._processing:
            self._dirty[key] = min(priority, self._dirty.get(key, LOW))
            return
        queued = self._queued.get(key)
        if queued is not None:
            if priority < queued:  # move it up (rare: a LOW key that gets an event)
                self._ready[queued].remove(key)
                self._ready[priority].append(key)
                self._queued[key] = priority
                self._last_high = time.monotonic()
                self._wake_one()
            return
        self._queued[key] = priority
        now = time.monotonic()
        self._added_at[key] = now
        if priority == HIGH:
            self._last_high = now
        self._ready[priority].append(key)
        self._wake_one()
        if self._adds is not None:
            self._adds.inc()
        self._gauge()

    def add_after(self, key: K, delay: float) -> None:
        """Add `key` in `delay` seconds (the earliest pending timer per key wins)."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        timer = self._timers.get(key)
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: K) -> float:
        """Re-add after an error, with exponential backoff per key; returns the delay."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = min(self._base_delay * 2**n, self._max_delay)
        if self._metrics is not None:
            self._metrics.queue_retries.labels(self.name).inc()
        self.add_after(key, delay)
        return delay

    def forget_failures(self, key: K) -> None:
        self._failures.pop(key, None)

    def forget(self, key: K) -> None:
        """The object is gone: drop timers and failure counts (a queued entry is a harmless no-op later)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)
        self._dirty.pop(key, None)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _low_due_in(self, now: float) -> float | None:
        """Seconds until the oldest LOW key may be taken (0: now; None: no LOW key)."""
        high, low = self._ready
        if not low:
            return None
        aged = self._added_at[low[0]] + self._max_low_wait
        if high:  # only age lets it pass HIGH keys, and only those added after it
            return max(0.0, aged - now) if self._added_at[high[0]] > self._added_at[low[0]] else None
        return max(0.0, min(self._last_high + self._quiet, aged) - now)

    async def get(self) -> K:
        loop = asyncio.get_running_loop()
        while True:
            high, low = self._ready
            due = self._low_due_in(time.monotonic())
            if due == 0.0:
                key = low.popleft()
                break
            if high:
                key = high.popleft()
                break
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_later(due, _wake, waiter) if due is not None else None
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken by an add, then cancelled: another idle worker takes the key
                raise
            finally:
                if timer is not None:
                    timer.cancel()
        if self._waiters and (self._ready[HIGH] or self._ready[LOW]):
            self._wake_one()  # more work, or a LOW key whose time another worker should watch
        del self._queued[key]
        self._processing.add(key)
        added = self._added_at.pop(key, None)
        if self._latency is not None and added is not None:
            self._latency.observe(time.monotonic() - added)
        self._gauge()
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        priority = self._dirty.pop(key, None)
        if priority is not None:
            self.add(key, priority)

    def shutdown(self) -> None:
        self._shutdown = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
