"""The pure reconcile decision: every path from (run, observed children, now) to actions and status.

Why one file (past 800 lines): the tests of one pure function, one section per path, sharing its fixtures.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from support.run_specs import tiny_run

from purpcode_operator.api import PurpCodeRunStatus
from purpcode_operator.decide import Decision, Observed, Settings, decide, fmt_time, parse_time, prepare

T0 = datetime.datetime(2026, 11, 25, 12, 0, 0, tzinfo=datetime.UTC)
SETTINGS = Settings(retry_backoff_seconds=10, retry_backoff_max_seconds=100)
UID = "11111111-2222-4333-8444-555555555555"


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def ts(seconds: float) -> str:
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_body(name: str = "r", status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    doc = tiny_run(name, **spec)
    doc["metadata"].update(
        namespace="ns", uid=UID, generation=1, resourceVersion="10", creationTimestamp=ts(0)
    )
    if status is not None:
        doc["status"] = status
    return doc


def job(
    run: str,
    slug: str,
    attempt: int,
    *,
    state: str = "active",
    created: float = 0,
    suspend: bool = False,
    reason: str = "BackoffLimitExceeded",
    uid: str | None = None,
) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = []
    status: dict[str, Any] = {}
    if state == "complete":
        conditions = [{"type": "Complete", "status": "True", "lastTransitionTime": ts(created + 5)}]
        status["completionTime"] = ts(created + 5)
    elif state == "failed":
        conditions = [
            {
                "type": "Failed",
                "status": "True",
                "reason": reason,
                "message": "Job failed",
                "lastTransitionTime": ts(created + 5),
            }
        ]
    elif state == "active":
        status["active"] = 1
        status["startTime"] = ts(created)
    status["conditions"] = conditions
    return {
        "metadata": {
            "name": f"{run}-{slug}-{attempt}",
            "uid": uid or f"job-{slug}-{attempt}",
            "creationTimestamp": ts(created),
            "labels": {
                "purpcode.dev/run": run,
                "purpcode.dev/stage": slug,
                "purpcode.dev/attempt": str(attempt),
            },
            "ownerReferences": [{"uid": UID}],
        },
        "spec": {"suspend": suspend},
        "status": status,
    }


def pod(
    job_obj: dict[str, Any],
    *,
    phase: str = "Running",
    created: float = 0,
    waiting: str | None = None,
    unschedulable: bool = False,
    terminated: dict[str, Any] | None = None,
) -> dict[str, Any]:
    cs: dict[str, Any] = {"name": "stage", "state": {}}
    if waiting:
        cs["state"] = {"waiting": {"reason": waiting, "message": 'Back-off pulling image "x"'}}
    if terminated:
        cs["state"] = {"terminated": terminated}
    conds = []
    if unschedulable:
        conds.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            }
        )
    labels = dict(job_obj["metadata"]["labels"])
    labels["batch.kubernetes.io/controller-uid"] = job_obj["metadata"]["uid"]
    labels["purpcode.dev/role"] = "stage"
    return {
        "metadata": {
            "name": job_obj["metadata"]["name"] + "-abcde",
            "labels": labels,
            "creationTimestamp": ts(created),
        },
        "status": {"phase": phase, "conditions": conds, "containerStatuses": [cs]},
    }


def deployment(run: str, role: str, available: int = 1, replicas: int = 1) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{run}-{role}",
            "uid": f"dep-{role}",
            "ownerReferences": [{"uid": UID}],
            "labels": {"purpcode.dev/run": run, "purpcode.dev/role": role},
        },
        "spec": {"replicas": replicas},
        "status": {"availableReplicas": available},
    }


def apply(body: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """The run as it is after the decision's status was written."""
    new = copy.deepcopy(body)
    new["status"] = decision.status
    return new


def created(decision: Decision) -> list[tuple[str, str]]:
    return [(c.obj["kind"], c.obj["metadata"]["name"]) for c in decision.creates]


def status_of(decision: Decision) -> PurpCodeRunStatus:
    return PurpCodeRunStatus.model_validate(decision.status, by_alias=True, by_name=False)


def conds(decision: Decision) -> dict[str, Any]:
    return {c["type"]: c for c in (decision.status or {})["conditions"]}


def services_up(run: str = "r") -> dict[str, dict[str, Any]]:
    return {f"{run}-sandbox": deployment(run, "sandbox"), f"{run}-judge": deployment(run, "judge")}


# --------------------------------------------------------------------------------------------- tests


