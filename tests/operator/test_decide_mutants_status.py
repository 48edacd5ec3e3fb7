"""Decide cases written to kill the mutants `make mutants` found surviving in the run status (`_finish_status`), the
services (`_set_services`, `_services_ready`), the stage statuses' initialisation (`_init_stage_statuses`) and
`prepare`: whole condition lists, Events, patches and deletes of each scenario compared exactly."""

from __future__ import annotations

from typing import Any

from test_decide import (
    DONE_INIT,
    PSA_REFUSAL,
    SETTINGS,
    T0,
    apply,
    at,
    crashlooping_pod,
    deployment,
    job,
    pod,
    real_deployment,
    replica_failure,
    run_body,
    services_up,
    ts,
    unavailable,
    waiting_for_services,
)

from purpcode_operator.decide import Decision, Delete, Observed, Patch, Settings, decide, fmt_time
from purpcode_operator.plan import STAGE_SLUGS

Cond = tuple[str, str, str, str, str]  # type, status, reason, message, lastTransitionTime


def _conds(d: Decision, generation: int = 1) -> list[Cond]:
    """The run's conditions in their written order; every one must carry the generation."""
    out = []
    for c in (d.status or {})["conditions"]:
        assert c["observedGeneration"] == generation, c
        out.append((c["type"], c["status"], c["reason"], c["message"], c["lastTransitionTime"]))
    return out


def _down(reason: str, t: str) -> list[Cond]:
    """Succeeded, Failed and Suspended False with `reason`, no message, since `t`."""
    return [
        ("Succeeded", "False", reason, "", t),
        ("Failed", "False", reason, "", t),
        ("Suspended", "False", reason, "", t),
    ]


def _events(d: Decision) -> list[tuple[str, str, str, str]]:
    return [(e.type, e.reason, e.message, e.key) for e in d.events]


T0S = fmt_time(T0)


def test_a_new_run_writes_every_condition_and_the_started_events_exactly() -> None:
    d = decide(run_body(), Observed(), T0, SETTINGS)
    st = d.status or {}
    assert (st["phase"], st["currentStage"], st["observedGeneration"], st["message"]) == (
        "Running",
        "initialize",
        1,
        "initialize: attempt 1/4: job r-init-1",
    )
    assert _conds(d) == [
        ("Ready", "False", "PodsPending", f"job r-init-1: pods pending since {T0S}", T0S),
        ("Running", "True", "StageRunning", "stage initialize", T0S),
        *_down("Running", T0S),
    ]
    assert _events(d) == [
        (
            "Normal",
            "StageStarted",
            "stage initialize: attempt 1/4 started (job r-init-1)",
            "StageStarted/initialize/1",
        ),
        ("Normal", "Running", "run started (stage initialize)", "RunStarted"),
    ]


def test_suspend_and_resume_write_every_condition_and_one_event_per_transition() -> None:
    running = apply(run_body(), decide(run_body(), Observed(), T0, SETTINGS))
    jobs = {"r-init-1": job("r", "init", 1)}
    running["spec"]["suspend"] = True
    d = decide(running, Observed(jobs=jobs), at(10), SETTINGS)
    t10, t20 = fmt_time(at(10)), fmt_time(at(20))
    assert ((d.status or {})["phase"], (d.status or {})["message"]) == (
        "Suspended",
        "initialize: suspended (attempt 1, job r-init-1)",
    )
    assert _conds(d) == [
        ("Ready", "True", "Suspended", "the run is suspended", t10),
        ("Running", "False", "Suspended", "", t10),
        ("Succeeded", "False", "Suspended", "", T0S),
        ("Failed", "False", "Suspended", "", T0S),
        ("Suspended", "True", "SuspendedByUser", "spec.suspend is true", t10),
    ]
    # The key names the transition by when Suspended last changed (so a later suspend is a new Event).
    assert _events(d) == [("Normal", "Suspended", "run suspended (stage initialize)", f"Suspended/{T0S}")]
    suspended = apply(running, d)
    again = decide(suspended, Observed(jobs=jobs), at(15), SETTINGS)
    assert again.status == suspended["status"] and not again.events

    suspended["spec"]["suspend"] = False
    jobs = {"r-init-1": job("r", "init", 1, suspend=True)}
    d = decide(suspended, Observed(jobs=jobs), at(20), SETTINGS)
    assert ((d.status or {})["phase"], (d.status or {})["message"]) == (
        "Running",
        "initialize: resumed (attempt 1, job r-init-1)",
    )
    assert _conds(d) == [
        ("Ready", "True", "Reconciled", "", t10),
        ("Running", "True", "StageRunning", "stage initialize", t20),
        ("Succeeded", "False", "Running", "", T0S),
        ("Failed", "False", "Running", "", T0S),
        ("Suspended", "False", "Running", "", t20),
    ]
    # Not a start: the run ran before.
    assert _events(d) == [("Normal", "Resumed", "run resumed (stage initialize)", f"Resumed/{t10}")]


