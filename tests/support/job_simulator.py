"""The controllers a cluster runs, inside the emulator: what kube-controller-manager, the kubelet and Kueue do to
the objects the operator creates, close enough to the real ones that an operator cannot rely on a shortcut.

- Job controller (Kubernetes >= 1.31): pods created through the API (so admission and injected faults apply; a
  refused create is a `FailedCreate` Event and a retry), one by one and at most `parallelism` at a time, per
  completion index for Indexed Jobs; the `batch.kubernetes.io/job-tracking` finalizer on every pod, removed once
  the pod is counted; `backoffLimit` (failed pods counted, replacements after an exponential pod backoff);
  `podFailurePolicy` (FailJob / Ignore / Count on exit codes and pod conditions, e.g. DisruptionTarget) and
  `podReplacementPolicy`; `activeDeadlineSeconds`; suspend (active pods deleted, `startTime` cleared) and resume
  (`startTime` reset); status counts `active`, `ready`, `terminating`, `failed`, `succeeded`,
  `completedIndexes`; terminal conditions in the real order: FailureTarget first, Failed only once no pod is left
  terminating; SuccessCriteriaMet first, then Complete with `completionTime`.
- Kubelet: each pod follows an `Outcome`: scheduled or not, ContainerCreating, ErrImagePull <-> ImagePullBackOff,
  Running/Ready, Succeeded, Failed (Error or OOMKilled, with the termination message), CrashLoopBackOff with a
  growing restartCount, evicted (DisruptionTarget, deleted), node lost (phase Unknown, then deleted by the taint
  manager and failed by the pod GC). A deleted pod is Terminating for a grace period, then Failed (exit 143).
- Deployment -> ReplicaSet -> Pods: a ReplicaSet per pod-template hash, rollouts (the new ReplicaSet scaled up, the
  old ones down as new pods become available), `observedGeneration` written only when the controller gets to it
  (after a lag), ready/available/updated replicas, the Available/Progressing conditions and ReplicaFailure
  (FailedCreate, with the API server's message) when pod creation is refused.
- Garbage collector: owner references followed after a random delay; background (dependents of a removed owner),
  foreground (the owner keeps `deletionTimestamp` and the `foregroundDeletion` finalizer until its blocking
  dependents are gone) and dependents created after their owner was deleted.
- Kueue: a suspended Job with the queue label is admitted (unsuspended) after `kueue_admit_after`.

Timings are scaled down (a grace period of `grace_seconds`, not 30 s). What each Job's pods do comes from a
script: `(job) -> Outcome`, usually a `Scenario` keyed by (stage slug, attempt).

Why one file (past 800 lines): the controllers act on each other's objects (the Job controller creates pods
the kubelet runs, the garbage collector removes them, Kueue unsuspends Jobs) inside one event loop and share the
condition and pod-state helpers; one module keeps their interplay readable in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import kmock

from .kube_emulator import KubeEmulator, Obj, Resource, now_rfc3339

JOBS = Resource("batch", "v1", "jobs")
PODS = Resource("", "v1", "pods")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
REPLICASETS = Resource("apps", "v1", "replicasets")
EVENTS = Resource("", "v1", "events")

STAGE_LABEL = "purpcode.dev/stage"
ATTEMPT_LABEL = "purpcode.dev/attempt"
ROLE_LABEL = "purpcode.dev/role"
KUEUE_LABEL = "kueue.x-k8s.io/queue-name"
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
FOREGROUND_FINALIZER = "foregroundDeletion"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
HASH_LABEL = "pod-template-hash"
# What the simulated controllers send as User-Agent, so request logs can tell their writes from the operator's.
USER_AGENT = "kube-controller-manager/v1.33.0 (linux/amd64) kubernetes/simulated"

Result = Literal[
    "succeed",
    "fail",
    "oom",
    "pending",
    "image-pull",
    "err-image-pull",
    "hang",
    "evicted",
    "node-lost",
    "crash-loop",
]
FAULTS = ("fail", "oom", "evicted", "node-lost")


@dataclass(frozen=True)
class Outcome:
    """What one pod does (and, through `then`, its replacements).

    Results: succeed; fail (exit `exit_code`, reason Error); oom (exit 137, reason OOMKilled); pending (never
    scheduled); image-pull (ImagePullBackOff); err-image-pull (ErrImagePull, then alternating with
    ImagePullBackOff); hang (Running forever); evicted (the Eviction API: DisruptionTarget, deleted, exit 143);
    node-lost (phase Unknown, then deleted by the taint manager and failed by the pod GC, DisruptionTarget);
    crash-loop (Running, container in CrashLoopBackOff with a growing restartCount: restartPolicy Always).
    """

    result: Result = "succeed"
    start_seconds: float = 0.05  # Pending -> Running
    run_seconds: float = 0.15  # Running -> finished
    message: str = ""  # the container's termination message
    exit_code: int = 1
    pending_age: float = (
        0.0  # pods look as if created this many seconds ago (created in-process, no admission)
    )
    then: Outcome | None = None  # what the replacement of a pod that ended does; None: the same again
    fault_index: int | None = (
        0  # Indexed Jobs: the index a fault hits (the others succeed); None: every index
    )

    def for_pod(self, index: int | None, previous_pods: int) -> Outcome:
        """The outcome of the pod created after `previous_pods` others for the same completion index."""
        out = self
        for _ in range(previous_pods):
            out = out.then or out
        if out.result in FAULTS and index is not None and out.fault_index not in (None, index):
            return Outcome("succeed", out.start_seconds, out.run_seconds)
        return out


Script = Callable[[Obj], Outcome]


@dataclass
class Scenario:
    """Outcomes by (stage slug, attempt); anything else gets `default`. Service pods: by role, else `deployments`."""

    outcomes: dict[tuple[str, int], Outcome] = field(default_factory=dict)
    default: Outcome = field(default_factory=Outcome)
    deployments: Outcome = field(default_factory=lambda: Outcome("hang", start_seconds=0.05))
    services: dict[str, Outcome] = field(default_factory=dict)  # by the pods' purpcode.dev/role label

    def __call__(self, job: Obj) -> Outcome:
        labels = job["metadata"].get("labels", {})
        key = (labels.get(STAGE_LABEL, ""), int(labels.get(ATTEMPT_LABEL, "0") or 0))
        return self.outcomes.get(key, self.default)

    def service(self, pod_labels: dict[str, str]) -> Outcome:
        return self.services.get(pod_labels.get(ROLE_LABEL, ""), self.deployments)


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


def _has_cond(obj: Obj, ctype: str, status: str = "True") -> bool:
    return any(
        c.get("type") == ctype and c.get("status") == status
        for c in obj.get("status", {}).get("conditions") or []
    )


def _key(obj: Obj) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def pod_terminal(pod: Obj) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def pod_index(pod: Obj) -> int | None:
    raw = (pod["metadata"].get("annotations") or {}).get(INDEX_KEY)
    return int(raw) if raw is not None and raw.isdigit() else None


def _exit_codes(pod: Obj, container: str | None) -> list[tuple[str, int]]:
    out = []
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if term is None or (container is not None and cs.get("name") != container):
            continue
        out.append((cs.get("name", ""), int(term.get("exitCode", 0))))
    return out


def match_pod_failure_policy(policy: Obj | None, pod: Obj) -> tuple[str, str] | None:
    """The first rule of `podFailurePolicy` a failed pod matches: (action, the Job controller's message).

    As pkg/controller/job/pod_failure_policy.go: exit code 0 never matches; `In` needs the code in the values,
    `NotIn` outside them; pod conditions match on type and status (default True).
    """
    meta = pod["metadata"]
    who = f"{meta.get('namespace')}/{meta['name']}"
    for i, rule in enumerate((policy or {}).get("rules") or []):
        action = rule["action"]
        req = rule.get("onExitCodes")
        if req is not None:
            values = set(req.get("values") or [])
            for name, code in _exit_codes(pod, req.get("containerName")):
                if code != 0 and (code in values) == (req["operator"] == "In"):
                    return action, (
                        f"Container {name} for pod {who} failed with exit code {code} matching {action} rule at "
                        f"index {i}"
                    )
        for pattern in rule.get("onPodConditions") or []:
            if _has_cond(pod, pattern["type"], pattern.get("status", "True")):
                return action, (
                    f"Pod {who} has condition {pattern['type']} matching {action} rule at index {i}"
                )
    return None


def template_hash(template: Obj) -> str:
    """A pod-template-hash: 10 characters from the template's content (the real one is FNV-32, safe-encoded)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    n = int(digest[:16], 16)
    return "".join(alphabet[(n >> (5 * i)) % len(alphabet)] for i in range(10))


def _suffix(k: int = 5) -> str:
    return "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=k))


class JobSimulator:
    """Attach to an emulator; runs inside its event loop. `api_url`: pods are created over HTTP (admission)."""

    def __init__(
        self,
        emulator: KubeEmulator,
        script: Script | None = None,
        *,
        api_url: str | None = None,
        kueue_admit_after: float = 0.2,
        grace_seconds: float = 0.2,
        pod_backoff_seconds: float = 0.2,
        pod_create_interval: float = 0.02,
        controller_lag: tuple[float, float] = (0.01, 0.08),
        gc_delay: tuple[float, float] = (0.05, 0.4),
        seed: int | None = None,
    ) -> None:
        self.emulator = emulator
        self.script: Script = script or Scenario()
        self.api_url = api_url
        self.kueue_admit_after = kueue_admit_after  # like Kueue: unsuspend queued Jobs after this long
        self.grace_seconds = grace_seconds  # terminationGracePeriodSeconds, scaled down
        self.pod_backoff_seconds = (
            pod_backoff_seconds  # the Job controller's pod backoff base (10 s for real)
        )
        self.pod_create_interval = pod_create_interval
        self.controller_lag = controller_lag
        self.gc_delay = gc_delay
        self.rng = random.Random(seed)
        self._loop = asyncio.get_running_loop()
        self._session: aiohttp.ClientSession | None = None
        self._admitted: set[str] = set()
        self._queued: dict[tuple[str, str, str], asyncio.TimerHandle] = {}
        self._creating: dict[
            str, int
        ] = {}  # owner uid -> pod creates in flight (the controller's expectations)
        self._pods_made: dict[tuple[str, int | None], int] = {}  # (job uid, index) -> pods created so far
        self._last_failure: dict[str, float] = {}  # job uid -> loop time of its last counted failure
        self._kubelet: dict[str, asyncio.Task[None]] = {}  # pod uid -> its lifecycle
        self._terminating: set[str] = set()
        self._counted: set[str] = set()  # deleted pods counted as failed before they ended (isPodFailed)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.failed_creates: list[tuple[str, int, str]] = []  # (owner, HTTP status, message)
        self._rs_failures: dict[str, str] = {}  # ReplicaSet uid -> the last refused create's message
        self._create_backoff: dict[
            str, tuple[float, float]
        ] = {}  # owner uid -> (retry at, delay): refused creates
        emulator.external_gc = True
        emulator.listeners.append(self._on_change)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(ValueError):
            self.emulator.listeners.remove(self._on_change)
        for handle in self._queued.values():
            handle.cancel()
        for task in [*self._kubelet.values(), *self._tasks]:
            task.cancel()

    async def aclose(self) -> None:
        self.close()
        if self._session is not None:
            await self._session.close()

    # ----------------------------------------------------------------------------- plumbing

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lag(self) -> float:
        return self.rng.uniform(*self.controller_lag)

    def _queue(self, kind: str, namespace: str, name: str, delay: float = 0.0) -> None:
        """Sync (kind, object) after `delay`; an earlier pending sync is kept (a work queue dedupes keys)."""
        key = (kind, namespace, name)
        when = self._loop.time() + delay
        handle = self._queued.get(key)
        if handle is not None and not handle.cancelled() and handle.when() <= when:
            return
        if handle is not None:
            handle.cancel()
        self._queued[key] = self._loop.call_at(when, self._sync, key)

    def _sync(self, key: tuple[str, str, str]) -> None:
        self._queued.pop(key, None)
        if self._closed:
            return
        kind, namespace, name = key
        {"job": self._sync_job, "rs": self._sync_rs, "deploy": self._sync_deployment}[kind](namespace, name)

    def _on_change(self, kind: str, res: Resource, obj: Obj) -> None:
        if self._closed:
            return
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        if res == JOBS and kind != "DELETED":
            self._queue("job", ns, meta["name"])
        elif res == DEPLOYMENTS and kind != "DELETED":
            self._queue("deploy", ns, meta["name"], self._lag())
        elif res == REPLICASETS:
            if kind != "DELETED":
                self._queue("rs", ns, meta["name"])
            self._queue_owner(obj, delay=self._lag())
        elif res == PODS:
            self._loop.call_soon(self._pod_changed, kind, obj)
            self._queue_owner(obj)
        self._loop.call_soon(self._gc_event, kind, res, obj)

    def _queue_owner(self, obj: Obj, delay: float = 0.0) -> None:
        ns = obj["metadata"].get("namespace", "")
        for ref in obj["metadata"].get("ownerReferences") or []:
            if not ref.get("controller"):
                continue
            kind = {"Job": "job", "ReplicaSet": "rs", "Deployment": "deploy"}.get(ref.get("kind", ""))
            if kind:
                self._queue(kind, ns, ref["name"], delay)

    def _owned(self, res: Resource, namespace: str, owner_uid: str) -> list[Obj]:
        return [
            o
            for o in self.emulator.list(res, namespace)
            if any(
                r.get("uid") == owner_uid and r.get("controller")
                for r in o["metadata"].get("ownerReferences") or []
            )
        ]

    def _set_status(self, res: Resource, obj: Obj, status: Obj) -> None:
        current = self.emulator.get(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if current is None or current["metadata"]["uid"] != obj["metadata"]["uid"]:
            return
        if (current.get("status") or {}) != status:
            self.emulator.replace_status(
                res, obj["metadata"].get("namespace"), obj["metadata"]["name"], status
            )

    def _event(self, obj: Obj, etype: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{_suffix(10)}", "namespace": meta.get("namespace")},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta["uid"],
            },
            "type": etype,
            "reason": reason,
            "message": message,
            "source": {"component": "simulated-controller-manager"},
            "firstTimestamp": now_rfc3339(),
            "lastTimestamp": now_rfc3339(),
            "count": 1,
        }
        with contextlib.suppress(kmock.KubernetesError):
            self.emulator.create(EVENTS, meta.get("namespace"), event)

    def _delete(self, res: Resource, obj: Obj, propagation: str = "Background") -> None:
        with contextlib.suppress(kmock.KubernetesError):
            self.emulator.delete(
                res, obj["metadata"].get("namespace"), obj["metadata"]["name"], propagation=propagation
            )

    def _drop_finalizer(self, res: Resource, obj: Obj, finalizer: str) -> None:
        current = self.emulator.get(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if current is None or finalizer not in (current["metadata"].get("finalizers") or []):
            return
        rest = [f for f in current["metadata"]["finalizers"] if f != finalizer]
        self.emulator.patch(
            res,
            current["metadata"].get("namespace"),
            current["metadata"]["name"],
            {"metadata": {"finalizers": rest}},
        )

    # ----------------------------------------------------------------------------- creating pods

    def _create_allowed(self, kind: str, owner: Obj) -> bool:
        """False (and a sync queued for later) while the owner's last refused create is backing off."""
        wait = self._create_backoff.get(owner["metadata"]["uid"], (0.0, 0.0))[0] - self._loop.time()
        if wait > 0:
            self._queue(kind, owner["metadata"]["namespace"], owner["metadata"]["name"], wait)
            return False
        return True

    async def _create_pod(self, owner: Obj, pod: Obj, outcome: Outcome) -> Obj | None:
        """POST the pod as the controller would (admission and injected faults apply). None when refused."""
        ns = owner["metadata"]["namespace"]
        if self.api_url is None or outcome.pending_age:
            try:
                created = self.emulator.create(PODS, ns, pod, created_ago=outcome.pending_age)
            except kmock.KubernetesError as err:
                return self._refused(owner, err.status or 500, err.message or str(err))
        else:
            if self._session is None:
                self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
            try:
                async with self._session.post(
                    f"{self.api_url}/api/v1/namespaces/{ns}/pods", json=pod
                ) as resp:
                    body = await resp.json(content_type=None)
                    if resp.status >= 300:
                        message = body.get("message", "") if isinstance(body, dict) else str(body)
                        return self._refused(owner, resp.status, message)
            except aiohttp.ClientError as err:
                return self._refused(owner, 503, str(err))
            created = self.emulator.get(PODS, ns, body["metadata"]["name"])
            if created is None or created["metadata"]["uid"] != body["metadata"]["uid"]:
                return None  # deleted already (its owner went away meanwhile)
        self._create_backoff.pop(owner["metadata"]["uid"], None)
        self._event(owner, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        self._start_kubelet(created, outcome)
        return created

    def _refused(self, owner: Obj, status: int, message: str) -> None:
        """A refused create: the controller's FailedCreate Event (and a ReplicaSet's ReplicaFailure condition)."""
        self.failed_creates.append((owner["metadata"]["name"], status, message))
        # The controllers' rate-limited requeue: the next try after a doubling delay (capped at 16x the base).
        _, delay = self._create_backoff.get(owner["metadata"]["uid"], (0.0, 0.0))
        delay = min(max(delay * 2, self.pod_backoff_seconds), self.pod_backoff_seconds * 16)
        self._create_backoff[owner["metadata"]["uid"]] = (self._loop.time() + delay, delay)
        self._event(owner, "Warning", "FailedCreate", f"Error creating: {message}")
        if owner.get("kind") == "ReplicaSet":
            self._rs_failures[owner["metadata"]["uid"]] = message
        return None

    def _pod_body(
        self,
        owner: Obj,
        template: Obj,
        name_prefix: str,
        labels: dict[str, str],
        annotations: dict[str, str],
        finalizers: list[str],
    ) -> Obj:
        meta = owner["metadata"]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": name_prefix,
                "namespace": meta["namespace"],
                "labels": {**(template.get("metadata", {}).get("labels") or {}), **labels},
                "annotations": {**(template.get("metadata", {}).get("annotations") or {}), **annotations},
                "finalizers": finalizers,
                "ownerReferences": [
                    {
                        "apiVersion": owner.get("apiVersion"),
                        "kind": owner.get("kind"),
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template["spec"],
        }

    # ----------------------------------------------------------------------------- the kubelet

    def _start_kubelet(self, pod: Obj, outcome: Outcome) -> None:
        uid = pod["metadata"]["uid"]
        self._kubelet[uid] = asyncio.ensure_future(self._pod_life(pod, outcome))

    def _pod_status(
        self,
        pod: Obj,
        phase: str,
        states: list[Obj],
        *,
        ready: bool,
        scheduled: bool = True,
        extra: list[Obj] | None = None,
        restarts: int = 0,
    ) -> None:
        current = self.emulator.get(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        if current is None or current["metadata"]["uid"] != pod["metadata"]["uid"]:
            return
        old = current.get("status") or {}
        kept = [c for c in old.get("conditions") or [] if c["type"] == "DisruptionTarget"]
        containers = current["spec"]["containers"]
        if scheduled:
            conds = [
                _cond("Initialized", "True"),
                _cond(
                    "Ready",
                    "True" if ready else "False",
                    "" if ready else ("PodCompleted" if phase == "Succeeded" else "ContainersNotReady"),
                ),
                _cond("ContainersReady", "True" if ready else "False"),
                _cond("PodScheduled", "True"),
            ]
        else:
            conds = [
                _cond(
                    "PodScheduled",
                    "False",
                    "Unschedulable",
                    "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available",
                )
            ]
        status: Obj = {
            "phase": phase,
            "conditions": kept + (extra or []) + conds,
            "qosClass": "Burstable",
        }
        if scheduled:
            status["hostIP"] = "10.0.0.7"
            status["podIP"] = old.get("podIP") or f"10.244.{random.randint(0, 255)}.{random.randint(2, 254)}"
            status["startTime"] = old.get("startTime") or now_rfc3339()
            status["containerStatuses"] = [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": ready,
                    "started": ready,
                    "restartCount": restarts,
                    **state,
                }
                for c, state in zip(containers, states * len(containers), strict=False)
            ]
        self.emulator.replace_status(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], status)

    async def _pod_life(self, pod: Obj, outcome: Outcome) -> None:
        image = pod["spec"]["containers"][0].get("image", "")
        if outcome.result == "pending":
            self._pod_status(pod, "Pending", [], ready=False, scheduled=False)
            return
        if outcome.result == "image-pull":
            self._pod_status(
                pod,
                "Pending",
                [waiting("ImagePullBackOff", f'Back-off pulling image "{image}"')],
                ready=False,
            )
            return
        self._pod_status(pod, "Pending", [waiting("ContainerCreating")], ready=False)
        if outcome.result == "err-image-pull":
            # Each pull fails (ErrImagePull), then the kubelet backs off before the next one (ImagePullBackOff,
            # 10 s doubling up to 5 min for real; here start_seconds doubling, capped at 16x).
            backoff = outcome.start_seconds
            while True:
                await asyncio.sleep(outcome.start_seconds)
                pull_error = f'failed to pull and unpack image "{image}": {image}: not found'
                self._pod_status(pod, "Pending", [waiting("ErrImagePull", pull_error)], ready=False)
                await asyncio.sleep(outcome.start_seconds)
                back_off = f'Back-off pulling image "{image}"'
                self._pod_status(pod, "Pending", [waiting("ImagePullBackOff", back_off)], ready=False)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, outcome.start_seconds * 16)
        await asyncio.sleep(outcome.start_seconds)
        started = now_rfc3339()
        running = {"state": {"running": {"startedAt": started}}}
        if outcome.result == "crash-loop":
            restarts = 0
            while True:
                self._pod_status(pod, "Running", [running], ready=False, restarts=restarts)
                await asyncio.sleep(outcome.run_seconds)
                restarts += 1
                last = {
                    "terminated": {
                        "exitCode": outcome.exit_code,
                        "reason": "Error",
                        "startedAt": started,
                        "finishedAt": now_rfc3339(),
                        "message": outcome.message,
                    }
                }
                state = {
                    **waiting(
                        "CrashLoopBackOff",
                        f"back-off {10 * 2 ** min(restarts - 1, 5)}s restarting failed container",
                    ),
                    "lastState": last,
                }
                self._pod_status(pod, "Running", [state], ready=False, restarts=restarts)
                await asyncio.sleep(outcome.start_seconds * 2)
        self._pod_status(pod, "Running", [running], ready=True)
        if outcome.result == "hang":
            return
        await asyncio.sleep(outcome.run_seconds)
        if outcome.result == "evicted":
            self._disrupt(pod, "EvictionByEvictionAPI", "Eviction API: evicting")
            self._delete(PODS, pod)
            return
        if outcome.result == "node-lost":
            self._pod_status(pod, "Unknown", [running], ready=False)
            await asyncio.sleep(outcome.start_seconds)
            self._disrupt(pod, "DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint")
            self._delete(PODS, pod)  # the kubelet is gone: the pod GC fails it (see _pod_changed)
            return
        ok = outcome.result == "succeed"
        term: Obj = {
            "exitCode": 0 if ok else (137 if outcome.result == "oom" else outcome.exit_code),
            "reason": "Completed" if ok else ("OOMKilled" if outcome.result == "oom" else "Error"),
            "startedAt": started,
            "finishedAt": now_rfc3339(),
        }
        if outcome.message:
            term["message"] = outcome.message
        self._pod_status(pod, "Succeeded" if ok else "Failed", [{"state": {"terminated": term}}], ready=False)

    def _disrupt(self, pod: Obj, reason: str, message: str) -> None:
        current = self.emulator.get(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        if current is None:
            return
        status = dict(current.get("status") or {})
        status["conditions"] = [
            _cond("DisruptionTarget", "True", reason, message),
            *(status.get("conditions") or []),
        ]
        self.emulator.replace_status(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], status)

    def _pod_changed(self, kind: str, snapshot: Obj) -> None:
        """The kubelet's and the pod GC's part: a deleted pod terminates after its grace period."""
        uid = snapshot["metadata"]["uid"]
        if kind == "DELETED":
            task = self._kubelet.pop(uid, None)
            if task is not None:
                task.cancel()
            self._terminating.discard(uid)
            return
        pod = self.emulator.get(PODS, snapshot["metadata"]["namespace"], snapshot["metadata"]["name"])
        if pod is None or pod["metadata"]["uid"] != uid:
            return
        if pod_terminal(pod) and TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or []):
            if uid in self._counted:
                self._counted.discard(uid)
                self._drop_finalizer(PODS, pod, TRACKING_FINALIZER)
                return
            owners = [
                r.get("uid") for r in pod["metadata"].get("ownerReferences") or [] if r.get("kind") == "Job"
            ]
            if not any(
                o in self.emulator._uids for o in owners
            ):  # an orphan: its Job is gone, nobody counts it
                self._drop_finalizer(PODS, pod, TRACKING_FINALIZER)
                return
        if not pod["metadata"].get("deletionTimestamp"):
            return
        if uid in self._terminating or pod_terminal(pod):
            return
        self._terminating.add(uid)
        task = self._kubelet.pop(uid, None)
        if task is not None:
            task.cancel()
        status = pod.get("status") or {}
        scheduled = _has_cond(pod, "PodScheduled") and status.get("phase") != "Unknown"
        self._spawn(self._terminate(pod, self.grace_seconds if scheduled else self._lag()))

    async def _terminate(self, pod: Obj, grace: float) -> None:
        await asyncio.sleep(grace)
        current = self.emulator.get(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        if current is None or current["metadata"]["uid"] != pod["metadata"]["uid"] or pod_terminal(current):
            return
        status = dict(current.get("status") or {})
        was = status.get("phase")
        if was in ("Pending", "Unknown") or not status.get("containerStatuses"):
            # Never ran on a live node: the pod GC marks it Failed (DisruptionTarget DeletionByPodGC).
            if not _has_cond(current, "DisruptionTarget"):
                status["conditions"] = [
                    _cond("DisruptionTarget", "True", "DeletionByPodGC", "PodGC: node no longer exists"),
                    *(status.get("conditions") or []),
                ]
            status["phase"] = "Failed"
            self.emulator.replace_status(
                PODS, current["metadata"]["namespace"], current["metadata"]["name"], status
            )
            return
        term = {"exitCode": 143, "reason": "Error", "finishedAt": now_rfc3339()}
        status["phase"] = "Failed"
        status["containerStatuses"] = [
            {**cs, "ready": False, "started": False, "state": {"terminated": term}}
            for cs in status.get("containerStatuses") or []
        ]
        status["conditions"] = [
            {**c, "status": "False"} if c["type"] in ("Ready", "ContainersReady") else c
            for c in status.get("conditions") or []
        ]
        self.emulator.replace_status(
            PODS, current["metadata"]["namespace"], current["metadata"]["name"], status
        )

    # ----------------------------------------------------------------------------- Kueue

    def _admit(self, namespace: str, name: str, uid: str) -> None:
        job = self.emulator.get(JOBS, namespace, name)
        if job is not None and job["metadata"]["uid"] == uid and job["spec"].get("suspend"):
            self.emulator.patch(JOBS, namespace, name, {"spec": {"suspend": False}})

    # ----------------------------------------------------------------------------- the Job controller

    def _sync_job(self, namespace: str, name: str) -> None:
        job = self.emulator.get(JOBS, namespace, name)
        if job is None:
            return
        meta, spec = job["metadata"], job["spec"]
        uid = meta["uid"]
        status: Obj = json.loads(json.dumps(job.get("status") or {}))
        conds: list[Obj] = status.get("conditions") or []
        pods = self._owned(PODS, namespace, uid)
        finished = _has_cond(job, "Complete") or _has_cond(job, "Failed")

        # Count finished pods once (the tracking finalizer is removed when counted).
        indexed = spec.get("completionMode") == "Indexed"
        done_indexes = _parse_indexes(status.get("completedIndexes", ""))
        new_failure: tuple[str, str] | None = None
        only_failed = spec.get("podFailurePolicy") is not None  # onlyReplaceFailedPods
        for pod in pods:
            puid = pod["metadata"]["uid"]
            if TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or []) or puid in self._counted:
                continue
            phase = (pod.get("status") or {}).get("phase")
            # isPodFailed: Failed, or (without a podFailurePolicy) deleted and not Succeeded: counted at once.
            deleted = (
                not only_failed and bool(pod["metadata"].get("deletionTimestamp")) and phase != "Succeeded"
            )
            if not pod_terminal(pod) and not deleted:
                continue
            if phase == "Succeeded":
                idx = pod_index(pod)
                if indexed and idx is not None:
                    if idx not in done_indexes:
                        done_indexes.add(idx)
                        status["succeeded"] = status.get("succeeded", 0) + 1
                else:
                    status["succeeded"] = status.get("succeeded", 0) + 1
            else:
                matched = match_pod_failure_policy(spec.get("podFailurePolicy"), pod)
                action = matched[0] if matched else "Count"
                if action != "Ignore":
                    status["failed"] = status.get("failed", 0) + 1
                    self._last_failure[uid] = self._loop.time()
                if action == "FailJob" and matched and new_failure is None:
                    new_failure = ("PodFailurePolicy", matched[1])
            if pod_terminal(pod):
                self._drop_finalizer(PODS, pod, TRACKING_FINALIZER)
            else:
                self._counted.add(puid)  # released once the kubelet has ended it (see _pod_changed)
        if indexed:
            status["completedIndexes"] = _format_indexes(done_indexes)
            if not done_indexes:
                status.pop("completedIndexes")

        live = [p for p in pods if not pod_terminal(p)]
        terminating = [p for p in live if p["metadata"].get("deletionTimestamp")]
        active = [p for p in live if not p["metadata"].get("deletionTimestamp")]
        completions = int(spec.get("completions") or 1)
        parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)

        if finished or meta.get("deletionTimestamp"):
            pass  # no pods for a finished Job, nor for one being deleted
        elif spec.get("suspend"):
            for pod in active:
                self._delete(PODS, pod)
            active = []
            if not _has_cond(job, "Suspended"):
                conds = _upsert(conds, _cond("Suspended", "True", "JobSuspended", "Job suspended"))
                self._event(job, "Normal", "Suspended", "Job suspended")
            status.pop("startTime", None)
            queue = (meta.get("labels") or {}).get(KUEUE_LABEL)
            if queue and uid not in self._admitted:
                self._admitted.add(uid)
                self._loop.call_later(self.kueue_admit_after, self._admit, namespace, name, uid)
        else:
            if _has_cond(job, "Suspended"):
                conds = _upsert(conds, _cond("Suspended", "False", "JobResumed", "Job resumed"))
                status["startTime"] = now_rfc3339()
                self._event(job, "Normal", "Resumed", "Job resumed")
            status.setdefault("startTime", now_rfc3339())
            target = _cond_of(conds, "FailureTarget") or _cond_of(conds, "SuccessCriteriaMet")
            if target is None:
                backoff_limit = int(spec.get("backoffLimit") if spec.get("backoffLimit") is not None else 6)
                deadline = spec.get("activeDeadlineSeconds")
                elapsed = _age(status["startTime"])
                succeeded = len(done_indexes) if indexed else status.get("succeeded", 0)
                if new_failure is not None:
                    target = _cond("FailureTarget", "True", *new_failure)
                elif status.get("failed", 0) > backoff_limit:
                    target = _cond(
                        "FailureTarget",
                        "True",
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    )
                elif deadline is not None and elapsed >= float(deadline):
                    target = _cond(
                        "FailureTarget",
                        "True",
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                    )
                elif succeeded >= completions:
                    target = _cond(
                        "SuccessCriteriaMet",
                        "True",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                    )
                if target is not None:
                    conds = conds + [target]
                    if target["type"] == "FailureTarget":
                        self._event(job, "Warning", target["reason"], target["message"])
                elif deadline is not None:
                    self._queue("job", namespace, name, max(float(deadline) - elapsed, 0.0) + 0.01)
            if target is not None:
                for pod in active:
                    self._delete(PODS, pod)
                terminating += active
                active = []
                if not terminating:  # the final condition only once no pod is left running or terminating
                    final = "Failed" if target["type"] == "FailureTarget" else "Complete"
                    conds = conds + [_cond(final, "True", target["reason"], target["message"])]
                    if final == "Complete":
                        status["completionTime"] = now_rfc3339()
                        self._event(job, "Normal", "Completed", "Job completed")
            else:
                self._start_pods(
                    job, status, pods, active, terminating, done_indexes, completions, parallelism
                )

        status["conditions"] = conds
        if not conds:
            status.pop("conditions")
        ready = sum(1 for p in active if _has_cond(p, "Ready"))
        for key, value in (("active", len(active)),):
            if value:
                status[key] = value
            else:
                status.pop(key, None)
        status["ready"] = ready
        status["terminating"] = len(terminating)
        status["uncountedTerminatedPods"] = {}
        self._set_status(JOBS, job, status)

    def _start_pods(
        self,
        job: Obj,
        status: Obj,
        pods: list[Obj],
        active: list[Obj],
        terminating: list[Obj],
        done: set[int],
        completions: int,
        parallelism: int,
    ) -> None:
        uid = job["metadata"]["uid"]
        if self._creating.get(uid) or not self._create_allowed("job", job):
            return  # earlier creates still in flight (the controller's expectations), or backing off
        spec = job["spec"]
        replacement = spec.get("podReplacementPolicy") or (
            "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
        )
        busy = active + (terminating if replacement == "Failed" else [])
        failed = status.get("failed", 0)
        if failed and uid in self._last_failure:
            wait = self.pod_backoff_seconds * 2 ** (failed - 1) - (
                self._loop.time() - self._last_failure[uid]
            )
            if wait > 0:
                self._queue("job", job["metadata"]["namespace"], job["metadata"]["name"], wait)
                return
        if spec.get("completionMode") == "Indexed":
            taken = {pod_index(p) for p in busy}
            todo: list[int | None] = [i for i in range(completions) if i not in done and i not in taken]
        else:
            remaining = completions - status.get("succeeded", 0) - len(busy)
            todo = [None] * max(remaining, 0)
        todo = todo[: max(parallelism - len(busy), 0)]
        if todo:
            self._creating[uid] = len(todo)
            self._spawn(self._create_job_pods(job, todo))

    async def _create_job_pods(self, job: Obj, indexes: list[int | None]) -> None:
        uid = job["metadata"]["uid"]
        try:
            for i, index in enumerate(indexes):
                if i:
                    await asyncio.sleep(self.pod_create_interval)  # pods appear one after another
                current = self.emulator.get(JOBS, job["metadata"]["namespace"], job["metadata"]["name"])
                if current is None or current["metadata"]["uid"] != uid or current["spec"].get("suspend"):
                    return
                made = self._pods_made.get((uid, index), 0)
                outcome = self.script(current).for_pod(index, made)
                name = job["metadata"]["name"]
                labels = {
                    "batch.kubernetes.io/job-name": name,
                    "job-name": name,
                    "batch.kubernetes.io/controller-uid": uid,
                    "controller-uid": uid,
                }
                annotations: dict[str, str] = {}
                prefix = f"{name}-"
                if index is not None:
                    labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
                    prefix = f"{name}-{index}-"
                body = self._pod_body(
                    current, current["spec"]["template"], prefix, labels, annotations, [TRACKING_FINALIZER]
                )
                if await self._create_pod(current, body, outcome) is None:
                    return  # refused: retried after the backoff
                self._pods_made[(uid, index)] = made + 1
        finally:
            self._creating.pop(uid, None)
            self._queue("job", job["metadata"]["namespace"], job["metadata"]["name"])

    # ----------------------------------------------------------------------------- Deployments and ReplicaSets

    def _sync_deployment(self, namespace: str, name: str) -> None:
        dep = self.emulator.get(DEPLOYMENTS, namespace, name)
        if dep is None or dep["metadata"].get("deletionTimestamp"):
            return
        spec = dep["spec"]
        want = int(spec.get("replicas", 1))
        template = spec["template"]
        h = template_hash(template)
        sets = self._owned(REPLICASETS, namespace, dep["metadata"]["uid"])
        new = next((rs for rs in sets if rs["metadata"].get("labels", {}).get(HASH_LABEL) == h), None)
        revision = 1 + max(
            (
                int(rs["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "0"))
                for rs in sets
            ),
            default=0,
        )
        created = False
        if new is None:
            labels = {**(template.get("metadata", {}).get("labels") or {}), HASH_LABEL: h}
            rs_template = json.loads(json.dumps(template))
            rs_template.setdefault("metadata", {})["labels"] = labels
            body = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{name}-{h}",
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": {
                        "deployment.kubernetes.io/revision": str(revision),
                        "deployment.kubernetes.io/desired-replicas": str(want),
                    },
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": name,
                            "uid": dep["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": {"replicas": want, "selector": {"matchLabels": labels}, "template": rs_template},
            }
            try:
                new = self.emulator.create(REPLICASETS, namespace, body)
            except kmock.KubernetesError:
                return
            created = True
            self._event(
                dep,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {new['metadata']['name']} to {want}",
            )
        elif new["spec"].get("replicas") != want:
            self.emulator.patch(REPLICASETS, namespace, new["metadata"]["name"], {"spec": {"replicas": want}})
        old_sets = [rs for rs in sets if rs["metadata"]["uid"] != new["metadata"]["uid"]]
        new_available = int((new.get("status") or {}).get("availableReplicas") or 0)
        # RollingUpdate (maxUnavailable 25%, rounded down): old pods go as new ones become available.
        allowed_old = max(want - want // 4 - new_available, 0) if want else 0
        for rs in old_sets:
            keep = min(int(rs["spec"].get("replicas", 0)), allowed_old)
            allowed_old -= keep
            if rs["spec"].get("replicas") != keep:
                self.emulator.patch(
                    REPLICASETS, namespace, rs["metadata"]["name"], {"spec": {"replicas": keep}}
                )
        sets = [new, *old_sets]
        st = [(rs.get("status") or {}) for rs in sets]
        available = sum(int(s.get("availableReplicas") or 0) for s in st)
        ready = sum(int(s.get("readyReplicas") or 0) for s in st)
        total = sum(int(s.get("replicas") or 0) for s in st)
        updated = int(st[0].get("replicas") or 0)
        old_cond = {c["type"]: c for c in (dep.get("status") or {}).get("conditions") or []}
        is_available = available >= want - want // 4
        conds = [
            _dep_cond(
                old_cond.get("Available"),
                "Available",
                "True" if is_available else "False",
                "MinimumReplicasAvailable" if is_available else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if is_available
                else "Deployment does not have minimum availability.",
            ),
        ]
        complete = updated == want and available >= want and total == want
        progress = (
            ("NewReplicaSetAvailable", f'ReplicaSet "{new["metadata"]["name"]}" has successfully progressed.')
            if complete
            else (
                ("NewReplicaSetCreated", f'Created new replica set "{new["metadata"]["name"]}"')
                if created
                else ("ReplicaSetUpdated", f'ReplicaSet "{new["metadata"]["name"]}" is progressing.')
            )
        )
        conds.append(_dep_cond(old_cond.get("Progressing"), "Progressing", "True", *progress))
        failure = next(
            (
                _cond_of(s.get("conditions") or [], "ReplicaFailure")
                for s in st
                if _cond_of(s.get("conditions") or [], "ReplicaFailure")
            ),
            None,
        )
        if failure is not None:
            conds.append(
                _dep_cond(
                    old_cond.get("ReplicaFailure"),
                    "ReplicaFailure",
                    "True",
                    failure["reason"],
                    failure["message"],
                )
            )
        status = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": conds,
        }
        if want - available > 0:
            status["unavailableReplicas"] = want - available
        status = {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}
        self._set_status(DEPLOYMENTS, dep, status)

    def _sync_rs(self, namespace: str, name: str) -> None:
        rs = self.emulator.get(REPLICASETS, namespace, name)
        if rs is None:
            return
        uid = rs["metadata"]["uid"]
        pods = self._owned(PODS, namespace, uid)
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp") and not pod_terminal(p)]
        want = 0 if rs["metadata"].get("deletionTimestamp") else int(rs["spec"].get("replicas", 1))
        if len(live) > want:
            doomed = sorted(
                live, key=lambda p: (_has_cond(p, "Ready"), p["metadata"].get("creationTimestamp", ""))
            )
            for pod in doomed[: len(live) - want]:
                self._delete(PODS, pod)
            live = [p for p in live if p not in doomed[: len(live) - want]]
        elif len(live) < want and not self._creating.get(uid) and self._create_allowed("rs", rs):
            self._creating[uid] = want - len(live)
            self._spawn(self._create_rs_pods(rs, want - len(live)))
        ready = sum(1 for p in live if _has_cond(p, "Ready"))
        status: Obj = {
            "replicas": len(live),
            "fullyLabeledReplicas": len(live),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        failure = self._rs_failures.get(uid)
        if failure:
            old = _cond_of((rs.get("status") or {}).get("conditions") or [], "ReplicaFailure")
            status["conditions"] = [_dep_cond(old, "ReplicaFailure", "True", "FailedCreate", failure)]
        status = {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}
        self._set_status(REPLICASETS, rs, status)

    async def _create_rs_pods(self, rs: Obj, n: int) -> None:
        uid = rs["metadata"]["uid"]
        try:
            for i in range(n):
                if i:
                    await asyncio.sleep(self.pod_create_interval)
                template = rs["spec"]["template"]
                outcome = (
                    self.script.service(template.get("metadata", {}).get("labels") or {})
                    if isinstance(self.script, Scenario)
                    else Outcome("hang")
                )
                body = self._pod_body(rs, template, f"{rs['metadata']['name']}-", {}, {}, [])
                if await self._create_pod(rs, body, outcome) is None:
                    return  # refused: retried after the backoff
                self._rs_failures.pop(uid, None)
        finally:
            self._creating.pop(uid, None)
            self._queue("rs", rs["metadata"]["namespace"], rs["metadata"]["name"])

    # ----------------------------------------------------------------------------- the garbage collector

    def _gc_event(self, kind: str, res: Resource, obj: Obj) -> None:
        meta = obj["metadata"]
        refs = meta.get("ownerReferences") or []
        live = self.emulator._uids
        if kind == "DELETED":
            self._loop.call_later(self.rng.uniform(*self.gc_delay), self._collect_dependents, meta["uid"])
            for ref in refs:  # a foreground-deleting owner may be waiting for this one
                if ref.get("uid") in live:
                    self._loop.call_later(
                        self.rng.uniform(*self.gc_delay), self._foreground, live[ref["uid"]]
                    )
            return
        if kind == "ADDED" and refs and all(r.get("uid") not in live for r in refs):
            self._loop.call_later(
                self.rng.uniform(*self.gc_delay),
                self._collect,
                res,
                meta.get("namespace"),
                meta["name"],
                meta["uid"],
            )
        if meta.get("deletionTimestamp") and FOREGROUND_FINALIZER in (meta.get("finalizers") or []):
            self._loop.call_later(
                self.rng.uniform(*self.gc_delay), self._foreground, (res, meta.get("namespace"), meta["name"])
            )

    def _dependents(self, uid: str) -> list[tuple[Resource, Obj]]:
        out = []
        for (res, _ns, _name), stored in list(self.emulator._objects._objects.items()):
            if stored.deleted:
                continue
            raw = stored.raw
            if any(r.get("uid") == uid for r in raw["metadata"].get("ownerReferences") or []):
                out.append((res, raw))
        return out

    def _collect(self, res: Resource, namespace: str | None, name: str, uid: str) -> None:
        """Delete an object whose every owner is gone (background propagation)."""
        if self._closed:
            return
        obj = self.emulator.get(res, namespace, name)
        if obj is None or obj["metadata"]["uid"] != uid or obj["metadata"].get("deletionTimestamp"):
            return
        refs = obj["metadata"].get("ownerReferences") or []
        if refs and all(r.get("uid") not in self.emulator._uids for r in refs):
            self._delete(res, obj)

    def _collect_dependents(self, uid: str) -> None:
        for res, obj in self._dependents(uid):
            self._collect(
                res, obj["metadata"].get("namespace"), obj["metadata"]["name"], obj["metadata"]["uid"]
            )

    def _foreground(self, key: tuple[Resource, str | None, str]) -> None:
        """An owner deleted in the foreground goes once no dependent blocks it; its dependents go first."""
        if self._closed:
            return
        res, namespace, name = key
        owner = self.emulator.get(res, namespace, name)
        if owner is None or FOREGROUND_FINALIZER not in (owner["metadata"].get("finalizers") or []):
            return
        blocking = 0
        for dep_res, dep in self._dependents(owner["metadata"]["uid"]):
            ref = next(
                r for r in dep["metadata"]["ownerReferences"] if r.get("uid") == owner["metadata"]["uid"]
            )
            if ref.get("blockOwnerDeletion"):
                blocking += 1
            if not dep["metadata"].get("deletionTimestamp"):
                has_own = bool(self._dependents(dep["metadata"]["uid"]))
                self._delete(dep_res, dep, "Foreground" if has_own else "Background")
        if not blocking:
            self._drop_finalizer(res, owner, FOREGROUND_FINALIZER)


def waiting(reason: str, message: str = "") -> Obj:
    """A container status' waiting state."""
    return {"state": {"waiting": {"reason": reason, **({"message": message} if message else {})}}}


def _cond_of(conds: list[Obj], ctype: str) -> Obj | None:
    return next((c for c in conds if c.get("type") == ctype and c.get("status") == "True"), None)


def _upsert(conds: list[Obj], new: Obj) -> list[Obj]:
    out = [c for c in conds if c["type"] != new["type"]]
    old = next((c for c in conds if c["type"] == new["type"]), None)
    if old is None:
        return out + [new]
    return [new if c is old else c for c in conds]


def _dep_cond(old: Obj | None, ctype: str, status: str, reason: str, message: str) -> Obj:
    """A Deployment/ReplicaSet condition: lastUpdateTime moves when it changes, lastTransitionTime on a flip."""
    now = now_rfc3339()
    new = {"type": ctype, "status": status, "reason": reason, "message": message}
    if old is None:
        return {**new, "lastUpdateTime": now, "lastTransitionTime": now}
    same = all(old.get(k) == v for k, v in new.items())
    return {
        **new,
        "lastUpdateTime": old.get("lastUpdateTime", now) if same else now,
        "lastTransitionTime": old.get("lastTransitionTime", now) if old.get("status") == status else now,
    }


def _age(rfc3339: str) -> float:
    t = datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return (datetime.datetime.now(datetime.UTC) - t).total_seconds()


def _parse_indexes(text: str) -> set[int]:
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _format_indexes(indexes: set[int]) -> str:
    """completedIndexes as the Job controller writes it: sorted, runs of consecutive indexes as ranges."""
    parts: list[str] = []
    for i in sorted(indexes):
        if parts and parts[-1].split("-")[-1] == str(i - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{i}"
        else:
            parts.append(str(i))
    return ",".join(parts)
