"""Decide cases written to kill the mutants `make mutants` found surviving tests/operator/test_decide.py: the exact
status an invalid or rejected spec writes, which pod's exit names an OOM kill, the retry and pending-timeout
boundaries, a service timing out while a retry waits, what a finished run stops, and the services' create patches."""

from __future__ import annotations

import hashlib
from typing import Any

from test_decide import (
    DONE_INIT,
    SETTINGS,
    T0,
    apply,
    at,
    conds,
    created,
    deployment,
    job,
    pod,
    run_body,
    services_up,
    status_of,
    ts,
)

from purpcode_operator.decide import (
    CONDITION_TYPES,
    Create,
    Delete,
    EventSpec,
    Observed,
    Patch,
    StageFinished,
    decide,
    fmt_time,
    rejected_status,
)

ALL_DOWN = ["Running", "Succeeded", "Suspended"]


def _expect_conditions(
    d_status: dict[str, Any], now: str, failed: tuple[str, str], ready: tuple[str, str]
) -> None:
    """Every condition exact: Failed True and Ready False with their (reason, message), the others False/Failed."""
    got = {c["type"]: c for c in d_status["conditions"]}
    assert [c["type"] for c in d_status["conditions"]] == list(CONDITION_TYPES)
    expected = {
        "Failed": ("True", *failed),
        "Ready": ("False", *ready),
        **{t: ("False", "Failed", "") for t in ALL_DOWN},
    }
    for ctype, (value, reason, message) in expected.items():
        c = got[ctype]
        assert (c["status"], c["reason"], c.get("message", "")) == (value, reason, message), ctype
        assert (c["lastTransitionTime"], c["observedGeneration"]) == (now, 1), ctype


def test_an_invalid_spec_writes_exact_conditions_stops_unfinished_jobs_and_tears_down_services() -> None:
    body = run_body()
    body["spec"]["seed"] = -1
    jobs = {
        "r-init-1": job("r", "init", 1, state="complete"),
        "r-synthesis-1": job("r", "synthesis", 1),
    }
    d = decide(body, Observed(jobs=jobs, deployments=services_up()), at(30), SETTINGS)
    now = fmt_time(at(30))
    st = d.status or {}
    message = st["message"]
    assert message.startswith("invalid spec:\n") and "spec.seed: must be >= 0, got -1" in message
    assert (st["phase"], st["completionTime"], st["observedGeneration"]) == ("Failed", now, 1)
    _expect_conditions(st, now, ("InvalidSpec", message), ("InvalidSpec", message))
    digest = hashlib.sha256(message.encode()).hexdigest()[:12]
    assert d.events == [EventSpec("Warning", "InvalidSpec", message[:1024], f"InvalidSpec/1/{digest}")]
    # Only the unfinished Job is stopped (suspended, kept); both services go, the sandbox's policy with it.
    assert d.patches == [Patch("batch/v1", "Job", "r-synthesis-1", {"spec": {"suspend": True}})]
    assert d.deletes == [
        Delete("v1", "Service", "r-sandbox"),
        Delete("apps/v1", "Deployment", "r-sandbox"),
        Delete("networking.k8s.io/v1", "NetworkPolicy", "r-sandbox"),
        Delete("v1", "Service", "r-judge"),
        Delete("apps/v1", "Deployment", "r-judge"),
    ]
    assert not d.creates
    # A completion time already recorded is kept.
    body["status"] = {"phase": "Failed", "completionTime": ts(5)}
    d = decide(body, Observed(), at(30), SETTINGS)
    assert (d.status or {})["completionTime"] == ts(5)


