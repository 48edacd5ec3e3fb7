"""Metric names the dashboards use, and removal of a deleted run's series."""

from __future__ import annotations

from support.operator_process import metric_value

from purpcode_operator.metrics import OperatorMetrics

NAMES = {
    "controller_runtime_reconcile_total",
    "controller_runtime_reconcile_errors_total",
    "controller_runtime_reconcile_time_seconds",
    "controller_runtime_active_workers",
    "controller_runtime_max_concurrent_reconciles",
    "workqueue_depth",
    "workqueue_adds_total",
    "workqueue_retries_total",
    "workqueue_queue_duration_seconds",
    "workqueue_work_duration_seconds",
    "purpcode_run_info",
    "purpcode_run_phase",
    "purpcode_stage_duration_seconds",
    "purpcode_stage_retries_total",
    "purpcode_operator_build_info",
    "purpcode_stage_pending_since_timestamp_seconds",
    "process_resident_memory_bytes",
    "python_gc_collections_total",
}


def _exposed(m: OperatorMetrics) -> str:
    return m.render().decode()


def test_exposed_names_match_the_dashboard_contract() -> None:
    m = OperatorMetrics()
    m.reconcile_total.labels("purpcoderun", "success").inc()
    m.reconcile_errors.labels("purpcoderun").inc()
    m.reconcile_time.labels("purpcoderun").observe(0.2)
    m.set_run("ns", "r", model="tiny-random", judge="tiny-random", queue="", phase="Running")
    m.stage_finished("rl", "succeeded", 120.0)
    m.stage_retry("rl")
    m.set_pending("ns", "r", {"rl": 1700000000.0})
    text = _exposed(m)
    for name in NAMES:
        assert f"\n{name}" in f"\n{text}" or f"# TYPE {name}" in text, name
    assert (
        metric_value(text, "controller_runtime_reconcile_total", controller="purpcoderun", result="success")
        == 1
    )
    assert (
        metric_value(text, "controller_runtime_reconcile_time_seconds_count", controller="purpcoderun") == 1
    )
    assert metric_value(text, "purpcode_stage_duration_seconds_count", stage="rl", result="succeeded") == 1
    assert metric_value(text, "purpcode_stage_retries_total", stage="rl") == 1


def test_run_phase_is_one_hot_and_series_of_deleted_runs_go() -> None:
    m = OperatorMetrics()
    m.set_run("ns", "r", model="a", judge="j", queue="", phase="Pending")
    m.set_run("ns", "r", model="a", judge="j", queue="", phase="Running")
    text = _exposed(m)
    assert metric_value(text, "purpcode_run_phase", run="r", phase="Running") == 1
    assert metric_value(text, "purpcode_run_phase", run="r", phase="Pending") == 0
    m.set_run(
        "ns", "r", model="b", judge="j", queue="q", phase="Running"
    )  # info labels changed: old series gone
    text = _exposed(m)
    assert metric_value(text, "purpcode_run_info", run="r", model="a") is None
    assert metric_value(text, "purpcode_run_info", run="r", model="b", queue="q") == 1
    m.set_run("ns", "other", model="a", judge="j", queue="", phase="Failed")
    m.forget_run("ns", "r")
    text = _exposed(m)
    assert metric_value(text, "purpcode_run_info", run="r") is None
    assert metric_value(text, "purpcode_run_phase", run="r") is None
    assert metric_value(text, "purpcode_run_phase", run="other", phase="Failed") == 1
    m.forget_run("ns", "never-seen")  # harmless


def test_pending_series_exist_only_while_pending() -> None:
    m = OperatorMetrics()
    m.set_pending("ns", "r", {"rl": 1700000000.0})
    text = _exposed(m)
    assert (
        metric_value(text, "purpcode_stage_pending_since_timestamp_seconds", run="r", stage="rl")
        == 1700000000.0
    )
    m.set_pending("ns", "r", {})
    assert metric_value(_exposed(m), "purpcode_stage_pending_since_timestamp_seconds", run="r") is None
    m.set_pending("ns", "r", {"rl": 1.0})
    m.forget_run("ns", "r")
    assert metric_value(_exposed(m), "purpcode_stage_pending_since_timestamp_seconds", run="r") is None


def test_unchanged_reports_keep_the_series_right() -> None:
    """set_run/set_pending skip unchanged values (every reconcile reports them): the skip must never leave a
    series stale - after a forget the next report brings the series back, and a changed time is written."""
    m = OperatorMetrics()
    for _ in range(2):
        m.set_run("ns", "r", model="a", judge="j", queue="", phase="Running")
        m.set_pending("ns", "r", {"rl": 1.0})
    m.forget_run("ns", "r")
    m.set_run("ns", "r", model="a", judge="j", queue="", phase="Running")
    m.set_pending("ns", "r", {"rl": 1.0})
    text = _exposed(m)
    assert metric_value(text, "purpcode_run_phase", run="r", phase="Running") == 1
    assert metric_value(text, "purpcode_run_phase", run="r", phase="Pending") == 0
    assert metric_value(text, "purpcode_stage_pending_since_timestamp_seconds", run="r", stage="rl") == 1.0
    m.set_pending("ns", "r", {"rl": 2.0, "evaluation": 3.0})
    m.set_run("ns", "r", model="a", judge="j", queue="", phase="Failed")
    text = _exposed(m)
    assert metric_value(text, "purpcode_stage_pending_since_timestamp_seconds", run="r", stage="rl") == 2.0
    assert (
        metric_value(text, "purpcode_stage_pending_since_timestamp_seconds", run="r", stage="evaluation")
        == 3.0
    )
    assert metric_value(text, "purpcode_run_phase", run="r", phase="Failed") == 1
    assert metric_value(text, "purpcode_run_phase", run="r", phase="Running") == 0