def test_a_new_run_starts_its_first_stage() -> None:
    d = decide(run_body(), Observed(), T0, SETTINGS)
    assert created(d) == [
        ("PersistentVolumeClaim", "r-artifacts"),
        ("Job", "r-init-1"),
    ]
    st = status_of(d)
    assert st.phase == "Running" and st.current_stage == "initialize" and st.start_time == fmt_time(T0)
    init = st.stages["initialize"]
    assert (init.phase, init.attempts, init.job_name) == ("Running", 1, "r-init-1")
    assert [s for s in st.stages] == ["initialize", "synthesis", "ruleLearning", "rl", "evaluation", "report"]
    assert {e.reason for e in d.events} == {"StageStarted", "Running"}
    assert conds(d)["Running"]["status"] == "True"
    # Its pods are pending (as the next decision, on the created Job, will say): not Ready yet.
    assert (conds(d)["Ready"]["status"], conds(d)["Ready"]["reason"]) == ("False", "PodsPending")
    assert st.observed_generation == 1
    assert d.requeue_after is None and not d.deletes and not d.patches


def test_the_decision_is_a_pure_function() -> None:
    body = run_body()
    observed = Observed(jobs={"r-init-1": job("r", "init", 1, state="complete")})
    assert decide(body, observed, T0, SETTINGS) == decide(copy.deepcopy(body), observed, T0, SETTINGS)


def test_stage_waits_for_its_services_then_starts() -> None:
    body = apply(run_body(), decide(run_body(), Observed(), T0, SETTINGS))
    done = {"r-init-1": job("r", "init", 1, state="complete")}
    d = decide(body, Observed(jobs=done), at(10), SETTINGS)
    names = created(d)
    assert ("Deployment", "r-sandbox") in names and ("Deployment", "r-judge") in names
    assert ("NetworkPolicy", "r-sandbox") in names and ("Service", "r-judge") in names
    assert not any(kind == "Job" for kind, _ in names)  # the Job waits for ready services
    st = status_of(d)
    assert st.stages["initialize"].phase == "Succeeded" and st.stages["synthesis"].phase == "Pending"
    assert conds(d)["Ready"]["reason"] == "ServicesNotReady"
    assert d.finished and d.finished[0].stage == "initialize" and d.finished[0].result == "succeeded"

    body = apply(body, d)
    d = decide(body, Observed(jobs=done, deployments=services_up()), at(20), SETTINGS)
    assert ("Job", "r-synthesis-1") in created(d)
    assert status_of(d).stages["synthesis"].phase == "Running"


def test_failed_attempt_is_retried_after_backoff() -> None:
    body = run_body()
    jobs = {"r-init-1": job("r", "init", 1, state="failed")}
    failing = pod(
        jobs["r-init-1"],
        phase="Failed",
        terminated={"exitCode": 2, "reason": "Error", "message": "a\nb\nOSError: hub unreachable"},
    )
    body["status"] = {
        "stages": {
            "initialize": {
                "phase": "Running",
                "attempts": 1,
                "jobName": "r-init-1",
                "startTime": fmt_time(T0),
            }
        },
        "phase": "Running",
    }
    d = decide(body, Observed(jobs=jobs, pods=[failing]), at(10), SETTINGS)
    init = status_of(d).stages["initialize"]
    assert init.attempts == 1 and init.next_retry_time == fmt_time(at(20))  # 10 s backoff after attempt 1
    assert "OSError: hub unreachable" in (init.message or "") and "exit code 2" in (init.message or "")
    assert d.requeue_after == pytest.approx(10)
    assert not any(kind == "Job" for kind, _ in created(d))
    (ev,) = [e for e in d.events if e.reason == "StageAttemptFailed"]
    assert ev.type == "Warning" and "OSError: hub unreachable" in ev.message

    body = apply(body, d)
    d = decide(body, Observed(jobs=jobs, pods=[failing]), at(15), SETTINGS)
    assert d.requeue_after == pytest.approx(5) and not created(d)
    d = decide(body, Observed(jobs=jobs, pods=[failing]), at(21), SETTINGS)
    assert ("Job", "r-init-2") in created(d)
    init = status_of(d).stages["initialize"]
    assert init.attempts == 2 and init.next_retry_time is None and init.job_name == "r-init-2"
    assert d.retried == ["initialize"]


def test_backoff_doubles_and_is_capped() -> None:
    assert [SETTINGS.backoff(n) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 80, 100]


