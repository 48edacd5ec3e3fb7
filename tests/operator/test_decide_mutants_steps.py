"""Decide cases written to kill the mutants `make mutants` found surviving the other decide tests, in the stage
step (`_step_stage` and the retry/pending helpers it calls), the run-level loop (`_reconcile`), the cluster-wide
defaults (`apply_cluster_defaults`), the children's owner (`owner_of`) and the small helpers around them (verdicts,
message caps, times, the spec cache): each scenario's whole decision (stage status, Events, creates, patches and
deletes with their API versions, requeue, finished stages) is compared exactly. Every test here was seen failing
with the mutants it targets (mutmut reruns, docs/testing.md)."""

from __future__ import annotations

import copy
from typing import Any

from test_decide import (
    DONE_INIT,
    SETTINGS,
    T0,
    UID,
    apply,
    at,
    conds,
    crashlooping_pod,
    deployment,
    job,
    pod,
    real_deployment,
    run_body,
    services_up,
    ts,
    unavailable,
    waiting_for_services,
)

from purpcode_operator.decide import (
    Decision,
    Observed,
    Settings,
    StageFinished,
    apply_cluster_defaults,
    decide,
    fmt_time,
    owner_of,
)

# --------------------------------------------------------------------------------------------- owner_of


def test_the_owner_is_the_runs_identity_and_namespace_only() -> None:
    body = run_body()
    body["metadata"].update(labels={"team": "a"}, annotations={"x": "y"})
    assert owner_of(body) == {
        "apiVersion": "purpcode.dev/v1alpha1",
        "kind": "PurpCodeRun",
        "metadata": {"name": "r", "namespace": "ns", "uid": UID},
    }
    # A field the body lacks, or holds as None, is left out rather than passed on as None.
    del body["metadata"]["namespace"]
    assert owner_of(body)["metadata"] == {"name": "r", "uid": UID}
    body["metadata"]["namespace"] = None
    assert owner_of(body)["metadata"] == {"name": "r", "uid": UID}


# --------------------------------------------------------------------------------------------- cluster defaults

SHARED_JUDGE = Settings(
    judge_url="http://judge.shared:8000/v1", judge_model="qwen", judge_api_key_secret="key"
)


def test_no_cluster_default_leaves_the_spec_as_it_is() -> None:
    spec = {"seed": 1, "services": {"sandbox": {"replicas": 1}}}
    assert apply_cluster_defaults(spec, Settings()) is spec
    # Not a mapping (the validation reports it): returned untouched whatever the defaults.
    assert apply_cluster_defaults(None, SHARED_JUDGE) is None
    assert apply_cluster_defaults(["x"], SHARED_JUDGE) == ["x"]


def test_a_shared_judge_fills_a_spec_without_a_judge_and_nothing_else() -> None:
    spec = {"seed": 1}
    assert apply_cluster_defaults(spec, SHARED_JUDGE) == {
        "seed": 1,
        "services": {
            "judge": {
                "url": "http://judge.shared:8000/v1",
                "model": "qwen",
                "apiKeySecretRef": {"name": "key", "key": "api-key"},
            }
        },
    }
    assert spec == {"seed": 1}
    # Without a model or key Secret: only the URL. An empty judge entry counts as none.
    only_url = Settings(judge_url="http://j/v1")
    assert apply_cluster_defaults({"services": {"judge": {}, "sandbox": {"replicas": 2}}}, only_url) == {
        "services": {"judge": {"url": "http://j/v1"}, "sandbox": {"replicas": 2}}
    }
    # A spec that names its judge keeps it.
    own = {"services": {"judge": {"deploy": {"model": "m"}}}}
    assert apply_cluster_defaults(own, SHARED_JUDGE) == own


def test_the_sandbox_runtime_class_default_yields_to_the_specs_own() -> None:
    gvisor = Settings(sandbox_runtime_class_name="gvisor")
    spec: dict[str, Any] = {"services": {"sandbox": {"replicas": 1}}, "seed": 3}
    before = copy.deepcopy(spec)
    assert apply_cluster_defaults(spec, gvisor) == {
        "services": {"sandbox": {"replicas": 1, "runtimeClassName": "gvisor"}},
        "seed": 3,
    }
    assert spec == before  # the caller's document is not changed
    assert apply_cluster_defaults({}, gvisor) == {"services": {"sandbox": {"runtimeClassName": "gvisor"}}}
    own = {"services": {"sandbox": {"runtimeClassName": "kata"}}}
    assert apply_cluster_defaults(own, gvisor) == own
    scheduled = {"services": {"sandbox": {"scheduling": {"runtimeClassName": "kata"}}}}
    assert apply_cluster_defaults(scheduled, gvisor) == scheduled


def test_the_metrics_scrapers_default_applies_when_the_spec_has_none_even_an_empty_one() -> None:
    peer = {"podSelector": {"matchLabels": {"app": "prometheus"}}}
    scrapers = Settings(sandbox_metrics_scrapers=(peer,))
    spec: dict[str, Any] = {"services": {"sandbox": {"replicas": 1}}}
    out = apply_cluster_defaults(spec, scrapers)
    assert out == {"services": {"sandbox": {"replicas": 1, "metricsScrapers": [peer]}}}
    assert out["services"]["sandbox"]["metricsScrapers"][0] is not peer  # a copy, not the settings' own
    assert spec == {"services": {"sandbox": {"replicas": 1}}}
    # "Nobody" (an empty tuple) is a default too; a spec's own list (even an empty one) wins.
    assert apply_cluster_defaults({}, Settings(sandbox_metrics_scrapers=())) == {
        "services": {"sandbox": {"metricsScrapers": []}}
    }
    own = {"services": {"sandbox": {"metricsScrapers": []}}}
    assert apply_cluster_defaults(own, scrapers) == own
    # Both sandbox defaults together land in one sandbox entry.
    both = Settings(sandbox_runtime_class_name="gvisor", sandbox_metrics_scrapers=(peer,))
    assert apply_cluster_defaults({}, both) == {
        "services": {"sandbox": {"runtimeClassName": "gvisor", "metricsScrapers": [peer]}}
    }