def test_a_rejected_child_writes_exact_conditions_and_the_current_stage_message() -> None:
    body = run_body()
    body["status"] = {
        "phase": "Running",
        "currentStage": "synthesis",
        "completionTime": ts(3),
        "stages": {"initialize": {"phase": "Succeeded"}, "synthesis": {"phase": "Running", "message": "old"}},
    }
    st = rejected_status(body, "create Job r-synthesis-1: 422 Invalid", at(5))
    text = (
        "the API server rejected what this spec asks for: create Job r-synthesis-1: 422 Invalid; fix the spec "
        "(the run continues from where it stopped once its spec changes)"
    )
    assert (st["phase"], st["message"], st["completionTime"], st["observedGeneration"]) == (
        "Failed",
        text,
        ts(3),
        1,
    )
    assert st["stages"]["synthesis"]["message"] == text and st["stages"]["initialize"].get("message") is None
    _expect_conditions(st, fmt_time(at(5)), ("SpecRejected", text), ("SpecRejected", text))
    # A finished stage keeps its message; a run without a completion time gets now.
    body["status"] = {
        "phase": "Running",
        "currentStage": "synthesis",
        "stages": {"synthesis": {"phase": "Failed"}},
    }
    st = rejected_status(body, "x", at(5))
    assert st["stages"]["synthesis"].get("message") is None and st["completionTime"] == fmt_time(at(5))


def _failed_pod(
    name: str, created: float, phase: str, *states: dict[str, Any], last: bool = False
) -> dict[str, Any]:
    key = "lastState" if last else "state"
    statuses = [
        {"name": f"c{i}", key: {"terminated": s}, **({"state": {"running": {}}} if last else {})}
        for i, s in enumerate(states)
    ]
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": ts(created),
            "labels": {"batch.kubernetes.io/controller-uid": "job-synthesis-1"},
        },
        "status": {"phase": phase, "containerStatuses": statuses},
    }


def _last_attempt_fails(pods: list[dict[str, Any]]) -> tuple[str, str]:
    """(Failed reason, Failed message) when synthesis's only attempt ends BackoffLimitExceeded with these pods."""
    body = run_body()
    body["spec"]["stages"]["synthesis"]["backoffLimit"] = 0
    jobs = {**DONE_INIT, "r-synthesis-1": job("r", "synthesis", 1, state="failed")}
    body["status"] = {
        "phase": "Running",
        "stages": {
            "initialize": {"phase": "Succeeded", "attempts": 1},
            "synthesis": {"phase": "Running", "attempts": 1, "startTime": fmt_time(T0)},
        },
    }
    d = decide(body, Observed(jobs=jobs, pods=pods, deployments=services_up()), at(100), SETTINGS)
    failed = conds(d)["Failed"]
    return failed["reason"], failed["message"]


OOM = {"exitCode": 137, "reason": "OOMKilled", "message": "killed at step 12"}
ERR = {"exitCode": 1, "reason": "Error", "message": "Traceback: boom"}
DONE = {"exitCode": 0, "reason": "Completed", "message": "{}"}


def test_the_first_failed_pod_by_creation_names_an_oom_kill() -> None:
    # Listed newest first: the first-created failed pod (OOMKilled) decides, and its tail is the message.
    reason, message = _last_attempt_fails(
        [_failed_pod("p2", 20, "Failed", ERR), _failed_pod("p1", 10, "Failed", DONE, OOM)]
    )
    assert reason == "OOMKilled"
    assert message == (
        "stage synthesis failed after 1 attempt(s): OOMKilled: Job failed; exit code 137 (OOMKilled): killed at step 12"
    )
    # A container that exited 0 before the OOM-killed one in the same pod does not hide it.
    assert _last_attempt_fails([_failed_pod("p1", 10, "Failed", DONE, OOM)])[0] == "OOMKilled"


def test_an_oom_kill_in_a_pod_that_runs_again_is_not_the_failure_reason() -> None:
    # The first pod restarted after an OOM kill and is Running; the pod that failed exited with an error.
    running = _failed_pod("p1", 10, "Running", OOM, last=True)
    reason, message = _last_attempt_fails([running, _failed_pod("p2", 20, "Failed", ERR)])
    assert reason == "BackoffLimitExceeded"
    assert message.endswith("BackoffLimitExceeded: Job failed; exit code 1 (Error): Traceback: boom")


def _retry_waiting(next_retry: float) -> dict[str, Any]:
    body = run_body(pendingTimeoutSeconds=60)
    body["status"] = {
        "phase": "Running",
        "stages": {
            "initialize": {"phase": "Succeeded", "attempts": 1},
            "synthesis": {
                "phase": "Running",
                "attempts": 1,
                "startTime": fmt_time(T0),
                "nextRetryTime": fmt_time(at(next_retry)),
            },
        },
    }
    return body


FAILED_SYNTH = {**DONE_INIT, "r-synthesis-1": job("r", "synthesis", 1, state="failed")}