def test_last_attempt_fails_the_run_with_the_reason_and_the_message_tail() -> None:
    body = run_body()
    body["spec"]["stages"]["synthesis"]["backoffLimit"] = 0
    jobs = {
        "r-init-1": job("r", "init", 1, state="complete"),
        "r-synthesis-1": job("r", "synthesis", 1, state="failed", reason="DeadlineExceeded"),
    }
    body["status"] = {
        "phase": "Running",
        "stages": {
            "initialize": {"phase": "Succeeded", "attempts": 1},
            "synthesis": {"phase": "Running", "attempts": 1, "startTime": fmt_time(T0)},
        },
    }
    d = decide(body, Observed(jobs=jobs, deployments=services_up()), at(100), SETTINGS)
    st = status_of(d)
    assert st.phase == "Failed" and st.stages["synthesis"].phase == "Failed"
    failed = conds(d)["Failed"]
    assert failed["status"] == "True" and failed["reason"] == "DeadlineExceeded"
    assert "stage synthesis failed after 1 attempt(s)" in failed["message"]
    assert conds(d)["Ready"]["status"] == "False" and conds(d)["Running"]["status"] == "False"
    deleted = {(x.kind, x.name) for x in d.deletes}
    assert ("Deployment", "r-sandbox") in deleted and ("Deployment", "r-judge") in deleted
    assert ("NetworkPolicy", "r-sandbox") in deleted
    assert {e.reason for e in d.events} >= {"StageFailed", "Failed"}
    assert d.finished[-1].result == "failed" and d.finished[-1].seconds == pytest.approx(100)


@pytest.mark.parametrize(
    ("pod_kwargs", "reason"),
    [
        ({"phase": "Pending", "waiting": "ImagePullBackOff"}, "ImagePullBackOff"),
        ({"phase": "Pending", "unschedulable": True}, "Unschedulable"),
    ],
)
def test_pods_pending_too_long_fail_the_stage(pod_kwargs: dict[str, Any], reason: str) -> None:
    body = run_body(pendingTimeoutSeconds=60)
    j = job("r", "init", 1, created=0)
    body["status"] = {"phase": "Running", "stages": {"initialize": {"phase": "Running", "attempts": 1}}}
    p = pod(j, created=0, **pod_kwargs)
    d = decide(body, Observed(jobs={"r-init-1": j}, pods=[p]), at(45), SETTINGS)
    st = status_of(d)
    assert st.phase == "Running" and st.stages["initialize"].pending_since == fmt_time(T0)
    assert d.requeue_after == pytest.approx(15)
    assert conds(d)["Ready"]["reason"] == "PodsPending"

    d = decide(apply(body, d), Observed(jobs={"r-init-1": j}, pods=[p]), at(61), SETTINGS)
    st = status_of(d)
    assert st.phase == "Failed"
    failed = conds(d)["Failed"]
    assert failed["reason"] == reason and "pendingTimeoutSeconds 60" in failed["message"]
    assert [(x.kind, x.name, x.body) for x in d.patches] == [("Job", "r-init-1", {"spec": {"suspend": True}})]


def test_running_pods_are_not_pending() -> None:
    body = run_body(pendingTimeoutSeconds=60)
    j = job("r", "init", 1)
    body["status"] = {"phase": "Running", "stages": {"initialize": {"phase": "Running", "attempts": 1}}}
    d = decide(body, Observed(jobs={"r-init-1": j}, pods=[pod(j)]), at(1000), SETTINGS)
    assert status_of(d).phase == "Running" and d.requeue_after is None and not d.patches


def test_suspend_stops_the_job_and_scales_services_to_zero_then_resume() -> None:
    body = run_body(suspend=True)
    jobs = {"r-init-1": job("r", "init", 1, state="complete"), "r-synthesis-1": job("r", "synthesis", 1)}
    body["status"] = {
        "phase": "Running",
        "stages": {
            "initialize": {"phase": "Succeeded", "attempts": 1},
            "synthesis": {"phase": "Running", "attempts": 1},
        },
    }
    observed = Observed(jobs=jobs, deployments=services_up())
    d = decide(body, observed, at(5), SETTINGS)
    assert status_of(d).phase == "Suspended" and status_of(d).stages["synthesis"].phase == "Suspended"
    patches = {(p.kind, p.name): p.body for p in d.patches}
    assert patches[("Job", "r-synthesis-1")] == {"spec": {"suspend": True}}
    assert patches[("Deployment", "r-sandbox")] == {"spec": {"replicas": 0}}
    assert patches[("Deployment", "r-judge")] == {"spec": {"replicas": 0}}
    assert conds(d)["Suspended"]["status"] == "True"
    assert [e.reason for e in d.events] == ["Suspended"]

    suspended = apply(body, d)
    suspended["spec"]["suspend"] = False
    jobs["r-synthesis-1"] = job("r", "synthesis", 1, suspend=True)
    down = {k: deployment("r", k.split("-")[1], available=0, replicas=0) for k in services_up()}
    d = decide(suspended, Observed(jobs=jobs, deployments=down), at(50), SETTINGS)
    patches = {(p.kind, p.name): p.body for p in d.patches}
    assert patches[("Job", "r-synthesis-1")] == {"spec": {"suspend": False}}
    assert patches[("Deployment", "r-sandbox")] == {"spec": {"replicas": 1}}
    assert status_of(d).phase == "Running" and "Resumed" in [e.reason for e in d.events]
    assert not created(d)  # the same Job continues