# --------------------------------------------------------------------------------------------- the stage step


def _run(status_stages: dict[str, dict[str, Any]], phase: str = "Running", **spec: Any) -> dict[str, Any]:
    body = run_body(**spec)
    body["status"] = {"phase": phase, "stages": copy.deepcopy(status_stages)}
    return body


API_VERSIONS = {
    "Job": "batch/v1",
    "Deployment": "apps/v1",
    "Service": "v1",
    "NetworkPolicy": "networking.k8s.io/v1",
}


def _facts(d: Decision) -> dict[str, Any]:
    """What a decision does besides the status: Events, creates, patches, deletes, requeue, stage records."""
    for kind, api_version in [(p.kind, p.api_version) for p in d.patches] + [
        (x.kind, x.api_version) for x in d.deletes
    ]:
        assert API_VERSIONS[kind] == api_version, (kind, api_version)
    return {
        "events": [(e.type, e.reason, e.message, e.key) for e in d.events],
        "creates": [(c.obj["kind"], c.obj["metadata"]["name"]) for c in d.creates],
        "patches": [(p.kind, p.name, p.body) for p in d.patches],
        "deletes": [(x.kind, x.name) for x in d.deletes],
        "requeue": d.requeue_after,
        "finished": d.finished,
        "retried": d.retried,
        "delete_run": d.delete_run,
    }


def _stage(d: Decision, name: str) -> dict[str, Any]:
    stage: dict[str, Any] = (d.status or {})["stages"][name]
    return stage


def _ready(d: Decision) -> tuple[str, str, str]:
    ready = conds(d)["Ready"]
    return ready["status"], ready["reason"], ready["message"]


NOTHING: dict[str, Any] = {
    "events": [],
    "creates": [],
    "patches": [],
    "deletes": [],
    "requeue": None,
    "finished": [],
    "retried": [],
    "delete_run": False,
}
SERVICES = [
    ("NetworkPolicy", "r-sandbox"),
    ("Service", "r-sandbox"),
    ("Deployment", "r-sandbox"),
    ("Service", "r-judge"),
    ("Deployment", "r-judge"),
]
# A finished or failed run's service teardown, in the order decide deletes them.
TEARDOWN = [
    ("Service", "r-sandbox"),
    ("Deployment", "r-sandbox"),
    ("NetworkPolicy", "r-sandbox"),
    ("Service", "r-judge"),
    ("Deployment", "r-judge"),
]
INIT_DONE = {"phase": "Succeeded", "attempts": 1}


def test_a_run_suspended_before_its_first_job_keeps_the_stage_pending() -> None:
    d = decide(run_body(suspend=True), Observed(), T0, SETTINGS)
    assert _stage(d, "initialize") == {
        "phase": "Pending",
        "attempts": 0,
        "message": "the run is suspended",
        "artifactPath": "/artifacts/model",
        "summary": {},
    }
    assert _facts(d) == {
        **NOTHING,
        "events": [("Normal", "Suspended", "run suspended (stage initialize)", "Suspended/")],
    }


def test_a_new_run_records_its_first_attempt_exactly() -> None:
    d = decide(run_body(), Observed(), T0, SETTINGS)
    now = fmt_time(T0)
    assert _stage(d, "initialize") == {
        "phase": "Running",
        "attempts": 1,
        "jobName": "r-init-1",
        "startTime": now,
        "message": "attempt 1/4: job r-init-1",
        "artifactPath": "/artifacts/model",
        "summary": {},
    }
    assert (d.status or {})["startTime"] == now
    assert _facts(d) == {
        **NOTHING,
        "events": [
            (
                "Normal",
                "StageStarted",
                "stage initialize: attempt 1/4 started (job r-init-1)",
                "StageStarted/initialize/1",
            ),
            ("Normal", "Running", "run started (stage initialize)", "RunStarted"),
        ],
        "creates": [
            ("PersistentVolumeClaim", "r-artifacts"),
            ("Job", "r-init-1"),
        ],
    }
    # A queued run's first attempt waits for Kueue: Pending, not Running.
    d = decide(run_body(queueName="team-a"), Observed(), T0, SETTINGS)
    assert (_stage(d, "initialize")["phase"], (d.status or {})["phase"]) == ("Pending", "Pending")


def test_a_suspended_run_whose_job_is_gone_waits_for_the_resume() -> None:
    body = _run(
        {
            "initialize": INIT_DONE,
            "synthesis": {"phase": "Running", "attempts": 1, "pendingSince": ts(2), "startTime": ts(1)},
        },
        suspend=True,
    )
    d = decide(body, Observed(jobs=DONE_INIT, deployments=services_up()), at(9), SETTINGS)
    assert _stage(d, "synthesis") == {
        "phase": "Suspended",
        "attempts": 1,
        "startTime": ts(1),
        "message": "suspended (attempt 1; its job is created again on resume)",
        "summary": {},
    }
    assert _facts(d) == {
        **NOTHING,
        "events": [("Normal", "Suspended", "run suspended (stage synthesis)", "Suspended/")],
        "patches": [
            ("Deployment", "r-sandbox", {"spec": {"replicas": 0}}),
            ("Deployment", "r-judge", {"spec": {"replicas": 0}}),
        ],
    }


def test_a_succeeded_stage_clears_its_waits_keeps_its_summary_and_advances() -> None:
    body = _run(
        {
            "initialize": {
                "phase": "Running",
                "attempts": 2,
                "startTime": ts(1),
                "pendingSince": ts(2),
                "nextRetryTime": ts(3),
                "summary": {"rows": 3},
            }
        }
    )
    j = job("r", "init", 2, state="complete")
    del j["status"]["completionTime"]  # no completion time on the Job: now
    d = decide(body, Observed(jobs={"r-init-2": j}), at(9), SETTINGS)
    assert _stage(d, "initialize") == {
        "phase": "Succeeded",
        "attempts": 2,
        "startTime": ts(1),
        "completionTime": fmt_time(at(9)),
        "message": "succeeded on attempt 2",
        "summary": {"rows": 3.0},
    }
    assert (d.status or {})["currentStage"] == "synthesis"
    assert _facts(d) == {
        **NOTHING,
        "events": [
            (
                "Normal",
                "StageSucceeded",
                "stage initialize succeeded (attempt 2, 8s)",
                "StageSucceeded/initialize",
            )
        ],
        "creates": SERVICES,
        "finished": [StageFinished("initialize", "succeeded", 8.0)],
    }


