"""Prometheus metrics of the operator, under controller-runtime's names so existing dashboards work.

The Grafana dashboard and alert rules (helm chart) query exactly these names; change them only together:

- controller_runtime_reconcile_total{controller="purpcoderun", result=success|error|requeue|requeue_after}
- controller_runtime_reconcile_errors_total{controller}
- controller_runtime_reconcile_time_seconds{controller}  (histogram)
- controller_runtime_active_workers{controller}, controller_runtime_max_concurrent_reconciles{controller}
- workqueue_depth{name}, workqueue_adds_total{name}, workqueue_retries_total{name},
  workqueue_queue_duration_seconds{name}, workqueue_work_duration_seconds{name}  (histograms)
- purpcode_deferred_status_total{controller}: reconciles that created Jobs during a burst of runs and left the
  status to a low-priority reconcile (workqueue.py, Controller._defer)
- purpcode_run_info{namespace, run, model, judge, queue} = 1
- purpcode_run_phase{namespace, run, phase} = 1 for the current phase, 0 for the others
- purpcode_stage_duration_seconds{stage, result}  (histogram; result = succeeded|failed)
- purpcode_stage_retries_total{stage}
- purpcode_stage_pending_since_timestamp_seconds{namespace, run, stage}: when the current stage's pods (or the
  services it waits for) went Pending; the series exists only while they are (alert PurpCodeStagePendingTooLong)
- purpcode_operator_build_info{version}, plus process_* (RSS, CPU) of the operator itself

Series of a deleted run (run_info, run_phase) are removed when the operator sees the deletion.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

CONTROLLER = "purpcoderun"
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Suspended")
# controller-runtime's reconcile_time buckets (seconds)
RECONCILE_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.35,
    0.4,
    0.45,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    1.0,
    1.25,
    1.5,
    1.75,
    2.0,
    2.5,
    3.0,
    3.5,
    4.0,
    4.5,
    5,
    6,
    7,
    8,
    9,
    10,
    15,
    20,
    25,
    30,
    40,
    50,
    60,
)
QUEUE_BUCKETS = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0)
STAGE_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)


class OperatorMetrics:
    """All metric families on one registry (served at /metrics on the operator's port)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, version: str = "0.1.0") -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)  # python_gc_*: the collector settings of gctune.py, observable
        self.reconcile_total = Counter(
            "controller_runtime_reconcile_total",
            "Total number of reconciliations per controller",
            ["controller", "result"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            "controller_runtime_reconcile_errors_total",
            "Total number of reconciliation errors per controller",
            ["controller"],
            registry=r,
        )
        self.reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            ["controller"],
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.active_workers = Gauge(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            ["controller"],
            registry=r,
        )
        self.max_workers = Gauge(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            ["controller"],
            registry=r,
        )
        self.deferred = Counter(
            "purpcode_deferred_status_total",
            "Reconciles that created Jobs and left the run's status to a low-priority reconcile (burst of runs)",
            ["controller"],
            registry=r,
        )
        self.queue_depth = Gauge("workqueue_depth", "Current depth of workqueue", ["name"], registry=r)
        self.queue_adds = Counter(
            "workqueue_adds_total", "Total number of adds handled by workqueue", ["name"], registry=r
        )
        self.queue_retries = Counter(
            "workqueue_retries_total", "Total number of retries handled by workqueue", ["name"], registry=r
        )
        self.queue_latency = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            ["name"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            ["name"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.run_info = Gauge(
            "purpcode_run_info",
            "One series per PurpCodeRun with its descriptive labels",
            ["namespace", "run", "model", "judge", "queue"],
            registry=r,
        )
        self.run_phase = Gauge(
            "purpcode_run_phase",
            "1 for the run's current phase, 0 for the other phases",
            ["namespace", "run", "phase"],
            registry=r,
        )
        self.stage_duration = Histogram(
            "purpcode_stage_duration_seconds",
            "Wall time of finished stages (first start to finish, all attempts)",
            ["stage", "result"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.stage_retries = Counter(
            "purpcode_stage_retries_total",
            "Stage attempts started after a failed attempt",
            ["stage"],
            registry=r,
        )
        self.pending_since = Gauge(
            "purpcode_stage_pending_since_timestamp_seconds",
            "Unix time since which the stage's pods have been Pending (present only while they are)",
            ["namespace", "run", "stage"],
            registry=r,
        )
        self.build_info = Gauge("purpcode_operator_build_info", "Operator version", ["version"], registry=r)
        self.build_info.labels(version=version).set(1)
        self._info_labels: dict[tuple[str, str], tuple[str, str, str]] = {}
        self._phase: dict[tuple[str, str], str] = {}  # the phase the run_phase series say now
        self._pending: dict[tuple[str, str], dict[str, float]] = {}

    # ----------------------------------------------------------------------------- runs

    def set_run(self, namespace: str, run: str, *, model: str, judge: str, queue: str, phase: str) -> None:
        key = (namespace, run)
        labels = (model, judge, queue)
        old = self._info_labels.get(key)
        if old != labels:
            if old is not None:
                self.run_info.remove(namespace, run, *old)
            self.run_info.labels(namespace, run, *labels).set(1)
            self._info_labels[key] = labels
        if self._phase.get(key) == phase:
            return  # every reconcile reports the phase; the series change only when it does
        for p in PHASES:
            self.run_phase.labels(namespace, run, p).set(1 if p == phase else 0)
        self._phase[key] = phase

    def set_pending(self, namespace: str, run: str, since: dict[str, float]) -> None:
        """`since`: stage -> unix time its pods went Pending, for the stages pending now (others are removed)."""
        key = (namespace, run)
        old = self._pending.get(key, {})
        if old == since:
            return
        for stage in set(old) - set(since):
            self.pending_since.remove(namespace, run, stage)
        for stage, ts in since.items():
            if old.get(stage) != ts:
                self.pending_since.labels(namespace, run, stage).set(ts)
        self._pending[key] = dict(since)

    def forget_run(self, namespace: str, run: str) -> None:
        """Drop every series of a deleted run."""
        self.set_pending(namespace, run, {})
        self._pending.pop((namespace, run), None)
        self._phase.pop((namespace, run), None)
        old = self._info_labels.pop((namespace, run), None)
        if old is not None:
            self.run_info.remove(namespace, run, *old)
        for p in PHASES:
            try:
                self.run_phase.remove(namespace, run, p)
            except KeyError:
                pass

    def stage_finished(self, stage: str, result: str, seconds: float) -> None:
        self.stage_duration.labels(stage, result).observe(seconds)

    def stage_retry(self, stage: str) -> None:
        self.stage_retries.labels(stage).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