def test_the_next_attempt_starts_exactly_at_its_retry_time() -> None:
    d = decide(_retry_waiting(20), Observed(jobs=FAILED_SYNTH, deployments=services_up()), at(20), SETTINGS)
    assert ("Job", "r-synthesis-2") in created(d)
    assert status_of(d).stages["synthesis"].phase == "Running"


def test_a_service_that_never_comes_up_while_a_retry_waits_fails_the_run() -> None:
    deps = services_up()
    sandbox = deployment("r", "sandbox", available=0)
    sandbox["metadata"]["creationTimestamp"] = ts(0)
    deps["r-sandbox"] = sandbox
    d = decide(_retry_waiting(20), Observed(jobs=FAILED_SYNTH, deployments=deps), at(100), SETTINGS)
    st = status_of(d)
    assert (st.phase, st.stages["synthesis"].phase) == ("Failed", "Failed")
    failed = conds(d)["Failed"]
    assert failed["reason"] == "PendingTimeout"
    assert failed["message"] == (
        "stage synthesis: service sandbox had no ready replica for 100s (pendingTimeoutSeconds 60): "
        "deployment r-sandbox: no pod was created"
    )
    assert not any(kind == "Job" for kind, _ in created(d))


def test_pods_pending_exactly_the_timeout_fail_the_stage_with_its_record() -> None:
    body = run_body(pendingTimeoutSeconds=60)
    j = job("r", "init", 1, created=0)
    body["status"] = {
        "phase": "Running",
        "stages": {"initialize": {"phase": "Running", "attempts": 1, "startTime": fmt_time(T0)}},
    }
    p = pod(j, phase="Pending", created=0, waiting="ImagePullBackOff")
    d = decide(body, Observed(jobs={"r-init-1": j}, pods=[p]), at(59), SETTINGS)
    assert (conds(d)["Ready"]["status"], conds(d)["Ready"]["reason"]) == ("False", "PodsPending")
    assert status_of(d).stages["initialize"].phase == "Running"
    d = decide(apply(body, d), Observed(jobs={"r-init-1": j}, pods=[p]), at(60), SETTINGS)
    init = status_of(d).stages["initialize"]
    assert (init.phase, init.completion_time) == ("Failed", fmt_time(at(60)))
    assert init.message == (
        "stage initialize: job r-init-1: pods stayed Pending for 60s (pendingTimeoutSeconds 60): "
        'pod r-init-1-abcde: ImagePullBackOff: Back-off pulling image "x"'
    )
    assert d.finished == [StageFinished("initialize", "failed", 60.0)]


def test_a_job_found_after_a_crash_dates_the_stage_from_the_job() -> None:
    """No status was written before the crash: the stage and the run started when the first Job was created."""
    jobs = {"r-init-1": job("r", "init", 1, created=7)}
    d = decide(run_body(), Observed(jobs=jobs), at(30), SETTINGS)
    st = status_of(d)
    assert st.stages["initialize"].start_time == fmt_time(at(7)) and st.start_time == fmt_time(at(7))


def test_a_failed_run_stops_its_leftover_jobs_and_a_succeeded_one_does_not() -> None:
    jobs = {"r-init-1": job("r", "init", 1)}
    body = run_body()
    body["status"] = {"phase": "Failed", "completionTime": ts(1)}
    d = decide(body, Observed(jobs=jobs), at(5), SETTINGS)
    assert d.patches == [Patch("batch/v1", "Job", "r-init-1", {"spec": {"suspend": True}})]
    body["status"] = {"phase": "Succeeded", "completionTime": ts(1)}
    d = decide(body, Observed(jobs=jobs), at(5), SETTINGS)
    assert not d.patches and not d.deletes


