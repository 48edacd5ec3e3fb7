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


def select(expr: str, *, namespace: str, run: str, rate_interval: str = RATE_INTERVAL) -> str:
    """The query as Grafana sends it with one namespace and one run selected (a single value of a multi-value
    variable is inserted regex-escaped)."""
    expr = expr.replace("$__rate_interval", rate_interval)
    values = {"namespace": grafana_regex_escape(namespace), "run": grafana_regex_escape(run)}
    return re.sub(r"\$\{?(namespace|run)\}?", lambda m: values[m.group(1)], expr)


def grafana_regex_escape(value: str) -> str:
    """What Grafana's Prometheus data source inserts for one value of a multi-value variable: regex metacharacters
    escaped with a doubled backslash (one for the PromQL string, one for the regex)."""
    return re.sub(r"([\\^$*+?.()|\[\]{}])", r"\\\\\1", value)


def uses(expr: str, variable: str) -> bool:
    return re.search(r"\$\{?" + variable + r"\b\}?", expr) is not None


_SELECTOR = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{(?P<matchers>[^}]*)\}")


def selectors(expr: str) -> list[str]:
    """The vector selectors `name{matchers}` of a query (the dashboard's queries use no bare label sets)."""
    return [m.group(0) for m in _SELECTOR.finditer(expr)]


# ------------------------------------------------------------------------------------------------------------------
# The Prometheus Operator's translation of a PodMonitor / ServiceMonitor into a Prometheus scrape config, with
# Kubernetes service discovery replaced by static targets that carry the `__meta_kubernetes_*` labels discovery
# would set. Prometheus itself then applies the relabelings, so the stored series carry exactly the labels a
# cluster's Prometheus would give them.