def test_kueue_jobs_are_created_suspended_and_wait_for_admission() -> None:
    body = run_body(queueName="team-a")
    d = decide(body, Observed(), T0, SETTINGS)
    (jobobj,) = [c.obj for c in d.creates if c.obj["kind"] == "Job"]
    assert jobobj["spec"]["suspend"] is True
    assert jobobj["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    d = decide(
        apply(body, d), Observed(jobs={"r-init-1": job("r", "init", 1, suspend=True)}), at(5), SETTINGS
    )
    assert not d.patches  # never unsuspends a queued Job itself: Kueue does
    assert status_of(d).phase == "Pending" and conds(d)["Ready"]["reason"] == "WaitingForAdmission"


def test_invalid_spec_fails_with_one_line_per_problem_and_creates_nothing() -> None:
    body = run_body()
    body["spec"]["seed"] = -1
    body["spec"]["stages"]["rl"]["bogusField"] = True
    d = decide(body, Observed(), T0, SETTINGS)
    assert not d.creates
    st = status_of(d)
    assert st.phase == "Failed"
    failed = conds(d)["Failed"]
    assert failed["reason"] == "InvalidSpec"
    assert "spec.seed: must be >= 0, got -1" in failed["message"]
    assert "spec.stages.rl.bogusField: unknown field" in failed["message"]
    assert [e.reason for e in d.events] == ["InvalidSpec"]


def test_deleted_run_does_nothing() -> None:
    body = run_body()
    body["metadata"]["deletionTimestamp"] = ts(1)
    d = decide(body, Observed(jobs={"r-init-1": job("r", "init", 1)}), T0, SETTINGS)
    assert d.status is None and not d.creates and not d.patches and not d.deletes


def test_restart_finds_a_job_the_status_does_not_know_yet() -> None:
    """Killed after creating attempt 2 but before writing the status: no attempt is created twice."""
    body = run_body()
    body["status"] = {
        "phase": "Running",
        "stages": {
            "initialize": {
                "phase": "Running",
                "attempts": 1,
                "nextRetryTime": fmt_time(at(20)),
                "startTime": fmt_time(T0),
            }
        },
    }
    jobs = {"r-init-1": job("r", "init", 1, state="failed"), "r-init-2": job("r", "init", 2, created=21)}
    d = decide(body, Observed(jobs=jobs), at(25), SETTINGS)
    assert not any(kind == "Job" for kind, _ in created(d))
    init = status_of(d).stages["initialize"]
    assert init.attempts == 2 and init.next_retry_time is None and init.job_name == "r-init-2"
    assert [e.key for e in d.events if e.reason == "StageStarted"] == ["StageStarted/initialize/2"]


def test_a_status_ahead_of_the_index_recreates_the_same_job_name() -> None:
    """Status written, Job not seen yet (or lost): the same name is created again (409 if it exists)."""
    body = run_body()
    body["status"] = {"phase": "Running", "stages": {"initialize": {"phase": "Running", "attempts": 1}}}
    d = decide(body, Observed(), T0, SETTINGS)
    assert ("Job", "r-init-1") in created(d) and not d.events


def test_jobs_of_another_stage_label_do_not_count() -> None:
    body = run_body()
    d = decide(body, Observed(jobs={"r-rl-3": job("r", "rl", 3)}), T0, SETTINGS)
    assert ("Job", "r-init-1") in created(d)


def test_success_runs_to_the_end_and_ttl_deletes_later() -> None:
    body = run_body(ttlSecondsAfterFinished=30)
    slugs = ["init", "synthesis", "rule-learning", "rl", "evaluation", "report"]
    names = ["initialize", "synthesis", "ruleLearning", "rl", "evaluation", "report"]
    jobs = {f"r-{s}-1": job("r", s, 1, state="complete") for s in slugs}
    body["status"] = {"phase": "Running", "stages": {n: {"phase": "Running", "attempts": 1} for n in names}}
    d = decide(body, Observed(jobs=jobs, deployments=services_up()), at(100), SETTINGS)
    st = status_of(d)
    assert st.phase == "Succeeded" and st.completion_time == fmt_time(at(100)) and st.current_stage is None
    assert conds(d)["Succeeded"]["status"] == "True"
    assert {(x.kind, x.name) for x in d.deletes} >= {("Deployment", "r-sandbox"), ("Deployment", "r-judge")}
    assert d.requeue_after == pytest.approx(30) and not d.delete_run

    done = apply(body, d)
    d = decide(done, Observed(jobs=jobs), at(120), SETTINGS)
    assert d.requeue_after == pytest.approx(10) and not d.delete_run and d.status == done["status"]
    d = decide(done, Observed(jobs=jobs), at(131), SETTINGS)
    assert d.delete_run and [e.reason for e in d.events] == ["Expired"]


