"""Gather what the stages left in an artifacts directory into one report document (plain JSON-able dict).

Why read the data files rather than trust one manifest: counts per set, strategy and CWE come straight from the
rows every later stage reads, so the report cannot disagree with what was trained on. Each stage's section carries a
status: succeeded (its `_SUCCESS` exists), incomplete (started, no marker), disabled or not run.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from purpcode.metrics import read_metrics
from purpcode_operator.layout import STAGE_DIRS, SUCCESS_MARKER

REPORT_STAGES = ("initialize", "synthesis", "ruleLearning", "rl", "evaluation")
SPLITS = {"train": "train", "heldout": "held-out"}


class RunInfo(BaseModel):
    """What the report says about the run itself."""

    model_config = ConfigDict(extra="ignore")

    run: str
    model: str = ""
    seed: int | None = None
    judge: str = Field(default="", description="The judge model's name (the toy judge gets a warning line).")
    enabled_stages: list[str] = Field(
        default_factory=list, description="Empty: unknown (re-rendered from disk)."
    )


def stage_status(root: Path, stage: str, enabled: list[str]) -> str:
    """succeeded / incomplete / disabled / not run."""
    d = root / STAGE_DIRS[stage]
    if (d / SUCCESS_MARKER).exists():
        return "succeeded"
    if enabled and stage not in enabled and stage != "initialize":
        return "disabled"
    if d.is_dir() and any(d.iterdir()):
        return "incomplete"
    return "not run"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _series(records: list[dict[str, Any]], key: str) -> list[list[float]]:
    """(step, value) pairs for a numeric key; a step logged twice (a resumed run) keeps its last value."""
    by_step: dict[int, float] = {}
    for r in records:
        v = r.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and isinstance(r.get("step"), int):
            by_step[int(r["step"])] = float(v)
    return [[float(s), by_step[s]] for s in sorted(by_step)]


def collect_data(root: Path) -> dict[str, Any]:
    """Row counts of the synthesis sets: per set and split, per strategy, per CWE, per oracle."""
    d = root / STAGE_DIRS["synthesis"]
    sets: dict[str, dict[str, int]] = {}
    by_strategy: Counter[str] = Counter()
    by_cwe: Counter[str] = Counter()
    by_oracle: Counter[str] = Counter()
    total = 0
    for path in sorted(d.glob("*.jsonl")) if d.is_dir() else []:
        parts = path.name[: -len(".jsonl")].rsplit(".", 1)
        if len(parts) != 2 or parts[1] not in SPLITS:
            continue
        name, split = parts
        n = 0
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict):
                continue
            n += 1
            by_strategy[str(row.get("strategy") or "(none)")] += 1
            by_cwe[str(row.get("cwe") or "(none)")] += 1
            by_oracle[str(row.get("oracle") or "?")] += 1
        sets.setdefault(name, {"train": 0, "heldout": 0})[split] = n
        total += n
    manifest = _read_json(d / "manifest.json")
    return {
        "sets": sets,
        "by_strategy": dict(by_strategy.most_common()),
        "by_cwe": dict(by_cwe.most_common()),
        "by_oracle": dict(by_oracle.most_common()),
        "total": total,
        "manifest": manifest if isinstance(manifest, dict) else None,
    }


def collect_rule_learning(root: Path) -> dict[str, Any]:
    d = root / STAGE_DIRS["ruleLearning"]
    records = read_metrics(d / "metrics.jsonl")
    summary = _read_json(d / "summary.json")
    return {
        "summary": summary if isinstance(summary, dict) else {},
        "loss": _series(records, "loss"),
        "learning_rate": _series(records, "learning_rate"),
    }


def collect_rl(root: Path) -> dict[str, Any]:
    d = root / STAGE_DIRS["rl"]
    records = read_metrics(d / "metrics.jsonl")
    oracles = sorted({k.split("/", 1)[1] for r in records for k in r if k.startswith("reward/")})
    reward = {o: _series(records, f"reward/{o}") for o in oracles}
    dropped = _series(records, "groups_dropped_fraction")
    final: dict[str, float] = {}
    for key in ("reward_mean", "groups_dropped_fraction", "kl", "entropy", "response_length"):
        s = _series(records, key)
        if s:
            final[key] = s[-1][1]
    for o, s in reward.items():
        if s:
            final[f"reward/{o}"] = s[-1][1]
    steps = max((int(r["step"]) for r in records if isinstance(r.get("step"), int)), default=0)
    summary = _read_json(d / "data_summary.json")
    return {
        "reward": reward,
        "reward_mean": _series(records, "reward_mean"),
        "groups_dropped_fraction": dropped,
        "format_pass_rate": _series(records, "format_pass_rate"),
        "final": final,
        "steps": steps,
        "data_summary": summary if isinstance(summary, dict) else None,
    }


def collect_evaluation(root: Path) -> dict[str, Any]:
    results = _read_json(root / STAGE_DIRS["evaluation"] / "results.json")
    return {"results": results if isinstance(results, dict) else None}


TOY_JUDGE_NAME = "tiny-judge"  # purpcode.toy.warm_start.TOY_JUDGE_NAME


def collect_toy(root: Path, info: RunInfo) -> dict[str, Any]:
    """Whether the run's models are the toy world's (the report then says so plainly)."""
    stats = _read_json(root / "model" / "base" / "toy_pretraining.json")
    return {
        "policy_steps": stats.get("steps") if isinstance(stats, dict) else None,
        "toy_judge": info.judge == TOY_JUDGE_NAME,
    }


def collect(root: Path, info: RunInfo) -> dict[str, Any]:
    """The report document for the artifacts under `root`."""
    enabled = info.enabled_stages
    status = {s: stage_status(root, s, enabled) for s in REPORT_STAGES}
    sections: dict[str, Any] = {
        "synthesis": collect_data(root),
        "ruleLearning": collect_rule_learning(root),
        "rl": collect_rl(root),
        "evaluation": collect_evaluation(root),
    }
    for name, section in sections.items():
        section["status"] = status[name]
    return {
        "toy": collect_toy(root, info),
        "run": info.model_dump(),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "artifacts": str(root),
        "stages": status,
        **sections,
    }