SYNTH_RUNNING = {
    "phase": "Running",
    "attempts": 1,
    "startTime": ts(1),
    "pendingSince": ts(2),
    "jobName": "r-synthesis-1",
}


def _synthesis(
    synthesis_job: dict[str, Any],
    *,
    pods: tuple[dict[str, Any], ...] = (),
    deployments: dict[str, Any] | None = None,
    stage: dict[str, Any] | None = None,
    phase: str = "Running",
    now: float = 9,
    **spec: Any,
) -> Decision:
    """One decision on the synthesis stage (initialize done) with its Job in the given state."""
    body = _run({"initialize": INIT_DONE, "synthesis": stage or SYNTH_RUNNING}, phase=phase, **spec)
    name = synthesis_job["metadata"]["name"]
    observed = Observed(
        jobs={**DONE_INIT, name: synthesis_job},
        pods=list(pods),
        deployments=services_up() if deployments is None else deployments,
    )
    return decide(body, observed, at(now), SETTINGS)


def test_a_failed_attempt_without_a_reason_schedules_its_retry_with_the_exit_tail() -> None:
    j = job("r", "synthesis", 1, state="failed")
    j["status"]["conditions"][0] = {"type": "Failed", "status": "True"}  # no reason, no message
    failing = pod(j, phase="Failed", terminated={"exitCode": 3, "message": "  boom \n"})
    stage = {"phase": "Running", "attempts": 1, "startTime": ts(1)}
    d = _synthesis(j, pods=(failing,), stage=stage)
    assert _stage(d, "synthesis") == {
        "phase": "Running",
        "attempts": 1,
        "startTime": ts(1),
        "message": "attempt 1/3 failed: JobFailed; exit code 3: boom",
        "nextRetryTime": fmt_time(at(19)),
        "summary": {},
    }
    assert _facts(d) == {
        **NOTHING,
        "events": [
            (
                "Warning",
                "StageAttemptFailed",
                "stage synthesis: attempt 1/3 failed (JobFailed; exit code 3: boom); retrying in 10s",
                "StageAttemptFailed/synthesis/1",
            )
        ],
        "requeue": 10.0,
    }
    # The next reconcile, still before the retry time: the same status, no second Event.
    body = _run({"initialize": INIT_DONE, "synthesis": _stage(d, "synthesis")})
    again = decide(
        body,
        Observed(jobs={**DONE_INIT, "r-synthesis-1": j}, pods=[failing], deployments=services_up()),
        at(12),
        SETTINGS,
    )
    assert _stage(again, "synthesis") == _stage(d, "synthesis")
    assert _facts(again) == {**NOTHING, "requeue": 7.0}


def test_the_last_failed_attempt_fails_the_stage_and_the_run_exactly() -> None:
    j = job("r", "synthesis", 3, state="failed")
    j["status"]["conditions"][0]["message"] = "Job failed on node X"  # only ": " is trimmed from the end
    other = pod(
        job("r", "synthesis", 1), phase="Failed", terminated={"exitCode": 3, "message": "old attempt"}
    )
    stage = {"phase": "Running", "attempts": 3, "startTime": ts(1), "nextRetryTime": ts(2)}
    d = _synthesis(j, pods=(other,), stage=stage)
    what = "BackoffLimitExceeded: Job failed on node X"  # the pod of attempt 1 is not this attempt's: no tail
    assert _stage(d, "synthesis") == {
        "phase": "Failed",
        "attempts": 3,
        "startTime": ts(1),
        "completionTime": fmt_time(at(9)),
        "message": f"attempt 3/3 failed: {what}",
        "summary": {},
    }
    run_message = f"stage synthesis failed after 3 attempt(s): {what}"
    st = d.status or {}
    assert (st["phase"], st["message"], st["completionTime"]) == ("Failed", run_message, fmt_time(at(9)))
    assert _ready(d) == ("False", "BackoffLimitExceeded", run_message)
    assert _facts(d) == {
        **NOTHING,
        "events": [
            ("Warning", "StageFailed", run_message, "StageFailed/synthesis"),
            ("Warning", "Failed", f"BackoffLimitExceeded: {run_message}", "RunFailed"),
        ],
        "deletes": TEARDOWN,
        "finished": [StageFinished("synthesis", "failed", 8.0)],
    }


def test_suspending_a_running_stage_suspends_its_job_and_scales_services_down() -> None:
    d = _synthesis(job("r", "synthesis", 1), suspend=True)
    assert _stage(d, "synthesis") == {
        "phase": "Suspended",
        "jobName": "r-synthesis-1",
        "attempts": 1,
        "startTime": ts(1),
        "message": "suspended (attempt 1, job r-synthesis-1)",
        "summary": {},
    }
    assert _facts(d) == {
        **NOTHING,
        "events": [("Normal", "Suspended", "run suspended (stage synthesis)", "Suspended/")],
        "patches": [
            ("Job", "r-synthesis-1", {"spec": {"suspend": True}}),
            ("Deployment", "r-sandbox", {"spec": {"replicas": 0}}),
            ("Deployment", "r-judge", {"spec": {"replicas": 0}}),
        ],
    }


def test_a_resumed_job_is_unsuspended_and_its_services_created_again() -> None:
    d = _synthesis(job("r", "synthesis", 1, suspend=True), deployments={}, phase="Suspended")
    assert _stage(d, "synthesis") == {
        "phase": "Running",
        "jobName": "r-synthesis-1",
        "attempts": 1,
        "startTime": ts(1),
        "message": "resumed (attempt 1, job r-synthesis-1)",
        "summary": {},
    }
    assert _ready(d) == (
        "False",
        "ServicesNotReady",
        "waiting for services: sandbox (creating), judge (creating)",
    )
    assert _facts(d) == {
        **NOTHING,
        "events": [("Normal", "Resumed", "run resumed (stage synthesis)", "Resumed/")],
        "creates": SERVICES,
        "patches": [("Job", "r-synthesis-1", {"spec": {"suspend": False}})],
    }


