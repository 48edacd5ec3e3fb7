"""Races around the reconcile loop's write savings (follow-up decision, dropped Job/run events).

The controller is driven directly (no kopf, no HTTP): an in-memory API (`Api`) answers the calls one reconcile
makes, the kopf indices are plain dicts the test fills in the order the watch streams would, and watch events are
delivered by calling `run_event` / `child_event` as the handlers do. kopf 1.45 hands every watch event of an
object to the handlers, one object (uid) at a time, but objects with different uids in parallel
(kopf/_core/reactor/queueing.py): these tests deliver events in orders that allows.

The first four were found as real problems (each failed before its fix in controller.py); the others check
scenarios that worked already and must keep working.
"""

from __future__ import annotations

import copy
import datetime

import pytest
from support.controller_harness import (
    INIT_JOB,
    KEY,
    NS,
    RUN,
    T0,
    Harness,
    Obj,
    failed_pod,
    failed_version,
    run_body,
    ts,
)

from purpcode_operator import naming
from purpcode_operator.controller import trim_job, trim_pod

# --------------------------------------------------------------------------------------------- real problems


async def test_a_job_found_by_the_create_is_decided_on_with_its_pods() -> None:
    """The Job watch lags (restart, load): the stage's Job already failed, its pod's failure came in first.

    The pod event brings the run back; the Job is not indexed yet, so the decision creates it again (409: the
    Job is read back, failed) and the follow-up decides on that failed Job - without its pod, because
    observe() kept only pods of indexed Jobs. The attempt's failure is recorded once (Event and status, guarded
    by nextRetryTime), so the error the human needs is lost for good, whatever events come later.
    """
    h = Harness(run_body())
    h.deliver_run("ADDED", run_body())
    await h.drain()
    created = next(o for o in h.api.created if o["kind"] == "Job")
    assert created["metadata"]["name"] == INIT_JOB and h.stage()["attempts"] == 1

    # The echo of the status write (dropped), then, while the Jobs watch lags, the pod fails and the Job too.
    h.deliver_run()
    failed = failed_version(created, h.api.rv + 2, T0 + datetime.timedelta(seconds=3))
    h.api.existing[("Job", INIT_JOB)] = failed
    h.now = T0 + datetime.timedelta(seconds=20)
    h.index_pod(failed_pod(created, "ModuleNotFoundError: No module named 'purpcode.stages'"))
    await h.drain()
    # Then every version of the Job arrives (kopf 1.45 delivers each one).
    h.index_job(created)
    h.index_job(failed)
    await h.drain()

    stage = h.stage()
    assert stage["nextRetryTime"], stage
    assert "ModuleNotFoundError" in stage["message"], stage["message"]
    [attempt_failed] = h.events("StageAttemptFailed")
    assert "ModuleNotFoundError" in attempt_failed["message"], attempt_failed["message"]


async def test_the_deleted_event_of_an_old_run_does_not_forget_its_successor() -> None:
    """`kubectl replace --force` / delete + apply: u1's DELETED and u2's ADDED are different kopf objects."""
    h = Harness(run_body(uid="u2", rv="20"))
    old = run_body(uid="u1", rv="12")
    h.deliver_run("ADDED", old)
    await h.drain()
    h.api.run = copy.deepcopy(run_body(uid="u2", rv="20"))  # u1 deleted, u2 created under the same name
    h.deliver_run("ADDED", run_body(uid="u2", rv="20"))
    h.deliver_run("DELETED", {**old, "metadata": {**old["metadata"], "resourceVersion": "19"}})
    await h.drain()
    assert h.controller.bodies.get(KEY, {}).get("metadata", {}).get("uid") == "u2"
    assert h.api.run.get("status", {}).get("stages", {}).get("initialize", {}).get("attempts") == 1


async def test_a_status_decided_for_a_deleted_run_is_not_written_onto_its_successor() -> None:
    h = Harness(run_body(uid="u1"))
    h.deliver_run("ADDED", run_body(uid="u1"))
    # While the reconcile of u1 runs (its creates are in flight), u1 is deleted and u2 created.
    real_ensure = h.api.ensure

    async def ensure_then_replace(obj: Obj, *, patch_if_exists: Obj | None = None) -> Obj:
        out = await real_ensure(obj, patch_if_exists=patch_if_exists)
        if obj["kind"] == "Job":
            h.api.run = run_body(uid="u2", rv=h.api.next_rv())
        return out

    h.api.ensure = ensure_then_replace  # type: ignore[method-assign]
    await h.drain()
    assert h.api.run["metadata"]["uid"] == "u2"
    assert "status" not in h.api.run, h.api.run.get("status")


