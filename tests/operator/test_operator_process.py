"""Integration: the real `purpcode-operator` process against the stateful fake API and the job simulator."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import kmock
import pytest
from support.fake_cluster import DEPLOYMENTS, NETPOLS, PVCS, RUNS, SERVICES, FakeCluster
from support.job_simulator import JOBS, PODS, Outcome, Scenario
from support.kube_emulator import KubeEmulator
from support.operator_process import OperatorProcess, metric_value
from support.run_specs import tiny_run

from purpcode_operator.api import PurpCodeRunStatus
from purpcode_operator.plan import STAGE_ORDER, StageConfig

STAGE_SLUGS = ["init", "synthesis", "rule-learning", "rl", "evaluation", "report"]


def conditions(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in run["status"]["conditions"]}


def job_names(cluster: FakeCluster, run: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in cluster.jobs(run))


def reasons(cluster: FakeCluster, run: str) -> Counter[str]:
    return Counter(e["reason"] for e in cluster.events(run))


def stage_of(cluster: FakeCluster, run: str, stage: str) -> dict[str, Any]:
    got = cluster.get_run(run)
    assert got is not None
    return dict(got.get("status", {}).get("stages", {}).get(stage, {}))


def wait_stage(cluster: FakeCluster, run: str, stage: str, phase: str, timeout: float = 20) -> dict[str, Any]:
    return cluster.wait_for(
        lambda: (s := stage_of(cluster, run, stage)).get("phase") == phase and s,
        timeout=timeout,
        what=f"stage {stage} {phase}",
    )


def test_happy_path_all_stages(cluster: FakeCluster, operator: OperatorProcess) -> None:
    operator.start()
    created = cluster.create_run(tiny_run("happy"))
    run = cluster.wait_phase("happy", "Succeeded", timeout=60)

    status = PurpCodeRunStatus.model_validate(run["status"], by_alias=True, by_name=False)  # the CRD's shape
    assert [s for s in status.stages] == list(STAGE_ORDER)
    assert all(s.phase == "Succeeded" and s.attempts == 1 for s in status.stages.values())
    assert status.observed_generation == created["metadata"]["generation"]
    conds = conditions(run)
    assert conds["Succeeded"]["status"] == "True" and conds["Succeeded"]["reason"] == "AllStagesSucceeded"
    assert conds["Ready"]["status"] == "True"
    assert conds["Running"]["status"] == "False" and conds["Failed"]["status"] == "False"

    # One Job per stage, in order, each created exactly once.
    creates = [c for c in cluster.job_creates() if c.labels.get("purpcode.dev/run") == "happy"]
    assert [c.name for c in creates] == [f"happy-{slug}-1" for slug in STAGE_SLUGS]

    # Each stage's pods got its config (their annotation, mounted by the downward API); the config is the
    # StageConfig the workloads parse.
    for slug, stage in zip(STAGE_SLUGS, STAGE_ORDER, strict=True):
        job = cluster.call(cluster.emulator.get, JOBS, "default", f"happy-{slug}-1")
        assert job is not None
        raw = job["spec"]["template"]["metadata"]["annotations"]["purpcode.dev/stage-config"]
        config = StageConfig.model_validate_json(raw)
        assert config.stage == stage and config.run == "happy"
        assert config.services.sandbox_url == "http://happy-sandbox.default.svc:8080"

    # Services existed while stages needed them, and are gone now; every child is owned by the run.
    all_creates = cluster.call(lambda: list(cluster.emulator.creates))
    kinds = Counter(c.resource for c in all_creates if c.labels.get("purpcode.dev/run") == "happy")
    assert kinds["apps/v1/deployments"] == 2 and kinds["networking.k8s.io/v1/networkpolicies"] == 1
    assert cluster.objects(DEPLOYMENTS) == [] and cluster.objects(NETPOLS) == []
    assert [s["metadata"]["name"] for s in cluster.objects(SERVICES)] == []
    pvc = cluster.call(cluster.emulator.get, PVCS, "default", "happy-artifacts")
    assert pvc is not None and pvc["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]

    ev = reasons(cluster, "happy")
    assert ev["StageStarted"] == 6 and ev["StageSucceeded"] == 6 and ev["Succeeded"] == 1

    text = operator.metrics()
    assert metric_value(
        text, "controller_runtime_reconcile_total", controller="purpcoderun", result="success"
    )
    assert metric_value(text, "purpcode_run_phase", namespace="default", run="happy", phase="Succeeded") == 1
    assert metric_value(text, "purpcode_run_phase", namespace="default", run="happy", phase="Running") == 0
    assert metric_value(text, "purpcode_run_info", namespace="default", run="happy", model="tiny-random") == 1
    for stage in STAGE_ORDER:
        count = metric_value(text, "purpcode_stage_duration_seconds_count", stage=stage, result="succeeded")
        assert count == 1, stage
    assert metric_value(text, "workqueue_depth", name="purpcoderun") is not None


def test_stage_fails_then_succeeds_on_retry(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario
) -> None:
    scenario.outcomes[("rl", 1)] = Outcome(
        "fail",
        message="Traceback (most recent call last):\n  ...\ntorch.OutOfMemoryError: CUDA out of memory",
    )
    operator.start()
    cluster.create_run(tiny_run("retry"))
    run = cluster.wait_phase("retry", "Succeeded", timeout=60)
    rl = run["status"]["stages"]["rl"]
    assert rl["attempts"] == 2 and rl["jobName"] == "retry-rl-2" and "nextRetryTime" not in rl
    assert job_names(cluster, "retry").count("retry-rl-1") == 1 and "retry-rl-2" in job_names(
        cluster, "retry"
    )
    failed = [e for e in cluster.events("retry") if e["reason"] == "StageAttemptFailed"]
    assert (
        len(failed) == 1 and "CUDA out of memory" in failed[0]["message"] and failed[0]["type"] == "Warning"
    )
    assert metric_value(operator.metrics(), "purpcode_stage_retries_total", stage="rl") == 1


def test_stage_fails_for_good(cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario) -> None:
    tail = "ValueError: no rows left after rejection sampling (threshold 0.5)"
    scenario.outcomes[("rule-learning", 1)] = Outcome("fail", message=f"loading...\n{tail}", exit_code=3)
    scenario.outcomes[("rule-learning", 2)] = Outcome("fail", message=f"loading...\n{tail}", exit_code=3)
    doc = tiny_run("doomed")
    doc["spec"]["stages"]["ruleLearning"]["backoffLimit"] = 1
    operator.start()
    cluster.create_run(doc)
    run = cluster.wait_phase("doomed", "Failed", timeout=60)
    failed = conditions(run)["Failed"]
    assert failed["status"] == "True" and failed["reason"] == "BackoffLimitExceeded"
    assert tail in failed["message"] and "exit code 3" in failed["message"]
    stages = run["status"]["stages"]
    assert stages["ruleLearning"]["phase"] == "Failed" and stages["ruleLearning"]["attempts"] == 2
    assert stages["rl"]["phase"] == "Pending" and stages["rl"]["attempts"] == 0
    assert conditions(run)["Ready"]["status"] == "False" and conditions(run)["Running"]["status"] == "False"
    assert job_names(cluster, "doomed") == sorted(
        ["doomed-init-1", "doomed-synthesis-1", "doomed-rule-learning-1", "doomed-rule-learning-2"]
    )
    cluster.wait_for(lambda: cluster.objects(DEPLOYMENTS) == [], what="services torn down")
    text = operator.metrics()
    assert (
        metric_value(text, "purpcode_stage_duration_seconds_count", stage="ruleLearning", result="failed")
        == 1
    )
    assert reasons(cluster, "doomed")["Failed"] == 1


@pytest.mark.parametrize(
    ("result", "reason"), [("image-pull", "ImagePullBackOff"), ("pending", "Unschedulable")]
)
def test_stuck_pending_fails_with_the_reason(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario, result: str, reason: str
) -> None:
    # The pods look 28 s old when created; the spec allows 30 s: the operator must wait ~2 s more, then fail.
    scenario.outcomes[("init", 1)] = Outcome(result, pending_age=28)  # type: ignore[arg-type]
    operator.start()
    cluster.create_run(tiny_run("stuck", pendingTimeoutSeconds=30))

    def pending_since() -> float | None:
        # Before the pods exist the gauge holds the Job's start; then the oldest pending pod's creation (28 s ago).
        value = metric_value(
            operator.metrics(), "purpcode_stage_pending_since_timestamp_seconds", run="stuck"
        )
        return value if value is not None and time.time() - value >= 27 else None

    cluster.wait_for(pending_since, what="pending gauge at the pods' creation time")
    run = cluster.wait_phase("stuck", "Failed", timeout=30)
    assert (
        metric_value(operator.metrics(), "purpcode_stage_pending_since_timestamp_seconds", run="stuck")
        is None
    )
    failed = conditions(run)["Failed"]
    assert failed["reason"] == reason
    assert "pendingTimeoutSeconds 30" in failed["message"]
    init = run["status"]["stages"]["initialize"]
    assert init["phase"] == "Failed"
    from purpcode_operator.decide import parse_time

    waited = parse_time(init["completionTime"]) - parse_time(init["pendingSince"])  # type: ignore[operator]
    assert waited.total_seconds() >= 30
    job = cluster.call(cluster.emulator.get, JOBS, "default", "stuck-init-1")
    assert job["spec"]["suspend"] is True  # stopped, kept for inspection
    cluster.wait_for(
        lambda: cluster.pods("purpcode.dev/run=stuck") == [], what="pods of the stopped job gone"
    )
    assert len(cluster.jobs("stuck")) == 1


def test_suspend_and_resume_continue_the_same_attempt(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario
) -> None:
    scenario.outcomes[("rl", 1)] = Outcome("hang")
    operator.start()
    cluster.create_run(tiny_run("pause"))
    wait_stage(cluster, "pause", "rl", "Running")
    cluster.wait_for(lambda: len(cluster.pods("purpcode.dev/stage=rl")) == 1, what="rl pod")
    cluster.wait_for(
        lambda: (
            all(d["status"].get("availableReplicas") for d in cluster.objects(DEPLOYMENTS))
            and len(cluster.objects(DEPLOYMENTS)) == 2
        ),
        what="services up",
    )

    cluster.patch_run("pause", {"spec": {"suspend": True}})
    run = cluster.wait_phase("pause", "Suspended")
    assert conditions(run)["Suspended"]["status"] == "True"
    cluster.wait_for(
        lambda: (
            cluster.call(cluster.emulator.get, JOBS, "default", "pause-rl-1")["spec"].get("suspend") is True
        ),
        what="job suspended",
    )
    cluster.wait_for(lambda: cluster.pods("purpcode.dev/stage=rl") == [], what="rl pods removed")
    cluster.wait_for(
        lambda: [d["spec"]["replicas"] for d in cluster.objects(DEPLOYMENTS)] == [0, 0],
        what="services scaled to 0",
    )

    scenario.outcomes[("rl", 1)] = Outcome("succeed")
    cluster.patch_run("pause", {"spec": {"suspend": False}})
    run = cluster.wait_phase("pause", "Succeeded", timeout=60)
    assert run["status"]["stages"]["rl"]["attempts"] == 1  # resumed the same Job, not a new attempt
    assert [c.name for c in cluster.job_creates()].count("pause-rl-1") == 1
    ev = reasons(cluster, "pause")
    assert ev["Suspended"] == 1 and ev["Resumed"] == 1


def test_delete_mid_run_leaves_no_orphans(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario
) -> None:
    scenario.outcomes[("synthesis", 1)] = Outcome("hang")
    operator.start()
    cluster.create_run(tiny_run("gone"))
    wait_stage(cluster, "gone", "synthesis", "Running")
    cluster.wait_for(lambda: len(cluster.objects(DEPLOYMENTS)) == 2, what="services created")
    assert metric_value(operator.metrics(), "purpcode_run_phase", run="gone", phase="Running") == 1

    cluster.delete_run("gone")
    owned = (JOBS, PODS, PVCS, DEPLOYMENTS, SERVICES, NETPOLS)

    def leftovers() -> list[str]:
        return [
            o["metadata"]["name"] for r in owned for o in cluster.objects(r, labels="purpcode.dev/run=gone")
        ]

    cluster.wait_for(lambda: leftovers() == [], what="garbage collection")
    creates_after = len(cluster.call(lambda: list(cluster.emulator.creates)))
    cluster.wait_for(
        lambda: metric_value(operator.metrics(), "purpcode_run_info", run="gone") is None,
        what="series removed",
    )
    assert metric_value(operator.metrics(), "purpcode_run_phase", run="gone", phase="Running") is None
    time.sleep(1.0)
    assert len(cluster.call(lambda: list(cluster.emulator.creates))) == creates_after  # nothing recreated
    assert leftovers() == [] and operator.alive()


def test_invalid_spec_fails_with_the_problems_then_recovers(
    cluster: FakeCluster, operator: OperatorProcess
) -> None:
    doc = tiny_run("bad")
    doc["spec"]["services"]["judge"]["url"] = (
        "http://judge.example:8000/v1"  # and deploy: exactly one is allowed
    )
    doc["spec"]["stages"]["rl"]["numGenerations"] = "eight"
    operator.start()
    cluster.create_run(doc)
    run = cluster.wait_phase("bad", "Failed")
    failed = conditions(run)["Failed"]
    assert failed["reason"] == "InvalidSpec"
    assert "spec.stages.rl.numGenerations: must be an integer" in failed["message"]
    assert "judge needs exactly one of deploy or url" in failed["message"]
    assert cluster.jobs("bad") == [] and operator.alive()
    assert reasons(cluster, "bad")["InvalidSpec"] == 1

    # Fixing the spec (a new generation) lets the run go on.
    cluster.patch_run(
        "bad", {"spec": {"services": {"judge": {"url": None}}, "stages": {"rl": {"numGenerations": 4}}}}
    )
    run = cluster.wait_phase("bad", "Succeeded", timeout=60)
    assert run["status"]["observedGeneration"] == run["metadata"]["generation"] == 2


def test_create_failure_sets_ready_false_then_recovers(
    cluster: FakeCluster, operator: OperatorProcess
) -> None:
    refuse = {"on": True}

    def quota(request: kmock.Request) -> None:
        if refuse["on"]:
            raise kmock.KubernetesError(
                status=403,
                reason="Forbidden",
                message='jobs "x" is forbidden: exceeded quota: compute-resources',
            )

    emulator: KubeEmulator = cluster.emulator
    cluster.call(lambda: emulator[kmock.action.CREATE, kmock.resource("batch", "v1", "jobs")] << quota)
    operator.start()
    cluster.create_run(tiny_run("quota"))

    def refused() -> bool:
        run = cluster.get_run("quota")
        ready = conditions(run).get("Ready", {}) if run and run.get("status") else {}
        return ready.get("reason") == "CreateFailed" and "exceeded quota" in ready.get("message", "")

    cluster.wait_for(refused, what="Ready=False CreateFailed")
    assert cluster.jobs("quota") == []
    # The event and the error count follow the status write: wait for them rather than race them.
    cluster.wait_for(lambda: reasons(cluster, "quota")["CreateFailed"] >= 1, what="a CreateFailed event")
    cluster.wait_for(
        lambda: metric_value(
            operator.metrics(), "controller_runtime_reconcile_errors_total", controller="purpcoderun"
        ),
        what="a counted reconcile error",
    )
    refuse["on"] = False
    run = cluster.wait_phase("quota", "Succeeded", timeout=60)
    assert conditions(run)["Ready"]["status"] == "True"


def test_kueue_jobs_start_suspended_with_the_queue_label(
    cluster: FakeCluster, operator: OperatorProcess
) -> None:
    operator.start()
    cluster.create_run(tiny_run("queued", queueName="team-a"))
    run = cluster.wait_phase("queued", "Succeeded", timeout=60)
    creates = [c for c in cluster.job_creates() if c.labels.get("purpcode.dev/run") == "queued"]
    assert len(creates) == 6 and all(c.labels["kueue.x-k8s.io/queue-name"] == "team-a" for c in creates)
    first = cluster.call(cluster.emulator.history, JOBS, "default", "queued-init-1")[0]
    assert first is not None and first["spec"]["suspend"] is True  # created suspended; "Kueue" admitted it
    assert run["status"]["stages"]["report"]["attempts"] == 1


def test_ttl_deletes_the_finished_run_and_its_children(
    cluster: FakeCluster, operator: OperatorProcess
) -> None:
    operator.start()
    cluster.create_run(tiny_run("short", ttlSecondsAfterFinished=1))
    cluster.wait_for(
        lambda: cluster.call(cluster.emulator.history, RUNS, "default", "short")[-1:] == [None],
        timeout=60,
        what="run deleted by TTL",
    )
    history = [v for v in cluster.call(cluster.emulator.history, RUNS, "default", "short") if v]
    assert history[-1]["status"]["phase"] == "Succeeded"
    cluster.wait_for(lambda: cluster.jobs("short") == [], what="jobs collected")
    assert reasons(cluster, "short")["Expired"] == 1


def test_deadline_exceeded_counts_as_a_failed_attempt(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario
) -> None:
    scenario.outcomes[("evaluation", 1)] = Outcome("succeed", run_seconds=10)  # longer than its 3 s deadline
    doc = tiny_run("slow")
    # 3 s, not 1: startTime has a resolution of seconds (as a real Job's), so a 1 s deadline can expire within
    # a few tenths of a second of the start, and the quick retry then failed too on a loaded machine (CI).
    doc["spec"]["stages"]["evaluation"]["activeDeadlineSeconds"] = 3
    operator.start()
    cluster.create_run(doc)
    run = cluster.wait_phase("slow", "Succeeded", timeout=60)
    assert run["status"]["stages"]["evaluation"]["attempts"] == 2
    job = cluster.call(cluster.emulator.get, JOBS, "default", "slow-evaluation-1")
    assert job["spec"]["activeDeadlineSeconds"] == 3
    failed = [e for e in cluster.events("slow") if e["reason"] == "StageAttemptFailed"]
    assert len(failed) == 1 and "DeadlineExceeded" in failed[0]["message"]