def test_a_running_job_clears_the_pending_time_and_says_which_attempt_runs() -> None:
    j = job("r", "synthesis", 1)
    d = _synthesis(j, pods=(pod(j),))
    assert _stage(d, "synthesis") == {
        "phase": "Running",
        "jobName": "r-synthesis-1",
        "attempts": 1,
        "startTime": ts(1),
        "message": "attempt 1/3 running (job r-synthesis-1)",
        "summary": {},
    }
    assert _ready(d) == ("True", "Reconciled", "")
    assert _facts(d) == NOTHING


def test_pending_pods_of_a_running_job_are_timed_from_the_oldest_pod() -> None:
    j = job("r", "synthesis", 1)
    pending = pod(j, phase="Pending", created=3, waiting="ErrImagePull")
    d = _synthesis(j, pods=(pending,), pendingTimeoutSeconds=60)
    message = (
        f"job r-synthesis-1: pods pending since {fmt_time(at(3))} "
        '(pod r-synthesis-1-abcde: ErrImagePull: Back-off pulling image "x")'
    )
    assert _stage(d, "synthesis") == {
        "phase": "Running",
        "jobName": "r-synthesis-1",
        "attempts": 1,
        "startTime": ts(1),
        "pendingSince": fmt_time(at(3)),
        "message": message,
        "summary": {},
    }
    assert _ready(d) == ("False", "PodsPending", message)
    assert _facts(d) == {**NOTHING, "requeue": 54.0}


def test_a_service_outage_while_the_job_runs_is_repaired_but_not_timed() -> None:
    """Once the Job runs, the services are kept up (created again, scaled back) but their wait fails nothing."""
    j = job("r", "synthesis", 1)
    deps = services_up()
    deps["r-judge"]["status"]["availableReplicas"] = 0
    deps["r-judge"]["spec"]["replicas"] = 0
    deps["r-judge"]["metadata"]["creationTimestamp"] = ts(0)
    del deps["r-sandbox"]
    d = _synthesis(j, pods=(pod(j),), deployments=deps, now=5000, pendingTimeoutSeconds=60)
    assert (d.status or {})["phase"] == "Running"
    assert _stage(d, "synthesis")["message"] == "attempt 1/3 running (job r-synthesis-1)"
    assert "pendingSince" not in _stage(d, "synthesis")
    assert _ready(d) == (
        "False",
        "ServicesNotReady",
        "waiting for services: sandbox (creating), judge (0/1 available)",
    )
    assert _facts(d) == {
        **NOTHING,
        "creates": SERVICES[:3],
        "patches": [("Deployment", "r-judge", {"spec": {"replicas": 1}})],
    }


# --------------------------------------------------------------------------------------------- the run loop


def _invalid_then_fixed() -> dict[str, Any]:
    body = run_body()
    body["spec"]["seed"] = -1
    body = apply(body, decide(body, Observed(jobs=DONE_INIT), at(5), SETTINGS))
    body["spec"]["seed"] = 666
    body["metadata"]["generation"] = 2
    return body


def test_a_fixed_invalid_spec_continues_the_run_from_its_children() -> None:
    body = _invalid_then_fixed()
    assert (body["status"]["phase"], body["status"]["completionTime"]) == ("Failed", fmt_time(at(5)))
    d = decide(body, Observed(jobs=DONE_INIT), at(9), SETTINGS)
    st = d.status or {}
    assert (st["phase"], st["currentStage"], st.get("completionTime")) == ("Running", "synthesis", None)
    assert st["message"] == "synthesis: waiting for services: sandbox (creating), judge (creating)"
    assert _facts(d) == {
        **NOTHING,
        "events": [
            ("Normal", "SpecValid", "the spec is valid again; continuing", "SpecValid/2"),
            (
                "Normal",
                "StageStarted",
                "stage initialize: attempt 1/4 started (job r-init-1)",
                "StageStarted/initialize/1",
            ),
            (
                "Normal",
                "StageSucceeded",
                "stage initialize succeeded (attempt 1, 5s)",
                "StageSucceeded/initialize",
            ),
            ("Normal", "Running", "run started (stage synthesis)", "RunStarted"),
        ],
        "creates": SERVICES,
        "finished": [StageFinished("initialize", "succeeded", 5.0)],
    }
    # The same generation again after the fix was written: no second SpecValid.
    again = decide(apply(body, d), Observed(jobs=DONE_INIT), at(10), SETTINGS)
    assert "SpecValid" not in [e.reason for e in again.events]


def test_a_run_that_failed_for_another_reason_stays_failed_after_an_edit() -> None:
    body = _run({"initialize": {"phase": "Failed", "attempts": 4}}, phase="Failed")
    body["status"].update(completionTime=ts(3), message="stage initialize failed")
    body["status"]["conditions"] = [
        {
            "type": "Failed",
            "status": "True",
            "reason": "BackoffLimitExceeded",
            "message": "x",
            "lastTransitionTime": ts(3),
        }
    ]
    body["metadata"]["generation"] = 2
    d = decide(body, Observed(jobs={"r-init-4": job("r", "init", 4, state="failed")}), at(9), SETTINGS)
    st = d.status or {}
    assert (st["phase"], st["completionTime"], st["message"]) == ("Failed", ts(3), "stage initialize failed")
    assert _ready(d) == ("False", "BackoffLimitExceeded", "stage initialize failed")
    assert _facts(d) == NOTHING
    # A rejected spec at the same generation stays failed too (it continues only once the spec changes).
    body["status"]["conditions"][0]["reason"] = "SpecRejected"
    body["metadata"]["generation"] = 1
    body["status"]["observedGeneration"] = 1
    d = decide(body, Observed(), at(9), SETTINGS)
    assert (d.status or {})["phase"] == "Failed" and _facts(d) == NOTHING
    body["metadata"]["generation"] = 2
    d = decide(body, Observed(), at(9), SETTINGS)
    assert (d.status or {})["phase"] == "Running"
    assert [e.key for e in d.events][:1] == ["SpecValid/2"]