SLUGS = STAGE_SLUGS


def _started(**spec: Any) -> dict[str, Any]:
    """A run after its first decision at T0 (every condition written then)."""
    return apply(run_body(**spec), decide(run_body(**spec), Observed(), T0, SETTINGS))


def test_the_last_stage_succeeding_writes_every_condition_and_a_finished_run_keeps_them() -> None:
    body = _started()
    body["status"]["stages"] = {n: {"phase": "Succeeded", "attempts": 1} for n in SLUGS}
    body["status"]["stages"]["report"] = {"phase": "Running", "attempts": 1}
    jobs = {f"r-{s}-1": job("r", s, 1, state="complete") for s in SLUGS.values()}
    d = decide(body, Observed(jobs=jobs), at(100), SETTINGS)
    t100 = fmt_time(at(100))
    st = d.status or {}
    assert (st["phase"], st.get("currentStage"), st["message"]) == (
        "Succeeded",
        None,
        "all 6 stages succeeded",
    )
    assert _conds(d) == [
        ("Ready", "True", "Completed", "all 6 stages succeeded", t100),
        ("Running", "False", "Succeeded", "", t100),
        ("Succeeded", "True", "AllStagesSucceeded", "all 6 stages succeeded", t100),
        ("Failed", "False", "Succeeded", "", T0S),
        ("Suspended", "False", "Succeeded", "", T0S),
    ]
    assert [e.key for e in d.events] == ["StageSucceeded/report", "RunSucceeded"]
    # Later reconciles of the finished run (a new generation too) keep it Succeeded, with the same conditions.
    done = apply(body, d)
    done["metadata"]["generation"] = 2
    again = decide(done, Observed(jobs=jobs), at(200), SETTINGS)
    assert _conds(again, generation=2) == _conds(d)
    assert (again.status or {})["phase"] == "Succeeded" and (again.status or {})["observedGeneration"] == 2
    assert not again.events


