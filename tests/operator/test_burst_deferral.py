"""A burst of new runs: a run's first Job before other runs' status writes, with nothing lost.

When other runs wait for their Jobs (HIGH in the work queue), a reconcile that has just created a run's Job leaves
the status and Events to a LOW-priority reconcile (Controller._defer). These tests check that the deferred
reconcile writes exactly what the direct one would have (status, Events, timer), once; that the Job's own watch
event does not pull the run back up; that it works whether or not the Job is indexed yet; and that a new process
after a crash at that point decides the same.
"""

from __future__ import annotations

import copy
import dataclasses

from support.controller_harness import (
    INIT_JOB,
    KEY,
    NS,
    T0,
    Harness,
    Obj,
    failed_pod,
    failed_version,
    run_body,
)

from purpcode_operator.controller import trim_pod
from purpcode_operator.workqueue import HIGH, LOW

OTHER = (NS, "another-new-run")  # queued, not known: its reconcile is a no-op


async def first_reconcile(h: Harness, *, burst: bool) -> None:
    h.deliver_run("ADDED", run_body(pendingTimeoutSeconds=600))
    if burst:
        h.controller.queue.add(OTHER)
    key = await h.controller.queue.get()
    assert key == KEY
    try:
        h.requeues.append(await h.controller.reconcile(key))
    finally:
        h.controller.queue.done(key)


def job_creates(h: Harness) -> list[str]:
    return [name for kind, name in h.api.ensured if kind == "Job"]


def reasons(h: Harness) -> list[str]:
    return sorted(e["reason"] for e in h.api.events)


async def direct() -> Harness:
    h = Harness(run_body(pendingTimeoutSeconds=600))
    await first_reconcile(h, burst=False)
    return h


async def test_the_deferred_status_is_the_direct_one_written_once() -> None:
    ref = await direct()
    assert (
        ref.api.status_writes == 1 and ref.controller.metrics.deferred.labels("purpcoderun")._value.get() == 0
    )

    h = Harness(run_body(pendingTimeoutSeconds=600))
    await first_reconcile(h, burst=True)
    # The Job (with its ConfigMap and volume claim) exists; the status and Events wait.
    assert job_creates(h) == [INIT_JOB]
    assert h.api.status_writes == 0 and h.api.events == [] and "status" not in h.api.run
    assert h.controller.metrics.deferred.labels("purpcoderun")._value.get() == 1
    assert (h.controller.queue.waiting(HIGH), h.controller.queue.waiting(LOW)) == (1, 1)
    # The Job's ADDED event: the version the deferred reconcile will decide on; it does not move the run up.
    job: Obj = h.api.existing[("Job", INIT_JOB)]
    h.index_job(job)
    assert (h.controller.queue.waiting(HIGH), h.controller.queue.waiting(LOW)) == (1, 1)

    assert await h.drain() == 2  # the other run (HIGH), then this run's status (LOW)
    assert h.api.status_writes == 1
    assert h.api.run["status"] == ref.api.run["status"]
    assert reasons(h) == reasons(ref) and reasons(h).count("StageStarted") == 1
    assert h.requeues[-1] == ref.requeues[-1]  # the pending timer too
    assert job_creates(h) == [INIT_JOB]  # nothing created twice


async def test_the_deferred_reconcile_needs_no_index_entry_for_the_job() -> None:
    """The Jobs watch lags behind: the deferred reconcile uses the create's answer, not a second create."""
    ref = await direct()
    h = Harness(run_body(pendingTimeoutSeconds=600))
    await first_reconcile(h, burst=True)
    await h.drain()
    assert job_creates(h) == [INIT_JOB]
    assert h.api.run["status"] == ref.api.run["status"]
    # Its ADDED arrives late: that version was decided on, nothing to do.
    h.deliver_run()
    h.index_job(h.api.existing[("Job", INIT_JOB)])
    assert len(h.controller.queue) == 0


async def test_a_crash_before_the_deferred_write_loses_nothing() -> None:
    ref = await direct()
    h = Harness(run_body(pendingTimeoutSeconds=600))
    await first_reconcile(h, burst=True)
    job = h.api.existing[("Job", INIT_JOB)]
    # kill -9 now: a new process starts from the cluster (the run without status, the Job in the index).
    again = Harness(run_body(pendingTimeoutSeconds=600))
    again.api = h.api
    again.controller.client = h.api  # type: ignore[assignment]
    again.jobs[KEY] = []
    again.index_job(job)
    again.deliver_run("ADDED", h.api.run)
    await again.drain()
    assert h.api.status_writes == 1
    assert h.api.run["status"] == ref.api.run["status"]
    assert reasons(h) == reasons(ref)
    assert job_creates(h) == [INIT_JOB]


