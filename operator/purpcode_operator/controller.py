"""The controller: watch events in, one reconcile per run at a time out.

kopf feeds it (handlers.py): every PurpCodeRun event updates the run cache and queues the run; every event of a
Job, Pod or Deployment the operator manages queues its run. Workers take runs off the queue, read the run and its
children from kopf's indices (filled from the cluster; kopf fills them before any handler runs, so a restarted
operator decides from the whole cluster state), call the pure `decide`, and execute it: creates (409 = there),
patches, deletes, Events, then the status (the commit). Nothing that matters lives only in memory.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import api, naming, render
from .config import OperatorConfig
from .decide import (
    Decision,
    EventSpec,
    Observed,
    Settings,
    action_failed_status,
    decide,
    parse_time,
    prepare,
    rejected_status,
    status_changed,
)
from .kube import ApiError, KubeClient, gather_api, gather_errors
from .metrics import CONTROLLER, OperatorMetrics
from .plan import RunPlan
from .validate import SpecError
from .workqueue import LOW, WorkQueue

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, run name)
IndexLike = Mapping[Key, Iterable[Obj]]

log = logging.getLogger("purpcode_operator.controller")


class ReconcileError(Exception):
    """A reconcile could not finish (API errors); the run is retried with backoff."""


def _generation(body: Mapping[str, Any]) -> int:
    raw = body.get("metadata", {}).get("generation")
    return raw if isinstance(raw, int) else 0


_VOLATILE_META = ("resourceVersion", "managedFields")
# Events a decision on the created Jobs posts again (see Controller._defer; decide._record_attempt).
_REPEATABLE_EVENTS = ("StageStarted/", "RunStarted")


def _changed_besides_status(before: Obj, after: Obj) -> bool:
    """Whether `after` differs from `before` in anything but the status and the bookkeeping of a write."""
    if before.get("spec") != after.get("spec"):
        return True
    a, b = before.get("metadata", {}), after.get("metadata", {})
    keys = (set(a) | set(b)) - set(_VOLATILE_META)
    return any(a.get(k) != b.get(k) for k in keys)


def _owned_by(obj: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


def trim_job(body: Mapping[str, Any]) -> Obj:
    """What decisions read from a Job (index entries stay small; the parsed dicts are shared, never mutated)."""
    meta = body.get("metadata", {})
    return {
        "metadata": {
            k: meta.get(k)
            for k in ("name", "namespace", "uid", "labels", "creationTimestamp", "ownerReferences")
        },
        "spec": {k: body.get("spec", {}).get(k) for k in ("suspend", "completions", "parallelism")},
        "status": body.get("status") or {},
    }


def trim_pod(body: Mapping[str, Any]) -> Obj:
    meta = body.get("metadata", {})
    status = body.get("status") or {}
    return {
        "metadata": {k: meta.get(k) for k in ("name", "uid", "labels", "creationTimestamp")},
        "status": {k: status.get(k) for k in ("phase", "conditions", "containerStatuses")},
    }


def trim_deployment(body: Mapping[str, Any]) -> Obj:
    meta = body.get("metadata", {})
    return {
        "metadata": {
            k: meta.get(k) for k in ("name", "uid", "labels", "ownerReferences", "creationTimestamp")
        },
        "spec": {"replicas": body.get("spec", {}).get("replicas")},
        "status": body.get("status") or {},
    }


class Controller:
    def __init__(
        self,
        client: KubeClient,
        config: OperatorConfig,
        metrics: OperatorMetrics,
        *,
        jobs: IndexLike,
        pods: IndexLike,
        deployments: IndexLike,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.metrics = metrics
        self.settings = self.settings_from(config)
        self.jobs, self.pods, self.deployments = jobs, pods, deployments
        self.queue: WorkQueue[Key] = WorkQueue(CONTROLLER, metrics)
        # The series every reconcile touches, looked up once (labels() costs more than the update itself).
        self._active_workers = metrics.active_workers.labels(CONTROLLER)
        self._reconcile_time = metrics.reconcile_time.labels(CONTROLLER)
        self._work_duration = metrics.work_duration.labels(CONTROLLER)
        self._reconcile_total = {
            r: metrics.reconcile_total.labels(CONTROLLER, r) for r in ("success", "requeue_after", "error")
        }
        self.bodies: dict[Key, Obj] = {}
        self._prepared: dict[Key, tuple[str, Any, tuple[api.PurpCodeRun, RunPlan] | None]] = {}
        # Jobs this process created and decided on in the same reconcile (name -> resourceVersion): their
        # ADDED watch events carry nothing new, so they do not queue the run again (see _follow_up).
        self._decided_jobs: dict[Key, dict[str, str]] = {}
        # Jobs created by a reconcile that left the status for later (see reconcile), until their watch event
        # puts them in the index: the deferred reconcile observes them either way.
        self._fresh_jobs: dict[Key, dict[str, Obj]] = {}
        # The resourceVersion of our own status write whose watch event has not come yet: until it comes, the
        # (ordered) watch can only bring older versions. resourceVersions are opaque: never compared for order.
        self._awaiting: dict[Key, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._active = 0
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._instance = socket.gethostname()
        self.started = False

    @staticmethod
    def settings_from(config: OperatorConfig) -> Settings:
        """The decision's settings from the operator's configuration (also what `purpcode render` uses)."""
        return Settings(
            retry_backoff_seconds=config.retry_backoff_seconds,
            retry_backoff_max_seconds=config.retry_backoff_max_seconds,
            defaults=config.defaults,
            judge_url=config.judge_url,
            judge_model=config.judge_model,
            judge_api_key_secret=config.judge_api_key_secret,
            sandbox_runtime_class_name=config.sandbox_runtime_class_name,
            sandbox_metrics_scrapers=config.sandbox_metrics_scrapers,
        )

    # ----------------------------------------------------------------------------- inputs

    def run_event(self, etype: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if etype == "DELETED":
            current = self.bodies.get(key)
            if current is not None and current.get("metadata", {}).get("uid") != meta.get("uid"):
                return  # a deleted run whose same-name successor is already known (kopf handles uids apart)
            self.bodies.pop(key, None)
            self._prepared.pop(key, None)
            self._decided_jobs.pop(key, None)
            self._fresh_jobs.pop(key, None)
            self._awaiting.pop(key, None)
            self.queue.forget(key)
            self.metrics.forget_run(*key)
            return
        current = self.bodies.get(key)
        if current is not None and current.get("metadata", {}).get("uid") == meta.get("uid"):
            if self._known(key, body, current):
                # The echo of our own status write, or an older version arriving after it: what that version
                # says was decided on already (any later change comes as its own, newer event).
                return
        self._awaiting.pop(key, None)
        # kopf never mutates an event's parsed body (only daemons' live bodies), and neither do we: keep it.
        self._remember(key, dict(body))
        self.queue.add(key)

    def child_event(
        self, namespace: str | None, run: str | None, job: str | None = None, rv: str | None = None
    ) -> None:
        if not (namespace and run):
            return
        key = (namespace, run)
        fresh = self._fresh_jobs.get(key)
        if fresh is not None and job is not None and fresh.pop(job, None) is not None and not fresh:
            del self._fresh_jobs[key]  # the index has it now
        known = self._decided_jobs.get(key)
        if known is not None and job is not None and job in known:
            decided_rv = known.pop(job)
            if not known:
                del self._decided_jobs[key]
            if rv is not None and rv == decided_rv:
                return  # the watch event of the Job version the run's status was decided on: nothing new
        self.queue.add(key)

    def _known(self, key: Key, body: Mapping[str, Any], current: Obj) -> bool:
        """Whether a watch event brings a version we hold already or an older one (see `_awaiting`)."""
        rv = body.get("metadata", {}).get("resourceVersion")
        if rv == current.get("metadata", {}).get("resourceVersion"):
            self._awaiting.pop(key, None)
            return True
        if key not in self._awaiting:
            return False
        # Before our write's own event: older, unless it is visibly newer (after a re-list the watch starts at
        # the current version): a new generation, or a deletion we have not seen.
        newer = _generation(body) > _generation(current) or (
            bool(body.get("metadata", {}).get("deletionTimestamp"))
            and not current.get("metadata", {}).get("deletionTimestamp")
        )
        return not newer

    def _remember(self, key: Key, body: Obj, *, written: bool = False) -> None:
        """Keep the newest body we know; `written`: it is the answer to our own write (its event comes later)."""
        self.bodies[key] = body
        rv = body.get("metadata", {}).get("resourceVersion")
        if written and rv is not None:
            self._awaiting[key] = str(rv)

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.metrics.max_workers.labels(CONTROLLER).set(self.config.workers)
        self.metrics.active_workers.labels(CONTROLLER).set(0)
        for i in range(self.config.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"purpcode-worker-{i}"))
        self._tasks.append(asyncio.create_task(self._resync(), name="purpcode-resync"))
        self.started = True

    async def stop(self) -> None:
        self.queue.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self.started = False

    def alive(self) -> bool:
        return self.started and all(not t.done() for t in self._tasks)

    async def _resync(self) -> None:
        """A slow safety net (controller-runtime's SyncPeriod): requeue every known run now and then."""
        while True:
            await asyncio.sleep(self.config.resync_seconds)
            for key in list(self.bodies):
                self.queue.add(key, LOW)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            started = time.monotonic()
            self._active += 1
            self._active_workers.set(self._active)
            result = "success"
            try:
                requeue = await self.reconcile(key)
                self.queue.forget_failures(key)
                if requeue is not None:
                    result = "requeue_after"
                    self.queue.add_after(key, requeue)
            except asyncio.CancelledError:
                raise
            except ReconcileError as err:
                result = "error"
                self.metrics.reconcile_errors.labels(CONTROLLER).inc()
                delay = self.queue.add_rate_limited(key)
                log.warning("reconcile %s/%s failed, retrying in %.1fs: %s", *key, delay, err)
            except Exception:  # noqa: BLE001 - a bug in one reconcile must not kill the worker; logged, retried
                result = "error"
                self.metrics.reconcile_errors.labels(CONTROLLER).inc()
                delay = self.queue.add_rate_limited(key)
                log.exception("reconcile %s/%s crashed, retrying in %.1fs", *key, delay)
            finally:
                self._active -= 1
                self._active_workers.set(self._active)
                elapsed = time.monotonic() - started
                self._reconcile_total[result].inc()
                self._reconcile_time.observe(elapsed)
                self._work_duration.observe(elapsed)
                self.queue.done(key)

    # ----------------------------------------------------------------------------- one reconcile

    def observe(self, body: Obj, extra_jobs: Mapping[str, Obj] | None = None) -> Observed:
        """The run's children from the indices (plus `extra_jobs`: Jobs known from a create's answer, and Jobs
        created by a deferred reconcile that the index does not hold yet)."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        uid = meta.get("uid", "")
        jobs = {j["metadata"]["name"]: j for j in self.jobs.get(key, ()) if _owned_by(j, uid)}
        for name, job in (self._fresh_jobs.get(key) or {}).items():
            if _owned_by(job, uid):
                jobs.setdefault(name, job)
        jobs.update(extra_jobs or {})
        job_uids = {j["metadata"].get("uid") for j in jobs.values()}
        deployments = {d["metadata"]["name"]: d for d in self.deployments.get(key, ()) if _owned_by(d, uid)}
        pods = []
        for pod in self.pods.get(key, ()):
            labels = pod.get("metadata", {}).get("labels") or {}
            controller_uid = labels.get("batch.kubernetes.io/controller-uid") or labels.get("controller-uid")
            if controller_uid is None or controller_uid in job_uids:
                pods.append(pod)
        return Observed(jobs=jobs, pods=pods, deployments=deployments)

    def _prepare(self, key: Key, body: Obj) -> tuple[api.PurpCodeRun, RunPlan] | None:
        """Validated run + plan, cached per (uid, generation); None when the spec is invalid."""
        meta = body.get("metadata", {})
        stamp = (meta.get("uid", ""), meta.get("generation"))
        cached = self._prepared.get(key)
        if cached is not None and (cached[0], cached[1]) == stamp:
            return cached[2]
        try:
            prepared: tuple[api.PurpCodeRun, RunPlan] | None = prepare(body, self.settings)
        except SpecError:
            prepared = None
        self._prepared[key] = (stamp[0], stamp[1], prepared)
        return prepared

    async def reconcile(self, key: Key) -> float | None:
        body = self.bodies.get(key)
        if body is None:
            return None
        namespace, name = key
        began = time.monotonic()
        now = self._clock()
        observed = self.observe(body)
        prepared = self._prepare(key, body)
        decision = decide(body, observed, now, self.settings, prepared)
        if decision.status is None:
            return None
        # What a Job's pods mount (ConfigMap, volume claim, rendezvous Service) first, the Jobs only when all of
        # it exists: once a Job exists, decide() starts no attempt again, so nothing would create it later.
        first = [c for c in decision.creates if c.obj.get("kind") != "Job"]
        jobs = [c for c in decision.creates if c.obj.get("kind") == "Job"]
        created, errors = await gather_api(
            [self.client.ensure(c.obj, patch_if_exists=c.patch_if_exists) for c in first]
        )
        if not errors and jobs:
            created_jobs, errors = await gather_api(
                [self.client.ensure(c.obj, patch_if_exists=c.patch_if_exists) for c in jobs]
            )
            created += created_jobs
        invalid = [e for e in errors if e.status == 422]
        if invalid:
            # 422 Invalid on a create: the spec asks for something the API server will never accept (a field
            # Kubernetes validates and the CRD cannot). Retrying forever cannot help: fail the run with the
            # server's own message; a spec change (new generation) continues it.
            message = "; ".join(str(e) for e in invalid)[:4000]
            status = rejected_status(body, message, now)
            await self._write_status(key, body, status)
            digest = hashlib.sha256(message.encode()).hexdigest()[:12]
            await self._post_events(
                body,
                [
                    EventSpec(
                        "Warning", "SpecRejected", status.get("message", message), f"SpecRejected/{digest}"
                    )
                ],
                now,
            )
            self._record(key, body, Decision(status=status))
            return None
        if not errors:
            errors = await gather_errors(
                [
                    self.client.patch(p.api_version, p.kind, namespace, p.name, p.body)
                    for p in decision.patches
                ]
                + [self.client.delete(d.api_version, d.kind, namespace, d.name) for d in decision.deletes]
            )
        if errors:
            message = "; ".join(str(e) for e in errors)[:4000]
            await self._write_status(key, body, action_failed_status(body, message, now))
            digest = hashlib.sha256(message.encode()).hexdigest()[:12]
            await self._post_events(
                body, [EventSpec("Warning", "CreateFailed", message, f"CreateFailed/{digest}")], now
            )
            raise ReconcileError(message)
        if self._defer(key, decision, created, began):
            return None
        self._fresh_jobs.pop(key, None)
        decision, decided_jobs = self._follow_up(body, observed, now, prepared, decision, created)
        for job_name, job_rv in decided_jobs.items():
            # Before any await: the Job's watch event may arrive during the writes below. Should they fail, the
            # run is retried anyway (ReconcileError).
            self._decided_jobs.setdefault(key, {})[job_name] = job_rv
        await self._post_events(body, decision.events, now)
        if status_changed(body, decision.status):
            assert decision.status is not None
            await self._write_status(key, body, decision.status)
        self._record(key, body, decision)
        if decision.delete_run:
            await self.client.delete(api.API_VERSION, api.KIND, namespace, name)
            return None
        return decision.requeue_after

    def _defer(self, key: Key, decision: Decision, created: list[Any], began: float) -> bool:
        """Leave a new attempt's status and Events to a LOW-priority reconcile while other runs wait (HIGH).

        When hundreds of runs arrive at once, each run's first Job is what users wait for; its status write,
        Events and their watch echoes cost as much again. So a reconcile that has just created Jobs while other
        runs wait for theirs (HIGH keys queued, or added since this reconcile began: kopf hands a burst's events
        over one by one) stops there and queues its run at LOW priority: that reconcile observes the Jobs
        (index, or the create's answer until the index has them) and decides exactly what a restarted operator
        would after a crash at this point (the status and Events of the attempt, from the Job). Nothing is kept
        only in memory: lose this process now and the next one decides the same from the cluster. A decision
        that says more than "an attempt started" (a failure recorded, a stage finished) is written at once.
        """
        if decision.status is None or decision.delete_run or not self.queue.busy_since(began):
            return False
        if decision.finished or not all(e.key.startswith(_REPEATABLE_EVENTS) for e in decision.events):
            # Something else happened in this decision (an attempt failed and its retry started at once, a
            # stage finished): the Job alone does not tell it again, so it is written now.
            return False
        jobs = [obj for obj in created if isinstance(obj, dict) and obj.get("kind") == "Job"]
        if not jobs or any(obj.get("status") for obj in jobs):
            return False  # no new Job, or one that was there already with a history: decide on it now
        fresh = self._fresh_jobs.setdefault(key, {})
        decided = self._decided_jobs.setdefault(key, {})
        for obj in jobs:
            meta = obj["metadata"]
            fresh[meta["name"]] = trim_job(obj)
            if meta.get("resourceVersion") is not None:
                decided[meta["name"]] = str(meta["resourceVersion"])  # its ADDED event brings nothing new
        self.queue.add(key, LOW)
        self.metrics.deferred.labels(CONTROLLER).inc()
        return True

    def _follow_up(
        self,
        body: Obj,
        observed: Observed,
        now: datetime.datetime,
        prepared: tuple[api.PurpCodeRun, RunPlan] | None,
        decision: Decision,
        created: list[Any],
    ) -> tuple[Decision, dict[str, str]]:
        """Decide once more on the Jobs this reconcile just created, before the status is written.

        Without it, a new Job's status would be written twice: "attempt started" now, then "pods pending since
        the Job's creation" when the Job's watch event brings the run back - two writes, two run events for
        every watcher. The created Jobs (as the API returned them) are what that next reconcile would observe,
        so the status written here is the one it would write, and it then finds nothing to change. Only an
        action-free follow-up is merged; anything else is left to the next reconcile, as before. Returns the
        decision and the merged Jobs' resourceVersions (their own ADDED events then need no reconcile).
        """
        fresh = [
            obj
            for obj in created
            if isinstance(obj, dict) and obj.get("kind") == "Job" and obj.get("metadata", {}).get("name")
        ]
        if any(obj.get("status") for obj in fresh):
            # A Job that was already there (409, read back) and has a history: its pods may not be indexed
            # yet, and a failure decided on without them would lose its termination message. The next
            # reconcile decides on it from the indices.
            return decision, {}
        jobs = {obj["metadata"]["name"]: trim_job(obj) for obj in fresh}
        if not jobs or decision.status is None or decision.delete_run:
            return decision, {}
        seen = self.observe(body, extra_jobs=jobs)
        follow = decide({**body, "status": decision.status}, seen, now, self.settings, prepared)
        if follow.status is None or follow.creates or follow.patches or follow.deletes or follow.delete_run:
            return decision, {}
        keys = {e.key for e in decision.events}
        requeues = [r for r in (decision.requeue_after, follow.requeue_after) if r is not None]
        merged = Decision(
            status=follow.status,
            events=decision.events + [e for e in follow.events if e.key not in keys],
            requeue_after=min(requeues) if requeues else None,
            finished=decision.finished + follow.finished,
            retried=decision.retried + follow.retried,
        )
        versions = {
            obj["metadata"]["name"]: str(obj["metadata"]["resourceVersion"])
            for obj in created
            if isinstance(obj, dict)
            and obj.get("kind") == "Job"
            and obj.get("metadata", {}).get("resourceVersion") is not None
        }
        return merged, {name: rv for name, rv in versions.items() if name in jobs}

    async def _write_status(self, key: Key, body: Obj, status: Obj) -> None:
        namespace, name = key
        uid = body.get("metadata", {}).get("uid")
        ops: list[Obj] = [{"op": "test", "path": "/metadata/uid", "value": uid}] if uid else []
        try:
            updated = await self.client.patch(
                api.API_VERSION,
                api.KIND,
                namespace,
                name,
                [*ops, {"op": "add", "path": "/status", "value": status}],
                sub="status",
                json_patch=True,
            )
        except ApiError as err:
            if err.status == 404:
                return  # deleted meanwhile
            if err.status == 422 and uid and not await self._still_there(key, uid):
                return  # deleted and created again meanwhile: the new run's own events queue it
            raise ReconcileError(str(err)) from err
        if updated.get("metadata", {}).get("uid") == body.get("metadata", {}).get("uid"):
            self._remember(key, updated, written=True)
            if _changed_besides_status(body, updated):
                # Somebody changed the run (spec, labels, deletion) between our read and this write: the
                # returned version carries it, and its own watch event is older than what we now hold (so
                # run_event drops it). Decide again on it.
                self.queue.add(key)

    async def _still_there(self, key: Key, uid: str) -> bool:
        """Whether the run with this uid still exists (a failed uid test and a schema rejection are both 422)."""
        try:
            current = await self.client.get(api.API_VERSION, api.KIND, *key)
        except ApiError as err:
            if err.status == 404:
                return False
            raise ReconcileError(str(err)) from err
        return bool(current.get("metadata", {}).get("uid") == uid)

    async def _post_events(self, body: Obj, events: list[EventSpec], now: datetime.datetime) -> None:
        if not events:
            return
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        objs = [
            render.build_event(
                body,
                etype=e.type,
                reason=e.reason,
                message=e.message,
                key=e.key,
                timestamp=stamp,
                instance=self._instance,
            )
            for e in events
        ]
        errors = await gather_errors([self.client.post_event(o) for o in objs])
        for err in errors:  # Events are best effort: a lost Event must not block the run
            log.warning("could not post an event for %s: %s", body["metadata"].get("name"), err)

    def _record(self, key: Key, body: Obj, decision: Decision) -> None:
        current = self.bodies.get(key)
        if current is None or current.get("metadata", {}).get("uid") != body.get("metadata", {}).get("uid"):
            return  # deleted while this reconcile ran: its series are already gone, do not bring them back
        for done in decision.finished:
            self.metrics.stage_finished(done.stage, done.result, done.seconds)
        for stage in decision.retried:
            self.metrics.stage_retry(stage)
        spec = body.get("spec") or {}
        cached = self._prepared.get(key)
        prepared = cached[2] if cached is not None else None
        if prepared is not None:  # the effective spec (cluster defaults applied)
            judge = prepared[0].spec.services.judge
            judge_name = judge.url or judge.model_name()
        else:
            raw = (spec.get("services") or {}).get("judge") or {}
            judge_name = raw.get("model") or (raw.get("deploy") or {}).get("model") or raw.get("url") or ""
        phase = (decision.status or {}).get("phase", "Pending")
        pending: dict[str, float] = {}
        if phase not in ("Succeeded", "Failed"):
            for stage, st in ((decision.status or {}).get("stages") or {}).items():
                since = parse_time(st.get("pendingSince"))
                if since is not None and st.get("phase") in ("Pending", "Running"):
                    pending[stage] = since.timestamp()
        self.metrics.set_pending(key[0], key[1], pending)
        self.metrics.set_run(
            key[0],
            key[1],
            model=str((spec.get("model") or {}).get("name", "")),
            judge=str(judge_name),
            queue=str(spec.get("queueName") or ""),
            phase=phase,
        )


def index_key(namespace: str | None, labels: Mapping[str, str]) -> Key | None:
    run = labels.get(naming.LABEL_RUN)
    return (namespace, run) if namespace and run else None