def test_conditions_keep_their_transition_time_while_unchanged() -> None:
    body = run_body()
    d1 = decide(body, Observed(), T0, SETTINGS)
    body2 = apply(body, d1)
    j = job("r", "init", 1)
    d2 = decide(body2, Observed(jobs={"r-init-1": j}, pods=[pod(j)]), at(30), SETTINGS)
    t1 = {c["type"]: c["lastTransitionTime"] for c in d1.status["conditions"]}  # type: ignore[index]
    t2 = {c["type"]: c["lastTransitionTime"] for c in d2.status["conditions"]}  # type: ignore[index]
    ready = {c["type"]: c["status"] for c in d2.status["conditions"]}["Ready"]  # type: ignore[index]
    # Ready flipped (pods pending at creation, running now); the others did not change and keep their time.
    assert ready == "True" and parse_time(t2.pop("Ready")) == at(30) and parse_time(t1.pop("Ready")) == T0
    assert t1 == t2
    assert parse_time(t1["Running"]) == T0


def test_a_stage_disabled_mid_run_is_skipped() -> None:
    body = run_body()
    body["status"] = {
        "phase": "Running",
        "stages": {
            "initialize": {"phase": "Succeeded", "attempts": 1},
            "synthesis": {"phase": "Pending", "attempts": 0},
            "ruleLearning": {"phase": "Pending", "attempts": 0},
        },
    }
    body["spec"]["stages"]["synthesis"]["enabled"] = False
    d = decide(
        body,
        Observed(jobs={"r-init-1": job("r", "init", 1, state="complete")}, deployments=services_up()),
        at(5),
        SETTINGS,
    )
    st = status_of(d)
    assert st.stages["synthesis"].phase == "Skipped" and st.current_stage == "ruleLearning"
    assert ("Job", "r-rule-learning-1") in created(d)


def test_stage_summary_comes_from_the_termination_message() -> None:
    body = run_body()
    body["status"] = {"phase": "Running", "stages": {"initialize": {"phase": "Running", "attempts": 1}}}
    j = job("r", "init", 1, state="complete")
    p = pod(
        j, phase="Succeeded", terminated={"exitCode": 0, "message": '{"summary": {"rows": 12, "bad": "x"}}'}
    )
    d = decide(body, Observed(jobs={"r-init-1": j}, pods=[p], deployments=services_up()), at(9), SETTINGS)
    assert status_of(d).stages["initialize"].summary == {"rows": 12.0}


def test_cluster_defaults_fill_what_the_spec_leaves_out() -> None:
    shared = Settings(
        judge_url="http://judge.shared:8000/v1",
        judge_model="qwen-judge",
        judge_api_key_secret="judge-key",
        sandbox_runtime_class_name="gvisor",
    )
    body = run_body()
    del body["spec"]["services"]["judge"]
    run, plan = prepare(body, shared)
    assert run.spec.services.judge.url == "http://judge.shared:8000/v1" and not plan.judge.deploy
    assert run.spec.services.judge.model_name() == "qwen-judge"
    assert run.spec.services.judge.api_key_secret_ref is not None
    assert run.spec.services.judge.api_key_secret_ref.key == "api-key"
    assert run.spec.services.sandbox.runtime_class_name == "gvisor"
    stage = plan.stage("synthesis")
    assert stage.config.services.judge_url == "http://judge.shared:8000/v1"
    d = decide(body, Observed(jobs={"r-init-1": job("r", "init", 1, state="complete")}), at(1), shared)
    assert ("Deployment", "r-judge") not in created(d)  # no judge of its own
    # A spec that names its judge keeps it.
    run, plan = prepare(run_body(), shared)
    assert plan.judge.deploy and run.spec.services.sandbox.runtime_class_name == "gvisor"


def test_the_status_is_stable_while_nothing_changes() -> None:
    """A status write is a watch event is a reconcile: an unchanged world must give an unchanged status."""
    body = run_body(pendingTimeoutSeconds=600)
    j = job("r", "init", 1)
    pending = pod(j, phase="Pending", waiting="ImagePullBackOff")
    first = decide(body, Observed(jobs={"r-init-1": j}, pods=[pending]), at(5), SETTINGS)
    body = apply(body, first)
    for t in (6, 30, 300):
        again = decide(body, Observed(jobs={"r-init-1": j}, pods=[pending]), at(t), SETTINGS)
        assert again.status == body["status"] and not again.creates and not again.events


# --------------------------------------------------------------------------------------------- service waits (issue 16)
# Deployment, ReplicaSet-derived and Pod statuses as kube-controller-manager and the kubelet write them.


