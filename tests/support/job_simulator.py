"""A job simulator: the part of kube-controller-manager + kubelet the operator's tests need, inside the emulator.

Jobs get Pods (one per completion; Indexed Jobs get completion indexes), Pods go Pending -> Running -> Succeeded or
Failed with a termination message, and the Job's status/conditions follow the way the Job controller writes them
(SuccessCriteriaMet + Complete, FailureTarget + Failed with BackoffLimitExceeded or DeadlineExceeded, Suspended).
Suspending a Job deletes its Pods; resuming starts new ones. Deployments get Pods and ready/available replicas.

What each Job does comes from a script: `(job) -> Outcome`, usually a `Scenario` keyed by (stage slug, attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import kmock

from .kube_emulator import KubeEmulator, Obj, Resource, now_rfc3339

JOBS = Resource("batch", "v1", "jobs")
PODS = Resource("", "v1", "pods")
DEPLOYMENTS = Resource("apps", "v1", "deployments")

STAGE_LABEL = "purpcode.dev/stage"
ATTEMPT_LABEL = "purpcode.dev/attempt"
KUEUE_LABEL = "kueue.x-k8s.io/queue-name"


@dataclass(frozen=True)
class Outcome:
    """What one Job attempt (or one Deployment's pods) does."""

    result: Literal["succeed", "fail", "pending", "image-pull", "hang"] = "succeed"
    start_seconds: float = 0.05  # Pending -> Running
    run_seconds: float = 0.15  # Running -> finished
    message: str = ""  # the container's termination message
    exit_code: int = 1
    pending_age: float = 0.0  # pods look as if created this many seconds ago


Script = Callable[[Obj], Outcome]


@dataclass
class Scenario:
    """Outcomes by (stage slug, attempt); anything else gets `default`."""

    outcomes: dict[tuple[str, int], Outcome] = field(default_factory=dict)
    default: Outcome = field(default_factory=Outcome)
    deployments: Outcome = field(default_factory=lambda: Outcome(start_seconds=0.05))

    def __call__(self, job: Obj) -> Outcome:
        labels = job["metadata"].get("labels", {})
        key = (labels.get(STAGE_LABEL, ""), int(labels.get(ATTEMPT_LABEL, "0") or 0))
        return self.outcomes.get(key, self.default)


def _cond(ctype: str, status: str, reason: str = "", message: str = "") -> Obj:
    now = now_rfc3339()
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }


