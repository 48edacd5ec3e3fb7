"""A controller-runtime style work queue: deduplicated keys, delayed adds, per-key rate limiting.

Why: kopf delivers every watch event of every run, Job and Pod; many of them concern the same run. The queue
collapses them into one reconcile per run at a time (a key being processed is marked dirty and re-queued once
when it finishes), and never runs two reconciles of the same run concurrently. Delays (retry backoff, pending
timeouts, TTL) are timers, not polling.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from typing import Generic, TypeVar

from .metrics import OperatorMetrics

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(
        self,
        name: str,
        metrics: OperatorMetrics | None = None,
        *,
        base_delay: float = 0.5,
        max_delay: float = 300.0,
    ) -> None:
        self.name = name
        self._metrics = metrics
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._added_at: dict[K, float] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._failures: dict[K, int] = {}
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._shutdown = False

    def __len__(self) -> int:
        return len(self._queued)

    def _gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.labels(self.name).set(len(self._queued))

    def add(self, key: K) -> None:
        if self._shutdown:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._added_at[key] = time.monotonic()
        self._queue.put_nowait(key)
        if self._metrics is not None:
            self._metrics.queue_adds.labels(self.name).inc()
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
        self._dirty.discard(key)

    async def get(self) -> K:
        key = await self._queue.get()
        self._queued.discard(key)
        self._processing.add(key)
        added = self._added_at.pop(key, None)
        if self._metrics is not None and added is not None:
            self._metrics.queue_latency.labels(self.name).observe(time.monotonic() - added)
        self._gauge()
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def shutdown(self) -> None:
        self._shutdown = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