def test_service_deployments_are_created_with_a_replica_patch_and_the_rest_without() -> None:
    body = apply(run_body(), decide(run_body(), Observed(), T0, SETTINGS))
    d = decide(body, Observed(jobs=DONE_INIT), at(10), SETTINGS)
    services = [c for c in d.creates if c.obj["kind"] in ("Deployment", "Service", "NetworkPolicy")]
    assert {c.obj["kind"] for c in services} == {"Deployment", "Service", "NetworkPolicy"}
    for c in services:
        if c.obj["kind"] == "Deployment":
            assert c.patch_if_exists == {"spec": {"replicas": 1}} and c.obj["spec"]["replicas"] == 1
            assert c.obj["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
        else:
            assert c.patch_if_exists is None, c.obj["kind"]
    assert isinstance(services[0], Create)


def test_a_service_timeout_during_a_retry_wait_records_the_stage_and_the_run_failure() -> None:
    deps = services_up()
    sandbox = deployment("r", "sandbox", available=0)
    sandbox["metadata"]["creationTimestamp"] = ts(0)
    deps["r-sandbox"] = sandbox
    observed = Observed(jobs=FAILED_SYNTH, deployments=deps)
    # Before the timeout: Ready says which service, the plain reason (no pod yet is not a failure reason).
    d = decide(_retry_waiting(20), observed, at(59), SETTINGS)
    assert status_of(d).phase == "Running" and conds(d)["Ready"]["reason"] == "ServicesNotReady"
    assert d.requeue_after == 1.0
    # Exactly at the timeout: the stage and the run fail, with their record and both Events.
    body = _retry_waiting(20)
    body["status"]["completionTime"] = ts(2)  # a time already recorded is kept
    d = decide(body, observed, at(60), SETTINGS)
    st = status_of(d)
    synth = st.stages["synthesis"]
    text = (
        "stage synthesis: service sandbox had no ready replica for 60s (pendingTimeoutSeconds 60): "
        "deployment r-sandbox: no pod was created"
    )
    assert (synth.phase, synth.completion_time, synth.message) == ("Failed", fmt_time(at(60)), text)
    assert (st.phase, st.message, st.completion_time) == ("Failed", text, ts(2))
    assert d.finished == [StageFinished("synthesis", "failed", 60.0)]
    assert [(e.type, e.reason, e.message, e.key) for e in d.events] == [
        ("Warning", "PendingTimeout", text, "ServiceTimeout/synthesis/sandbox"),
        ("Warning", "Failed", f"PendingTimeout: {text}", "RunFailed"),
    ]


def test_a_succeeded_stage_records_the_jobs_completion_time_in_the_status_format() -> None:
    body = run_body()
    body["status"] = {"phase": "Running", "stages": {"initialize": {"phase": "Running", "attempts": 1}}}
    j = job("r", "init", 1, state="complete", created=0)  # completionTime ts(5), second precision
    d = decide(body, Observed(jobs={"r-init-1": j}, deployments=services_up()), at(9), SETTINGS)
    assert status_of(d).stages["initialize"].completion_time == fmt_time(at(5)) == "2026-11-25T12:00:05.000Z"


def test_the_summary_is_the_first_json_object_of_a_successful_container() -> None:
    body = run_body()
    body["status"] = {"phase": "Running", "stages": {"initialize": {"phase": "Running", "attempts": 1}}}
    j = job("r", "init", 1, state="complete")
    p = _failed_pod(
        "p1",
        0,
        "Succeeded",
        {"exitCode": 1, "message": '{"summary": {"wrong": 1}}'},
        {"exitCode": 0, "message": "not json"},
        {"exitCode": 0, "message": "[1, 2]"},
        {"exitCode": 0, "message": '{"summary": {"rows": 12, "ok": true, "name": "x"}}'},
    )
    p["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] = "job-init-1"
    d = decide(body, Observed(jobs={"r-init-1": j}, pods=[p], deployments=services_up()), at(9), SETTINGS)
    assert status_of(d).stages["initialize"].summary == {"rows": 12.0}


def _pending_pod(role: str, *, gated: bool) -> dict[str, Any]:
    cond = (
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
        if gated
        else {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}
    )
    return {
        "metadata": {
            "name": f"r-{role}-x",
            "labels": {"purpcode.dev/role": role},
            "creationTimestamp": ts(1),
        },
        "status": {"phase": "Pending", "conditions": [cond]},
    }


def test_service_verdict_times_unschedulable_pods_of_a_queued_run_and_not_gated_ones() -> None:
    from purpcode_operator.decide import service_verdict

    dep = deployment("r", "judge", available=0)
    dep["metadata"]["creationTimestamp"] = ts(0)
    # Unschedulable (not gated) pods of a Kueue run: timed, with the scheduler's reason.
    v = service_verdict(dep, [_pending_pod("judge", gated=False)], queued=True)
    assert (v.pending, v.since, v.reason) == (True, ts(0), "Unschedulable")
    # Gated pods: untimed only when the run is queued.
    v = service_verdict(dep, [_pending_pod("judge", gated=True)], queued=True)
    assert (v.pending, v.reason) == (False, "WaitingForAdmission")
    assert service_verdict(dep, [_pending_pod("judge", gated=True)], queued=False).pending


def test_service_wait_is_timed_from_the_last_loss_of_availability_only() -> None:
    from purpcode_operator.decide import service_verdict

    dep = deployment("r", "judge", available=0)
    dep["metadata"]["creationTimestamp"] = ts(0)
    dep["status"]["conditions"] = [
        {"type": "Available", "status": "True", "lastTransitionTime": ts(90)},  # not a loss
        {"type": "Progressing", "status": "False", "lastTransitionTime": ts(80)},  # not availability
    ]
    assert service_verdict(dep, [], queued=False).since == ts(0)
    dep["status"]["conditions"].append({"type": "Available", "status": "False", "lastTransitionTime": ts(50)})
    assert service_verdict(dep, [], queued=False).since == ts(50)


def test_pending_verdict_of_a_job_without_pods_and_of_plain_pending_pods() -> None:
    from purpcode_operator.decide import PendingVerdict, pending_verdict

    assert pending_verdict([], ts(3)) == PendingVerdict(True, ts(3), "PendingTimeout", "no pod was created")
    plain = {
        "metadata": {"name": "p"},  # no creationTimestamp: the fallback time
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "Initialized", "status": "False", "reason": "X"}],
        },
    }
    assert pending_verdict([plain], ts(3)) == PendingVerdict(
        True, ts(3), "PendingTimeout", "pod p is Pending"
    )
    unsched = {
        "metadata": {"name": "q", "creationTimestamp": ts(1)},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "message": "m"}],
        },
    }
    assert pending_verdict([unsched], ts(3)) == PendingVerdict(
        True, ts(1), "Unschedulable", "pod q: Unschedulable: m"
    )