def test_the_last_stage_succeeding_finishes_the_run_exactly() -> None:
    slugs = ["init", "synthesis", "rule-learning", "rl", "evaluation", "report"]
    names = ["initialize", "synthesis", "ruleLearning", "rl", "evaluation", "report"]
    jobs = {f"r-{s}-1": job("r", s, 1, state="complete") for s in slugs}
    stages = {n: {"phase": "Succeeded", "attempts": 1} for n in names}
    stages["report"] = {"phase": "Running", "attempts": 1, "startTime": ts(2)}
    stages["rl"] = {"phase": "Skipped"}  # passed over like a succeeded one
    body = _run(stages)
    body["status"]["currentStage"] = "report"
    d = decide(body, Observed(jobs=jobs, deployments=services_up()), at(100), SETTINGS)
    st = d.status or {}
    assert (st["phase"], st.get("currentStage"), st["completionTime"], st["message"]) == (
        "Succeeded",
        None,
        fmt_time(at(100)),
        "all 6 stages succeeded",
    )
    assert st["stages"]["rl"] == {"phase": "Skipped", "attempts": 0, "summary": {}}
    assert _facts(d) == {
        **NOTHING,
        "events": [
            ("Normal", "StageSucceeded", "stage report succeeded (attempt 1, 3s)", "StageSucceeded/report"),
            ("Normal", "Succeeded", "all 6 stages succeeded", "RunSucceeded"),
        ],
        "deletes": TEARDOWN,
        "finished": [StageFinished("report", "succeeded", 3.0)],
    }


def test_a_job_kueue_suspends_again_waits_for_admission_untimed() -> None:
    """Kueue preempted the admitted Job (suspended it again): the stage waits for admission, which is not timed,
    so the pending time of its earlier pods goes (else the pending-since gauge, read from the status, would stay
    and PurpCodeStagePendingTooLong fire for a run that is only queued)."""
    d = _synthesis(job("r", "synthesis", 1, suspend=True), queueName="team-a")
    message = "waiting for Kueue to admit job r-synthesis-1 (queue team-a)"
    assert _stage(d, "synthesis") == {
        "phase": "Pending",
        "jobName": "r-synthesis-1",
        "attempts": 1,
        "startTime": ts(1),
        "message": message,
        "summary": {},
    }
    assert ((d.status or {})["phase"], _ready(d)) == ("Pending", ("False", "WaitingForAdmission", message))
    assert _facts(d) == NOTHING  # never un-suspended by the operator: Kueue does that


# --------------------------------------------------------------------------------------------- retry waits


def test_a_run_suspended_during_a_retry_wait_shows_the_stage_suspended_and_resumes_running() -> None:
    failed = job("r", "synthesis", 1, state="failed")
    waiting = {"phase": "Running", "attempts": 1, "startTime": ts(1), "nextRetryTime": ts(50)}
    d = _synthesis(failed, stage=waiting, suspend=True)
    assert _stage(d, "synthesis") == {**waiting, "phase": "Suspended", "summary": {}}
    assert (d.status or {})["phase"] == "Suspended"
    assert _facts(d) == {
        **NOTHING,
        "events": [("Normal", "Suspended", "run suspended (stage synthesis)", "Suspended/")],
        "patches": [
            ("Deployment", "r-sandbox", {"spec": {"replicas": 0}}),
            ("Deployment", "r-judge", {"spec": {"replicas": 0}}),
        ],
    }
    # Resumed before the retry time: Running again, waiting for it.
    d = _synthesis(failed, stage={**waiting, "phase": "Suspended"}, phase="Suspended")
    assert _stage(d, "synthesis") == {**waiting, "phase": "Running", "summary": {}}
    assert _facts(d) == {
        **NOTHING,
        "events": [("Normal", "Resumed", "run resumed (stage synthesis)", "Resumed/")],
        "requeue": 41.0,
    }


# --------------------------------------------------------------------------------------------- service waits


def _crashing_judge(state: dict[str, Any], last: dict[str, Any], now: float = 100) -> Decision:
    body = waiting_for_services()
    deps = {
        "r-sandbox": deployment("r", "sandbox"),
        "r-judge": real_deployment("judge", created=0, conditions=[unavailable(0)]),
    }
    p = crashlooping_pod("judge", created=1)
    p["status"]["containerStatuses"][0].update(state=state, lastState=last, restartCount=2)
    return decide(body, Observed(jobs=DONE_INIT, deployments=deps, pods=[p]), at(now), SETTINGS)


def test_a_failing_service_container_is_reported_once_with_its_exact_detail() -> None:
    pod_name = "pod r-judge-5d8f7c9b4-x2x7q container judge"
    cases = [
        # Never ran (no last state): nothing about an exit.
        (
            {"waiting": {"reason": "CreateContainerError", "message": 'secret "s" has no key X'}},
            {},
            ': secret "s" has no key X',
        ),
        # Exited without a reason or message: the code only.
        (
            {"waiting": {"reason": "CrashLoopBackOff"}},
            {"terminated": {"exitCode": 137}},
            "; last exit code 137",
        ),
        (
            {"waiting": {"reason": "RunContainerError", "message": "m"}},
            {"terminated": {"exitCode": 2, "reason": "Error", "message": "  bad flag\n"}},
            ": m; last exit code 2 (Error): bad flag",
        ),
    ]
    for state, last, tail in cases:
        reason = state["waiting"]["reason"]
        detail = f"{pod_name}: {reason} (restarted 2 times){tail}"
        d = _crashing_judge(state, last)
        since = fmt_time(T0)
        message = f"waiting for services: judge (0/1 available): {detail} (since {since})"
        assert _stage(d, "synthesis") == {
            "phase": "Pending",
            "attempts": 0,
            "message": message,
            "pendingSince": since,
            "summary": {},
        }
        assert _ready(d) == ("False", reason, message)
        assert _facts(d) == {
            **NOTHING,
            "events": [("Warning", reason, f"service judge: {detail}", f"Service/judge/{reason}/{since}")],
            "requeue": 200.0,
        }


