"""Stage metrics: one place for Prometheus names and the JSONL log every stage writes to its artifacts.

Why one module: the Grafana dashboard and the alert rules query these exact names, and the run report reads the JSONL
files; a stage that invented its own names would silently fall off both.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, start_http_server

# Gauges set from a stage's step log: key in the JSONL record -> Prometheus gauge name.
# Keys with a per-oracle breakdown are logged as e.g. "reward/codesec" and exported with an `oracle` label.
TRAIN_GAUGES: dict[str, str] = {
    "loss": "purpcode_train_loss",
    "learning_rate": "purpcode_train_learning_rate",
    "tokens_per_second": "purpcode_train_tokens_per_second",
    "grad_norm": "purpcode_train_grad_norm",
    "step_seconds": "purpcode_train_step_seconds",
    "kl": "purpcode_rl_kl",
    "entropy": "purpcode_rl_entropy",
    "response_length": "purpcode_rl_response_length",
    "reward_mean": "purpcode_rl_reward_mean_all",
    "groups_dropped_fraction": "purpcode_rl_groups_dropped_fraction",
    "reward_seconds": "purpcode_rl_reward_seconds",
    "epoch": "purpcode_train_epoch",
}
PER_ORACLE_GAUGES: dict[str, str] = {
    "reward": "purpcode_rl_reward_mean",
    "pass_rate": "purpcode_rl_pass_rate",
}


class StageMetrics:
    """Exports a stage's figures to Prometheus and appends them to `<out>/metrics.jsonl`.

    One instance per stage process. `log(step, **values)` sets gauges and appends a JSON line; counters for
    samples and groups are incremented through `count`.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        run: str,
        stage: str,
        port: int | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.path = Path(out_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run, self.stage = run, stage
        self.registry = registry if registry is not None else REGISTRY
        self._lock = threading.Lock()
        labels = ["run", "stage"]
        self._gauges = {
            key: Gauge(name, f"Stage figure '{key}' at the latest step.", labels, registry=self.registry)
            for key, name in TRAIN_GAUGES.items()
        }
        self._oracle_gauges = {
            key: Gauge(
                name, f"Per-oracle '{key}' at the latest step.", [*labels, "oracle"], registry=self.registry
            )
            for key, name in PER_ORACLE_GAUGES.items()
        }
        self.step_gauge = Gauge(
            "purpcode_train_step", "Latest completed step.", labels, registry=self.registry
        )
        self.samples = Counter(
            "purpcode_samples",
            "Samples by outcome (generated, kept, rejected) and oracle.",
            [*labels, "oracle", "outcome"],
            registry=self.registry,
        )
        self.groups = Counter(
            "purpcode_rl_groups",
            "GRPO groups by dynamic-sampling outcome (kept, dropped).",
            [*labels, "outcome"],
            registry=self.registry,
        )
        self.wasted = Counter(
            "purpcode_rl_wasted_samples",
            "Samples generated but not trained on.",
            labels,
            registry=self.registry,
        )
        self.started = Gauge(
            "purpcode_stage_start_time_seconds",
            "Unix time the stage process started.",
            labels,
            registry=self.registry,
        )
        self.started.labels(run, stage).set(time.time())
        if port:
            start_http_server(port, registry=self.registry)

    def log(self, step: int, **values: Any) -> None:
        """Record one step's figures: gauges for the known keys, and every key in the JSONL line."""
        record = {"time": time.time(), "stage": self.stage, "step": step, **values}
        self.step_gauge.labels(self.run, self.stage).set(step)
        for key, value in values.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if key in self._gauges:
                self._gauges[key].labels(self.run, self.stage).set(value)
            elif "/" in key:
                base, oracle = key.split("/", 1)
                if base in self._oracle_gauges:
                    self._oracle_gauges[base].labels(self.run, self.stage, oracle).set(value)
        line = json.dumps(record, default=float) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            # One write per record on an O_APPEND file: a crash never leaves half a line behind another record.
            fh.write(line)

    def count(self, oracle: str, outcome: str, n: int = 1) -> None:
        """Count samples (outcome: generated, kept, rejected, easy)."""
        self.samples.labels(self.run, self.stage, oracle, outcome).inc(n)


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a metrics.jsonl, skipping a torn last line left by a crash."""
    records: list[dict[str, Any]] = []
    p = Path(path)
    if not p.exists():
        return records
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