async def test_a_transient_claim_create_failure_does_not_leave_a_job_without_its_volume() -> None:
    h = Harness(run_body())
    h.deliver_run("ADDED", run_body())
    h.api.fail_kinds = {"PersistentVolumeClaim"}
    await h.drain()  # ReconcileError: the claim's create failed
    assert ("Job", INIT_JOB) not in h.api.existing  # not created before what its pods mount
    h.api.fail_kinds = set()
    job = h.api.existing.get(("Job", INIT_JOB))
    if job is not None:
        h.index_job(job)  # the Job's ADDED event
    h.controller.queue.add(KEY)  # the rate-limited retry
    await h.drain()
    assert ("PersistentVolumeClaim", naming.pvc_name(RUN)) in {
        (o["kind"], o["metadata"]["name"]) for o in h.api.created
    }


# --------------------------------------------------------------------------------------------- verified scenarios


async def test_a_new_attempt_is_written_once_with_its_pending_timer_and_later_versions_still_count() -> None:
    h = Harness(run_body(pendingTimeoutSeconds=600))
    h.deliver_run("ADDED", run_body(pendingTimeoutSeconds=600))
    assert await h.drain() == 1
    job = h.api.existing[("Job", INIT_JOB)]
    assert h.api.status_writes == 1
    assert h.stage()["pendingSince"] and h.requeues == [pytest.approx(600, abs=1)]
    h.deliver_run()  # the echo of the status write
    h.index_job(job)  # the Job's ADDED: the version the status was decided on
    assert len(h.controller.queue) == 0
    # The timer fires: the pods never came, the stage fails (the Job is stopped).
    h.now = T0 + datetime.timedelta(seconds=601)
    h.controller.queue.add(KEY)
    await h.drain()
    assert h.stage()["phase"] == "Failed" and h.api.run["status"]["phase"] == "Failed"
    assert ("Job", INIT_JOB, {"spec": {"suspend": True}}) in h.api.patches


async def test_the_jobs_added_event_handled_before_the_create_answer_loses_nothing() -> None:
    """The watch can beat the create's answer: that ADDED queues the run (it is being reconciled: once more
    afterwards); the entry for the version then stays until the Job's next event, which still queues."""
    h = Harness(run_body())
    h.deliver_run("ADDED", run_body())
    real_ensure = h.api.ensure

    async def ensure_seen_first(obj: Obj, *, patch_if_exists: Obj | None = None) -> Obj:
        out = await real_ensure(obj, patch_if_exists=patch_if_exists)
        if obj["kind"] == "Job":
            h.index_job(out)
        return out

    h.api.ensure = ensure_seen_first  # type: ignore[method-assign]
    assert await h.drain() == 2  # the reconcile, and the one the early ADDED asked for (nothing to write)
    h.api.ensure = real_ensure  # type: ignore[method-assign]
    assert h.api.status_writes == 1
    job = h.api.existing[("Job", INIT_JOB)]
    h.now = T0 + datetime.timedelta(seconds=30)
    failed = failed_version(job, h.api.rv + 1, h.now)
    h.pods[KEY] = [trim_pod(failed_pod(job, "boom"))]
    h.index_job(failed)
    assert len(h.controller.queue) == 1
    await h.drain()
    assert h.stage()["nextRetryTime"] and "boom" in h.stage()["message"]


async def test_a_failed_status_write_after_the_create_is_retried_and_the_attempt_recorded() -> None:
    h = Harness(run_body())
    h.deliver_run("ADDED", run_body())
    h.api.fail_status_writes = 1
    await h.drain()  # the Job is created, the status write fails: ReconcileError
    assert h.api.status_writes == 0 and "status" not in h.api.run
    job = h.api.existing[("Job", INIT_JOB)]
    h.index_job(job)  # its ADDED is dropped (the decided version) ...
    assert len(h.controller.queue) == 0
    h.controller.queue.add(KEY)  # ... the rate-limited retry brings the run back anyway
    await h.drain()
    stage = h.stage()
    assert stage["attempts"] == 1 and stage["jobName"] == INIT_JOB and stage["pendingSince"]
    assert [o["metadata"]["name"] for o in h.api.created if o["kind"] == "Job"] == [INIT_JOB]


async def test_a_kueue_job_is_written_waiting_for_admission_and_the_admission_moves_it_on() -> None:
    h = Harness(run_body(queueName="team-a"))
    h.deliver_run("ADDED", run_body(queueName="team-a"))
    await h.drain()
    assert h.api.status_writes == 1
    ready = {c["type"]: c for c in h.api.run["status"]["conditions"]}["Ready"]
    assert (h.api.run["status"]["phase"], ready["reason"]) == ("Pending", "WaitingForAdmission")
    job = h.api.existing[("Job", INIT_JOB)]
    assert job["spec"]["suspend"] is True
    h.deliver_run()
    h.index_job(job)
    assert len(h.controller.queue) == 0
    admitted = copy.deepcopy(job)
    admitted["spec"]["suspend"] = False
    admitted["metadata"]["resourceVersion"] = h.api.next_rv()
    admitted["status"] = {"startTime": ts(T0), "active": 1}
    h.index_job(admitted)
    assert len(h.controller.queue) == 1
    await h.drain()
    assert h.api.run["status"]["phase"] == "Running"


