"""The reconcile decision, as a pure function: (run, observed children, now) -> actions + the new status.

Why pure: a restarted operator must reach the same decision from the cluster alone, and every path (retry,
pending timeout, suspend, Kueue, TTL, invalid spec) is unit-testable without an API server. The handlers only
execute what this returns: create (409 = already there), patch, delete, post Events (deterministic names, so a
transition reported twice after a crash is one Event), then write the status last — the status write is the commit.

Where a stage stands comes from two sources that agree after any crash: the status (`attempts`, `nextRetryTime`)
and the Jobs themselves (label `purpcode.dev/attempt`); the higher attempt wins, so a Job that was created just
before a crash is found, and a status that was written just before one makes the same Job be created (409) again.

Why one file (past 800 lines): it is one pure function and the helpers only it uses (stage progress, services,
retries, Kueue, TTL); splitting them would spread one decision, whose crash-safety argument above is read as a
whole, over several modules. Rendering is in render.py, execution in the handlers.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from . import naming, render
from .api import Condition, PurpCodeRun, PurpCodeRunSpec, PurpCodeRunStatus, StageStatus
from .layout import Layout
from .plan import PlanDefaults, RunPlan, StagePlan, build_plan
from .validate import SpecError, validate_run

Obj = dict[str, Any]
ConditionType = Literal["Ready", "Running", "Succeeded", "Failed", "Suspended"]
CONDITION_TYPES: tuple[ConditionType, ...] = ("Ready", "Running", "Succeeded", "Failed", "Suspended")

REASON_INVALID_SPEC = "InvalidSpec"
REASON_CREATE_FAILED = "CreateFailed"
# The API server refused a child as invalid (422): the spec asks for something Kubernetes will not run. Retrying
# cannot help; the run fails until its spec changes (a new generation continues it).
REASON_REJECTED = "SpecRejected"
PENDING_REASONS = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError")
MESSAGE_TAIL_CHARS = 2000


# --------------------------------------------------------------------------------------------- inputs/outputs


@dataclass(frozen=True)
class Settings:
    """Operator-wide knobs (environment of the operator Deployment)."""

    retry_backoff_seconds: float = 10.0
    retry_backoff_max_seconds: float = 600.0
    defaults: PlanDefaults = field(default_factory=PlanDefaults)
    # Cluster-wide defaults (Helm values) for runs whose spec leaves these out:
    judge_url: str | None = None  # a shared OpenAI-compatible judge instead of one deployed per run
    judge_model: str | None = None
    judge_api_key_secret: str | None = None  # Secret in the run's namespace, key "api-key"
    sandbox_runtime_class_name: str | None = None
    # Who may scrape the sandbox's /metrics (NetworkPolicy peers; Helm value sandbox.metricsScrapers); None: the
    # built-in default (render.DEFAULT_METRICS_SCRAPERS), [] : nobody.
    sandbox_metrics_scrapers: tuple[Obj, ...] | None = None

    def backoff(self, failed_attempt: int) -> float:
        """Delay before the attempt after `failed_attempt` (1-based): base * 2^(n-1), capped."""
        return float(
            min(self.retry_backoff_seconds * 2 ** max(failed_attempt - 1, 0), self.retry_backoff_max_seconds)
        )


@dataclass(frozen=True)
class Observed:
    """This run's children as the cluster shows them (already filtered to the run's uid)."""

    jobs: Mapping[str, Obj] = field(default_factory=dict)
    pods: Sequence[Obj] = ()
    deployments: Mapping[str, Obj] = field(default_factory=dict)


@dataclass(frozen=True)
class Create:
    """Create `obj`; when it exists, apply `patch_if_exists` (a merge patch) if its values differ."""

    obj: Obj
    patch_if_exists: Obj | None = None


@dataclass(frozen=True)
class Patch:
    api_version: str
    kind: str
    name: str
    body: Obj


@dataclass(frozen=True)
class Delete:
    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class EventSpec:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    key: str  # identifies the transition; the Event's name derives from it


@dataclass(frozen=True)
class StageFinished:
    stage: str
    result: Literal["succeeded", "failed"]
    seconds: float


@dataclass
class Decision:
    """Everything one reconcile does; `status` is None when the run is being deleted (nothing to write)."""

    status: Obj | None
    creates: list[Create] = field(default_factory=list)
    patches: list[Patch] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    events: list[EventSpec] = field(default_factory=list)
    requeue_after: float | None = None
    delete_run: bool = False
    finished: list[StageFinished] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)

    def requeue(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


# --------------------------------------------------------------------------------------------- time


def fmt_time(t: datetime.datetime) -> str:
    """RFC 3339 in UTC with milliseconds (sub-second retry times must survive a round trip)."""
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _seconds(a: str | None, b: str | None) -> float:
    ta, tb = parse_time(a), parse_time(b)
    return max((tb - ta).total_seconds(), 0.0) if ta and tb else 0.0


# --------------------------------------------------------------------------------------------- conditions


def set_condition(
    conditions: list[Condition],
    ctype: ConditionType,
    status: bool,
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> None:
    """Upsert one condition; lastTransitionTime changes only when the status flips."""
    value: Literal["True", "False"] = "True" if status else "False"
    for i, cond in enumerate(conditions):
        if cond.type == ctype:
            changed = cond.status != value
            conditions[i] = Condition(
                type=ctype,
                status=value,
                reason=reason,
                message=message[:32768],
                last_transition_time=now
                if changed or not cond.last_transition_time
                else cond.last_transition_time,
                observed_generation=generation,
            )
            return
    conditions.append(
        Condition(
            type=ctype,
            status=value,
            reason=reason,
            message=message[:32768],
            last_transition_time=now,
            observed_generation=generation,
        )
    )


def condition(status: PurpCodeRunStatus, ctype: str) -> Condition | None:
    return next((c for c in status.conditions if c.type == ctype), None)


def dump_status(status: PurpCodeRunStatus) -> Obj:
    out: Obj = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return out


def parse_status(raw: Any) -> PurpCodeRunStatus:
    """The stored status, or an empty one if it is missing or unreadable (then rebuilt from the children)."""
    if not isinstance(raw, dict):
        return PurpCodeRunStatus()
    try:
        return PurpCodeRunStatus.model_validate(raw, by_alias=True, by_name=False)
    except ValueError:
        return PurpCodeRunStatus()


# --------------------------------------------------------------------------------------------- observations


def job_attempt(job: Obj) -> int:
    try:
        return int(job.get("metadata", {}).get("labels", {}).get(naming.LABEL_ATTEMPT, "0"))
    except ValueError:
        return 0


def job_condition(job: Obj, ctype: str) -> Obj | None:
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("type") == ctype and cond.get("status") == "True":
            return dict(cond)
    return None


def job_outcome(job: Obj) -> tuple[Literal["succeeded", "failed"] | None, Obj | None]:
    done = job_condition(job, "Complete")
    if done is not None:
        return "succeeded", done
    failed = job_condition(job, "Failed")
    if failed is not None:
        return "failed", failed
    return None, None


def pods_of_job(pods: Iterable[Obj], job: Obj) -> list[Obj]:
    uid = job.get("metadata", {}).get("uid")
    name = job.get("metadata", {}).get("name")
    out = []
    for pod in pods:
        labels = pod.get("metadata", {}).get("labels", {})
        if uid and labels.get("batch.kubernetes.io/controller-uid", labels.get("controller-uid")) == uid:
            out.append(pod)
        elif not uid and labels.get("batch.kubernetes.io/job-name", labels.get("job-name")) == name:
            out.append(pod)
    return out


def _terminated(pod: Obj) -> list[Obj]:
    out = []
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        state = cs.get("state", {}).get("terminated") or cs.get("lastState", {}).get("terminated")
        if state:
            out.append(state)
    return out


def termination_tail(pods: Iterable[Obj], *, failed: bool = True) -> str:
    """The end of the (first) failed container's termination message: the error a human needs to see."""
    ordered = sorted(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "")
    for pod in ordered:
        if failed and pod.get("status", {}).get("phase") != "Failed":
            continue
        for state in _terminated(pod):
            if failed and state.get("exitCode", 0) == 0:
                continue
            msg = (state.get("message") or "").strip()
            detail = f"exit code {state.get('exitCode')}" + (
                f" ({state['reason']})" if state.get("reason") else ""
            )
            if msg:
                return f"{detail}: {msg[-MESSAGE_TAIL_CHARS:]}"
            return detail
    return ""


