"""Operator settings: command-line flags over environment variables (the Helm chart sets the environment)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from .plan import PlanDefaults


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


@dataclass
class OperatorConfig:
    """Everything the operator process reads at start. Environment names are in `from_env`."""

    namespaces: list[str] = field(default_factory=list)  # empty: every namespace (cluster-wide)
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 8080
    workers: int = 16
    retry_backoff_seconds: float = 10.0
    retry_backoff_max_seconds: float = 600.0
    resync_seconds: float = 600.0
    peering: str | None = None  # None: standalone (no kopf peering objects needed)
    api_timeout_seconds: float = 30.0
    defaults: PlanDefaults = field(default_factory=PlanDefaults)
    judge_url: str | None = None
    judge_model: str | None = None
    judge_api_key_secret: str | None = None
    sandbox_runtime_class_name: str | None = None
    sandbox_metrics_scrapers: tuple[dict[str, Any], ...] | None = None  # None: the built-in default

    @classmethod
    def from_env(cls) -> OperatorConfig:
        namespaces = [
            n.strip() for n in os.environ.get("PURPCODE_WATCH_NAMESPACES", "").split(",") if n.strip()
        ]
        return cls(
            namespaces=namespaces,
            metrics_host=os.environ.get("PURPCODE_METRICS_HOST", "0.0.0.0"),
            metrics_port=_env_int("PURPCODE_METRICS_PORT", 8080),
            workers=max(_env_int("PURPCODE_WORKERS", 16), 1),
            retry_backoff_seconds=_env_float("PURPCODE_RETRY_BACKOFF_SECONDS", 10.0),
            retry_backoff_max_seconds=_env_float("PURPCODE_RETRY_BACKOFF_MAX_SECONDS", 600.0),
            resync_seconds=_env_float("PURPCODE_RESYNC_SECONDS", 600.0),
            peering=os.environ.get("PURPCODE_PEERING") or None,
            api_timeout_seconds=_env_float("PURPCODE_API_TIMEOUT_SECONDS", 30.0),
            defaults=PlanDefaults.from_env(),
            judge_url=os.environ.get("PURPCODE_JUDGE_URL") or None,
            judge_model=os.environ.get("PURPCODE_JUDGE_MODEL") or None,
            judge_api_key_secret=os.environ.get("PURPCODE_JUDGE_API_KEY_SECRET") or None,
            sandbox_runtime_class_name=os.environ.get("PURPCODE_SANDBOX_RUNTIME_CLASS_NAME") or None,
            sandbox_metrics_scrapers=_env_peers("PURPCODE_SANDBOX_METRICS_SCRAPERS"),
        )


def _env_peers(name: str) -> tuple[dict[str, Any], ...] | None:
    """A JSON list of NetworkPolicy peers (the chart's sandbox.metricsScrapers); unset: None."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(p, dict) and p for p in value):
        raise ValueError(
            f"{name} must be a JSON list of NetworkPolicy peers (podSelector/namespaceSelector), got {raw!r}"
        )
    return tuple(value)