async def test_a_retry_attempt_is_written_once_and_its_added_event_queues_nothing() -> None:
    h = Harness(run_body())
    h.deliver_run("ADDED", run_body())
    await h.drain()
    job1 = h.api.existing[("Job", INIT_JOB)]
    h.deliver_run()
    h.index_job(job1)
    h.now = T0 + datetime.timedelta(seconds=5)
    h.pods[KEY] = [trim_pod(failed_pod(job1, "boom"))]
    h.index_job(failed_version(job1, h.api.rv + 1, h.now))
    await h.drain()
    retry_at = datetime.datetime.fromisoformat(h.stage()["nextRetryTime"].replace("Z", "+00:00"))
    h.deliver_run()
    writes = h.api.status_writes
    h.now = retry_at + datetime.timedelta(seconds=1)
    h.controller.queue.add(KEY)  # the backoff timer
    await h.drain()
    job2 = h.api.existing[("Job", naming.job_name(RUN, "init", 2))]
    assert h.api.status_writes == writes + 1
    stage = h.stage()
    assert stage["attempts"] == 2 and stage["pendingSince"] and not stage.get("nextRetryTime")
    h.deliver_run()
    h.jobs[KEY] = [trim_job(failed_version(job1, int(job1["metadata"]["resourceVersion"]) + 1, T0))]
    h.jobs[KEY].append(trim_job(job2))
    h.controller.child_event(NS, RUN, job=job2["metadata"]["name"], rv=job2["metadata"]["resourceVersion"])
    assert len(h.controller.queue) == 0


async def test_a_spec_edit_between_read_and_write_is_decided_on_and_its_late_event_dropped() -> None:
    h = Harness(run_body())
    h.deliver_run("ADDED", run_body())
    real_ensure = h.api.ensure

    async def ensure_then_suspend(obj: Obj, *, patch_if_exists: Obj | None = None) -> Obj:
        out = await real_ensure(obj, patch_if_exists=patch_if_exists)
        if obj["kind"] == "Job":
            h.api.run["spec"]["suspend"] = True
            h.api.run["metadata"]["generation"] = 2
            h.api.run["metadata"]["resourceVersion"] = h.api.next_rv()
        return out

    h.api.ensure = ensure_then_suspend  # type: ignore[method-assign]
    await h.controller.queue.get()
    try:
        await h.controller.reconcile(KEY)
    finally:
        h.controller.queue.done(KEY)
    h.api.ensure = real_ensure  # type: ignore[method-assign]
    edited_rv = str(int(h.api.run["metadata"]["resourceVersion"]) - 1)
    late = copy.deepcopy(h.api.run)
    late["metadata"]["resourceVersion"] = edited_rv
    late.pop("status", None)
    h.deliver_run("MODIFIED", late)  # the edit's own event, older than the write's answer
    h.index_job(h.api.existing[("Job", INIT_JOB)])
    assert len(h.controller.queue) == 1  # queued by the write's answer, not by the dropped events
    await h.drain()
    assert h.api.run["status"]["phase"] == "Suspended"
    assert ("Job", INIT_JOB, {"spec": {"suspend": True}}) in h.api.patches


async def test_a_job_deleted_by_hand_is_created_once_again_and_its_new_creation_written() -> None:
    h = Harness(run_body())
    h.deliver_run("ADDED", run_body())
    await h.drain()
    job = h.api.existing[("Job", INIT_JOB)]
    h.deliver_run()
    h.index_job(job)
    # kubectl delete job: the index drops it, then job_event gets the DELETED version.
    h.now = T0 + datetime.timedelta(seconds=40)
    h.api.now = h.now
    del h.api.existing[("Job", INIT_JOB)]
    h.jobs[KEY] = []
    h.controller.child_event(NS, RUN, job=INIT_JOB, rv=h.api.next_rv())
    assert len(h.controller.queue) == 1
    await h.drain()
    again = h.api.existing[("Job", INIT_JOB)]
    assert [o["metadata"]["name"] for o in h.api.created if o["kind"] == "Job"] == [INIT_JOB, INIT_JOB]
    stage = h.stage()
    assert stage["attempts"] == 1 and stage["pendingSince"].startswith(ts(h.now)[:19])
    h.deliver_run()
    h.index_job(again)  # the new Job's ADDED: decided on already
    assert len(h.controller.queue) == 0