class JobSimulator:
    """Attach to an emulator; runs inside its event loop."""

    def __init__(
        self, emulator: KubeEmulator, script: Script | None = None, *, kueue_admit_after: float = 0.2
    ) -> None:
        self.emulator = emulator
        self.script: Script = script or Scenario()
        self.kueue_admit_after = kueue_admit_after  # like Kueue: unsuspend queued Jobs after this long
        self._admitted: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loop = asyncio.get_running_loop()
        emulator.listeners.append(self._on_change)

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.emulator.listeners.remove(self._on_change)
        for task in self._tasks.values():
            task.cancel()

    # ----------------------------------------------------------------------------- dispatch

    def _on_change(self, kind: str, res: Resource, obj: Obj) -> None:
        if res == JOBS:
            self._loop.call_soon(self._job_changed, kind, obj)
        elif res == DEPLOYMENTS:
            self._loop.call_soon(self._deployment_changed, kind, obj)

    def _job_changed(self, kind: str, snapshot: Obj) -> None:
        meta = snapshot["metadata"]
        uid = meta["uid"]
        if kind == "DELETED":
            task = self._tasks.pop(uid, None)
            if task:
                task.cancel()
            return
        job = self.emulator.get(JOBS, meta["namespace"], meta["name"])
        if job is None or job["metadata"]["uid"] != uid:
            return
        conds = {c["type"]: c for c in job.get("status", {}).get("conditions", [])}
        if any(conds.get(t, {}).get("status") == "True" for t in ("Complete", "Failed")):
            return
        running = uid in self._tasks and not self._tasks[uid].done()
        queue = meta.get("labels", {}).get(KUEUE_LABEL)
        if job["spec"].get("suspend") and queue and uid not in self._admitted:
            self._admitted.add(uid)
            self._loop.call_later(self.kueue_admit_after, self._admit, meta["namespace"], meta["name"], uid)
        if job["spec"].get("suspend"):
            if running:
                self._tasks.pop(uid).cancel()
            self._suspend(job)
        elif not running:
            self._tasks[uid] = asyncio.ensure_future(self._run_job(job))

    def _admit(self, namespace: str, name: str, uid: str) -> None:
        job = self.emulator.get(JOBS, namespace, name)
        if job is not None and job["metadata"]["uid"] == uid and job["spec"].get("suspend"):
            self.emulator.patch(JOBS, namespace, name, {"spec": {"suspend": False}})

    # ----------------------------------------------------------------------------- jobs

    def _job_pods(self, job: Obj) -> list[Obj]:
        uid = job["metadata"]["uid"]
        return [
            p
            for p in self.emulator.list(
                PODS, job["metadata"]["namespace"], f"batch.kubernetes.io/controller-uid={uid}"
            )
        ]

    def _set_job_status(self, job: Obj, **changes: Any) -> None:
        meta = job["metadata"]
        current = self.emulator.get(JOBS, meta["namespace"], meta["name"])
        if current is None or current["metadata"]["uid"] != meta["uid"]:
            return
        status = dict(current.get("status") or {})
        for key, value in changes.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value
        self.emulator.replace_status(JOBS, meta["namespace"], meta["name"], status)

    def _conditions(self, job: Obj, *new: Obj) -> list[Obj]:
        current = self.emulator.get(JOBS, job["metadata"]["namespace"], job["metadata"]["name"]) or job
        conds = [
            c
            for c in current.get("status", {}).get("conditions", [])
            if c["type"] not in {n["type"] for n in new}
        ]
        return conds + list(new)

    def _suspend(self, job: Obj) -> None:
        for pod in self._job_pods(job):
            with contextlib.suppress(kmock.KubernetesError):
                self.emulator.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        conds = {c["type"]: c for c in job.get("status", {}).get("conditions", [])}
        if conds.get("Suspended", {}).get("status") != "True":
            self._set_job_status(
                job,
                active=0,
                ready=0,
                startTime=None,
                conditions=self._conditions(job, _cond("Suspended", "True", "JobSuspended", "Job suspended")),
            )

    def _make_pod(self, job: Obj, index: int | None, outcome: Outcome) -> Obj:
        meta = job["metadata"]
        template = job["spec"]["template"]
        labels = dict(template.get("metadata", {}).get("labels", {}))
        labels.update(
            {
                "batch.kubernetes.io/job-name": meta["name"],
                "job-name": meta["name"],
                "batch.kubernetes.io/controller-uid": meta["uid"],
                "controller-uid": meta["uid"],
            }
        )
        annotations = dict(template.get("metadata", {}).get("annotations", {}))
        name = f"{meta['name']}-{secrets.token_hex(3)[:5]}"
        if index is not None:
            labels["batch.kubernetes.io/job-completion-index"] = str(index)
            annotations["batch.kubernetes.io/job-completion-index"] = str(index)
            name = f"{meta['name']}-{index}-{secrets.token_hex(3)[:5]}"
        containers = template["spec"]["containers"]
        if outcome.result == "image-pull":
            waiting = {
                "reason": "ImagePullBackOff",
                "message": f'Back-off pulling image "{containers[0]["image"]}"',
            }
            scheduled = _cond("PodScheduled", "True")
        elif outcome.result == "pending":
            waiting = {"reason": "ContainerCreating"}
            scheduled = _cond(
                "PodScheduled",
                "False",
                "Unschedulable",
                "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available",
            )
        else:
            waiting = {"reason": "ContainerCreating"}
            scheduled = _cond("PodScheduled", "True")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template["spec"],
            "status": {
                "phase": "Pending",
                "conditions": [scheduled],
                "containerStatuses": (
                    []
                    if outcome.result == "pending"
                    else [
                        {"name": c["name"], "ready": False, "restartCount": 0, "state": {"waiting": waiting}}
                        for c in containers
                    ]
                ),
            },
        }
        return self.emulator.create(
            PODS, meta["namespace"], pod, keep_status=True, created_ago=outcome.pending_age
        )

    def _pod_status(self, pod: Obj, phase: str, state: Obj, ready: bool) -> None:
        meta = pod["metadata"]
        current = self.emulator.get(PODS, meta["namespace"], meta["name"])
        if current is None:
            return
        status = {
            "phase": phase,
            "conditions": [_cond("PodScheduled", "True"), _cond("Ready", "True" if ready else "False")],
            "containerStatuses": [
                {"name": c["name"], "ready": ready, "restartCount": 0, "state": state}
                for c in current["spec"]["containers"]
            ],
            "startTime": current.get("status", {}).get("startTime") or now_rfc3339(),
        }
        self.emulator.replace_status(PODS, meta["namespace"], meta["name"], status)

    async def _run_job(self, job: Obj) -> None:
        spec = job["spec"]
        outcome = self.script(job)
        n = int(spec.get("completions") or 1)
        indexed = spec.get("completionMode") == "Indexed"
        for pod in self._job_pods(job):  # leftovers of a previous run of this Job (resume)
            self.emulator.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        pods = [self._make_pod(job, i if indexed else None, outcome) for i in range(n)]
        self._set_job_status(
            job,
            active=n,
            ready=0,
            startTime=now_rfc3339(),
            conditions=self._conditions(job, _cond("Suspended", "False", "JobResumed", "Job resumed"))
            if any(c["type"] == "Suspended" for c in job.get("status", {}).get("conditions", []))
            else self._conditions(job),
        )
        if outcome.result in ("pending", "image-pull"):
            return
        await asyncio.sleep(outcome.start_seconds)
        for pod in pods:
            self._pod_status(pod, "Running", {"running": {"startedAt": now_rfc3339()}}, True)
        self._set_job_status(job, ready=n)
        if outcome.result == "hang":
            return
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and outcome.run_seconds > float(deadline):
            await asyncio.sleep(float(deadline))
            self._finish(
                job,
                pods,
                ok=False,
                outcome=outcome,
                reason="DeadlineExceeded",
                message="Job was active longer than specified deadline",
            )
            return
        await asyncio.sleep(outcome.run_seconds)
        if outcome.result == "succeed":
            self._finish(job, pods, ok=True, outcome=outcome)
        else:
            self._finish(
                job,
                pods,
                ok=False,
                outcome=outcome,
                reason="BackoffLimitExceeded",
                message="Job has reached the specified backoff limit",
            )

    def _finish(
        self, job: Obj, pods: list[Obj], *, ok: bool, outcome: Outcome, reason: str = "", message: str = ""
    ) -> None:
        now = now_rfc3339()
        for i, pod in enumerate(pods):
            failed = not ok and (i == 0 or reason == "DeadlineExceeded")
            terminated = {
                "exitCode": outcome.exit_code if failed else 0,
                "reason": "Error" if failed else "Completed",
                "startedAt": now,
                "finishedAt": now,
            }
            if outcome.message and (failed or ok):
                terminated["message"] = outcome.message
            self._pod_status(pod, "Failed" if failed else "Succeeded", {"terminated": terminated}, False)
        n = len(pods)
        if ok:
            self._set_job_status(
                job,
                active=0,
                ready=0,
                succeeded=n,
                completionTime=now,
                completedIndexes=f"0-{n - 1}" if n > 1 else "0",
                conditions=self._conditions(
                    job,
                    _cond(
                        "SuccessCriteriaMet",
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                    ),
                    _cond(
                        "Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods"
                    ),
                ),
            )
        else:
            self._set_job_status(
                job,
                active=0,
                ready=0,
                failed=1,
                conditions=self._conditions(
                    job,
                    _cond("FailureTarget", "True", reason, message),
                    _cond("Failed", "True", reason, message),
                ),
            )

    # ----------------------------------------------------------------------------- deployments

    def _deployment_changed(self, kind: str, snapshot: Obj) -> None:
        if kind == "DELETED":
            return
        meta = snapshot["metadata"]
        dep = self.emulator.get(DEPLOYMENTS, meta["namespace"], meta["name"])
        if dep is None or dep["metadata"]["uid"] != meta["uid"]:
            return
        want = int(dep["spec"].get("replicas", 1))
        pods = self.emulator.list(PODS, meta["namespace"], f"purpcode.dev/deployment-uid={meta['uid']}")
        for pod in pods[want:]:
            self.emulator.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        template = dep["spec"]["template"]
        new = []
        for _ in range(want - len(pods)):
            labels = dict(template.get("metadata", {}).get("labels", {}))
            labels["purpcode.dev/deployment-uid"] = meta["uid"]
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{meta['name']}-{secrets.token_hex(4)[:9]}",
                    "labels": labels,
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": template["spec"],
                "status": {"phase": "Pending", "conditions": [_cond("PodScheduled", "True")]},
            }
            new.append(self.emulator.create(PODS, meta["namespace"], pod, keep_status=True))
        if new or len(pods) > want:
            self._set_deployment_status(dep)
        if new:
            asyncio.ensure_future(self._start_deployment_pods(dep, new))

    async def _start_deployment_pods(self, dep: Obj, pods: list[Obj]) -> None:
        outcome = self.script.deployments if isinstance(self.script, Scenario) else Outcome()
        if outcome.result in ("pending", "image-pull"):
            return
        await asyncio.sleep(outcome.start_seconds)
        for pod in pods:
            self._pod_status(pod, "Running", {"running": {"startedAt": now_rfc3339()}}, True)
        self._set_deployment_status(dep)

    def _set_deployment_status(self, dep: Obj) -> None:
        meta = dep["metadata"]
        current = self.emulator.get(DEPLOYMENTS, meta["namespace"], meta["name"])
        if current is None or current["metadata"]["uid"] != meta["uid"]:
            return
        pods = self.emulator.list(PODS, meta["namespace"], f"purpcode.dev/deployment-uid={meta['uid']}")
        ready = sum(1 for p in pods if p.get("status", {}).get("phase") == "Running")
        status = {
            "observedGeneration": current["metadata"].get("generation", 1),
            "replicas": len(pods),
            "updatedReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [
                _cond(
                    "Available",
                    "True" if ready > 0 else "False",
                    "MinimumReplicasAvailable" if ready > 0 else "MinimumReplicasUnavailable",
                ),
            ],
        }
        self.emulator.replace_status(DEPLOYMENTS, meta["namespace"], meta["name"], status)