def _sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _camel_to_snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def user_relabelings(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A monitor's `relabelings` (RelabelConfig, camelCase) as Prometheus `relabel_configs`."""
    out = []
    for rule in rules:
        item = {_camel_to_snake(k): v for k, v in rule.items()}
        if "action" in item:
            item["action"] = str(item["action"]).lower()
        out.append(item)
    return out


def _selector_keeps(meta: str, selector: dict[str, Any]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        k = _sanitize(key)
        rules.append(
            {
                "action": "keep",
                "source_labels": [
                    f"__meta_kubernetes_{meta}_label_{k}",
                    f"__meta_kubernetes_{meta}_labelpresent_{k}",
                ],
                "regex": f"({value});true",
            }
        )
    for expr in selector.get("matchExpressions") or []:
        k = _sanitize(expr["key"])
        op = expr["operator"]
        src = [f"__meta_kubernetes_{meta}_label_{k}", f"__meta_kubernetes_{meta}_labelpresent_{k}"]
        if op in ("In", "NotIn"):
            regex = f"({'|'.join(expr['values'])});true"
            rules.append({"action": "keep" if op == "In" else "drop", "source_labels": src, "regex": regex})
        elif op in ("Exists", "DoesNotExist"):
            rules.append(
                {"action": "keep" if op == "Exists" else "drop", "source_labels": [src[1]], "regex": "true"}
            )
        else:
            raise ValueError(f"matchExpressions operator {op!r} is not translated")
    return rules


def pod_meta_labels(pod: dict[str, Any], container: str, port: dict[str, Any]) -> dict[str, str]:
    """The `__meta_kubernetes_*` labels Kubernetes pod discovery sets on one container port's target."""
    meta = pod["metadata"]
    labels = {
        "__meta_kubernetes_namespace": meta["namespace"],
        "__meta_kubernetes_pod_name": meta["name"],
        "__meta_kubernetes_pod_phase": pod.get("status", {}).get("phase", "Running"),
        "__meta_kubernetes_pod_container_name": container,
        "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
        "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
    }
    for key, value in (meta.get("labels") or {}).items():
        labels[f"__meta_kubernetes_pod_label_{_sanitize(key)}"] = str(value)
        labels[f"__meta_kubernetes_pod_labelpresent_{_sanitize(key)}"] = "true"
    return labels


def pod_monitor_scrape_configs(
    monitor: dict[str, Any], targets: list[tuple[str, dict[str, str]]], interval: str = "1s"
) -> list[dict[str, Any]]:
    """One scrape job per podMetricsEndpoint, relabelled as the Prometheus Operator does (generatePodMonitorConfig:
    selector keeps, port keep, terminated pods dropped, namespace/container/pod, podTargetLabels, job, jobLabel,
    endpoint, then the endpoint's own relabelings). `targets` are (address, pod meta labels)."""
    spec = monitor["spec"]
    ns, name = monitor["metadata"]["namespace"], monitor["metadata"]["name"]
    jobs = []
    for i, ep in enumerate(spec["podMetricsEndpoints"]):
        rules: list[dict[str, Any]] = [
            {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}
        ]
        rules += _selector_keeps("pod", spec.get("selector") or {})
        rules.append(
            {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                "regex": ep["port"],
            }
        )
        rules.append(
            {
                "action": "drop",
                "source_labels": ["__meta_kubernetes_pod_phase"],
                "regex": "(Failed|Succeeded)",
            }
        )
        rules += [
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ]
        for label in spec.get("podTargetLabels") or []:
            rules.append(
                {
                    "source_labels": [f"__meta_kubernetes_pod_label_{_sanitize(label)}"],
                    "target_label": _sanitize(label),
                    "regex": "(.+)",
                    "replacement": "${1}",
                }
            )
        rules.append({"target_label": "job", "replacement": f"{ns}/{name}"})
        if spec.get("jobLabel"):
            rules.append(
                {
                    "source_labels": [f"__meta_kubernetes_pod_label_{_sanitize(spec['jobLabel'])}"],
                    "target_label": "job",
                    "regex": "(.+)",
                    "replacement": "${1}",
                }
            )
        rules.append({"target_label": "endpoint", "replacement": ep["port"]})
        rules += user_relabelings(ep.get("relabelings") or [])
        jobs.append(
            {
                "job_name": f"podMonitor/{ns}/{name}/{i}",
                "honor_labels": bool(ep.get("honorLabels", False)),
                "metrics_path": ep.get("path", "/metrics"),
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": [{"targets": [addr], "labels": labels} for addr, labels in targets],
                "relabel_configs": rules,
                "metric_relabel_configs": user_relabelings(ep.get("metricRelabelings") or []),
            }
        )
    return jobs


def service_monitor_scrape_configs(
    monitor: dict[str, Any],
    service: dict[str, Any],
    pod: dict[str, Any],
    address: str,
    interval: str = "1s",
) -> list[dict[str, Any]]:
    """One scrape job per ServiceMonitor endpoint for one endpoint address of `service` backed by `pod`, relabelled
    as the Prometheus Operator does (generateServiceMonitorConfig, endpoints role)."""
    spec = monitor["spec"]
    ns, name = monitor["metadata"]["namespace"], monitor["metadata"]["name"]
    smeta = service["metadata"]
    jobs = []
    for i, ep in enumerate(spec["endpoints"]):
        (container,) = [
            c
            for c in pod["spec"]["containers"]
            if any(p.get("name") == ep["port"] for p in c.get("ports", []))
        ]
        labels = {
            "__meta_kubernetes_namespace": smeta["namespace"],
            "__meta_kubernetes_service_name": smeta["name"],
            "__meta_kubernetes_endpoint_port_name": ep["port"],
            "__meta_kubernetes_endpoint_address_target_kind": "Pod",
            "__meta_kubernetes_endpoint_address_target_name": pod["metadata"]["name"],
            "__meta_kubernetes_pod_name": pod["metadata"]["name"],
            "__meta_kubernetes_pod_container_name": container["name"],
            "__meta_kubernetes_pod_phase": "Running",
        }
        for key, value in (smeta.get("labels") or {}).items():
            labels[f"__meta_kubernetes_service_label_{_sanitize(key)}"] = str(value)
            labels[f"__meta_kubernetes_service_labelpresent_{_sanitize(key)}"] = "true"
        rules: list[dict[str, Any]] = [
            {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}
        ]
        rules += _selector_keeps("service", spec.get("selector") or {})
        rules.append(
            {"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": ep["port"]}
        )
        rules += [
            {
                "source_labels": [
                    "__meta_kubernetes_endpoint_address_target_kind",
                    "__meta_kubernetes_endpoint_address_target_name",
                ],
                "separator": ";",
                "regex": "Pod;(.*)",
                "replacement": "${1}",
                "target_label": "pod",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
            {
                "action": "drop",
                "source_labels": ["__meta_kubernetes_pod_phase"],
                "regex": "(Failed|Succeeded)",
            },
            {
                "source_labels": ["__meta_kubernetes_service_name"],
                "target_label": "job",
                "replacement": "${1}",
            },
        ]
        if spec.get("jobLabel"):
            rules.append(
                {
                    "source_labels": [f"__meta_kubernetes_service_label_{_sanitize(spec['jobLabel'])}"],
                    "target_label": "job",
                    "regex": "(.+)",
                    "replacement": "${1}",
                }
            )
        rules.append({"target_label": "endpoint", "replacement": ep["port"]})
        rules += user_relabelings(ep.get("relabelings") or [])
        jobs.append(
            {
                "job_name": f"serviceMonitor/{ns}/{name}/{i}",
                "honor_labels": bool(ep.get("honorLabels", False)),
                "metrics_path": ep.get("path", "/metrics"),
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": [{"targets": [address], "labels": labels}],
                "relabel_configs": rules,
                "metric_relabel_configs": user_relabelings(ep.get("metricRelabelings") or []),
            }
        )
    return jobs