def test_a_failing_last_attempt_and_later_reconciles_write_every_condition() -> None:
    body = _started()
    body["spec"]["stages"]["synthesis"]["backoffLimit"] = 0
    body["status"]["stages"]["initialize"] = {"phase": "Succeeded", "attempts": 1}
    body["status"]["stages"]["synthesis"] = {"phase": "Running", "attempts": 1, "startTime": T0S}
    jobs = {**DONE_INIT, "r-synthesis-1": job("r", "synthesis", 1, state="failed", reason="DeadlineExceeded")}
    d = decide(body, Observed(jobs=jobs, deployments=services_up()), at(100), SETTINGS)
    t100 = fmt_time(at(100))
    text = "stage synthesis failed after 1 attempt(s): DeadlineExceeded: Job failed"
    st = d.status or {}
    assert (st["phase"], st["currentStage"], st["message"], st["completionTime"]) == (
        "Failed",
        "synthesis",
        text,
        t100,
    )
    assert _conds(d) == [
        ("Ready", "False", "DeadlineExceeded", text, T0S),
        ("Running", "False", "Failed", "", t100),
        ("Succeeded", "False", "Failed", "", T0S),
        ("Failed", "True", "DeadlineExceeded", text, t100),
        ("Suspended", "False", "Failed", "", T0S),
    ]
    assert [e.key for e in d.events] == ["StageFailed/synthesis", "RunFailed"]
    # The finished run: the same conditions from the stored status (the reason from its Failed condition).
    failed = apply(body, d)
    again = decide(failed, Observed(jobs=jobs), at(200), SETTINGS)
    assert _conds(again) == _conds(d) and again.status == failed["status"] and not again.events
    # A stored Failed status without a Failed condition (or a message): the plain reason.
    failed["status"] = {"phase": "Failed", "completionTime": t100}
    again = decide(failed, Observed(jobs=jobs), at(200), SETTINGS)
    t200 = fmt_time(at(200))
    assert _conds(again) == [
        ("Ready", "False", "Failed", "", t200),
        ("Running", "False", "Failed", "", t200),
        ("Succeeded", "False", "Failed", "", t200),
        ("Failed", "True", "Failed", "", t200),
        ("Suspended", "False", "Failed", "", t200),
    ]
    # A Failed condition that is not True names no reason.
    failed["status"] = {
        "phase": "Failed",
        "message": "m",
        "conditions": [{"type": "Failed", "status": "False", "reason": "Stale", "lastTransitionTime": T0S}],
    }
    again = decide(failed, Observed(jobs=jobs), at(200), SETTINGS)
    assert _conds(again)[0] == ("Ready", "False", "Failed", "m", t200)
    assert _conds(again)[3] == ("Failed", "True", "Failed", "m", t200)


def test_a_queued_run_is_pending_until_admitted_and_then_starts_once() -> None:
    body = run_body(queueName="team-a")
    d = decide(body, Observed(), T0, SETTINGS)
    wait = "waiting for Kueue to admit job r-init-1 (queue team-a)"
    pending = [
        ("Ready", "False", "WaitingForAdmission", wait, T0S),
        ("Running", "False", "Pending", "", T0S),
        *_down("Pending", T0S),
    ]
    assert ((d.status or {})["phase"], _conds(d)) == ("Pending", pending)
    assert [e.key for e in d.events] == ["StageStarted/initialize/1"]  # a Job, but not running yet
    body = apply(body, d)
    d = decide(body, Observed(jobs={"r-init-1": job("r", "init", 1, suspend=True)}), at(5), SETTINGS)
    assert ((d.status or {})["phase"], (d.status or {})["message"], _conds(d)) == (
        "Pending",
        f"initialize: {wait}",
        pending,
    )
    assert not d.events
    body = apply(body, d)
    j = job("r", "init", 1)
    d = decide(body, Observed(jobs={"r-init-1": j}, pods=[pod(j)]), at(9), SETTINGS)
    t9 = fmt_time(at(9))
    assert _conds(d) == [
        ("Ready", "True", "Reconciled", "", t9),
        ("Running", "True", "StageRunning", "stage initialize", t9),
        *_down("Running", T0S),
    ]
    assert _events(d) == [("Normal", "Running", "run started (stage initialize)", "RunStarted")]
    again = decide(apply(body, d), Observed(jobs={"r-init-1": j}, pods=[pod(j)]), at(19), SETTINGS)
    assert not again.events


def test_a_current_stage_without_a_message_is_the_run_message() -> None:
    body = _started()
    body["status"]["stages"]["initialize"] = {
        "phase": "Running",
        "attempts": 1,
    }  # no message (the Job not seen)
    d = decide(body, Observed(), at(3), SETTINGS)
    assert (d.status or {})["message"] == "initialize"


# --------------------------------------------------------------------------------------------- services