def test_a_job_without_pods_is_timed_from_its_creation_or_its_latest_resume() -> None:
    body = run_body(pendingTimeoutSeconds=60)
    body["status"] = {"phase": "Running", "stages": {"initialize": {"phase": "Running", "attempts": 1}}}
    j = job("r", "init", 1, created=0)
    del j["status"]["startTime"]
    d = decide(body, Observed(jobs={"r-init-1": j}), at(61), SETTINGS)
    assert conds(d)["Failed"]["reason"] == "PendingTimeout"  # timed from the Job's creation
    j["status"]["startTime"] = ts(40)  # resumed at 40: the Job controller reset startTime
    d = decide(body, Observed(jobs={"r-init-1": j}), at(61), SETTINGS)
    assert status_of(d).phase == "Running" and status_of(d).stages["initialize"].pending_since == fmt_time(
        at(40)
    )


def test_the_shortest_requeue_wins_and_none_is_negative() -> None:
    from purpcode_operator.decide import Decision, _seconds

    d = Decision(status=None)
    for s in (10.0, 5.0, 7.0):
        d.requeue(s)
    assert d.requeue_after == 5.0
    d.requeue(-3)
    assert d.requeue_after == 0.0
    assert (_seconds(ts(10), ts(4)), _seconds(None, ts(4)), _seconds(ts(1), ts(4))) == (0.0, 0.0, 3.0)


def test_ttl_deletes_the_run_exactly_when_it_expires() -> None:
    body = run_body(ttlSecondsAfterFinished=30)
    body["status"] = {"phase": "Succeeded", "completionTime": fmt_time(T0)}
    d = decide(body, Observed(), at(29), SETTINGS)
    assert not d.delete_run and d.requeue_after == 1.0
    d = decide(body, Observed(), at(30), SETTINGS)
    assert d.delete_run
    assert [(e.type, e.reason, e.key) for e in d.events] == [("Normal", "Expired", "TTLExpired")]