def _failed_container_reason(pods: Iterable[Obj]) -> str:
    """The kubelet's reason (OOMKilled, Error, ...) for the first failed pod's non-zero exit."""
    ordered = sorted(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "")
    for pod in ordered:
        if pod.get("status", {}).get("phase") == "Failed":
            for state in _terminated(pod):
                if state.get("exitCode", 0) != 0:
                    return str(state.get("reason") or "")
    return ""


def stage_summary(pods: Iterable[Obj]) -> dict[str, float]:
    """Figures a stage reports as the JSON object `{"summary": {...}}` in its termination message."""
    for pod in pods:
        for state in _terminated(pod):
            if state.get("exitCode", 0) != 0:
                continue
            try:
                data = json.loads(state.get("message") or "")
            except ValueError:
                continue
            summary = data.get("summary") if isinstance(data, dict) else None
            if isinstance(summary, dict):
                return {
                    str(k): float(v)
                    for k, v in summary.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
    return {}


@dataclass(frozen=True)
class PendingVerdict:
    pending: bool
    since: str | None = None
    reason: str = ""
    detail: str = ""


def pending_verdict(pods: Sequence[Obj], fallback_since: str | None) -> PendingVerdict:
    """Are these pods all still Pending (unscheduled, pulling, unpullable)? Since when, and why?"""
    if any(p.get("status", {}).get("phase") in ("Running", "Succeeded") for p in pods):
        return PendingVerdict(False)
    pending = [p for p in pods if p.get("status", {}).get("phase", "Pending") == "Pending"]
    if pods and not pending:
        return PendingVerdict(False)  # failed pods: the Job's own failure handling applies
    if not pods:
        return PendingVerdict(True, fallback_since, "PendingTimeout", "no pod was created")
    since = (
        min((p.get("metadata", {}).get("creationTimestamp") or fallback_since or "") for p in pending) or None
    )
    reason, detail = "PendingTimeout", ""
    for pod in pending:
        name = pod.get("metadata", {}).get("name", "?")
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            waiting = cs.get("state", {}).get("waiting") or {}
            if waiting.get("reason") in PENDING_REASONS:
                return PendingVerdict(
                    True,
                    since,
                    waiting["reason"],
                    f"pod {name}: {waiting['reason']}: {waiting.get('message', '')}",
                )
        for cond in pod.get("status", {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                reason = cond.get("reason") or "Unschedulable"
                detail = f"pod {name}: {reason}: {cond.get('message', '')}"
    if not detail:
        detail = f"pod {pending[0].get('metadata', {}).get('name', '?')} is Pending"
    return PendingVerdict(True, since, reason, detail)


# A service container that keeps failing: it will not become ready by waiting.
CRASH_REASONS = ("CrashLoopBackOff", "RunContainerError", "CreateContainerError", "StartError")


def _last_exit(cs: Obj) -> str:
    term = (cs.get("lastState") or {}).get("terminated") or (cs.get("state") or {}).get("terminated") or {}
    if not term:
        return ""
    out = f"; last exit code {term.get('exitCode')}" + (f" ({term['reason']})" if term.get("reason") else "")
    msg = (term.get("message") or "").strip()
    return out + (f": {msg[-MESSAGE_TAIL_CHARS:]}" if msg else "")


def service_verdict(dep: Obj, pods: Sequence[Obj], *, queued: bool) -> PendingVerdict:
    """Why a service Deployment has no available replica, and whether the wait is timed (`pending`).

    Timed from the Deployment's creation (or from when it last lost availability: a scale-up after a resume),
    whatever the cause: no pod at all (a Pod Security refusal, quota, an invalid template: the ReplicaSet's
    `ReplicaFailure` the Deployment controller copies into the Deployment's conditions), pods Pending
    (unschedulable, image pull) or crash-looping (phase Running, container waiting in CrashLoopBackOff). Not
    timed: a pod that runs and is starting up (a judge loading its model; its startupProbe bounds that), and pods
    Kueue holds at their scheduling gate until the queue admits them.
    """
    meta = dep.get("metadata", {})
    name = meta.get("name", "?")
    since = meta.get("creationTimestamp")
    for cond in dep.get("status", {}).get("conditions") or []:
        if (
            cond.get("type") == "Available"
            and cond.get("status") == "False"
            and cond.get("lastTransitionTime")
        ):
            since = max(t for t in (since, cond["lastTransitionTime"]) if t)
    for pod in pods:
        pname = pod.get("metadata", {}).get("name", "?")
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in CRASH_REASONS:
                detail = (
                    f"pod {pname} container {cs.get('name', '?')}: {waiting['reason']} "
                    f"(restarted {cs.get('restartCount', 0)} times): {waiting.get('message', '')}".rstrip(
                        ": "
                    )
                    + _last_exit(cs)
                )
                return PendingVerdict(True, since, waiting["reason"], detail)
    for cond in dep.get("status", {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            detail = f"deployment {name}: {cond.get('reason') or 'ReplicaFailure'}: {cond.get('message', '')}"
            return PendingVerdict(True, since, "ReplicaFailure", detail.rstrip(": "))
    if any(p.get("status", {}).get("phase") == "Running" for p in pods):
        return PendingVerdict(False, since, "Starting", f"deployment {name}: pods starting")
    gated = [
        p
        for p in pods
        if any(
            c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated"
            for c in p.get("status", {}).get("conditions") or []
        )
    ]
    if queued and gated:
        return PendingVerdict(False, since, "WaitingForAdmission", f"deployment {name}: pods gated by Kueue")
    if not pods:
        return PendingVerdict(True, since, "PendingTimeout", f"deployment {name}: no pod was created")
    verdict = pending_verdict(pods, since)
    return PendingVerdict(True, since, verdict.reason, verdict.detail)


# --------------------------------------------------------------------------------------------- the decision


@dataclass
class _Ctx:
    body: Obj
    run: PurpCodeRun
    plan: RunPlan
    observed: Observed
    now: datetime.datetime
    now_s: str
    settings: Settings
    status: PurpCodeRunStatus
    old: PurpCodeRunStatus
    decision: Decision
    generation: int | None
    owner: Obj
    ready: tuple[bool, str, str] = (True, "Reconciled", "")
    failure: tuple[str, str] | None = None  # (reason, message) when the run fails in this step

    @property
    def name(self) -> str:
        return self.run.metadata.name

    def event(self, etype: Literal["Normal", "Warning"], reason: str, message: str, key: str) -> None:
        self.decision.events.append(EventSpec(etype, reason, message[:1024], key))


def apply_cluster_defaults(spec: Any, settings: Settings) -> Any:
    """The operator-wide defaults for what a spec leaves out: a shared judge URL, the sandbox RuntimeClass."""
    if not isinstance(spec, dict) or not (
        settings.judge_url
        or settings.sandbox_runtime_class_name
        or settings.sandbox_metrics_scrapers is not None
    ):
        return spec
    services = dict(spec.get("services") or {})
    if settings.judge_url and not services.get("judge"):
        judge: Obj = {"url": settings.judge_url}
        if settings.judge_model:
            judge["model"] = settings.judge_model
        if settings.judge_api_key_secret:
            judge["apiKeySecretRef"] = {"name": settings.judge_api_key_secret, "key": "api-key"}
        services["judge"] = judge
    sandbox = dict(services.get("sandbox") or {})
    own_runtime = sandbox.get("runtimeClassName") or (sandbox.get("scheduling") or {}).get("runtimeClassName")
    if settings.sandbox_runtime_class_name and not own_runtime:
        sandbox["runtimeClassName"] = settings.sandbox_runtime_class_name
        services["sandbox"] = sandbox
    if settings.sandbox_metrics_scrapers is not None and sandbox.get("metricsScrapers") is None:
        sandbox["metricsScrapers"] = [dict(p) for p in settings.sandbox_metrics_scrapers]
        services["sandbox"] = sandbox
    return {**spec, "services": services}


class SpecCache:
    """Validated specs by content, so runs with the same spec (a batch applied from one template, every run again
    after a restart) validate it once: a hit validates only the metadata and reuses the spec model.

    Spec validation is a pure function of the spec document (no validator of PurpCodeRunSpec sees the metadata),
    and nothing mutates a validated run's models, so a hit decides exactly what a miss would; a miss (and any
    invalid spec: nothing invalid is stored) goes through the whole validation, errors and all. Bounded (LRU).
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._specs: OrderedDict[str, PurpCodeRunSpec] = OrderedDict()
        self.hits = 0

    def validate(self, doc: Obj) -> PurpCodeRun:
        try:
            key = json.dumps(doc.get("spec"), sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):  # not a JSON document (a test's Python object): no caching
            return validate_run(doc)
        spec = self._specs.get(key)
        if spec is None:
            run = validate_run(doc)
            self._specs[key] = run.spec
            if len(self._specs) > self._size:
                self._specs.popitem(last=False)
            return run
        self._specs.move_to_end(key)
        self.hits += 1
        return validate_run({**doc, "spec": spec})


SPECS = SpecCache()


def prepare(body: Obj, settings: Settings) -> tuple[PurpCodeRun, RunPlan]:
    """Validate the run and build its plan (raises SpecError). Cacheable per (uid, generation)."""
    meta = body.get("metadata", {})
    doc = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "labels", "annotations") if meta.get(k) is not None
        },
        "spec": apply_cluster_defaults(body.get("spec"), settings),
    }
    run = SPECS.validate(doc)
    return run, build_plan(run, defaults=settings.defaults)


def owner_of(body: Obj) -> Obj:
    """The slice of the run's body its children's owner reference and namespace come from (never its labels:
    children carry only the operator's own, see render._adopt)."""
    meta = body.get("metadata", {})
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid") if meta.get(k) is not None},
    }


def decide(
    body: Obj,
    observed: Observed,
    now: datetime.datetime,
    settings: Settings,
    prepared: tuple[PurpCodeRun, RunPlan] | None = None,
) -> Decision:
    """The whole reconcile decision for one run (see the module docstring)."""
    meta = body.get("metadata", {})
    if meta.get("deletionTimestamp"):
        return Decision(status=None)  # garbage collection removes the children
    old = parse_status(body.get("status"))
    status = parse_status(body.get("status"))  # a second parse is cheaper than a deep copy
    generation = meta.get("generation")
    decision = Decision(status=None)
    now_s = fmt_time(now)
    try:
        run, plan = prepared if prepared is not None else prepare(body, settings)
    except SpecError as err:
        return _invalid(body, old, status, err, observed, now_s, generation, decision)
    ctx = _Ctx(
        body=body,
        run=run,
        plan=plan,
        observed=observed,
        now=now,
        now_s=now_s,
        settings=settings,
        status=status,
        old=old,
        decision=decision,
        generation=generation,
        owner=owner_of(body),
    )
    _reconcile(ctx)
    _finish_status(ctx)
    return decision


def _failed_reason(status: PurpCodeRunStatus) -> str:
    cond = condition(status, "Failed")
    return cond.reason if cond is not None and cond.status == "True" else ""


def _invalid(
    body: Obj,
    old: PurpCodeRunStatus,
    status: PurpCodeRunStatus,
    err: SpecError,
    observed: Observed,
    now_s: str,
    generation: int | None,
    decision: Decision,
) -> Decision:
    """An invalid spec fails the run with the problems listed (never a crash loop), and stops its workloads.

    A later valid edit (new generation) continues the run from its children.
    """
    lines = [str(p) for p in err.problems]
    message = "invalid spec:\n" + "\n".join(lines)
    status.phase = "Failed"
    status.message = message[:32768]
    status.observed_generation = generation
    status.completion_time = status.completion_time or now_s
    for ctype in CONDITION_TYPES:
        if ctype == "Failed":
            set_condition(status.conditions, ctype, True, REASON_INVALID_SPEC, message, now_s, generation)
        elif ctype == "Ready":
            set_condition(status.conditions, ctype, False, REASON_INVALID_SPEC, message, now_s, generation)
        else:
            set_condition(status.conditions, ctype, False, "Failed", "", now_s, generation)
    digest = hashlib.sha256(message.encode()).hexdigest()[:12]
    decision.events.append(
        EventSpec("Warning", REASON_INVALID_SPEC, message[:1024], f"InvalidSpec/{generation}/{digest}")
    )
    name = body.get("metadata", {}).get("name", "")
    for job in observed.jobs.values():
        _stop_job(decision, job)
    _teardown_services(decision, name, observed)
    decision.status = dump_status(status)
    return decision


def _teardown_services(decision: Decision, run: str, observed: Observed) -> None:
    for dep_name in (naming.sandbox_name(run), naming.judge_name(run)):
        if dep_name in observed.deployments:
            decision.deletes += [
                Delete("v1", "Service", dep_name),
                Delete("apps/v1", "Deployment", dep_name),
            ]
            if dep_name == naming.sandbox_name(run):
                decision.deletes.append(Delete("networking.k8s.io/v1", "NetworkPolicy", dep_name))


def _reconcile(ctx: _Ctx) -> None:
    status, old = ctx.status, ctx.old
    reason = _failed_reason(old) if old.phase == "Failed" else ""
    recovering = reason == REASON_INVALID_SPEC or (
        reason == REASON_REJECTED and old.observed_generation != ctx.generation
    )
    if recovering:
        status.phase = "Pending"
        status.message = None
        status.completion_time = None
        ctx.event("Normal", "SpecValid", "the spec is valid again; continuing", f"SpecValid/{ctx.generation}")
    if status.phase in ("Succeeded", "Failed") and not recovering:
        _terminal(ctx)
        return
    _init_stage_statuses(ctx)
    stages = ctx.plan.stages
    for stage in stages:
        st = status.stages[stage.name]
        if st.phase in ("Succeeded", "Skipped"):
            continue
        status.current_stage = stage.name
        result = _step_stage(ctx, stage, st)
        if result == "advance":
            continue
        if result == "failed":
            _fail_run(ctx)
        else:
            _set_services(ctx, stage, suspended=ctx.run.spec.suspend)
        return
    # every stage succeeded
    status.phase = "Succeeded"
    status.current_stage = None
    status.completion_time = status.completion_time or ctx.now_s
    status.message = f"all {len(stages)} stages succeeded"
    ctx.event("Normal", "Succeeded", status.message, "RunSucceeded")
    _teardown_services(ctx.decision, ctx.name, ctx.observed)
    _ttl(ctx)


_LAYOUT = Layout()


def _init_stage_statuses(ctx: _Ctx) -> None:
    layout = _LAYOUT
    planned = [s.name for s in ctx.plan.stages]
    for name, st in ctx.status.stages.items():
        if name not in planned and st.phase == "Pending" and st.attempts == 0:
            st.phase = "Skipped"
            st.message = "disabled in the spec"
    for i, name in enumerate(planned):
        if name in ctx.status.stages:
            continue
        later_started = any(
            n in ctx.status.stages and ctx.status.stages[n].attempts > 0 for n in planned[i + 1 :]
        )
        st = StageStatus(artifact_path=layout.stage_dir(name))
        if later_started:
            st.phase = "Skipped"
            st.message = "enabled after later stages had started; stages never run out of order"
        ctx.status.stages[name] = st


def _terminal(ctx: _Ctx) -> None:
    """A finished run: keep its services down, stop anything left running, honour ttlSecondsAfterFinished."""
    _teardown_services(ctx.decision, ctx.name, ctx.observed)
    if ctx.status.phase == "Failed":
        for job in ctx.observed.jobs.values():
            _stop_job(ctx.decision, job)
    _ttl(ctx)


def kueue_managed(job: Obj) -> bool:
    return naming.KUEUE_QUEUE_LABEL in (job.get("metadata", {}).get("labels") or {})


def _stop_job(decision: Decision, job: Obj) -> None:
    """Stop an unfinished Job: suspend it (kept, with its history, for inspection), or delete it when Kueue
    manages it. Kueue owns a queued Job's spec.suspend: it un-suspends what it admits, so a suspended Kueue Job
    would run again (the two controllers would fight), and a queued one would still be admitted later. Deleting
    the Job (as Kubeflow Trainer and KubeRay do) also deletes its Workload and frees the queue's quota."""
    if job_outcome(job)[0] is not None:
        return
    name = job["metadata"]["name"]
    if kueue_managed(job):
        decision.deletes.append(Delete("batch/v1", "Job", name))
    elif not job.get("spec", {}).get("suspend"):
        decision.patches.append(Patch("batch/v1", "Job", name, {"spec": {"suspend": True}}))


def _ttl(ctx: _Ctx) -> None:
    ttl = ctx.run.spec.ttl_seconds_after_finished
    if ttl is None:
        return
    done = parse_time(ctx.status.completion_time) or ctx.now
    remaining = (done - ctx.now).total_seconds() + ttl
    if remaining <= 0:
        ctx.decision.delete_run = True
        ctx.event(
            "Normal", "Expired", f"ttlSecondsAfterFinished ({ttl}s) passed: deleting the run", "TTLExpired"
        )
    else:
        ctx.decision.requeue(remaining)


def _fail_run(ctx: _Ctx) -> None:
    assert ctx.failure is not None
    reason, message = ctx.failure
    ctx.status.phase = "Failed"
    ctx.status.message = message
    ctx.status.completion_time = ctx.status.completion_time or ctx.now_s
    ctx.event("Warning", "Failed", f"{reason}: {message}", "RunFailed")
    _teardown_services(ctx.decision, ctx.name, ctx.observed)
    _ttl(ctx)


def _stage_jobs(ctx: _Ctx, stage: StagePlan) -> list[Obj]:
    return [
        j
        for j in ctx.observed.jobs.values()
        if j.get("metadata", {}).get("labels", {}).get(naming.LABEL_STAGE) == stage.slug
    ]


def _start_attempt(ctx: _Ctx, stage: StagePlan, st: StageStatus, attempt: int) -> None:
    """Create everything one attempt needs; creates are idempotent so repeating this after a crash is safe."""
    run = ctx.run
    ctx.decision.creates += [
        Create(o) for o in render.stage_objects(run, ctx.plan, stage, attempt, ctx.owner)
    ]
    if st.attempts < attempt:
        _record_attempt(ctx, stage, st, attempt, ctx.now_s)
    elif st.phase == "Suspended":
        # The same attempt's Job again, after a resume (a Kueue-managed Job is deleted to stop it).
        st.phase = "Pending" if run.spec.queue_name else "Running"
        st.message = f"attempt {attempt}: job {naming.job_name(ctx.name, stage.slug, attempt)} created again"
    # What the next decision, on the created Job, says too: a queued Job waits for Kueue, the others' pods are
    # pending (so the Ready condition does not flip to True and back within one reconcile).
    job = naming.job_name(ctx.name, stage.slug, attempt)
    if run.spec.queue_name:
        ctx.ready = (
            False,
            "WaitingForAdmission",
            f"waiting for Kueue to admit job {job} (queue {run.spec.queue_name})",
        )
    else:
        ctx.ready = (False, "PodsPending", f"job {job}: pods pending since {ctx.now_s}")


def _record_attempt(ctx: _Ctx, stage: StagePlan, st: StageStatus, attempt: int, started: str) -> None:
    """The status and Event of a new attempt: when this reconcile creates its Job, and when it finds a Job the
    status does not know yet (created just before a crash, or by a reconcile that left the status for later)."""
    job = naming.job_name(ctx.name, stage.slug, attempt)
    st.attempts = attempt
    st.job_name = job
    st.phase = "Pending" if ctx.run.spec.queue_name else "Running"
    st.start_time = st.start_time or started
    st.next_retry_time = None
    st.pending_since = None
    st.completion_time = None
    total = stage.backoff_limit + 1
    st.message = f"attempt {attempt}/{total}: job {job}"
    ctx.status.start_time = ctx.status.start_time or started
    ctx.event(
        "Normal",
        "StageStarted",
        f"stage {stage.name}: attempt {attempt}/{total} started (job {job})",
        f"StageStarted/{stage.name}/{attempt}",
    )
    if attempt > 1:
        ctx.decision.retried.append(stage.name)


def _step_stage(ctx: _Ctx, stage: StagePlan, st: StageStatus) -> Literal["advance", "blocked", "failed"]:
    spec = ctx.run.spec
    jobs = _stage_jobs(ctx, stage)
    attempt = max([st.attempts, *(job_attempt(j) for j in jobs)])
    if attempt > st.attempts:  # a Job the status does not know yet (a crash, or a deferred status write)
        _record_attempt(ctx, stage, st, attempt, _first_created(jobs) or ctx.now_s)
    if attempt == 0:
        if spec.suspend:
            st.phase = "Pending"
            st.message = "the run is suspended"
            return "blocked"
        if not _services_ready(ctx, stage, st, gate=True):
            return "failed" if ctx.failure else "blocked"
        _start_attempt(ctx, stage, st, 1)
        return "blocked"
    job = ctx.observed.jobs.get(naming.job_name(ctx.name, stage.slug, attempt))
    if job is None and spec.suspend and st.next_retry_time is None:
        # A Kueue-managed Job is deleted while the run is suspended; resuming creates it again (same attempt).
        st.phase = "Suspended"
        st.pending_since = None
        st.message = f"suspended (attempt {attempt}; its job is created again on resume)"
        return "blocked"
    if job is None:
        if st.next_retry_time is not None:
            return _wait_or_retry(ctx, stage, st, attempt)
        # Created (maybe by the previous operator) but not observed yet, or deleted by hand: create it again;
        # if it is there, this is a 409 and nothing happens.
        _start_attempt(ctx, stage, st, attempt)
        return "blocked"
    outcome, cond = job_outcome(job)
    pods = pods_of_job(ctx.observed.pods, job)
    if outcome == "succeeded":
        st.phase = "Succeeded"
        st.completion_time = job.get("status", {}).get("completionTime") or ctx.now_s
        st.completion_time = _normalize_time(st.completion_time, ctx.now_s)
        st.next_retry_time = None
        st.pending_since = None
        st.summary = stage_summary(pods) or st.summary
        st.message = f"succeeded on attempt {attempt}"
        seconds = _seconds(st.start_time, st.completion_time)
        ctx.decision.finished.append(StageFinished(stage.name, "succeeded", seconds))
        ctx.event(
            "Normal",
            "StageSucceeded",
            f"stage {stage.name} succeeded (attempt {attempt}, {seconds:.0f}s)",
            f"StageSucceeded/{stage.name}",
        )
        return "advance"
    if outcome == "failed":
        assert cond is not None
        reason = cond.get("reason") or "JobFailed"
        if reason == "BackoffLimitExceeded" and _failed_container_reason(pods) == "OOMKilled":
            reason = (
                "OOMKilled"  # what a human must act on (raise the memory limit), not the Job's bookkeeping
            )
        tail = termination_tail(pods)
        what = f"{reason}: {cond.get('message', '')}".rstrip(": ")
        if tail:
            what += f"; {tail}"
        total = stage.backoff_limit + 1
        if attempt < total:
            if st.next_retry_time is None:
                delay = ctx.settings.backoff(attempt)
                st.next_retry_time = fmt_time(ctx.now + datetime.timedelta(seconds=delay))
                st.pending_since = None  # the attempt is over: nothing is pending while the retry waits
                st.message = f"attempt {attempt}/{total} failed: {what}"[:32768]
                ctx.event(
                    "Warning",
                    "StageAttemptFailed",
                    f"stage {stage.name}: attempt {attempt}/{total} failed ({what}); retrying in {delay:.0f}s",
                    f"StageAttemptFailed/{stage.name}/{attempt}",
                )
            return _wait_or_retry(ctx, stage, st, attempt)
        st.phase = "Failed"
        st.completion_time = ctx.now_s
        st.next_retry_time = None
        st.message = f"attempt {attempt}/{total} failed: {what}"[:32768]
        seconds = _seconds(st.start_time, st.completion_time)
        ctx.decision.finished.append(StageFinished(stage.name, "failed", seconds))
        ctx.event(
            "Warning",
            "StageFailed",
            f"stage {stage.name} failed after {attempt} attempt(s): {what}",
            f"StageFailed/{stage.name}",
        )
        ctx.failure = (reason, f"stage {stage.name} failed after {attempt} attempt(s): {what}")
        return "failed"
    # The Job is active (or waiting for admission, or suspended).
    suspended = bool(job.get("spec", {}).get("suspend"))
    name = job["metadata"]["name"]
    if spec.suspend:
        _stop_job(ctx.decision, job)
        st.phase = "Suspended"
        st.pending_since = None
        st.message = f"suspended (attempt {attempt}, job {name})"
        return "blocked"
    _services_ready(ctx, stage, st, gate=False)  # keep them up (recreate or scale them back after a resume)
    if suspended:
        if spec.queue_name:
            st.phase = "Pending"
            st.pending_since = None  # waiting for admission is not timed (a preempted Job's pods are gone)
            st.message = f"waiting for Kueue to admit job {name} (queue {spec.queue_name})"
            ctx.ready = (False, "WaitingForAdmission", st.message)
            return "blocked"
        ctx.decision.patches.append(Patch("batch/v1", "Job", name, {"spec": {"suspend": False}}))
        st.phase = "Running"
        st.pending_since = None
        st.message = f"resumed (attempt {attempt}, job {name})"
        return "blocked"
    fallback = _job_active_since(job)
    verdict = pending_verdict(pods, fallback)
    st.phase = "Running"
    if not verdict.pending:
        st.pending_since = None
        st.message = f"attempt {attempt}/{stage.backoff_limit + 1} running (job {name})"
        return "blocked"
    return _check_pending(ctx, stage, st, verdict, f"job {name}", stop_job=job)


def _first_created(jobs: Iterable[Obj]) -> str | None:
    """When the stage's first Job was created (the status may not have said so before a crash)."""
    times = [t for j in jobs if (t := parse_time(j.get("metadata", {}).get("creationTimestamp")))]
    return fmt_time(min(times)) if times else None


def _job_active_since(job: Obj) -> str | None:
    """When the Job last became runnable: creation, or its latest resume (the Job controller resets startTime)."""
    created = job.get("metadata", {}).get("creationTimestamp")
    started = job.get("status", {}).get("startTime")
    return max(t for t in (created, started) if t) if (created or started) else None


def _normalize_time(text: str, fallback: str) -> str:
    t = parse_time(text)
    return fmt_time(t) if t else fallback


def _check_pending(
    ctx: _Ctx, stage: StagePlan, st: StageStatus, verdict: PendingVerdict, what: str, stop_job: Obj | None
) -> Literal["blocked", "failed"]:
    timeout = ctx.run.spec.pending_timeout_seconds
    since = parse_time(verdict.since) or ctx.now
    st.pending_since = fmt_time(since)
    waited = (ctx.now - since).total_seconds()
    if waited < timeout:
        # No elapsed time in the status: it must not change while nothing changes (every write is an event).
        st.message = f"{what}: pods pending since {st.pending_since} ({verdict.detail})"[:32768]
        ctx.ready = (False, "PodsPending", st.message)
        ctx.decision.requeue(timeout - waited)
        return "blocked"
    message = (
        f"stage {stage.name}: {what}: pods stayed Pending for {waited:.0f}s "
        f"(pendingTimeoutSeconds {timeout}): {verdict.detail}"
    )[:32768]
    st.phase = "Failed"
    st.completion_time = ctx.now_s
    st.message = message
    if stop_job is not None:
        _stop_job(ctx.decision, stop_job)
    seconds = _seconds(st.start_time, st.completion_time)
    ctx.decision.finished.append(StageFinished(stage.name, "failed", seconds))
    ctx.event("Warning", verdict.reason, message, f"StagePending/{stage.name}/{st.attempts}")
    ctx.failure = (verdict.reason, message)
    return "failed"


def _wait_or_retry(
    ctx: _Ctx, stage: StagePlan, st: StageStatus, attempt: int
) -> Literal["blocked", "failed"]:
    st.phase = "Running"
    retry_at = parse_time(st.next_retry_time) or ctx.now
    if ctx.run.spec.suspend:
        st.phase = "Suspended"
        return "blocked"
    if ctx.now < retry_at:
        ctx.decision.requeue((retry_at - ctx.now).total_seconds())
        return "blocked"
    if ctx.failure:
        return "blocked"
    if not _services_ready(ctx, stage, st, gate=True):
        return "failed" if ctx.failure else "blocked"
    _start_attempt(ctx, stage, st, attempt + 1)
    return "blocked"


# --------------------------------------------------------------------------------------------- services


def _service_replicas(ctx: _Ctx) -> dict[str, int]:
    """Desired replicas of each service the run deploys (absent key = not deployed at all)."""
    return render.service_replicas(ctx.plan)


def _service_objects(ctx: _Ctx, role: str, replicas: int) -> list[Create]:
    patch = {"spec": {"replicas": replicas}}
    return [
        Create(obj, patch_if_exists=patch if obj["kind"] == "Deployment" else None)
        for obj in render.service_objects(ctx.run, ctx.plan, role, replicas, ctx.owner)
    ]


def _dep_name(ctx: _Ctx, role: str) -> str:
    return naming.sandbox_name(ctx.name) if role == naming.ROLE_SANDBOX else naming.judge_name(ctx.name)


def _services_ready(ctx: _Ctx, stage: StagePlan, st: StageStatus, *, gate: bool) -> bool:
    """Make sure the services this stage needs exist and are scaled up; True when each has a ready replica.

    `gate`: the stage's Job waits for them (then service pods stuck Pending fail the run after the timeout).
    """
    wanted = {role: n for role, n in _service_replicas(ctx).items() if role in stage.needs}
    waiting: list[str] = []
    verdicts: list[tuple[str, PendingVerdict]] = []
    for role, replicas in wanted.items():
        dep = ctx.observed.deployments.get(_dep_name(ctx, role))
        if dep is None:
            ctx.decision.creates += _service_objects(ctx, role, replicas)
            waiting.append(f"{role} (creating)")
            continue
        if dep.get("spec", {}).get("replicas") != replicas:
            ctx.decision.patches.append(
                Patch("apps/v1", "Deployment", _dep_name(ctx, role), {"spec": {"replicas": replicas}})
            )
        available = int(dep.get("status", {}).get("availableReplicas") or 0)
        if available < 1:
            waiting.append(f"{role} ({available}/{replicas} available)")
            pods = [
                p
                for p in ctx.observed.pods
                if p.get("metadata", {}).get("labels", {}).get(naming.LABEL_ROLE) == role
            ]
            verdicts.append((role, service_verdict(dep, pods, queued=bool(ctx.run.spec.queue_name))))
    if not waiting:
        return True
    message = "waiting for services: " + ", ".join(waiting)
    ctx.ready = (False, "ServicesNotReady", message)
    if not gate:
        return False
    st.message = message
    if st.attempts == 0:
        st.phase = "Pending"
    timed = [(role, v) for role, v in verdicts if v.pending]
    if timed:
        # The longest-waiting service decides (a failure reason beats a plain Pending one at the same age).
        slowest, verdict = min(
            timed, key=lambda rv: (parse_time(rv[1].since) or ctx.now, rv[1].reason == "PendingTimeout")
        )
        _check_service_wait(ctx, stage, st, slowest, verdict, message)
    elif any(v.reason == "WaitingForAdmission" for _, v in verdicts):
        st.pending_since = None
        ctx.ready = (False, "WaitingForAdmission", f"{message}: pods wait for Kueue's admission")
    else:
        st.pending_since = None
    return False


def _check_service_wait(
    ctx: _Ctx, stage: StagePlan, st: StageStatus, role: str, verdict: PendingVerdict, message: str
) -> None:
    """A service without a ready replica: say why in Ready (and once as an Event), fail the run at the timeout."""
    timeout = ctx.run.spec.pending_timeout_seconds
    since = parse_time(verdict.since) or ctx.now
    st.pending_since = fmt_time(since)
    waited = (ctx.now - since).total_seconds()
    if waited < timeout:
        reason = "ServicesNotReady" if verdict.reason == "PendingTimeout" else verdict.reason
        st.message = f"{message}: {verdict.detail} (since {st.pending_since})"[:32768]
        ctx.ready = (False, reason, st.message)
        ctx.decision.requeue(timeout - waited)
        old = condition(ctx.old, "Ready")
        if reason != "ServicesNotReady" and (old is None or old.reason != reason):
            ctx.event(
                "Warning",
                reason,
                f"service {role}: {verdict.detail}",
                f"Service/{role}/{reason}/{st.pending_since}",
            )
        return
    text = (
        f"stage {stage.name}: service {role} had no ready replica for {waited:.0f}s "
        f"(pendingTimeoutSeconds {timeout}): {verdict.detail}"
    )[:32768]
    st.phase = "Failed"
    st.completion_time = ctx.now_s
    st.message = text
    ctx.decision.finished.append(
        StageFinished(stage.name, "failed", _seconds(st.start_time, st.completion_time))
    )
    ctx.event("Warning", verdict.reason, text, f"ServiceTimeout/{stage.name}/{role}")
    ctx.failure = (verdict.reason, text)


def _set_services(ctx: _Ctx, stage: StagePlan, *, suspended: bool) -> None:
    """Services live only while the current stage needs them; while suspended they are scaled to zero."""
    wanted = _service_replicas(ctx)
    for role in (naming.ROLE_SANDBOX, naming.ROLE_JUDGE):
        name = _dep_name(ctx, role)
        dep = ctx.observed.deployments.get(name)
        if dep is None:
            continue
        if role not in wanted or role not in stage.needs:
            ctx.decision.deletes += [Delete("v1", "Service", name), Delete("apps/v1", "Deployment", name)]
            if role == naming.ROLE_SANDBOX:
                ctx.decision.deletes.append(Delete("networking.k8s.io/v1", "NetworkPolicy", name))
        elif suspended and dep.get("spec", {}).get("replicas") != 0:
            ctx.decision.patches.append(Patch("apps/v1", "Deployment", name, {"spec": {"replicas": 0}}))


# --------------------------------------------------------------------------------------------- run status


def _finish_status(ctx: _Ctx) -> None:
    """Phase, conditions, observedGeneration and the run-level transition Events."""
    status, old, spec = ctx.status, ctx.old, ctx.run.spec
    now, gen = ctx.now_s, ctx.generation
    if status.phase not in ("Succeeded", "Failed"):
        current = status.stages.get(status.current_stage or "")
        started = any(s.attempts > 0 for s in status.stages.values())
        if spec.suspend:
            status.phase = "Suspended"
        elif started and ctx.ready[1] != "WaitingForAdmission":
            status.phase = "Running"
        else:
            status.phase = "Pending"
        if current is not None:
            status.message = (
                f"{status.current_stage}: {current.message}" if current.message else status.current_stage
            )
    phase = status.phase
    conds = status.conditions
    stage = status.current_stage or ""
    failure_reason, failure_message = ctx.failure or (_failed_reason(old) or "Failed", status.message or "")
    ready, ready_reason, ready_msg = ctx.ready
    if phase == "Failed":
        ready, ready_reason, ready_msg = False, failure_reason, failure_message
    elif phase == "Succeeded":
        ready, ready_reason, ready_msg = True, "Completed", status.message or ""
    elif phase == "Suspended":
        ready, ready_reason, ready_msg = True, "Suspended", "the run is suspended"
    set_condition(conds, "Ready", ready, ready_reason, ready_msg, now, gen)
    set_condition(
        conds,
        "Running",
        phase == "Running",
        "StageRunning" if phase == "Running" else phase,
        f"stage {stage}" if phase == "Running" else "",
        now,
        gen,
    )
    set_condition(
        conds,
        "Succeeded",
        phase == "Succeeded",
        "AllStagesSucceeded" if phase == "Succeeded" else phase,
        status.message or "" if phase == "Succeeded" else "",
        now,
        gen,
    )
    if phase == "Failed":
        set_condition(conds, "Failed", True, failure_reason, failure_message, now, gen)
    else:
        set_condition(conds, "Failed", False, phase, "", now, gen)
    set_condition(
        conds,
        "Suspended",
        phase == "Suspended",
        "SuspendedByUser" if phase == "Suspended" else phase,
        "spec.suspend is true" if phase == "Suspended" else "",
        now,
        gen,
    )
    status.conditions = sorted(conds, key=lambda c: CONDITION_TYPES.index(c.type))
    status.observed_generation = gen
    old_susp = condition(old, "Suspended")
    since = old_susp.last_transition_time if old_susp else ""
    if phase == "Suspended" and old.phase != "Suspended":
        ctx.event("Normal", "Suspended", f"run suspended (stage {stage})", f"Suspended/{since}")
    elif old.phase == "Suspended" and not spec.suspend:
        # Not when a run still suspended finishes (its last Job ended just before it was stopped); a resumed run
        # that finishes at once names the stage it resumed at.
        resumed_at = stage or old.current_stage or ""
        ctx.event("Normal", "Resumed", f"run resumed (stage {resumed_at})", f"Resumed/{since}")
    if phase == "Running" and old.phase != "Running" and _never_ran(old):
        ctx.event("Normal", "Running", f"run started (stage {stage})", "RunStarted")
    ctx.decision.status = dump_status(status)


def _never_ran(status: PurpCodeRunStatus) -> bool:
    """No stage has got past Pending: its first Job not created, or created and waiting for Kueue's admission.

    (Not "no startTime": that is set with the first Job, while a Kueue run is still Pending; and a run whose
    first status is written after its Job exists - a crash, or a deferred status write - has it already.)"""
    return all(st.phase in ("Pending", "Skipped") for st in status.stages.values())


def action_failed_status(body: Obj, message: str, now: datetime.datetime) -> Obj:
    """The stored status with Ready=False/CreateFailed: a child could not be created (quota, RBAC, webhook...)."""
    status = parse_status(body.get("status"))
    gen = body.get("metadata", {}).get("generation")
    set_condition(status.conditions, "Ready", False, REASON_CREATE_FAILED, message, fmt_time(now), gen)
    status.conditions = sorted(status.conditions, key=lambda c: CONDITION_TYPES.index(c.type))
    status.observed_generation = gen
    return dump_status(status)


def rejected_status(body: Obj, message: str, now: datetime.datetime) -> Obj:
    """The stored status with the run Failed/SpecRejected: the API server refused a child as invalid (422)."""
    status = parse_status(body.get("status"))
    gen = body.get("metadata", {}).get("generation")
    now_s = fmt_time(now)
    text = (
        f"the API server rejected what this spec asks for: {message}; fix the spec "
        "(the run continues from where it stopped once its spec changes)"
    )[:32768]
    status.phase = "Failed"
    status.message = text
    status.completion_time = status.completion_time or now_s
    current = status.stages.get(status.current_stage or "")
    if current is not None and current.phase in ("Pending", "Running"):
        current.message = text
    for ctype in CONDITION_TYPES:
        if ctype in ("Failed", "Ready"):
            set_condition(status.conditions, ctype, ctype == "Failed", REASON_REJECTED, text, now_s, gen)
        else:
            set_condition(status.conditions, ctype, False, "Failed", "", now_s, gen)
    status.conditions = sorted(status.conditions, key=lambda c: CONDITION_TYPES.index(c.type))
    status.observed_generation = gen
    return dump_status(status)


def status_changed(body: Obj, new_status: Obj | None) -> bool:
    return new_status is not None and (body.get("status") or {}) != new_status