def _at_synthesis(**spec: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    body = run_body(**spec)
    body["status"] = {
        "phase": "Running",
        "stages": {
            "initialize": {"phase": "Succeeded", "attempts": 1},
            "synthesis": {"phase": "Running", "attempts": 1},
        },
    }
    return body, {**DONE_INIT, "r-synthesis-1": job("r", "synthesis", 1)}


SUSPEND_SYNTH = Patch("batch/v1", "Job", "r-synthesis-1", {"spec": {"suspend": True}})


def _scale(name: str, n: int) -> Patch:
    return Patch("apps/v1", "Deployment", name, {"spec": {"replicas": n}})


def test_suspending_scales_each_service_still_up_to_zero() -> None:
    body, jobs = _at_synthesis(suspend=True)
    d = decide(body, Observed(jobs=jobs, deployments=services_up()), at(5), SETTINGS)
    assert (d.patches, d.deletes, d.creates) == (
        [SUSPEND_SYNTH, _scale("r-sandbox", 0), _scale("r-judge", 0)],
        [],
        [],
    )
    # Only the judge left (the sandbox not there): the judge is still scaled down.
    d = decide(body, Observed(jobs=jobs, deployments={"r-judge": deployment("r", "judge")}), at(5), SETTINGS)
    assert (d.patches, d.deletes, d.creates) == ([SUSPEND_SYNTH, _scale("r-judge", 0)], [], [])
    # One already at zero is left alone.
    deps = services_up()
    deps["r-sandbox"]["spec"]["replicas"] = 0
    d = decide(body, Observed(jobs=jobs, deployments=deps), at(5), SETTINGS)
    assert (d.patches, d.deletes) == ([SUSPEND_SYNTH, _scale("r-judge", 0)], [])


SANDBOX_GONE = [
    Delete("v1", "Service", "r-sandbox"),
    Delete("apps/v1", "Deployment", "r-sandbox"),
    Delete("networking.k8s.io/v1", "NetworkPolicy", "r-sandbox"),
]
JUDGE_GONE = [Delete("v1", "Service", "r-judge"), Delete("apps/v1", "Deployment", "r-judge")]


def test_services_a_stage_does_not_need_are_deleted_and_needed_ones_left_as_they_are() -> None:
    # The report stage needs no service: both go (the sandbox with its NetworkPolicy).
    body = run_body()
    body["status"] = {"phase": "Running", "stages": {n: {"phase": "Succeeded", "attempts": 1} for n in SLUGS}}
    body["status"]["stages"]["report"] = {"phase": "Running", "attempts": 1}
    jobs = {f"r-{s}-1": job("r", s, 1, state="complete") for s in SLUGS.values()}
    jobs["r-report-1"] = job("r", "report", 1)
    d = decide(body, Observed(jobs=jobs, deployments=services_up()), at(5), SETTINGS)
    assert (d.patches, d.deletes, d.creates) == ([], SANDBOX_GONE + JUDGE_GONE, [])
    # Only the judge left: it goes, nothing else.
    d = decide(body, Observed(jobs=jobs, deployments={"r-judge": deployment("r", "judge")}), at(5), SETTINGS)
    assert (d.patches, d.deletes) == ([], JUDGE_GONE)
    # A running stage that needs both: nothing to do.
    body, jobs = _at_synthesis()
    d = decide(body, Observed(jobs=jobs, deployments=services_up()), at(5), SETTINGS)
    assert (d.patches, d.deletes, d.creates) == ([], [], [])
    # A run that uses a shared judge (not deployed by the run): a judge Deployment left over goes, the sandbox
    # stays.
    shared = Settings(
        retry_backoff_seconds=10, retry_backoff_max_seconds=100, judge_url="http://judge:8000/v1"
    )
    del body["spec"]["services"]["judge"]
    d = decide(body, Observed(jobs=jobs, deployments=services_up()), at(5), shared)
    assert (d.patches, d.deletes, d.creates) == ([], JUDGE_GONE, [])


def _synthesis(d: Decision) -> dict[str, Any]:
    return dict((d.status or {})["stages"]["synthesis"])


def _ready(d: Decision) -> tuple[str, str, str]:
    c = next(c for c in (d.status or {})["conditions"] if c["type"] == "Ready")
    return c["status"], c["reason"], c["message"]


def _creates(d: Decision) -> list[tuple[str, str, Any]]:
    return [(c.obj["kind"], c.obj["metadata"]["name"], c.patch_if_exists) for c in d.creates]


ONE = {"spec": {"replicas": 1}}
SERVICES_CREATED = [
    ("NetworkPolicy", "r-sandbox", None),
    ("Service", "r-sandbox", None),
    ("Deployment", "r-sandbox", ONE),
    ("Service", "r-judge", None),
    ("Deployment", "r-judge", ONE),
]


def test_a_stage_waiting_for_its_services_to_be_created() -> None:
    d = decide(waiting_for_services(), Observed(jobs=DONE_INIT), at(10), SETTINGS)
    message = "waiting for services: sandbox (creating), judge (creating)"
    assert _creates(d) == SERVICES_CREATED and not d.patches and d.requeue_after is None
    assert _synthesis(d) == {"phase": "Pending", "attempts": 0, "message": message, "summary": {}}
    assert _ready(d) == ("False", "ServicesNotReady", message)
    assert ((d.status or {})["phase"], (d.status or {})["message"]) == ("Running", f"synthesis: {message}")


def test_a_service_without_a_ready_replica_is_timed_and_its_replicas_set_back() -> None:
    # The sandbox runs 2 replicas where 1 is wanted (set back); the judge has none yet. A crash-looping sandbox pod
    # (a replica going away) is not the judge's.
    deps = {
        "r-sandbox": deployment("r", "sandbox", available=2, replicas=2),
        "r-judge": real_deployment("judge", created=0, conditions=[unavailable(0)]),
    }
    observed = Observed(jobs=DONE_INIT, deployments=deps, pods=[crashlooping_pod("sandbox", created=1)])
    d = decide(waiting_for_services(), observed, at(10), SETTINGS)
    message = (
        f"waiting for services: judge (0/1 available): deployment r-judge: no pod was created (since {T0S})"
    )
    assert d.patches == [_scale("r-sandbox", 1)] and not d.creates and not d.deletes
    assert _synthesis(d) == {
        "phase": "Pending",
        "attempts": 0,
        "message": message,
        "summary": {},
        "pendingSince": T0S,
    }
    assert _ready(d) == ("False", "ServicesNotReady", message)
    assert d.requeue_after == 290 and not d.events


def test_the_longest_waiting_service_decides_and_a_failure_reason_wins_a_tie() -> None:
    judge_fails = real_deployment("judge", created=5, conditions=[unavailable(5), replica_failure(6)])
    detail = f"deployment r-judge: FailedCreate: {PSA_REFUSAL}"
    for sandbox_since in (5, 6):  # the same age as the judge's wait, or younger: the judge's failure decides
        deps = {
            "r-sandbox": real_deployment(
                "sandbox", created=sandbox_since, conditions=[unavailable(sandbox_since)]
            ),
            "r-judge": judge_fails,
        }
        d = decide(waiting_for_services(), Observed(jobs=DONE_INIT, deployments=deps), at(10), SETTINGS)
        t5 = fmt_time(at(5))
        message = (
            f"waiting for services: sandbox (0/1 available), judge (0/1 available): {detail} (since {t5})"
        )
        assert _ready(d) == ("False", "ReplicaFailure", message), sandbox_since
        assert _events(d) == [
            ("Warning", "ReplicaFailure", f"service judge: {detail}", f"Service/judge/ReplicaFailure/{t5}")
        ]
        assert d.requeue_after == 295
    # An older wait decides even without a failure reason.
    deps["r-sandbox"] = real_deployment("sandbox", created=4, conditions=[unavailable(4)])
    d = decide(waiting_for_services(), Observed(jobs=DONE_INIT, deployments=deps), at(10), SETTINGS)
    t4 = fmt_time(at(4))
    assert _ready(d) == (
        "False",
        "ServicesNotReady",
        "waiting for services: sandbox (0/1 available), judge (0/1 available): deployment r-sandbox: no pod was "
        f"created (since {t4})",
    )
    assert _synthesis(d)["pendingSince"] == t4 and d.requeue_after == 294 and not d.events


def test_services_lost_while_a_job_runs_are_brought_back_without_holding_the_job() -> None:
    body, jobs = _at_synthesis()
    j = jobs["r-synthesis-1"]
    running = {
        "phase": "Running",
        "attempts": 1,
        "message": "attempt 1/3 running (job r-synthesis-1)",
        "summary": {},
    }
    d = decide(body, Observed(jobs=jobs, pods=[pod(j)]), at(1000), SETTINGS)
    assert _creates(d) == SERVICES_CREATED and _synthesis(d) == running
    assert _ready(d) == (
        "False",
        "ServicesNotReady",
        "waiting for services: sandbox (creating), judge (creating)",
    )
    deps = {
        "r-sandbox": deployment("r", "sandbox"),
        "r-judge": real_deployment("judge", created=0, conditions=[]),
    }
    d = decide(body, Observed(jobs=jobs, pods=[pod(j)], deployments=deps), at(1000), SETTINGS)
    assert not d.creates and not d.patches and _synthesis(d) == running  # not timed: the Job does not wait
    assert _ready(d) == ("False", "ServicesNotReady", "waiting for services: judge (0/1 available)")
    assert d.requeue_after is None and (d.status or {})["phase"] == "Running"


def _gated_judge() -> dict[str, Any]:
    gated = crashlooping_pod("judge", created=1)
    gated["status"] = {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated", "message": "gates"}
        ],
    }
    return gated


