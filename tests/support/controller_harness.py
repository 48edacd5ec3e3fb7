"""An in-process harness for the controller: an in-memory API and kopf's indices as dicts.

The controller is driven directly (no kopf, no HTTP): `Api` answers the calls one reconcile makes, the indices are
plain dicts a test fills in the order the watch streams would, and watch events are delivered by calling
`run_event` / `child_event` as the handlers do.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from purpcode_operator import api, naming
from purpcode_operator.config import OperatorConfig
from purpcode_operator.controller import Controller, ReconcileError, trim_job, trim_pod
from purpcode_operator.kube import ApiError
from purpcode_operator.metrics import OperatorMetrics

from .run_specs import tiny_run

Obj = dict[str, Any]
NS, RUN, UID = "default", "raced", "run-uid-1"
KEY = (NS, RUN)
T0 = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.UTC)
INIT_JOB = naming.job_name(RUN, "init", 1)


def ts(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def run_body(uid: str = UID, rv: str = "10", **spec: Any) -> Obj:
    doc = tiny_run(RUN, **spec)
    doc["metadata"].update(namespace=NS, uid=uid, generation=1, resourceVersion=rv, creationTimestamp=ts(T0))
    return doc


class Api:
    """The calls one reconcile makes, against one in-memory run.

    Creates answer as the API server does (uid, resourceVersion, creationTimestamp, empty status); objects in
    `existing` answer as `KubeClient.ensure` does on a 409 (the object read back). Status writes apply the JSON
    patch ops the controller sends (`test` and `add`), like the API server's status subresource.
    """

    def __init__(self, run: Obj, now: datetime.datetime = T0) -> None:
        self.run = copy.deepcopy(run)
        self.rv = int(run["metadata"]["resourceVersion"])
        self.now = now
        self.existing: dict[tuple[str, str], Obj] = {}
        self.fail_kinds: set[str] = set()
        self.fail_status_writes = 0
        self.created: list[Obj] = []
        self.ensured: list[tuple[str, str]] = []
        self.events: list[Obj] = []
        self.patches: list[tuple[str, str, Any]] = []
        self.status_writes = 0

    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    async def ensure(self, obj: Obj, *, patch_if_exists: Obj | None = None) -> Obj:
        kind, name = obj["kind"], obj["metadata"]["name"]
        self.ensured.append((kind, name))
        if kind in self.fail_kinds:
            raise ApiError(500, "InternalError", f"create {kind} {name}: etcdserver: request timed out")
        if (kind, name) in self.existing:
            return copy.deepcopy(self.existing[(kind, name)])
        meta = {
            **obj["metadata"],
            "uid": f"uid-{name}",
            "resourceVersion": self.next_rv(),
            "creationTimestamp": ts(self.now),
        }
        out = {**obj, "metadata": meta, "status": {}}
        self.existing[(kind, name)] = out
        self.created.append(out)
        return copy.deepcopy(out)

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj:
        assert kind == api.KIND, kind
        if not self.run:
            raise ApiError(404, "NotFound", f"{kind} {name} not found")
        return copy.deepcopy(self.run)

    async def post_event(self, event: Obj) -> bool:
        self.events.append(event)
        return True

    async def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        body: Any,
        *,
        sub: str | None = None,
        json_patch: bool = False,
    ) -> Obj:
        if kind != api.KIND:
            self.patches.append((kind, name, body))
            return {}
        assert sub == "status" and json_patch
        if self.fail_status_writes:
            self.fail_status_writes -= 1
            raise ApiError(500, "InternalError", "etcdserver: leader changed")
        for op in body:
            parts = op["path"].strip("/").split("/")
            if op["op"] == "test":
                value: Any = self.run
                for part in parts:
                    value = value.get(part) if isinstance(value, dict) else None
                if value != op["value"]:
                    raise ApiError(422, "Invalid", f"the test at {op['path']} failed")
            elif op["op"] == "add" and parts == ["status"]:
                self.run["status"] = copy.deepcopy(op["value"])
            else:
                raise AssertionError(f"unexpected status patch op {op}")
        self.status_writes += 1
        self.run["metadata"]["resourceVersion"] = self.next_rv()
        return copy.deepcopy(self.run)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        return None


class Harness:
    """A Controller over `Api`, with the indices as dicts the test fills like kopf's watch streams would."""

    def __init__(self, run: Obj, now: datetime.datetime = T0) -> None:
        self.api = Api(run, now)
        self.now = now
        self.jobs: dict[Any, list[Obj]] = {}
        self.pods: dict[Any, list[Obj]] = {}
        self.requeues: list[float | None] = []
        self.controller = Controller(
            client=self.api,  # type: ignore[arg-type]  # the calls a reconcile makes
            config=OperatorConfig(),
            metrics=OperatorMetrics(),
            jobs=self.jobs,
            pods=self.pods,
            deployments={},
            clock=lambda: self.now,
        )

    async def drain(self, limit: int = 10) -> int:
        """Run reconciles while the run is queued (as a worker would); returns how many ran."""
        n = 0
        while len(self.controller.queue) and n < limit:
            key = await self.controller.queue.get()
            try:
                self.requeues.append(await self.controller.reconcile(key))
            except ReconcileError:
                self.requeues.append(None)
            finally:
                self.controller.queue.done(key)
            n += 1
        return n

    def index_job(self, job: Obj) -> None:
        """kopf indexes a Job version, then calls job_event with it."""
        self.jobs[KEY] = [trim_job(job)]
        self.controller.child_event(
            NS, RUN, job=job["metadata"]["name"], rv=job["metadata"]["resourceVersion"]
        )

    def index_pod(self, pod: Obj) -> None:
        self.pods[KEY] = [trim_pod(pod)]
        self.controller.child_event(NS, RUN)

    def deliver_run(self, etype: str | None = "MODIFIED", body: Obj | None = None) -> None:
        self.controller.run_event(etype, copy.deepcopy(body or self.api.run))

    def stage(self, name: str = "initialize") -> Obj:
        return dict(self.api.run.get("status", {}).get("stages", {}).get(name, {}))

    def events(self, reason: str) -> list[Obj]:
        return [e for e in self.api.events if e["reason"] == reason]


def failed_version(job: Obj, rv: int, at: datetime.datetime) -> Obj:
    out = copy.deepcopy(job)
    out["metadata"]["resourceVersion"] = str(rv)
    out["status"] = {
        "startTime": ts(at),
        "failed": 1,
        "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            },
        ],
    }
    return out


def failed_pod(job: Obj, message: str) -> Obj:
    labels = dict(job["spec"]["template"]["metadata"]["labels"])
    labels["batch.kubernetes.io/controller-uid"] = job["metadata"]["uid"]
    labels["batch.kubernetes.io/job-name"] = job["metadata"]["name"]
    return {
        "metadata": {
            "name": f"{job['metadata']['name']}-x7k2p",
            "namespace": NS,
            "uid": "pod-uid-1",
            "labels": labels,
            "creationTimestamp": job["metadata"]["creationTimestamp"],
        },
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "stage",
                    "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": message}},
                }
            ],
        },
    }