def test_a_service_without_pods_yet_waits_without_an_event() -> None:
    """Plain Pending (no failure reason yet) is said in Ready as ServicesNotReady, not as a Warning Event."""
    body = waiting_for_services()
    deps = {
        "r-sandbox": deployment("r", "sandbox"),
        "r-judge": real_deployment("judge", created=0, conditions=[unavailable(0)]),
    }
    d = decide(body, Observed(jobs=DONE_INIT, deployments=deps), at(100), SETTINGS)
    message = (
        "waiting for services: judge (0/1 available): deployment r-judge: no pod was created "
        f"(since {fmt_time(T0)})"
    )
    assert _ready(d) == ("False", "ServicesNotReady", message)
    assert _facts(d) == {**NOTHING, "requeue": 200.0}


def test_status_messages_are_capped_at_the_apis_limit() -> None:
    """A huge container message (a stack trace) is cut to 32768 characters (a Kubernetes condition message's
    limit; the run's conditions copy the stage message) wherever it lands in a stage's message."""
    huge = "x" * 40000
    d = _crashing_judge({"waiting": {"reason": "CrashLoopBackOff", "message": huge}}, {})
    assert len(_stage(d, "synthesis")["message"]) == 32768
    d = _crashing_judge(
        {"waiting": {"reason": "CrashLoopBackOff", "message": huge}}, {}, now=400
    )  # timed out
    assert (d.status or {})["phase"] == "Failed" and len(_stage(d, "synthesis")["message"]) == 32768
    # A stage's pods pending with a huge scheduler message: capped before and at the timeout.
    j = job("r", "synthesis", 1)
    p = pod(j, phase="Pending", created=0, unschedulable=True)
    p["status"]["conditions"][0]["message"] = huge
    for now in (9, 1000):
        d = _synthesis(j, pods=(p,), now=now, pendingTimeoutSeconds=60)
        assert len(_stage(d, "synthesis")["message"]) == 32768, now
    # A failed attempt (retried, or the last one) whose Job condition carries a huge message.
    for attempts, phase in ((1, "Running"), (3, "Failed")):
        stage = {"phase": "Running", "attempts": attempts, "startTime": ts(1)}
        failed = job("r", "synthesis", attempts, state="failed")
        failed["status"]["conditions"][0]["message"] = huge
        d = _synthesis(failed, stage=stage)
        synthesis = _stage(d, "synthesis")
        assert (synthesis["phase"], len(synthesis["message"])) == (phase, 32768), attempts


# --------------------------------------------------------------------------------------------- observations


OOM_KILLED = {"exitCode": 137, "reason": "OOMKilled", "message": "killed"}


def test_a_restarted_containers_last_termination_counts_when_it_has_no_current_one() -> None:
    from purpcode_operator.decide import _failed_container_reason, termination_tail

    restarted = {
        "metadata": {"name": "p", "creationTimestamp": ts(0)},
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {"name": "c", "state": {"waiting": {"reason": "X"}}, "lastState": {"terminated": OOM_KILLED}}
            ],
        },
    }
    assert termination_tail([restarted]) == "exit code 137 (OOMKilled): killed"
    assert _failed_container_reason([restarted]) == "OOMKilled"


def test_the_spec_cache_holds_256_specs_and_counts_hits_from_zero() -> None:
    from support.run_specs import tiny_run

    from purpcode_operator.decide import SpecCache

    def doc(seed: int) -> dict[str, Any]:
        d = tiny_run("a", seed=seed)
        d["metadata"]["namespace"] = "ns"
        return d

    cache = SpecCache()
    for seed in range(256):
        cache.validate(doc(seed))
    assert cache.hits == 0
    cache.validate(doc(0))  # still there (256 held); now the most recently used
    assert cache.hits == 1
    cache.validate(doc(256))  # evicts the least recently used: seed 1
    cache.validate(doc(0))
    assert cache.hits == 2
    cache.validate(doc(1))
    assert cache.hits == 2


# --------------------------------------------------------------------------------------------- invalid, rejected


def test_an_invalid_spec_lists_one_problem_a_line_capped_for_the_status_and_the_event() -> None:
    body = run_body()
    body["spec"]["seed"] = -1
    body["spec"]["stages"]["rl"]["bogusField"] = True
    message = (decide(body, Observed(), T0, SETTINGS).status or {})["message"]
    lines = message.split("\n")
    assert lines[0] == "invalid spec:" and lines[2] == "spec.seed: must be >= 0, got -1" and len(lines) == 3
    assert lines[1].startswith(
        "spec.stages.rl.bogusField: unknown field; allowed here: activeDeadlineSeconds, "
    )
    body = run_body()
    body["spec"]["stages"]["rl"]["b" * 40000] = True
    d = decide(body, Observed(), T0, SETTINGS)
    assert len((d.status or {})["message"]) == 32768 and len(d.events[0].message) == 1024


def test_a_rejected_child_sets_the_message_of_a_pending_current_stage_and_is_capped() -> None:
    from purpcode_operator.decide import rejected_status

    body = _run({"initialize": INIT_DONE, "synthesis": {"phase": "Pending"}})
    body["status"]["currentStage"] = "synthesis"
    st = rejected_status(body, "x" * 40000, at(5))
    assert len(st["message"]) == 32768 and st["stages"]["synthesis"]["message"] == st["message"]
    assert st["stages"]["initialize"].get("message") is None


