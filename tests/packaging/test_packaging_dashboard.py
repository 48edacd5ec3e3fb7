"""The Grafana dashboard file: up to date, well formed, covering what issue 9 lists, every query valid PromQL.

Whether every query returns data from the real components is tests/packaging/test_packaging_prometheus.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from dashboard_queries import load_dashboard, metric_names, panel_queries
from tool_loader import load_tool
from tools_check import require_tool

REQUIRED_METRICS = {
    # runs
    "purpcode_run_phase",
    "purpcode_stage_duration_seconds_sum",
    "purpcode_stage_retries_total",
    # training
    "purpcode_train_loss",
    "purpcode_rl_reward_mean",
    "purpcode_rl_pass_rate",
    "purpcode_rl_groups_total",
    "purpcode_rl_kl",
    "purpcode_train_tokens_per_second",
    # sandbox
    "purpcode_sandbox_executions_total",
    "purpcode_sandbox_request_seconds_bucket",
    "purpcode_sandbox_timeouts_total",
    "purpcode_sandbox_rejections_total",
    # operator
    "controller_runtime_reconcile_total",
    "controller_runtime_reconcile_errors_total",
    "controller_runtime_reconcile_time_seconds_bucket",
    "workqueue_depth",
    # GPUs
    "DCGM_FI_DEV_GPU_UTIL",
}


@pytest.fixture(scope="module")
def gen_dashboard() -> ModuleType:
    return load_tool("gen_dashboard")


def test_file_is_what_the_generator_writes(gen_dashboard: ModuleType) -> None:
    assert gen_dashboard.OUT.read_text(encoding="utf-8") == gen_dashboard.render(), "run `make manifests`"


def test_layout_is_well_formed() -> None:
    dash = load_dashboard()
    assert dash["uid"] and dash["title"] == "PurpCode" and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {p['title']} overlaps another"
        cells |= mine
        if p["type"] != "row":
            assert p["targets"], p["title"]
            assert p["datasource"]["uid"] == "${datasource}"
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs))
    names = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "namespace", "run"} <= names


def test_covers_every_topic_of_the_issue() -> None:
    used = set().union(*(metric_names(q) for _, _, q in panel_queries()))
    assert REQUIRED_METRICS <= used, f"missing: {REQUIRED_METRICS - used}"


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (as a recording rule), variables substituted the way Grafana does."""
    promtool = require_tool("promtool", "apt-get install prometheus")
    queries = panel_queries()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"q_{i}", "expr": q} for i, (_, _, q) in enumerate(queries)],
            }
        ]
    }
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(queries)} rules found" in out.stdout
    bad = {"groups": [{"name": "x", "rules": [{"record": "q", "expr": "sum by (le (rate(x[5m]))"}]}]}
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    assert (
        subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, check=False).returncode
        != 0
    )