async def test_a_job_that_existed_with_a_history_is_decided_on_at_once() -> None:
    """A 409 that reads back a Job with a status (it ran already): no deferral, its outcome matters now."""
    ref = await direct()
    ran = copy.deepcopy(ref.api.existing[("Job", INIT_JOB)])
    ran["status"] = {"active": 1, "startTime": ran["metadata"]["creationTimestamp"]}
    h = Harness(run_body(pendingTimeoutSeconds=600))
    h.api.existing[("Job", INIT_JOB)] = ran
    await first_reconcile(h, burst=True)
    assert h.controller.metrics.deferred.labels("purpcoderun")._value.get() == 0
    assert h.api.status_writes == 1 and h.stage()["attempts"] == 1


async def test_runs_arriving_during_the_reconcile_defer_it_even_when_another_worker_took_them() -> None:
    """kopf hands a burst over one event at a time and idle workers take each run at once, so the HIGH queue is
    often empty when a reconcile finishes its creates: a HIGH add since the reconcile began counts too."""
    h = Harness(run_body(pendingTimeoutSeconds=600))
    real_ensure = h.api.ensure

    async def ensure_while_runs_arrive(obj: Obj, *, patch_if_exists: Obj | None = None) -> Obj:
        if obj["kind"] == "Job":
            h.controller.queue.add(OTHER)  # the next run of the burst arrives ...
            assert await h.controller.queue.get() == OTHER  # ... and another worker takes it
        return await real_ensure(obj, patch_if_exists=patch_if_exists)

    h.api.ensure = ensure_while_runs_arrive  # type: ignore[method-assign]
    await first_reconcile(h, burst=False)
    assert h.controller.queue.waiting(HIGH) == 0
    assert h.controller.metrics.deferred.labels("purpcoderun")._value.get() == 1
    assert h.api.status_writes == 0 and h.controller.queue.waiting(LOW) == 1


async def _through_admission(burst: bool) -> Harness:
    """A Kueue run: its Job is created suspended; Kueue admits it later."""
    spec = {"pendingTimeoutSeconds": 600, "queueName": "team-a"}
    h = Harness(run_body(**spec))
    h.deliver_run("ADDED", run_body(**spec))
    if burst:
        h.controller.queue.add(OTHER)
    await h.drain()
    assert h.api.run["status"]["phase"] == "Pending"
    job = copy.deepcopy(h.api.existing[("Job", INIT_JOB)])
    job["spec"]["suspend"] = False
    job["metadata"]["resourceVersion"] = h.api.next_rv()
    job["status"] = {"active": 1, "startTime": job["metadata"]["creationTimestamp"]}
    h.index_job(job)
    await h.drain()
    assert h.api.run["status"]["phase"] == "Running"
    return h


async def test_a_deferred_kueue_run_still_says_it_started_when_admitted() -> None:
    """Found in review: the 'run started' Event keyed on a missing startTime, which the deferred (or post-crash)
    decision sets while the run still waits for Kueue; it was never posted. It is posted once the run runs (and,
    on the direct path, no longer while the Job still waits for admission)."""
    for burst in (False, True):
        h = await _through_admission(burst)
        assert reasons(h).count("Running") == 1, burst
        started = next(e for e in h.api.events if e["reason"] == "Running")
        assert started["message"] == "run started (stage initialize)"


async def test_a_failure_recorded_with_its_retry_started_is_written_at_once() -> None:
    """Found in review: with no retry backoff, one decision records attempt 1's failure and creates attempt 2's
    Job; deferred, the LOW decision saw only attempt 2 and the failure (its Event, the pod's error) was lost."""
    for burst in (False, True):
        h = Harness(run_body())
        h.controller.settings = dataclasses.replace(h.controller.settings, retry_backoff_seconds=0.0)
        h.deliver_run("ADDED", run_body())
        await h.drain()
        job = h.api.existing[("Job", INIT_JOB)]
        h.deliver_run()
        h.index_job(job)
        h.pods[KEY] = [trim_pod(failed_pod(job, "CUDA error: out of memory"))]
        h.index_job(failed_version(job, h.api.rv + 1, T0))
        if burst:
            h.controller.queue.add(OTHER)
        await h.drain()
        failed = [e for e in h.api.events if e["reason"] == "StageAttemptFailed"]
        assert len(failed) == 1 and "CUDA error" in failed[0]["message"], burst
        assert h.stage()["attempts"] == 2
        assert h.controller.metrics.deferred.labels("purpcoderun")._value.get() == 0