def real_deployment(
    role: str, *, created: float, conditions: list[dict[str, Any]], replicas: int = 1
) -> dict[str, Any]:
    """A Deployment with no available replica, as the Deployment controller reports it."""
    return {
        "metadata": {
            "name": f"r-{role}",
            "uid": f"dep-{role}",
            "creationTimestamp": ts(created),
            "generation": 1,
            "ownerReferences": [{"uid": UID}],
            "labels": {"purpcode.dev/run": "r", "purpcode.dev/role": role},
        },
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": 1, "unavailableReplicas": replicas, "conditions": conditions},
    }


def unavailable(at_s: float) -> dict[str, Any]:
    return {
        "type": "Available",
        "status": "False",
        "reason": "MinimumReplicasUnavailable",
        "message": "Deployment does not have minimum availability.",
        "lastUpdateTime": ts(at_s),
        "lastTransitionTime": ts(at_s),
    }


def progressing(at_s: float, role: str) -> dict[str, Any]:
    return {
        "type": "Progressing",
        "status": "True",
        "reason": "ReplicaSetUpdated",
        "message": f'ReplicaSet "r-{role}-5d8f7c9b4" is progressing.',
        "lastUpdateTime": ts(at_s),
        "lastTransitionTime": ts(at_s),
    }


PSA_REFUSAL = (
    'pods "r-judge-5d8f7c9b4-x2x7q" is forbidden: violates PodSecurity "restricted:latest": '
    'seccompProfile (pod or container "judge" must set securityContext.seccompProfile.type to '
    '"RuntimeDefault" or "Localhost")'
)


def replica_failure(at_s: float) -> dict[str, Any]:
    """The new ReplicaSet's condition, copied into the Deployment's by the Deployment controller."""
    return {
        "type": "ReplicaFailure",
        "status": "True",
        "reason": "FailedCreate",
        "message": PSA_REFUSAL,
        "lastUpdateTime": ts(at_s),
        "lastTransitionTime": ts(at_s),
    }


def crashlooping_pod(role: str, *, created: float) -> dict[str, Any]:
    """Phase Running, not ready, its container waiting in CrashLoopBackOff after exiting 1 four times."""
    return {
        "metadata": {
            "name": f"r-{role}-5d8f7c9b4-x2x7q",
            "creationTimestamp": ts(created),
            "labels": {
                "purpcode.dev/run": "r",
                "purpcode.dev/role": role,
                "pod-template-hash": "5d8f7c9b4",
            },
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {
                    "type": "PodReadyToStartContainers",
                    "status": "True",
                    "lastTransitionTime": ts(created + 2),
                },
                {"type": "Initialized", "status": "True", "lastTransitionTime": ts(created + 1)},
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "ContainersNotReady",
                    "message": f"containers with unready status: [{role}]",
                    "lastTransitionTime": ts(created + 1),
                },
                {
                    "type": "ContainersReady",
                    "status": "False",
                    "reason": "ContainersNotReady",
                    "message": f"containers with unready status: [{role}]",
                    "lastTransitionTime": ts(created + 1),
                },
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(created)},
            ],
            "containerStatuses": [
                {
                    "name": role,
                    "ready": False,
                    "started": False,
                    "restartCount": 4,
                    "image": "ghcr.io/purpcode-k8s/trainer:0.1.0",
                    "imageID": "ghcr.io/purpcode-k8s/trainer@sha256:0123",
                    "containerID": "containerd://abc",
                    "state": {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off 1m20s restarting failed container={role} "
                            f"pod=r-{role}-5d8f7c9b4-x2x7q_ns(1234)",
                        }
                    },
                    "lastState": {
                        "terminated": {
                            "exitCode": 1,
                            "reason": "Error",
                            "message": "OSError: Qwen/Qwen2.5-32B-Instruct is not a local folder",
                            "startedAt": ts(created + 30),
                            "finishedAt": ts(created + 35),
                            "containerID": "containerd://abc",
                        }
                    },
                }
            ],
        },
    }


def waiting_for_services(**spec: Any) -> dict[str, Any]:
    body = run_body(pendingTimeoutSeconds=300, **spec)
    body["status"] = {
        "phase": "Running",
        "stages": {"initialize": {"phase": "Succeeded", "attempts": 1}, "synthesis": {"phase": "Pending"}},
    }
    return body


DONE_INIT = {"r-init-1": job("r", "init", 1, state="complete")}