def test_service_pods_gated_by_kueue_or_starting_are_untimed_and_say_so() -> None:
    deps = {
        "r-sandbox": deployment("r", "sandbox"),
        "r-judge": real_deployment("judge", created=0, conditions=[unavailable(0)]),
    }
    waiting = "waiting for services: judge (0/1 available)"
    body = waiting_for_services(queueName="team-a")
    body["status"]["stages"]["synthesis"]["pendingSince"] = T0S  # from an earlier wait: not this one's
    d = decide(body, Observed(jobs=DONE_INIT, deployments=deps, pods=[_gated_judge()]), at(5000), SETTINGS)
    assert _ready(d) == ("False", "WaitingForAdmission", f"{waiting}: pods wait for Kueue's admission")
    assert _synthesis(d) == {"phase": "Pending", "attempts": 0, "message": waiting, "summary": {}}
    assert d.requeue_after is None and not d.events
    # Not queued: a gate nobody lifts is timed like any other wait.
    d = decide(
        waiting_for_services(),
        Observed(jobs=DONE_INIT, deployments=deps, pods=[_gated_judge()]),
        at(100),
        SETTINGS,
    )
    assert (
        _ready(d)[1] == "SchedulingGated" and _synthesis(d)["pendingSince"] == T0S and d.requeue_after == 200
    )
    # A pod that runs and starts up: untimed, the plain reason, no pending time kept from before.
    loading = crashlooping_pod("judge", created=1)
    loading["status"]["containerStatuses"][0].update(restartCount=0, state={"running": {}}, lastState={})
    body = waiting_for_services()
    body["status"]["stages"]["synthesis"]["pendingSince"] = T0S
    d = decide(body, Observed(jobs=DONE_INIT, deployments=deps, pods=[loading]), at(5000), SETTINGS)
    assert _ready(d) == ("False", "ServicesNotReady", waiting)
    assert _synthesis(d) == {"phase": "Pending", "attempts": 0, "message": waiting, "summary": {}}
    assert d.requeue_after is None and not d.events


