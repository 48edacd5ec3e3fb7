"""Write the Grafana dashboard `helm/purpcode/dashboards/purpcode.json` from the panel table below.

Why a generator: a hand-edited Grafana JSON is thousands of lines of layout noise; the queries are what matter and
are reviewed here, in one table. The JSON file is what ships (the chart's ConfigMap embeds it; users can import it
by hand) and `tests/packaging/test_packaging_dashboard.py` runs every panel's query against a real Prometheus
scraping the real operator, sandbox and a training stage. `--check` fails when the file is stale.

Usage: `python tools/gen_dashboard.py [--check]`  (also `make manifests`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "helm" / "purpcode" / "dashboards" / "purpcode.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
UID = "purpcode-k8s"

# Selectors shared by the queries; the dashboard's variables narrow them.
RUN = 'namespace=~"$namespace", run=~"$run"'
NS = 'namespace=~"$namespace"'
# Series without a `run` label of their own (oracles, sandbox) carry the pod's purpcode.dev/run label, which the
# chart's PodMonitor copies into `purpcode_dev_run`.
WL = 'namespace=~"$namespace", purpcode_dev_run=~"$run"'
OP = 'controller="purpcoderun"'
RI = "$__rate_interval"


@dataclass
class Panel:
    title: str
    exprs: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""
    width: int = 8
    # Panels allowed to be empty in the CI check, with the reason (data only a real cluster can give).
    needs: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    title: str
    panels: list[Panel]


ROWS: list[Row] = [
    Row(
        "Runs",
        [
            Panel(
                "Runs by phase",
                [(f"sum by (phase) (purpcode_run_phase{{{NS}}} == 1)", "{{phase}}")],
                kind="stat",
                description="Runs in each phase now (purpcode_run_phase is 1 for a run's current phase).",
            ),
            Panel(
                "Stage duration",
                [
                    (
                        "sum by (stage, result) (purpcode_stage_duration_seconds_sum)"
                        " / sum by (stage, result) (purpcode_stage_duration_seconds_count)",
                        "mean {{stage}} ({{result}})",
                    ),
                    (
                        "histogram_quantile(0.95, sum by (le, stage) (purpcode_stage_duration_seconds_bucket))",
                        "p95 {{stage}}",
                    ),
                ],
                unit="s",
                kind="bargauge",
                description="Wall time of finished stages, first start to finish over all attempts, since the "
                "operator started (operator's purpcode_stage_duration_seconds histogram).",
            ),
            Panel(
                "Stage retries",
                [("sum by (stage) (purpcode_stage_retries_total)", "{{stage}}")],
                description="Stage attempts started after a failed attempt, since the operator started.",
            ),
        ],
    ),
    Row(
        "Training",
        [
            Panel("Training loss", [(f"purpcode_train_loss{{{RUN}}}", "{{run}} {{stage}}")]),
            Panel(
                "Reward per oracle",
                [
                    (f"purpcode_rl_reward_mean{{{RUN}}}", "{{run}} {{oracle}}"),
                    (f"purpcode_rl_reward_mean_all{{{RUN}}}", "{{run}} all"),
                ],
                description="Mean GRPO reward of the step's samples, per oracle (values in {0, 0.8, 1}).",
            ),
            Panel(
                "Pass rate per oracle",
                [(f"purpcode_rl_pass_rate{{{RUN}}}", "{{run}} {{oracle}}")],
                unit="percentunit",
            ),
            Panel(
                "Groups dropped by dynamic sampling",
                [
                    (
                        f'sum by (run) (rate(purpcode_rl_groups_total{{{RUN}, outcome="dropped"}}[{RI}]))'
                        f" / sum by (run) (rate(purpcode_rl_groups_total{{{RUN}}}[{RI}]))",
                        "{{run}} dropped share (rate)",
                    ),
                    (f"purpcode_rl_groups_dropped_fraction{{{RUN}}}", "{{run}} dropped share (last step)"),
                ],
                unit="percentunit",
                description="GRPO groups whose rewards had zero variance and were dropped (single-step dynamic sampling).",
            ),
            Panel("KL", [(f"purpcode_rl_kl{{{RUN}}}", "{{run}}")]),
            Panel(
                "Tokens per second",
                [(f"sum by (run, stage) (purpcode_train_tokens_per_second{{{RUN}}})", "{{run}} {{stage}}")],
            ),
            Panel(
                "Oracle latency",
                [
                    (
                        f"histogram_quantile({q}, sum by (le, oracle) "
                        f"(rate(purpcode_oracle_latency_seconds_bucket{{{WL}}}[{RI}])))",
                        f"p{int(q * 100)} {{{{oracle}}}}",
                    )
                    for q in (0.5, 0.95)
                ],
                unit="s",
            ),
            Panel(
                "Oracle outcomes",
                [
                    (
                        f"sum by (oracle, outcome) (rate(purpcode_oracle_results_total{{{WL}}}[{RI}]))",
                        "{{oracle}} {{outcome}}",
                    )
                ],
                unit="ops",
            ),
            Panel(
                "Samples kept and rejected",
                [
                    (
                        f"sum by (stage, outcome) (purpcode_samples_total{{{RUN}}})",
                        "{{stage}} {{outcome}}",
                    )
                ],
                description="Rejection sampling (rule learning) and generation counts.",
            ),
        ],
    ),
    Row(
        "Sandbox",
        [
            Panel(
                "Executions per second",
                [
                    (
                        f"sum by (language, outcome) (rate(purpcode_sandbox_executions_total{{{WL}}}[{RI}]))",
                        "{{language}} {{outcome}}",
                    )
                ],
                unit="ops",
                description="Outcomes: success, failed, timeout, output_limit, sandbox_error.",
            ),
            Panel(
                "Request latency",
                [
                    (
                        f"histogram_quantile({q}, sum by (le) "
                        f"(rate(purpcode_sandbox_request_seconds_bucket{{{WL}}}[{RI}])))",
                        f"p{int(q * 100)}",
                    )
                    for q in (0.5, 0.9, 0.99)
                ],
                unit="s",
                description="Request to response of /run_code, queueing included.",
            ),
            Panel(
                "Program run time",
                [
                    (
                        f"histogram_quantile({q}, sum by (le, language) "
                        f"(rate(purpcode_sandbox_run_seconds_bucket{{{WL}}}[{RI}])))",
                        f"p{int(q * 100)} {{{{language}}}}",
                    )
                    for q in (0.5, 0.99)
                ],
                unit="s",
            ),
            Panel(
                "Timeouts and rejections",
                [
                    (f"sum(rate(purpcode_sandbox_timeouts_total{{{WL}}}[{RI}]))", "timeouts/s"),
                    (
                        f"sum by (reason) (rate(purpcode_sandbox_rejections_total{{{WL}}}[{RI}]))",
                        "rejected/s {{reason}}",
                    ),
                ],
                unit="ops",
            ),
            Panel(
                "In flight and queued",
                [
                    (f"sum(purpcode_sandbox_in_flight{{{WL}}})", "in flight"),
                    (f"sum(purpcode_sandbox_queue_length{{{WL}}})", "queued"),
                ],
            ),
        ],
    ),
    Row(
        "Operator",
        [
            Panel(
                "Reconciles per second",
                [(f"sum by (result) (rate(controller_runtime_reconcile_total{{{OP}}}[{RI}]))", "{{result}}")],
                unit="ops",
            ),
            Panel(
                "Reconcile errors",
                [(f"sum(rate(controller_runtime_reconcile_errors_total{{{OP}}}[{RI}]))", "errors/s")],
                unit="ops",
            ),
            Panel(
                "Reconcile latency",
                [
                    (
                        f"histogram_quantile({q}, sum by (le) "
                        f"(rate(controller_runtime_reconcile_time_seconds_bucket{{{OP}}}[{RI}])))",
                        f"p{int(q * 100)}",
                    )
                    for q in (0.5, 0.9, 0.99)
                ],
                unit="s",
            ),
            Panel(
                "Work queue depth",
                [('sum(workqueue_depth{name="purpcoderun"})', "depth")],
            ),
            Panel(
                "Operator up",
                [('sum(up{job="purpcode-operator"})', "up")],
                kind="stat",
            ),
        ],
    ),
    Row(
        "GPUs",
        [
            Panel(
                "GPU utilisation",
                [(f"avg by (namespace, pod, gpu) (DCGM_FI_DEV_GPU_UTIL{{{NS}}})", "{{pod}} gpu{{gpu}}")],
                unit="percent",
                width=12,
                needs="NVIDIA DCGM exporter on GPU nodes",
                description="From the NVIDIA DCGM exporter (with pod attribution), when it runs in the cluster.",
            ),
            Panel(
                "GPU memory used",
                [(f"sum by (namespace, pod) (DCGM_FI_DEV_FB_USED{{{NS}}})", "{{pod}}")],
                unit="decmbytes",
                width=12,
                needs="NVIDIA DCGM exporter on GPU nodes",
            ),
        ],
    ),
]


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _panel(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DS,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(panel.exprs)
        ],
    }
    if panel.description:
        out["description"] = panel.description
    if panel.needs:
        out["description"] = (out.get("description", "") + f" Needs: {panel.needs}.").strip()
    out.update(panel.extra)
    return out


def build() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row in ROWS:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            }
        )
        pid, y, x = pid + 1, y + 1, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y = 0, y + 8
            panels.append(_panel(panel, pid, x, y))
            pid, x = pid + 1, x + panel.width
        y += 8
    return {
        "uid": UID,
        "title": "PurpCode",
        "description": "PurpCode runs on Kubernetes: stages, training, rewards, sandbox, operator, GPUs.",
        "tags": ["purpcode", "llm", "training"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                _variable("namespace", "Namespace", "label_values(purpcode_run_info, namespace)"),
                _variable("run", "Run", 'label_values(purpcode_run_info{namespace=~"$namespace"}, run)'),
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the JSON file is stale; write nothing"
    )
    args = parser.parse_args(argv)
    text = render()
    current = OUT.read_text(encoding="utf-8") if OUT.exists() else None
    if current == text:
        return 0
    if args.check:
        print(f"stale: {OUT.relative_to(ROOT)}; run `make manifests`", file=sys.stderr)
        return 1
    tmp = OUT.with_name(OUT.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, OUT)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