def test_a_service_the_replicaset_cannot_create_pods_for_fails_the_run_at_the_timeout_with_the_reason() -> (
    None
):
    body = waiting_for_services()
    deps = {
        "r-sandbox": deployment("r", "sandbox"),
        "r-judge": real_deployment(
            "judge", created=10, conditions=[unavailable(10), replica_failure(11), progressing(10, "judge")]
        ),
    }
    observed = Observed(jobs=DONE_INIT, deployments=deps)  # no judge pod exists at all
    d = decide(body, observed, at(100), SETTINGS)
    ready = conds(d)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ReplicaFailure")
    assert "FailedCreate" in ready["message"] and "violates PodSecurity" in ready["message"]
    (ev,) = [e for e in d.events if e.reason == "ReplicaFailure"]
    assert ev.type == "Warning" and "violates PodSecurity" in ev.message
    assert d.requeue_after == pytest.approx(210)  # timed from the Deployment's creation (t=10), not from now
    assert status_of(d).stages["synthesis"].pending_since == fmt_time(at(10))
    assert not any(c.obj["kind"] == "Job" for c in d.creates)

    body = apply(body, d)
    again = decide(body, observed, at(150), SETTINGS)
    assert not [e for e in again.events if e.reason == "ReplicaFailure"]  # reported once, not every reconcile
    assert again.status == d.status  # nothing changes while nothing changes

    d = decide(body, observed, at(311), SETTINGS)
    st = status_of(d)
    assert st.phase == "Failed" and st.stages["synthesis"].phase == "Failed"
    failed = conds(d)["Failed"]
    assert failed["reason"] == "ReplicaFailure"
    assert "service judge" in failed["message"] and "pendingTimeoutSeconds 300" in failed["message"]
    assert "violates PodSecurity" in failed["message"]
    assert {e.reason for e in d.events} >= {"ReplicaFailure", "Failed"}
    assert ("Deployment", "r-judge") in {(x.kind, x.name) for x in d.deletes}


def test_a_crash_looping_service_pod_fails_the_run_with_its_last_error() -> None:
    body = waiting_for_services()
    deps = {
        "r-sandbox": deployment("r", "sandbox"),
        "r-judge": real_deployment("judge", created=0, conditions=[unavailable(0), progressing(0, "judge")]),
    }
    pods = [crashlooping_pod("judge", created=1)]
    observed = Observed(jobs=DONE_INIT, deployments=deps, pods=pods)
    d = decide(body, observed, at(200), SETTINGS)
    ready = conds(d)["Ready"]
    assert ready["reason"] == "CrashLoopBackOff"
    assert "restarted 4 times" in ready["message"] and "last exit code 1 (Error)" in ready["message"]
    assert "is not a local folder" in ready["message"]
    assert [e.reason for e in d.events if e.type == "Warning"] == ["CrashLoopBackOff"]
    assert d.requeue_after == pytest.approx(100)

    d = decide(apply(body, d), observed, at(301), SETTINGS)
    failed = conds(d)["Failed"]
    assert status_of(d).phase == "Failed" and failed["reason"] == "CrashLoopBackOff"
    assert "is not a local folder" in failed["message"]


def test_a_service_pod_that_runs_and_starts_up_is_not_timed() -> None:
    body = waiting_for_services()
    deps = {
        "r-sandbox": deployment("r", "sandbox"),
        "r-judge": real_deployment("judge", created=0, conditions=[unavailable(0), progressing(0, "judge")]),
    }
    loading = crashlooping_pod("judge", created=1)
    loading["status"]["containerStatuses"][0].update(
        restartCount=0, state={"running": {"startedAt": ts(2)}}, lastState={}
    )
    d = decide(body, Observed(jobs=DONE_INIT, deployments=deps, pods=[loading]), at(5000), SETTINGS)
    assert status_of(d).phase == "Running" and conds(d)["Ready"]["reason"] == "ServicesNotReady"
    assert status_of(d).stages["synthesis"].pending_since is None and not d.events


def test_the_service_wait_restarts_when_a_service_is_scaled_up_again() -> None:
    # Created long ago, scaled to zero while suspended, scaled back at t=1000: the wait counts from t=1000.
    body = waiting_for_services()
    deps = {
        "r-sandbox": deployment("r", "sandbox"),
        "r-judge": real_deployment(
            "judge", created=0, conditions=[unavailable(1000), progressing(0, "judge")]
        ),
    }
    d = decide(body, Observed(jobs=DONE_INIT, deployments=deps), at(1100), SETTINGS)
    assert status_of(d).phase == "Running" and d.requeue_after == pytest.approx(200)


def test_service_pods_held_by_kueue_wait_for_admission_untimed() -> None:
    body = waiting_for_services(queueName="team-a")
    deps = {
        "r-sandbox": deployment("r", "sandbox"),
        "r-judge": real_deployment("judge", created=0, conditions=[unavailable(0), progressing(0, "judge")]),
    }
    gated = crashlooping_pod("judge", created=1)
    gated["status"] = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "SchedulingGated",
                "message": "Scheduling is blocked due to non-empty scheduling gates",
            }
        ],
    }
    d = decide(body, Observed(jobs=DONE_INIT, deployments=deps, pods=[gated]), at(5000), SETTINGS)
    assert status_of(d).phase != "Failed" and conds(d)["Ready"]["reason"] == "WaitingForAdmission"


