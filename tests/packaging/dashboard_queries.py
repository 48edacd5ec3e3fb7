"""The dashboard's queries, ready to run: Grafana variables replaced by what 'All' selects."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "helm" / "purpcode" / "dashboards" / "purpcode.json"
# Grafana's built-in interval: at least 4 scrape intervals; the test Prometheus scrapes every second.
RATE_INTERVAL = "15s"


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def substitute(expr: str, rate_interval: str = RATE_INTERVAL) -> str:
    """`$__rate_interval` -> a duration; `$namespace`/`$run` (multi-value, 'All' = .*) -> `.*`."""
    expr = expr.replace("$__rate_interval", rate_interval)
    return re.sub(r"\$\{?(namespace|run)\}?", ".*", expr)


def panel_queries(dashboard: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """(panel title, refId, runnable PromQL) for every target of every panel."""
    out = []
    for panel in (dashboard or load_dashboard())["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["refId"], substitute(target["expr"])))
    return out


_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: identifiers left once strings, label matchers, grouping
    clauses, ranges and function calls are removed (enough for the dashboard's and the alerts' queries)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    names = re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", text)
    return set(names) - _KEYWORDS