# --------------------------------------------------------------------------------------------- stage statuses


def test_disabled_stages_that_never_started_are_skipped_and_the_others_kept() -> None:
    body = run_body()
    for name in ("synthesis", "ruleLearning", "rl"):
        body["spec"]["stages"][name]["enabled"] = False
    late = "enabled after later stages had started; stages never run out of order"
    body["status"] = {
        "phase": "Running",
        "stages": {
            "initialize": {"phase": "Succeeded", "attempts": 1},
            "synthesis": {"phase": "Pending"},
            "ruleLearning": {"phase": "Pending", "attempts": 1},  # its Job waited for Kueue: not skipped
            "rl": {"phase": "Skipped", "message": late},  # skipped before: keeps its reason
        },
    }
    d = decide(body, Observed(jobs=DONE_INIT), at(5), SETTINGS)
    stages = {k: (v["phase"], v["attempts"], v.get("message")) for k, v in (d.status or {})["stages"].items()}
    assert stages == {
        "initialize": ("Succeeded", 1, None),
        "synthesis": ("Skipped", 0, "disabled in the spec"),
        "ruleLearning": ("Pending", 1, None),
        "rl": ("Skipped", 0, late),
        "evaluation": ("Pending", 0, "waiting for services: sandbox (creating), judge (creating)"),
        "report": ("Pending", 0, None),
    }