def test_a_child_the_api_server_rejects_fails_the_run_until_the_spec_changes() -> None:
    from purpcode_operator.decide import rejected_status

    body = waiting_for_services()
    server = 'Job.batch "r-synthesis-1" is invalid: spec.template.spec.priorityClassName: Invalid value'
    body["status"] = rejected_status(body, f"create Job r-synthesis-1: 422 Invalid: {server}", at(5))
    failed = conds(Decision(status=body["status"]))["Failed"]
    assert (failed["status"], failed["reason"]) == ("True", "SpecRejected") and server in failed["message"]
    observed = Observed(jobs=DONE_INIT, deployments=services_up())
    # The same generation: terminal (no create, services torn down), not retried.
    d = decide(body, observed, at(10), SETTINGS)
    assert not d.creates and status_of(d).phase == "Failed"
    assert ("Deployment", "r-judge") in {(x.kind, x.name) for x in d.deletes}
    # An edited spec (a new generation) continues the run where it stopped.
    body = apply(body, d)
    body["metadata"]["generation"] = 2
    d = decide(body, observed, at(20), SETTINGS)
    assert ("Job", "r-synthesis-1") in created(d) and status_of(d).phase == "Running"


def kueue_job(slug: str, attempt: int, **kwargs: Any) -> dict[str, Any]:
    j = job("r", slug, attempt, **kwargs)
    j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = "team-a"
    return j


def test_a_kueue_job_is_stopped_by_deleting_it_never_by_flipping_suspend() -> None:
    # Suspending the run: the admitted, running Kueue Job is deleted (Kueue would un-suspend it).
    body = run_body(queueName="team-a", suspend=True)
    jobs = {"r-init-1": kueue_job("init", 1, state="complete"), "r-synthesis-1": kueue_job("synthesis", 1)}
    body["status"] = {
        "phase": "Running",
        "stages": {
            "initialize": {"phase": "Succeeded", "attempts": 1},
            "synthesis": {"phase": "Running", "attempts": 1},
        },
    }
    d = decide(body, Observed(jobs=jobs, deployments=services_up()), at(5), SETTINGS)
    assert ("Job", "r-synthesis-1") in {(x.kind, x.name) for x in d.deletes}
    assert not [p for p in d.patches if p.kind == "Job"]
    assert status_of(d).stages["synthesis"].phase == "Suspended"

    # While suspended and deleted: nothing is created; on resume the same attempt's Job is created again.
    body = apply(body, d)
    del jobs["r-synthesis-1"]
    d = decide(body, Observed(jobs=jobs, deployments=services_up()), at(10), SETTINGS)
    assert not created(d) and status_of(d).phase == "Suspended"
    body = apply(body, d)
    body["spec"]["suspend"] = False
    d = decide(body, Observed(jobs=jobs, deployments=services_up()), at(20), SETTINGS)
    (jobobj,) = [c.obj for c in d.creates if c.obj["kind"] == "Job"]
    assert jobobj["metadata"]["name"] == "r-synthesis-1" and jobobj["spec"]["suspend"] is True
    synthesis = status_of(d).stages["synthesis"]
    assert synthesis.attempts == 1 and synthesis.phase == "Pending"  # waiting for Kueue again


def test_a_kueue_job_whose_pods_stay_pending_is_deleted_at_the_timeout() -> None:
    body = run_body(queueName="team-a", pendingTimeoutSeconds=60)
    j = kueue_job("init", 1)
    body["status"] = {"phase": "Running", "stages": {"initialize": {"phase": "Running", "attempts": 1}}}
    d = decide(
        body,
        Observed(jobs={"r-init-1": j}, pods=[pod(j, phase="Pending", unschedulable=True)]),
        at(61),
        SETTINGS,
    )
    assert status_of(d).phase == "Failed"
    assert [(x.kind, x.name) for x in d.deletes if x.kind == "Job"] == [("Job", "r-init-1")]
    assert not [p for p in d.patches if p.kind == "Job"]


def test_a_failed_run_deletes_its_queued_kueue_jobs_and_suspends_the_others() -> None:
    body = run_body()
    body["spec"]["seed"] = -1  # invalid: the run fails and stops its Jobs
    jobs = {
        "r-init-1": kueue_job("init", 1, suspend=True),  # still queued: Kueue would admit it later
        "r-synthesis-1": job("r", "synthesis", 1),
    }
    d = decide(body, Observed(jobs=jobs), T0, SETTINGS)
    assert [(x.kind, x.name) for x in d.deletes if x.kind == "Job"] == [("Job", "r-init-1")]
    assert [(p.name, p.body) for p in d.patches] == [("r-synthesis-1", {"spec": {"suspend": True}})]
