"""The real operator process against faults of a realistic cluster (tests/support/job_simulator.py): an evicted stage
pod, a node lost, an OOMKilled container, an unpullable image, a suspended stage whose pod is SIGTERMed."""

from __future__ import annotations

from collections import Counter
from typing import Any

from support.fake_cluster import FakeCluster
from support.job_simulator import JOBS, Outcome, Scenario
from support.operator_process import OperatorProcess
from support.run_specs import tiny_run


def conditions(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in run["status"]["conditions"]}


def reasons(cluster: FakeCluster, run: str) -> Counter[str]:
    return Counter(e["reason"] for e in cluster.events(run))


def stage_pod_creates(cluster: FakeCluster, job: str) -> list[Any]:
    return cluster.call(
        lambda: [
            r
            for r in cluster.emulator.creates
            if r.resource == "v1/pods" and r.labels.get("batch.kubernetes.io/job-name") == job
        ]
    )


def test_an_evicted_stage_pod_is_not_a_failed_attempt(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario
) -> None:
    # Drained node: the Eviction API sets DisruptionTarget and deletes the pod; the Job replaces it (the
    # podFailurePolicy Ignore rule), so the operator sees one attempt that succeeds.
    scenario.outcomes[("rl", 1)] = Outcome("evicted", run_seconds=0.1, then=Outcome())
    scenario.outcomes[("evaluation", 1)] = Outcome("node-lost", run_seconds=0.1, then=Outcome())
    operator.start()
    cluster.create_run(tiny_run("drained"))
    run = cluster.wait_phase("drained", "Succeeded", timeout=60)
    assert (
        run["status"]["stages"]["rl"]["attempts"] == 1
        and run["status"]["stages"]["evaluation"]["attempts"] == 1
    )
    assert reasons(cluster, "drained")["StageAttemptFailed"] == 0
    assert len(stage_pod_creates(cluster, "drained-rl-1")) == 2  # the evicted pod and its replacement
    assert len(stage_pod_creates(cluster, "drained-evaluation-1")) == 2
    assert [c.name for c in cluster.job_creates()].count("drained-rl-2") == 0


def test_an_oom_killed_stage_fails_with_that_reason(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario
) -> None:
    scenario.outcomes[("rule-learning", 1)] = Outcome("oom", message="Killed")
    doc = tiny_run("oom")
    doc["spec"]["stages"]["ruleLearning"]["backoffLimit"] = 0
    operator.start()
    cluster.create_run(doc)
    run = cluster.wait_phase("oom", "Failed", timeout=60)
    failed = conditions(run)["Failed"]
    assert failed["reason"] == "OOMKilled"
    assert "exit code 137 (OOMKilled)" in failed["message"]
    assert run["status"]["stages"]["ruleLearning"]["phase"] == "Failed"
    assert reasons(cluster, "oom")["StageFailed"] == 1


def test_err_image_pull_surfaces_then_fails_the_run(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario
) -> None:
    scenario.outcomes[("init", 1)] = Outcome("err-image-pull", start_seconds=0.3, pending_age=27)
    operator.start()
    cluster.create_run(tiny_run("pull", pendingTimeoutSeconds=30))

    def ready_says_err_image_pull() -> bool:
        run = cluster.get_run("pull") or {}
        ready = conditions(run).get("Ready", {}) if run.get("status") else {}
        return ready.get("status") == "False" and "ErrImagePull: failed to pull" in ready.get("message", "")

    cluster.wait_for(ready_says_err_image_pull, what="Ready=False naming ErrImagePull")
    run = cluster.wait_phase("pull", "Failed", timeout=30)
    failed = conditions(run)["Failed"]
    assert failed["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert "pendingTimeoutSeconds 30" in failed["message"] and "img" not in failed["reason"]


def test_suspending_a_run_does_not_fail_the_sigtermed_attempt(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario
) -> None:
    """The Job controller counts a suspended Job's deleted pod as failed (no DisruptionTarget on it): without the
    Ignore rule on exit code 143 the Job fails with BackoffLimitExceeded while the run is suspended."""
    scenario.outcomes[("synthesis", 1)] = Outcome("hang")
    operator.start()
    cluster.create_run(tiny_run("nap"))
    cluster.wait_for(
        lambda: (
            (j := cluster.call(cluster.emulator.get, JOBS, "default", "nap-synthesis-1"))
            and (j.get("status") or {}).get("ready") == 1
        ),
        what="synthesis running",
    )
    cluster.patch_run("nap", {"spec": {"suspend": True}})
    cluster.wait_phase("nap", "Suspended")
    cluster.wait_for(lambda: not cluster.pods("purpcode.dev/stage=synthesis"), what="synthesis pod gone")
    job = cluster.call(cluster.emulator.get, JOBS, "default", "nap-synthesis-1")
    assert "Failed" not in [c["type"] for c in job["status"].get("conditions", []) if c["status"] == "True"]
    scenario.outcomes[("synthesis", 1)] = Outcome()
    cluster.patch_run("nap", {"spec": {"suspend": False}})
    run = cluster.wait_phase("nap", "Succeeded", timeout=60)
    assert run["status"]["stages"]["synthesis"]["attempts"] == 1
    assert reasons(cluster, "nap")["StageAttemptFailed"] == 0


def test_a_multi_node_stage_survives_one_evicted_rank(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario
) -> None:
    # Indexed Job, two ranks created one after the other; rank 1's node is drained: the Job replaces that index only.
    scenario.outcomes[("rl", 1)] = Outcome("evicted", run_seconds=0.2, fault_index=1, then=Outcome())
    doc = tiny_run("ranks")
    doc["spec"]["stages"]["rl"]["resources"] = {"cpu": "2", "memory": "6Gi", "nodes": 2, "gpusPerNode": 1}
    doc["spec"]["storage"] = {"size": "5Gi", "accessMode": "ReadWriteMany"}
    operator.start()
    cluster.create_run(doc)
    run = cluster.wait_phase("ranks", "Succeeded", timeout=60)
    assert run["status"]["stages"]["rl"]["attempts"] == 1
    job = cluster.call(cluster.emulator.get, JOBS, "default", "ranks-rl-1")
    assert job["spec"]["completionMode"] == "Indexed" and job["status"]["completedIndexes"] == "0-1"
    assert "failed" not in job["status"]
    creates = sorted(stage_pod_creates(cluster, "ranks-rl-1"), key=lambda r: r.at)
    indexes = [r.labels["batch.kubernetes.io/job-completion-index"] for r in creates]
    assert indexes == ["0", "1", "1"]  # rank 1 again after its eviction
    assert reasons(cluster, "ranks")["StageAttemptFailed"] == 0