def test_a_stage_enabled_after_a_later_one_started_is_skipped_and_later_ones_are_added() -> None:
    body = run_body()
    # synthesis was disabled from the start (so not in the status) and the next stage has started.
    body["status"] = {
        "phase": "Running",
        "stages": {
            "initialize": {"phase": "Succeeded", "attempts": 1},
            "ruleLearning": {"phase": "Running", "attempts": 1},
        },
    }
    jobs = {**DONE_INIT, "r-rule-learning-1": job("r", "rule-learning", 1)}
    d = decide(body, Observed(jobs=jobs, deployments=services_up()), at(5), SETTINGS)
    stages = (d.status or {})["stages"]
    assert list(stages) == ["initialize", "ruleLearning", "synthesis", "rl", "evaluation", "report"]
    assert stages["synthesis"] == {
        "phase": "Skipped",
        "attempts": 0,
        "message": "enabled after later stages had started; stages never run out of order",
        "artifactPath": "/artifacts/synthesis",
        "summary": {},
    }
    for name, path in (("rl", "rl"), ("evaluation", "evaluation"), ("report", "report")):
        assert stages[name] == {
            "phase": "Pending",
            "attempts": 0,
            "artifactPath": f"/artifacts/{path}",
            "summary": {},
        }
    assert (d.status or {})["currentStage"] == "ruleLearning"
    # Only earlier stages started (the next one waits for its services): the new stage is added and runs next.
    body["status"]["stages"]["ruleLearning"] = {"phase": "Pending"}
    d = decide(body, Observed(jobs=DONE_INIT), at(5), SETTINGS)
    synthesis = (d.status or {})["stages"]["synthesis"]
    assert (synthesis["phase"], synthesis["artifactPath"]) == ("Pending", "/artifacts/synthesis")
    assert (d.status or {})["currentStage"] == "synthesis"


# --------------------------------------------------------------------------------------------- suspend edge cases


