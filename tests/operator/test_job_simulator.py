"""The simulated controllers against documented Kubernetes behaviour (Job controller >= 1.31, kubelet, Deployment and
ReplicaSet controllers, garbage collector): the integration suite is only as strict as they are.

References: https://kubernetes.io/docs/concepts/workloads/controllers/job/ (backoffLimit, podFailurePolicy,
Indexed, suspend, terminal conditions), pkg/controller/job/pod_failure_policy.go (rule matching and messages),
https://kubernetes.io/docs/concepts/workloads/controllers/deployment/ (ReplicaSets, rollouts, conditions) and
https://kubernetes.io/docs/concepts/architecture/garbage-collection/ (background and foreground cascading).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from support.fake_cluster import FakeCluster
from support.job_simulator import (
    DEPLOYMENTS,
    EVENTS,
    JOBS,
    PODS,
    REPLICASETS,
    TRACKING_FINALIZER,
    USER_AGENT,
    Outcome,
    Scenario,
    match_pod_failure_policy,
)

Obj = dict[str, Any]
# Pod Security "restricted" (the fake API may enforce it on the test namespace): pods that pass it.
RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
IGNORE_DISRUPTIONS = {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}


@pytest.fixture
def scenario() -> Scenario:
    return Scenario()


@pytest.fixture
def cluster(tmp_path: Path, scenario: Scenario) -> Iterator[FakeCluster]:
    with FakeCluster(tmp_path, script=scenario) as c:
        yield c


def job_doc(name: str = "j", stage: str = "s", **spec: Any) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"purpcode.dev/stage": stage, "purpcode.dev/attempt": "1"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": RESTRICTED_POD,
                    "containers": [{"name": "c", "image": "img:1", "securityContext": RESTRICTED_CONTAINER}],
                },
            },
            **spec,
        },
    }


def create_job(c: FakeCluster, doc: Obj) -> Obj:
    return c.call(c.emulator.create, JOBS, "default", doc)


def cond_types(job: Obj) -> list[str]:
    return [x["type"] for x in (job.get("status") or {}).get("conditions") or [] if x["status"] == "True"]


def wait_job(c: FakeCluster, name: str, final: str, timeout: float = 15) -> Obj:
    def done() -> Obj | None:
        job = c.call(c.emulator.get, JOBS, "default", name)
        return job if job and final in cond_types(job) else None

    return c.wait_for(done, timeout=timeout, what=f"job {name} {final}")


def job_history(c: FakeCluster, name: str) -> list[Obj]:
    return [v for v in c.call(c.emulator.history, JOBS, "default", name) if v]


def pod_creates(c: FakeCluster, job: Obj) -> list[Any]:
    uid = job["metadata"]["uid"]
    return c.call(
        lambda: [
            r
            for r in c.emulator.creates
            if r.resource == "v1/pods" and r.labels.get("batch.kubernetes.io/controller-uid") == uid
        ]
    )


def pod_versions(c: FakeCluster, name: str) -> list[Obj]:
    return [v for v in c.call(c.emulator.history, PODS, "default", name) if v]


# --------------------------------------------------------------------------------------------- Job: failures


def test_backoff_limit_counts_failed_pods_and_retries_with_new_pods(
    cluster: FakeCluster, scenario: Scenario
) -> None:
    scenario.default = Outcome("fail", run_seconds=0.05, exit_code=3, message="boom")
    job = create_job(cluster, job_doc(backoffLimit=2))
    done = wait_job(cluster, "j", "Failed")
    # Three pods, one after another (each replacement after the previous one failed), all counted.
    assert len(pod_creates(cluster, job)) == 3 and done["status"]["failed"] == 3
    assert cond_types(done) == ["FailureTarget", "Failed"]
    failed = [x for x in done["status"]["conditions"] if x["type"] == "Failed"][0]
    assert failed["reason"] == "BackoffLimitExceeded"
    assert "completionTime" not in done["status"] and done["status"]["startTime"]
    # Never more than one pod at a time (parallelism 1), and the Job said failed only after the third failure.
    assert all((v.get("status") or {}).get("active", 0) <= 1 for v in job_history(cluster, "j"))
    assert all(
        "FailureTarget" not in cond_types(v)
        for v in job_history(cluster, "j")
        if (v.get("status") or {}).get("failed", 0) < 3
    )
    # Counted pods lose the tracking finalizer; their termination message stays.
    pods = cluster.pods("app=j")
    assert len(pods) == 3 and all(TRACKING_FINALIZER not in p["metadata"].get("finalizers", []) for p in pods)
    assert {p["status"]["containerStatuses"][0]["state"]["terminated"]["message"] for p in pods} == {"boom"}


def test_eviction_is_ignored_by_the_disruption_rule_and_counted_without_it(
    cluster: FakeCluster, scenario: Scenario
) -> None:
    scenario.outcomes[("ignored", 1)] = Outcome("evicted", run_seconds=0.05, then=Outcome())
    scenario.outcomes[("counted", 1)] = Outcome("evicted", run_seconds=0.05, then=Outcome())
    policy = {"rules": [IGNORE_DISRUPTIONS]}
    ignored = create_job(cluster, job_doc("ignored", "ignored", backoffLimit=0, podFailurePolicy=policy))
    create_job(cluster, job_doc("counted", "counted", backoffLimit=0))

    ok = wait_job(cluster, "ignored", "Complete")
    assert "failed" not in ok["status"] and ok["status"]["succeeded"] == 1
    evicted, replacement = sorted(pod_creates(cluster, ignored), key=lambda r: r.at)
    versions = pod_versions(cluster, evicted.name)
    disrupted = [x for x in versions[-1]["status"]["conditions"] if x["type"] == "DisruptionTarget"]
    assert disrupted and disrupted[0]["reason"] == "EvictionByEvictionAPI"
    assert any(v["metadata"].get("deletionTimestamp") and v["status"]["phase"] == "Running" for v in versions)
    assert versions[-1]["status"]["phase"] == "Failed"
    assert cluster.call(cluster.emulator.get, PODS, "default", evicted.name) is None  # counted, then gone

    bad = wait_job(cluster, "counted", "Failed")
    assert bad["status"]["failed"] == 1 and cond_types(bad) == ["FailureTarget", "Failed"]


def test_pod_failure_policy_fail_job_on_an_exit_code(cluster: FakeCluster, scenario: Scenario) -> None:
    scenario.default = Outcome("fail", run_seconds=0.05, exit_code=42)
    policy = {
        "rules": [
            IGNORE_DISRUPTIONS,
            {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}},
        ]
    }
    job = create_job(cluster, job_doc(backoffLimit=5, podFailurePolicy=policy))
    done = wait_job(cluster, "j", "Failed")
    (pod,) = pod_creates(cluster, job)  # no retry despite backoffLimit 5
    failed = [x for x in done["status"]["conditions"] if x["type"] == "Failed"][0]
    assert failed["reason"] == "PodFailurePolicy"
    assert failed["message"] == (
        f"Container c for pod default/{pod.name} failed with exit code 42 matching FailJob rule at index 1"
    )


def test_pod_failure_policy_matching_rules() -> None:
    def pod(code: int, conds: list[str] = ()) -> Obj:  # type: ignore[assignment]
        return {
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {
                "phase": "Failed",
                "conditions": [{"type": t, "status": "True"} for t in conds],
                "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": code}}}],
            },
        }

    not_in = {"rules": [{"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}}]}
    assert match_pod_failure_policy(not_in, pod(3)) is not None
    assert match_pod_failure_policy(not_in, pod(2)) is None
    assert match_pod_failure_policy(not_in, pod(0)) is None  # exit code 0 never matches
    other = {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "x", "operator": "In", "values": [3]}}
        ]
    }
    assert match_pod_failure_policy(other, pod(3)) is None
    first = {
        "rules": [IGNORE_DISRUPTIONS, {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3]}}]
    }
    assert match_pod_failure_policy(first, pod(3, ["DisruptionTarget"])) == (
        "Ignore",
        "Pod ns/p has condition DisruptionTarget matching Ignore rule at index 0",
    )


def test_oom_killed_container(cluster: FakeCluster, scenario: Scenario) -> None:
    scenario.default = Outcome("oom", run_seconds=0.05)
    create_job(cluster, job_doc(backoffLimit=0))
    wait_job(cluster, "j", "Failed")
    (pod,) = cluster.pods("app=j")
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["reason"], term["exitCode"], pod["status"]["phase"]) == ("OOMKilled", 137, "Failed")


def test_image_pull_errors_alternate_while_pending(cluster: FakeCluster, scenario: Scenario) -> None:
    scenario.default = Outcome("err-image-pull", start_seconds=0.1)
    create_job(cluster, job_doc())
    pod = cluster.wait_for(lambda: cluster.pods("app=j"), what="pod")[0]

    def reasons() -> list[str]:
        out = []
        for v in pod_versions(cluster, pod["metadata"]["name"]):
            for cs in v.get("status", {}).get("containerStatuses") or []:
                reason = cs["state"].get("waiting", {}).get("reason")
                if reason and (not out or out[-1] != reason):
                    out.append(reason)
        return out

    seen = cluster.wait_for(lambda: len(reasons()) >= 4 and reasons(), what="pull retries")
    assert seen[:4] == ["ContainerCreating", "ErrImagePull", "ImagePullBackOff", "ErrImagePull"]
    job = cluster.call(cluster.emulator.get, JOBS, "default", "j")
    assert job["status"]["active"] == 1 and job["status"]["ready"] == 0 and not cond_types(job)


def test_node_lost_pod_goes_unknown_then_is_replaced(cluster: FakeCluster, scenario: Scenario) -> None:
    scenario.default = Outcome("node-lost", run_seconds=0.05, then=Outcome())
    job = create_job(cluster, job_doc(backoffLimit=0, podFailurePolicy={"rules": [IGNORE_DISRUPTIONS]}))
    wait_job(cluster, "j", "Complete")
    lost = sorted(pod_creates(cluster, job), key=lambda r: r.at)[0]
    phases = [(v.get("status") or {}).get("phase") for v in pod_versions(cluster, lost.name)]
    assert "Unknown" in phases and phases[-1] == "Failed"
    reasons = {x["reason"] for x in pod_versions(cluster, lost.name)[-1]["status"]["conditions"]}
    assert "DeletionByTaintManager" in reasons


# --------------------------------------------------------------------------------------------- Job: lifecycle


def test_indexed_job_pods_appear_progressively_up_to_parallelism(
    cluster: FakeCluster, scenario: Scenario
) -> None:
    scenario.default = Outcome(run_seconds=0.3)
    job = create_job(cluster, job_doc(completionMode="Indexed", completions=3, parallelism=2, backoffLimit=0))
    done = wait_job(cluster, "j", "Complete")
    creates = sorted(pod_creates(cluster, job), key=lambda r: r.at)
    assert [r.labels["batch.kubernetes.io/job-completion-index"] for r in creates] == ["0", "1", "2"]
    assert len({r.at for r in creates}) == 3  # one after another, not all at once
    assert all(r.name.startswith(f"j-{i}-") for i, r in enumerate(creates))
    history = job_history(cluster, "j")
    assert max((v.get("status") or {}).get("active", 0) for v in history) == 2
    assert any((v.get("status") or {}).get("ready") == 2 for v in history)
    assert done["status"]["completedIndexes"] == "0-2" and done["status"]["succeeded"] == 3
    assert cond_types(done) == ["SuccessCriteriaMet", "Complete"] and done["status"]["completionTime"]
    # SuccessCriteriaMet was written on its own first in no version: nothing was left running. Complete never
    # appears without SuccessCriteriaMet before it (the API server rejects that).
    for v in history:
        types = cond_types(v)
        assert "Complete" not in types or types.index("SuccessCriteriaMet") < types.index("Complete")


def test_deadline_terminates_pods_before_the_job_fails(cluster: FakeCluster, scenario: Scenario) -> None:
    scenario.default = Outcome("hang")
    job = create_job(cluster, job_doc(backoffLimit=3, activeDeadlineSeconds=2))  # startTime has 1 s precision
    done = wait_job(cluster, "j", "Failed")
    assert [x["reason"] for x in done["status"]["conditions"]] == ["DeadlineExceeded", "DeadlineExceeded"]
    # FailureTarget while the pod was still terminating, Failed only after it ended.
    target_only = [v for v in job_history(cluster, "j") if cond_types(v) == ["FailureTarget"]]
    assert target_only and target_only[0]["status"]["terminating"] == 1
    assert done["status"]["terminating"] == 0 and "active" not in done["status"]
    (pod,) = pod_creates(cluster, job)
    versions = pod_versions(cluster, pod.name)
    terminating = [
        v for v in versions if v["metadata"].get("deletionTimestamp") and v["status"]["phase"] == "Running"
    ]
    assert terminating  # Terminating: deleted, still running for its grace period
    assert versions[-1]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143
    cluster.wait_for(lambda: not cluster.pods("app=j"), what="the deleted pod removed once counted")


def test_suspend_deletes_pods_and_resume_restarts_the_clock(cluster: FakeCluster, scenario: Scenario) -> None:
    scenario.default = Outcome("hang")
    create_job(cluster, job_doc())
    cluster.wait_for(
        lambda: (
            (j := cluster.call(cluster.emulator.get, JOBS, "default", "j"))
            and (j.get("status") or {}).get("ready") == 1
        ),
        what="running",
    )
    first_start = cluster.call(cluster.emulator.get, JOBS, "default", "j")["status"]["startTime"]
    cluster.call(cluster.emulator.patch, JOBS, "default", "j", {"spec": {"suspend": True}})
    cluster.wait_for(lambda: not cluster.pods("app=j"), what="pods gone")
    job = cluster.call(cluster.emulator.get, JOBS, "default", "j")
    assert (
        cond_types(job) == ["Suspended"]
        and "startTime" not in job["status"]
        and "active" not in job["status"]
    )
    assert job["status"]["failed"] == 1  # the Job controller counts a deleted pod as failed (isPodFailed)
    cluster.call(cluster.emulator.patch, JOBS, "default", "j", {"spec": {"suspend": False}})
    cluster.wait_for(lambda: cluster.pods("app=j"), what="a new pod")
    job = cluster.call(cluster.emulator.get, JOBS, "default", "j")
    resumed = [x for x in job["status"]["conditions"] if x["type"] == "Suspended"][0]
    assert (resumed["status"], resumed["reason"]) == ("False", "JobResumed")
    assert job["status"]["startTime"] >= first_start


def test_pods_are_created_through_the_api(cluster: FakeCluster) -> None:
    seen: list[tuple[str, int]] = []

    def hook(request: Any, status: int) -> None:
        if request.resource is not None and request.resource.plural == "pods":
            seen.append((request.headers.get("User-Agent", ""), status))

    cluster.call(cluster.emulator.request_hooks.append, hook)
    create_job(cluster, job_doc())
    wait_job(cluster, "j", "Complete")
    assert seen == [(USER_AGENT, 201)] or seen == [(USER_AGENT, 200)]


def test_a_refused_pod_is_a_failed_create_event_and_a_retry(cluster: FakeCluster) -> None:
    refuse = {"on": True}

    def quota(request: kmock.Request) -> None:
        if refuse["on"]:
            raise kmock.KubernetesError(
                status=403, reason="Forbidden", message='pods "x" is forbidden: quota'
            )

    cluster.call(lambda: cluster.emulator[kmock.action.CREATE, kmock.resource("", "v1", "pods")] << quota)
    create_job(cluster, job_doc())
    cluster.wait_for(
        lambda: [e for e in cluster.objects(EVENTS) if e["reason"] == "FailedCreate"],
        what="FailedCreate event",
    )
    event = [e for e in cluster.objects(EVENTS) if e["reason"] == "FailedCreate"][0]
    assert event["message"] == 'Error creating: pods "x" is forbidden: quota'
    assert not cluster.pods("app=j")
    refuse["on"] = False
    wait_job(cluster, "j", "Complete")


# --------------------------------------------------------------------------------------------- Deployments


def deployment_doc(name: str = "d", image: str = "img:1", replicas: int = 1) -> Obj:
    labels = {"app": name, "purpcode.dev/role": "sandbox"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": RESTRICTED_POD,  # the suite's namespace is restricted
                    "containers": [{"name": "c", "image": image, "securityContext": RESTRICTED_CONTAINER}],
                },
            },
        },
    }


def dep_conds(dep: Obj) -> dict[str, Obj]:
    return {x["type"]: x for x in (dep.get("status") or {}).get("conditions") or []}


def test_deployment_rollout_through_replica_sets(cluster: FakeCluster) -> None:
    cluster.call(cluster.emulator.create, DEPLOYMENTS, "default", deployment_doc())

    def available(gen: int) -> Obj | None:
        dep = cluster.call(cluster.emulator.get, DEPLOYMENTS, "default", "d")
        st = dep.get("status") or {}
        return dep if st.get("observedGeneration") == gen and st.get("availableReplicas") == 1 else None

    dep = cluster.wait_for(lambda: available(1), what="available")
    (rs,) = cluster.objects(REPLICASETS)
    assert rs["metadata"]["ownerReferences"][0]["uid"] == dep["metadata"]["uid"]
    (pod,) = cluster.pods("app=d")
    assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
    assert pod["metadata"]["labels"]["pod-template-hash"] == rs["metadata"]["labels"]["pod-template-hash"]
    assert dep_conds(dep)["Available"]["status"] == "True"
    assert dep_conds(dep)["Progressing"]["reason"] == "NewReplicaSetAvailable"

    patched = cluster.call(
        cluster.emulator.patch,
        DEPLOYMENTS,
        "default",
        "d",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "c", "image": "img:2", "securityContext": RESTRICTED_CONTAINER}
                        ]
                    }
                }
            }
        },
    )
    assert patched["metadata"]["generation"] == 2 and patched["status"]["observedGeneration"] == 1  # lags
    dep = cluster.wait_for(lambda: available(2), what="rolled out")
    # The old ReplicaSet's scale-down and its pod's deletion are separate writes (as a real controller's): wait
    # for both, not the pod alone (CI once read the old set between them, still at 1 replica).
    cluster.wait_for(
        lambda: (
            len(cluster.pods("app=d")) == 1
            and sorted(r["spec"]["replicas"] for r in cluster.objects(REPLICASETS)) == [0, 1]
        ),
        what="old pod gone and its ReplicaSet scaled to 0",
    )
    sets = {r["metadata"]["name"]: r for r in cluster.objects(REPLICASETS)}
    assert len(sets) == 2 and sorted(r["spec"]["replicas"] for r in sets.values()) == [0, 1]
    (pod,) = cluster.pods("app=d")
    assert pod["spec"]["containers"][0]["image"] == "img:2"
    revisions = sorted(
        r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for r in sets.values()
    )
    assert revisions == ["1", "2"]


def test_refused_pods_surface_as_replica_failure(cluster: FakeCluster) -> None:
    refuse = {"on": True}
    message = (
        'pods "d-x" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false'
    )

    def admission(request: kmock.Request) -> None:
        if refuse["on"]:
            raise kmock.KubernetesError(status=403, reason="Forbidden", message=message)

    cluster.call(lambda: cluster.emulator[kmock.action.CREATE, kmock.resource("", "v1", "pods")] << admission)
    cluster.call(cluster.emulator.create, DEPLOYMENTS, "default", deployment_doc())

    def failure() -> Obj | None:
        dep = cluster.call(cluster.emulator.get, DEPLOYMENTS, "default", "d")
        return dep_conds(dep).get("ReplicaFailure")

    cond = cluster.wait_for(failure, what="ReplicaFailure")
    assert (cond["status"], cond["reason"], cond["message"]) == ("True", "FailedCreate", message)
    dep = cluster.call(cluster.emulator.get, DEPLOYMENTS, "default", "d")
    assert dep_conds(dep)["Available"]["status"] == "False" and not dep["status"].get("availableReplicas")
    refuse["on"] = False
    cluster.wait_for(lambda: failure() is None, what="ReplicaFailure cleared")
    cluster.wait_for(
        lambda: cluster.call(cluster.emulator.get, DEPLOYMENTS, "default", "d")["status"].get(
            "availableReplicas"
        ),
        what="available",
    )


def test_crash_loop_back_off(cluster: FakeCluster, scenario: Scenario) -> None:
    scenario.services["sandbox"] = Outcome(
        "crash-loop", start_seconds=0.05, run_seconds=0.05, message="bind: in use"
    )
    cluster.call(cluster.emulator.create, DEPLOYMENTS, "default", deployment_doc())

    def looping() -> Obj | None:
        pods = cluster.pods("app=d")
        cs = (pods[0].get("status") or {}).get("containerStatuses") or [{}] if pods else [{}]
        return pods[0] if cs[0].get("restartCount", 0) >= 2 and "waiting" in cs[0].get("state", {}) else None

    pod = cluster.wait_for(looping, what="crash loop")
    cs = pod["status"]["containerStatuses"][0]
    assert pod["status"]["phase"] == "Running" and cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["message"] == "bind: in use" and cs["ready"] is False
    dep = cluster.call(cluster.emulator.get, DEPLOYMENTS, "default", "d")
    assert not dep["status"].get("availableReplicas") and dep_conds(dep)["Available"]["status"] == "False"


# --------------------------------------------------------------------------------------------- garbage collection


def test_background_deletion_collects_dependents_later(cluster: FakeCluster, scenario: Scenario) -> None:
    scenario.default = Outcome("hang")
    create_job(cluster, job_doc())
    cluster.wait_for(lambda: cluster.pods("app=j"), what="pod")
    e = cluster.emulator
    job, pods = cluster.call(lambda: (e.delete(JOBS, "default", "j"), e.list(PODS, "default", "app=j")))
    assert cluster.call(e.get, JOBS, "default", "j") is None
    assert pods and not pods[0]["metadata"].get("deletionTimestamp")  # the collector gets to it later
    cluster.wait_for(lambda: not cluster.pods("app=j"), what="pod collected")
    (pod,) = [r for r in cluster.call(lambda: list(cluster.emulator.creates)) if r.resource == "v1/pods"]
    versions = pod_versions(cluster, pod.name)
    assert versions[-1]["status"]["phase"] == "Failed"  # terminated (grace period), then released


def test_foreground_deletion_keeps_the_owner_until_dependents_are_gone(
    cluster: FakeCluster, scenario: Scenario
) -> None:
    scenario.default = Outcome("hang")
    create_job(cluster, job_doc())
    cluster.wait_for(lambda: cluster.pods("app=j"), what="pod")
    cluster.call(cluster.emulator.delete, JOBS, "default", "j", propagation="Foreground")
    held = cluster.call(cluster.emulator.get, JOBS, "default", "j")
    assert held["metadata"]["deletionTimestamp"] and "foregroundDeletion" in held["metadata"]["finalizers"]
    cluster.wait_for(
        lambda: cluster.call(cluster.emulator.get, JOBS, "default", "j") is None, what="job gone"
    )
    assert not cluster.pods("app=j")
    # The pod was gone before its owner.
    assert cluster.call(cluster.emulator.history, PODS, "default", pod_versions_name(cluster))[-1] is None


def pod_versions_name(cluster: FakeCluster) -> str:
    (pod,) = [r for r in cluster.call(lambda: list(cluster.emulator.creates)) if r.resource == "v1/pods"]
    return pod.name


def test_deployment_deletion_collects_replica_sets_and_pods(cluster: FakeCluster) -> None:
    cluster.call(cluster.emulator.create, DEPLOYMENTS, "default", deployment_doc())
    cluster.wait_for(lambda: cluster.pods("app=d"), what="pod")
    cluster.call(cluster.emulator.delete, DEPLOYMENTS, "default", "d")
    cluster.wait_for(
        lambda: not cluster.objects(REPLICASETS) and not cluster.pods("app=d"),
        what="replica set and pod collected",
    )
