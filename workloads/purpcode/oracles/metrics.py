"""Prometheus metrics of the oracles: latency and outcome counts per oracle, usable from every stage.

Names are fixed here (dashboards and alerts query them); `purpcode.metrics` may re-export them.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    15.0,
    30.0,
    60.0,
    120.0,
)


class OracleMetrics:
    """The oracle metric objects on one registry (the process default unless a test passes its own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else REGISTRY
        self.latency = Histogram(
            "purpcode_oracle_latency_seconds",
            "Seconds from dispatch to result for one sample, per oracle (queueing included).",
            ["oracle"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.results = Counter(
            "purpcode_oracle_results",
            "Scored samples per oracle and outcome (pass, partial, fail, format_fail, error).",
            ["oracle", "outcome"],
            registry=reg,
        )
        self.judge_retries = Counter(
            "purpcode_oracle_judge_retries",
            "Judge requests retried after 429/5xx or a connection error.",
            ["status"],
            registry=reg,
        )

    def observe(self, oracle: str, outcome: str, seconds: float) -> None:
        self.latency.labels(oracle).observe(seconds)
        self.results.labels(oracle, outcome).inc()


_default: OracleMetrics | None = None


def default_metrics() -> OracleMetrics:
    """The process-wide instance on the default registry (created once: Prometheus rejects duplicate names)."""
    global _default
    if _default is None:
        _default = OracleMetrics()
    return _default