def _suspended_at_report(*, suspend: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Suspended at the last stage, whose Job completed just before it was stopped (a completed Job is kept)."""
    body = run_body(suspend=suspend)
    body["status"] = {
        "phase": "Suspended",
        "currentStage": "report",
        "stages": {n: {"phase": "Succeeded", "attempts": 1} for n in SLUGS},
        "conditions": [
            {"type": "Suspended", "status": "True", "reason": "SuspendedByUser", "lastTransitionTime": ts(50)}
        ],
    }
    body["status"]["stages"]["report"] = {"phase": "Suspended", "attempts": 1}
    return body, {f"r-{s}-1": job("r", s, 1, state="complete") for s in SLUGS.values()}


def test_a_suspended_run_that_finishes_is_not_announced_as_resumed() -> None:
    body, jobs = _suspended_at_report(suspend=True)
    d = decide(body, Observed(jobs=jobs), at(100), SETTINGS)
    assert (d.status or {})["phase"] == "Succeeded"
    assert [e.key for e in d.events] == ["StageSucceeded/report", "RunSucceeded"]
    # Resumed by the user and finished at once: the resume names the stage it resumed at.
    body, jobs = _suspended_at_report(suspend=False)
    d = decide(body, Observed(jobs=jobs), at(100), SETTINGS)
    assert _events(d)[2:] == [
        ("Normal", "Resumed", "run resumed (stage report)", "Resumed/2026-11-25T12:00:50Z")
    ]


def test_a_run_created_suspended_waits_without_a_job() -> None:
    d = decide(run_body(suspend=True), Observed(), T0, SETTINGS)
    st = d.status or {}
    assert (st["phase"], st["currentStage"], st["message"]) == (
        "Suspended",
        "initialize",
        "initialize: the run is suspended",
    )
    assert st["stages"]["initialize"]["phase"] == "Pending" and not d.creates
    assert _conds(d) == [
        ("Ready", "True", "Suspended", "the run is suspended", T0S),
        ("Running", "False", "Suspended", "", T0S),
        ("Succeeded", "False", "Suspended", "", T0S),
        ("Failed", "False", "Suspended", "", T0S),
        ("Suspended", "True", "SuspendedByUser", "spec.suspend is true", T0S),
    ]
    assert _events(d) == [("Normal", "Suspended", "run suspended (stage initialize)", "Suspended/")]


def test_a_running_run_whose_stage_is_still_pending_does_not_start_again() -> None:
    # Its Job not seen yet (e.g. a queued run whose queueName was removed): Running, announced before.
    body = run_body()
    body["status"] = {
        "phase": "Running",
        "stages": {"initialize": {"phase": "Pending", "attempts": 1, "jobName": "r-init-1"}},
    }
    d = decide(body, Observed(), at(5), SETTINGS)
    assert (d.status or {})["phase"] == "Running" and not d.events


def test_a_finished_status_without_a_message_gives_empty_condition_messages() -> None:
    body = run_body()
    body["status"] = {"phase": "Succeeded", "completionTime": T0S}
    d = decide(body, Observed(), at(5), SETTINGS)
    t5 = fmt_time(at(5))
    assert _conds(d) == [
        ("Ready", "True", "Completed", "", t5),
        ("Running", "False", "Succeeded", "", t5),
        ("Succeeded", "True", "AllStagesSucceeded", "", t5),
        ("Failed", "False", "Succeeded", "", t5),
        ("Suspended", "False", "Succeeded", "", t5),
    ]


def test_a_retry_waiting_for_its_services_keeps_the_stage_running() -> None:
    body = run_body()
    body["status"] = {
        "phase": "Running",
        "stages": {
            "initialize": {"phase": "Succeeded", "attempts": 1},
            "synthesis": {"phase": "Running", "attempts": 1, "nextRetryTime": fmt_time(at(20))},
        },
    }
    deps = {**services_up(), "r-sandbox": deployment("r", "sandbox", available=0)}
    jobs = {**DONE_INIT, "r-synthesis-1": job("r", "synthesis", 1, state="failed")}
    d = decide(body, Observed(jobs=jobs, deployments=deps), at(25), SETTINGS)
    t25 = fmt_time(at(25))
    assert _synthesis(d) == {
        "phase": "Running",
        "attempts": 1,
        "message": f"waiting for services: sandbox (0/1 available): deployment r-sandbox: no pod was created (since {t25})",
        "summary": {},
        "pendingSince": t25,
        "nextRetryTime": fmt_time(at(20)),
    }
    assert not d.creates and not d.events


def test_prepare_builds_the_plan_with_the_operator_defaults_and_keeps_the_run_metadata() -> None:
    from purpcode_operator.decide import prepare
    from purpcode_operator.plan import PlanDefaults

    body = run_body()
    body["metadata"]["labels"] = {"team": "a"}
    body["metadata"]["annotations"] = {"note": "b"}
    settings = Settings(defaults=PlanDefaults(trainer_image="registry.local/trainer:9"))
    run, plan = prepare(body, settings)
    assert plan.stage("initialize").image == "registry.local/trainer:9"
    meta = run.metadata
    assert (meta.name, meta.namespace, meta.labels, meta.annotations) == (
        "r",
        "ns",
        {"team": "a"},
        {"note": "b"},
    )
