"""Integration (issue 16): what a real API server and controllers do that the operator must handle, through the
real operator process against the fake API: a 422 Invalid on a child, a service whose ReplicaSet cannot create
pods, Kueue-managed Jobs stopped by deletion, what `purpcode render` prints vs what the operator creates."""

from __future__ import annotations

import time
from typing import Any

import kmock
from support.fake_cluster import DEPLOYMENTS, FakeCluster
from support.job_simulator import JOBS, Outcome, Scenario
from support.kube_emulator import KubeEmulator
from support.operator_process import OperatorProcess
from support.run_specs import tiny_run


def conditions(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (run.get("status") or {}).get("conditions", [])}


INVALID = (
    'Job.batch "bad-init-1" is invalid: spec.template.spec.containers[0].resources.requests[cpu]: '
    'Invalid value: "1": must be less than or equal to cpu limit of 500m'
)


def test_a_422_on_a_child_create_fails_the_run_once_with_the_servers_message(
    cluster: FakeCluster, operator: OperatorProcess
) -> None:
    calls = {"n": 0}

    def invalid(request: kmock.Request) -> None:
        calls["n"] += 1
        raise kmock.KubernetesError(status=422, reason="Invalid", message=INVALID)

    emulator: KubeEmulator = cluster.emulator
    cluster.call(lambda: emulator[kmock.action.CREATE, kmock.resource("batch", "v1", "jobs")] << invalid)
    operator.start()
    cluster.create_run(tiny_run("bad"))
    run = cluster.wait_phase("bad", "Failed", timeout=30)
    failed = conditions(run)["Failed"]
    assert failed["reason"] == "SpecRejected" and INVALID in failed["message"]
    assert conditions(run)["Ready"]["reason"] == "SpecRejected"
    cluster.wait_for(
        lambda: any(e["reason"] == "SpecRejected" for e in cluster.events("bad")), what="a SpecRejected event"
    )
    tried = calls["n"]
    time.sleep(
        3
    )  # a CreateFailed retry loop would try again within a second (backoff 0.2-1 s in these tests)
    assert calls["n"] == tried == 1
    assert cluster.jobs("bad") == []


def test_a_service_without_pods_reports_the_replicasets_failure(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario
) -> None:
    refusal = (
        'pods "psa-judge-6c9d-abcde" is forbidden: violates PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "judge" must set securityContext.allowPrivilegeEscalation=false)'
    )

    def admission(request: kmock.Request) -> None:
        raise kmock.KubernetesError(status=403, reason="Forbidden", message=refusal)

    # Pod Security admission refuses the judge's pods: the simulated ReplicaSet controller gets the 403 and the
    # Deployment controller reports ReplicaFailure/FailedCreate, as in a real cluster.
    emulator: KubeEmulator = cluster.emulator
    judge_pods = {"metadata": {"labels": {"purpcode.dev/role": "judge"}}}
    cluster.call(
        lambda: emulator[kmock.action.CREATE, kmock.resource("", "v1", "pods"), judge_pods] << admission
    )
    operator.start()
    cluster.create_run(tiny_run("psa", pendingTimeoutSeconds=600))

    def reported() -> bool:
        run = cluster.get_run("psa") or {}
        ready = conditions(run).get("Ready", {})
        return ready.get("reason") == "ReplicaFailure" and "violates PodSecurity" in ready.get("message", "")

    cluster.wait_for(reported, what="Ready=False ReplicaFailure with the server's refusal")
    cluster.wait_for(
        lambda: any(
            e["reason"] == "ReplicaFailure" and "violates PodSecurity" in e["message"]
            for e in cluster.events("psa")
        ),
        what="a ReplicaFailure event",
    )
    run = cluster.get_run("psa") or {}
    synthesis = run["status"]["stages"]["synthesis"]
    assert synthesis["pendingSince"] and synthesis["phase"] == "Pending"
    assert [j["metadata"]["name"] for j in cluster.jobs("psa")] == ["psa-init-1"]  # synthesis waits


def test_a_kueue_run_is_suspended_by_deleting_its_job_and_resumed_by_creating_it_again(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario
) -> None:
    scenario.outcomes[("rl", 1)] = Outcome("hang")
    operator.start()
    cluster.create_run(tiny_run("kq", queueName="team-a"))
    cluster.wait_for(
        lambda: len(cluster.pods("purpcode.dev/stage=rl")) == 1, what="rl pod (admitted by 'Kueue')"
    )
    for dep in cluster.objects(DEPLOYMENTS):
        assert dep["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
        assert dep["spec"]["template"]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"

    cluster.patch_run("kq", {"spec": {"suspend": True}})
    cluster.wait_phase("kq", "Suspended")
    cluster.wait_for(
        lambda: cluster.call(cluster.emulator.get, JOBS, "default", "kq-rl-1") is None,
        what="the Kueue job deleted",
    )
    versions = [
        v for v in cluster.call(cluster.emulator.history, JOBS, "default", "kq-rl-1") if v is not None
    ]
    admitted = [i for i, v in enumerate(versions) if v["spec"].get("suspend") is False]
    assert admitted and not any(
        v["spec"].get("suspend") for v in versions[admitted[0] :]
    )  # never re-suspended
    time.sleep(1)
    assert (
        cluster.call(cluster.emulator.get, JOBS, "default", "kq-rl-1") is None
    )  # not recreated while suspended

    scenario.outcomes[("rl", 1)] = Outcome("succeed")
    cluster.patch_run("kq", {"spec": {"suspend": False}})
    run = cluster.wait_phase("kq", "Succeeded", timeout=60)
    assert run["status"]["stages"]["rl"]["attempts"] == 1  # the same attempt, created again
    assert [c.name for c in cluster.job_creates()].count("kq-rl-1") == 2


def test_a_crash_looping_service_pod_is_reported_with_its_last_error(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario
) -> None:
    # The sandbox comes up (the simulator's default); the judge's container exits 1 again and again: the kubelet
    # restarts it with a growing back-off (CrashLoopBackOff, restartCount, lastState with the message).
    scenario.services["judge"] = Outcome("crash-loop", run_seconds=0.1, message="ValueError: no such model")
    operator.start()
    cluster.create_run(tiny_run("crash", pendingTimeoutSeconds=600))

    def reported() -> bool:
        ready = conditions(cluster.get_run("crash") or {}).get("Ready", {})
        return ready.get("reason") == "CrashLoopBackOff" and "ValueError: no such model" in ready.get(
            "message", ""
        )

    cluster.wait_for(reported, what="Ready=False CrashLoopBackOff with the container's last error")
    cluster.wait_for(
        lambda: any(e["reason"] == "CrashLoopBackOff" for e in cluster.events("crash")),
        what="a CrashLoopBackOff event",
    )