def test_unschedulable_service_pods_say_the_schedulers_reason() -> None:
    body = waiting_for_services()
    deps = {
        "r-sandbox": deployment("r", "sandbox"),
        "r-judge": real_deployment("judge", created=0, conditions=[unavailable(0)]),
    }
    p = crashlooping_pod("judge", created=1)
    p["status"] = {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}
        ],
    }
    d = decide(body, Observed(jobs=DONE_INIT, deployments=deps, pods=[p]), at(100), SETTINGS)
    detail = "pod r-judge-5d8f7c9b4-x2x7q: Unschedulable: 0/3 nodes"
    since = fmt_time(T0)  # the Deployment's creation, not the pod's
    message = f"waiting for services: judge (0/1 available): {detail} (since {since})"
    assert _ready(d) == ("False", "Unschedulable", message)
    assert _facts(d) == {
        **NOTHING,
        "events": [
            ("Warning", "Unschedulable", f"service judge: {detail}", f"Service/judge/Unschedulable/{since}")
        ],
        "requeue": 200.0,
    }


def test_a_replica_failure_without_reason_or_message_is_named_plainly() -> None:
    from purpcode_operator.decide import PendingVerdict, service_verdict

    dep = real_deployment("judge", created=0, conditions=[{"type": "ReplicaFailure", "status": "True"}])
    assert service_verdict(dep, [], queued=False) == PendingVerdict(
        True, ts(0), "ReplicaFailure", "deployment r-judge: ReplicaFailure"
    )
    dep["status"]["conditions"][0].update(reason="FailedCreate", message="image not signed by X")
    assert service_verdict(dep, [], queued=False).detail == (
        "deployment r-judge: FailedCreate: image not signed by X"
    )


def test_pods_pending_past_the_timeout_report_the_stage_failure_once_each() -> None:
    j = job("r", "synthesis", 1)
    pending = pod(j, phase="Pending", created=3, waiting="ErrImagePull")
    stage = {"phase": "Running", "attempts": 1, "startTime": ts(1)}
    d = _synthesis(j, pods=(pending,), stage=stage, now=63, pendingTimeoutSeconds=60)
    text = (
        "stage synthesis: job r-synthesis-1: pods stayed Pending for 60s (pendingTimeoutSeconds 60): "
        'pod r-synthesis-1-abcde: ErrImagePull: Back-off pulling image "x"'
    )
    assert _stage(d, "synthesis") == {
        "phase": "Failed",
        "attempts": 1,
        "startTime": ts(1),
        "completionTime": fmt_time(at(63)),
        "pendingSince": fmt_time(at(3)),
        "message": text,
        "summary": {},
    }
    assert _facts(d) == {
        **NOTHING,
        "events": [
            ("Warning", "ErrImagePull", text, "StagePending/synthesis/1"),
            ("Warning", "Failed", f"ErrImagePull: {text}", "RunFailed"),
        ],
        "patches": [("Job", "r-synthesis-1", {"spec": {"suspend": True}})],
        "deletes": TEARDOWN,
        "finished": [StageFinished("synthesis", "failed", 62.0)],
    }


def test_the_termination_tail_of_an_exit_without_a_message_is_the_code_and_reason() -> None:
    from purpcode_operator.decide import termination_tail

    failed = {
        "metadata": {"name": "p", "creationTimestamp": ts(0)},
        "status": {
            "phase": "Failed",
            "containerStatuses": [{"state": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
        },
    }
    assert termination_tail([failed]) == "exit code 1 (Error)"
    assert termination_tail([]) == ""


def test_condition_and_event_messages_are_capped() -> None:
    """A condition message holds at most 32768 characters (new and updated conditions); an Event's 1024."""
    body = run_body()
    body["spec"]["stages"]["rl"]["b" * 40000] = True
    d = decide(body, Observed(), T0, SETTINGS)
    assert len(conds(d)["Failed"]["message"]) == 32768
    d = decide(apply(body, d), Observed(), at(1), SETTINGS)  # the conditions exist now: updated in place
    assert len(conds(d)["Failed"]["message"]) == 32768
    failed = job("r", "synthesis", 3, state="failed")
    failed["status"]["conditions"][0]["message"] = "x" * 40000
    d = _synthesis(failed, stage={"phase": "Running", "attempts": 3, "startTime": ts(1)})
    assert [(e.reason, len(e.message)) for e in d.events] == [("StageFailed", 1024), ("Failed", 1024)]


# --------------------------------------------------------------------------------------------- small helpers


def test_times_are_written_in_utc_with_milliseconds_whatever_the_local_zone(monkeypatch: Any) -> None:
    import datetime
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        plus_two = datetime.timezone(datetime.timedelta(hours=2))
        t = datetime.datetime(2026, 11, 25, 14, 0, 0, 999000, tzinfo=plus_two)
        assert fmt_time(t) == "2026-11-25T12:00:00.999Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_job_without_a_readable_attempt_label_is_attempt_zero() -> None:
    from purpcode_operator.decide import job_attempt

    assert job_attempt({"metadata": {"labels": {}}}) == 0
    assert job_attempt({"metadata": {"labels": {"purpcode.dev/attempt": "two"}}}) == 0
    assert job_attempt({"metadata": {"labels": {"purpcode.dev/attempt": "2"}}}) == 2


def test_a_pending_verdict_needs_every_pod_pending() -> None:
    from purpcode_operator.decide import PendingVerdict, pending_verdict

    def p(name: str, phase: str, **status: Any) -> dict[str, Any]:
        return {"metadata": {"name": name, "creationTimestamp": ts(1)}, "status": {"phase": phase, **status}}

    # One pod runs (or has finished): the other's wait is not timed (a multi-node stage's pods start apart).
    assert pending_verdict([p("a", "Running"), p("b", "Pending")], ts(0)) == PendingVerdict(False)
    assert pending_verdict([p("b", "Pending"), p("a", "Succeeded")], ts(0)) == PendingVerdict(False)
    # Failed pods only: the Job's own failure handling decides.
    assert pending_verdict([p("a", "Failed")], ts(0)) == PendingVerdict(False)
    # The scheduler's own reason (here a scheduling gate) is kept.
    gated = p(
        "g",
        "Pending",
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated", "message": "m"}],
    )
    assert pending_verdict([gated], ts(0)) == PendingVerdict(
        True, ts(1), "SchedulingGated", "pod g: SchedulingGated: m"
    )


def test_the_status_helpers_for_failed_creates_and_changes() -> None:
    from purpcode_operator.decide import action_failed_status, status_changed

    body = run_body()
    body["status"] = {
        "phase": "Running",
        "conditions": [
            {
                "type": "Running",
                "status": "True",
                "reason": "StageRunning",
                "message": "stage initialize",
                "lastTransitionTime": ts(1),
            }
        ],
    }
    st = action_failed_status(body, "create Job r-init-1: 403 Forbidden", at(5))
    assert st == {
        "phase": "Running",
        "stages": {},
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "CreateFailed",
                "message": "create Job r-init-1: 403 Forbidden",
                "lastTransitionTime": fmt_time(at(5)),
                "observedGeneration": 1,
            },
            {
                "type": "Running",
                "status": "True",
                "reason": "StageRunning",
                "message": "stage initialize",
                "lastTransitionTime": ts(1),
            },
        ],
    }
    assert status_changed(body, st) and not status_changed(body, None)
    assert not status_changed(body, body["status"])
    del body["status"]
    assert not status_changed(body, {}) and status_changed(body, {"phase": "Pending"})