def test_a_new_attempt_says_why_the_run_is_not_ready_yet() -> None:
    d = decide(run_body(), Observed(), T0, SETTINGS)
    ready = conds(d)["Ready"]
    assert (ready["status"], ready["message"]) == (
        "False",
        f"job r-init-1: pods pending since {fmt_time(T0)}",
    )
    d = decide(run_body(queueName="team-a"), Observed(), T0, SETTINGS)
    ready = conds(d)["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "WaitingForAdmission",
        "waiting for Kueue to admit job r-init-1 (queue team-a)",
    )


def test_a_suspended_stage_whose_job_is_gone_is_created_again_on_resume() -> None:
    for spec, phase in (({"queueName": "team-a"}, "Pending"), ({}, "Running")):
        body = run_body(**spec)
        body["status"] = {
            "phase": "Suspended",
            "stages": {"initialize": {"phase": "Suspended", "attempts": 1, "jobName": "r-init-1"}},
        }
        d = decide(body, Observed(), at(5), SETTINGS)
        init = status_of(d).stages["initialize"]
        assert ("Job", "r-init-1") in created(d)
        assert (init.phase, init.message) == (phase, "attempt 1: job r-init-1 created again"), spec


def test_the_run_started_event_comes_when_the_first_stage_leaves_pending() -> None:
    body = run_body()
    body["status"] = {"phase": "Pending", "stages": {"initialize": {"phase": "Pending"}}}
    d = decide(body, Observed(), T0, SETTINGS)
    assert "RunStarted" in [e.key for e in d.events]
    # A run that ran before (a stage past Pending) and comes back to Running does not start again.
    body["status"] = {
        "phase": "Pending",
        "stages": {"initialize": {"phase": "Succeeded", "attempts": 1}, "synthesis": {"phase": "Pending"}},
    }
    d = decide(body, Observed(jobs=DONE_INIT, deployments=services_up()), T0, SETTINGS)
    assert status_of(d).phase == "Running" and "RunStarted" not in [e.key for e in d.events]


def test_pods_belong_to_a_job_by_its_uid_or_without_one_by_its_name() -> None:
    from purpcode_operator.decide import pods_of_job

    def p(**labels: str) -> dict[str, Any]:
        return {"metadata": {"labels": labels}}

    mine = p(**{"batch.kubernetes.io/controller-uid": "u1"})
    legacy = p(**{"controller-uid": "u1"})
    other = p(**{"batch.kubernetes.io/controller-uid": "u2", "batch.kubernetes.io/job-name": "j"})
    with_uid = {"metadata": {"name": "j", "uid": "u1"}}
    assert pods_of_job([mine, legacy, other], with_uid) == [mine, legacy]
    by_name = p(**{"batch.kubernetes.io/job-name": "j"})
    legacy_name = p(**{"job-name": "j"})
    other_name = p(**{"batch.kubernetes.io/job-name": "k", "controller-uid": "u1"})
    assert pods_of_job([by_name, legacy_name, other_name], {"metadata": {"name": "j"}}) == [
        by_name,
        legacy_name,
    ]


def test_a_retry_records_its_attempt_of_the_total_and_keeps_the_stage_start() -> None:
    body = _retry_waiting(20)
    body["spec"]["stages"]["synthesis"]["backoffLimit"] = 2
    d = decide(body, Observed(jobs=FAILED_SYNTH, deployments=services_up()), at(25), SETTINGS)
    synth = (d.status or {})["stages"]["synthesis"]
    assert synth == {
        "phase": "Running",
        "attempts": 2,
        "jobName": "r-synthesis-2",
        "startTime": fmt_time(T0),
        "message": "attempt 2/3: job r-synthesis-2",
        "summary": {},
    }
    assert d.retried == ["synthesis"]
    assert decide(run_body(), Observed(), T0, SETTINGS).retried == []  # a first attempt is not a retry


def test_a_scaled_down_service_is_scaled_back_up() -> None:
    deps = services_up()
    deps["r-sandbox"]["spec"]["replicas"] = 0
    deps["r-sandbox"]["status"]["availableReplicas"] = 0
    body = _retry_waiting(20)
    d = decide(body, Observed(jobs=FAILED_SYNTH, deployments=deps), at(25), SETTINGS)
    assert Patch("apps/v1", "Deployment", "r-sandbox", {"spec": {"replicas": 1}}) in d.patches