def test_the_spec_cache_key_ignores_key_order_and_a_non_json_spec_is_still_validated() -> None:
    import pytest
    from support.run_specs import tiny_run

    from purpcode_operator.decide import SpecCache
    from purpcode_operator.validate import SpecError

    doc = tiny_run("a")
    doc["metadata"]["namespace"] = "ns"
    reordered = copy.deepcopy(doc)
    reordered["spec"] = dict(reversed(list(doc["spec"].items())))
    cache = SpecCache()
    cache.validate(doc)
    cache.validate(reordered)
    assert cache.hits == 1
    doc["spec"]["seed"] = object()  # not JSON: not cached, validated all the same
    with pytest.raises(SpecError, match="spec.seed: must be an integer"):
        cache.validate(doc)


# --------------------------------------------------------------------------------------------- what a run stops


def _kueue(job_obj: dict[str, Any]) -> dict[str, Any]:
    job_obj["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = "team-a"
    return job_obj


def test_suspending_a_kueue_run_deletes_its_running_job() -> None:
    d = _synthesis(_kueue(job("r", "synthesis", 1)), suspend=True, queueName="team-a")
    assert _stage(d, "synthesis")["message"] == "suspended (attempt 1, job r-synthesis-1)"
    assert _facts(d) == {
        **NOTHING,
        "events": [("Normal", "Suspended", "run suspended (stage synthesis)", "Suspended/")],
        "patches": [
            ("Deployment", "r-sandbox", {"spec": {"replicas": 0}}),
            ("Deployment", "r-judge", {"spec": {"replicas": 0}}),
        ],
        "deletes": [("Job", "r-synthesis-1")],
    }


def test_a_failed_run_leaves_an_already_suspended_job_alone() -> None:
    body = _run({"initialize": {"phase": "Failed", "attempts": 1}}, phase="Failed")
    body["status"]["completionTime"] = ts(1)
    d = decide(body, Observed(jobs={"r-init-1": job("r", "init", 1, suspend=True)}), at(5), SETTINGS)
    assert _facts(d) == NOTHING
    # Without a Failed condition to read the reason from, Ready says plainly "Failed".
    assert _ready(d) == ("False", "Failed", "")


def test_a_new_attempts_objects_belong_to_the_run_in_its_namespace() -> None:
    d = decide(run_body(), Observed(), T0, SETTINGS)
    for c in d.creates:
        meta = c.obj["metadata"]
        assert meta["namespace"] == "ns", meta["name"]
        assert [(r["kind"], r["name"], r["uid"]) for r in meta["ownerReferences"]] == [
            ("PurpCodeRun", "r", UID)
        ]


def test_the_run_started_event_comes_even_when_a_stage_was_skipped_before() -> None:
    """A Kueue run waits for its first admission; a stage disabled meanwhile is Skipped; the admission starts it."""
    body = _run(
        {
            "initialize": {"phase": "Pending", "attempts": 1, "jobName": "r-init-1"},
            "synthesis": {"phase": "Skipped"},
        },
        phase="Pending",
        queueName="team-a",
    )
    j = _kueue(job("r", "init", 1))
    d = decide(body, Observed(jobs={"r-init-1": j}, pods=[pod(j)]), at(5), SETTINGS)
    assert (d.status or {})["phase"] == "Running"
    assert ("Normal", "Running", "run started (stage initialize)", "RunStarted") in _facts(d)["events"]


def test_a_retry_waits_and_comes_even_when_the_failed_job_is_gone() -> None:
    """The failed attempt's Job was deleted (by hand, or a TTL controller) while the retry waits."""
    waiting = {"phase": "Running", "attempts": 1, "startTime": ts(1), "nextRetryTime": ts(50)}
    body = _run({"initialize": INIT_DONE, "synthesis": waiting})
    observed = Observed(jobs=DONE_INIT, deployments=services_up())
    d = decide(body, observed, at(9), SETTINGS)
    assert _stage(d, "synthesis") == {**waiting, "summary": {}}
    assert _facts(d) == {**NOTHING, "requeue": 41.0}
    d = decide(body, observed, at(50), SETTINGS)
    assert ("Job", "r-synthesis-2") in _facts(d)["creates"] and d.retried == ["synthesis"]


def test_a_failed_attempt_whose_pods_were_pending_leaves_no_pending_time_during_the_retry_wait() -> None:
    """E.g. activeDeadlineSeconds ends an attempt whose pods never got scheduled: while the retry waits nothing is
    pending, so the pending time goes (else the pending-since gauge kept ageing through the backoff and
    PurpCodeStagePendingTooLong could fire for a stage that is only waiting to retry)."""
    failed = job("r", "synthesis", 1, state="failed", reason="DeadlineExceeded")
    stage = {"phase": "Running", "attempts": 1, "startTime": ts(1), "pendingSince": ts(1)}
    d = _synthesis(failed, stage=stage)
    assert _stage(d, "synthesis") == {
        "phase": "Running",
        "attempts": 1,
        "startTime": ts(1),
        "message": "attempt 1/3 failed: DeadlineExceeded: Job failed",
        "nextRetryTime": fmt_time(at(19)),
        "summary": {},
    }
