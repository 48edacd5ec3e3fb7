"""Refuse to reuse a stage's work under settings that change its result: the first attempt records them in the stage
directory; every restart of the stage, and every later local run finding the stage finished, compares.

Why: a restarted stage reuses what its earlier attempts left (samples, selection, checkpoints with optimizer and
scheduler state). Resumed under another learning rate, sample count, seed or model, it would silently finish with a
mix of both configurations, which no single uninterrupted run gives. Settings that only change how or where the
stage runs (scheduling, resources, endpoints, checkpoint cadence, memory savers) are not recorded, so a pod restarted
with more memory or a moved endpoint still resumes. Every stage but the report (which always follows a change) is
recorded: the local runner writes the record before it starts a stage (`record_settings`) and, before it skips a
finished one, compares (`settings_differences`), refusing with the changed fields and the `--rerun` to use.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from purpcode.data.schema import write_json_atomic
from purpcode_operator.plan import StageConfig

SETTINGS_FILE = "stage_settings.json"

# Where and how the stage runs, not what it computes (snake_case field names of the stage specs).
_SCHEDULING: dict[str, Any] = {
    name: True
    for name in (
        "enabled",
        "image",
        "resources",
        "scheduling",
        "node_selector",
        "tolerations",
        "priority_class_name",
        "active_deadline_seconds",
        "backoff_limit",
    )
}
_DEEPSPEED_MEMORY: dict[str, Any] = {"offload_optimizer": True, "offload_params": True}
_GENERATION_WHERE: dict[str, Any] = {"url": True, "api_key_secret_ref": True, "gpu_memory_utilization": True}
_EXCLUDE: dict[str, dict[str, Any]] = {
    "initialize": {},
    "synthesis": {**_SCHEDULING, "generation": _GENERATION_WHERE},
    "evaluation": {**_SCHEDULING, "generation": _GENERATION_WHERE},
    "ruleLearning": {
        **_SCHEDULING,
        "generation": {"url": True, "api_key_secret_ref": True, "gpu_memory_utilization": True},
        "sft": {"save_steps": True, "gradient_checkpointing": True},
        "deepspeed": _DEEPSPEED_MEMORY,
    },
    "rl": {
        **_SCHEDULING,
        "save_steps": True,
        "gradient_checkpointing": True,
        "vllm": {"gpu_memory_utilization": True},
        "deepspeed": _DEEPSPEED_MEMORY,
    },
}


class SettingsChanged(ValueError):
    """The stage directory holds work done under other settings."""


GUARDED_STAGES: tuple[str, ...] = tuple(_EXCLUDE)


def result_settings(cfg: StageConfig) -> dict[str, Any]:
    """The settings a stage's result depends on (camelCase, as in the PurpCodeRun)."""
    spec: Any
    if cfg.stage == "ruleLearning":
        spec = cfg.rule_learning()
    elif cfg.stage == "rl":
        spec = cfg.rl()
    elif cfg.stage == "synthesis":
        spec = cfg.synthesis()
    elif cfg.stage == "evaluation":
        spec = cfg.evaluation()
    elif cfg.stage == "initialize":
        spec = None
    else:
        raise ValueError(f"stage {cfg.stage!r} has no settings to guard (it always follows the others)")

    def relative(path: str | None) -> str | None:
        return None if path is None else os.path.relpath(path, cfg.paths.artifacts)

    out: dict[str, Any] = {
        "seed": cfg.seed,
        "model": cfg.model.model_dump(mode="json", by_alias=True, exclude={"token_secret_ref"}),
    }
    if spec is not None:
        out["oracles"] = cfg.oracles.model_dump(mode="json", by_alias=True)
        out["params"] = spec.model_dump(mode="json", by_alias=True, exclude=_EXCLUDE[cfg.stage])
        # Which model it starts from or evaluates (enabling or disabling an earlier stage changes it), and the
        # graders it used (the judge endpoint may move; the judge model and the analyzer may not).
        out["inputs"] = {"model": relative(cfg.paths.model), "easyIds": relative(cfg.paths.easy_ids)}
        out["graders"] = {
            "judgeModel": cfg.services.judge_model,
            "judgeMaxTokens": cfg.services.judge_max_tokens,
            "analyzer": cfg.services.analyzer.model_dump(mode="json", by_alias=True),
        }
    return out


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        # Keys on one side only come from another version of the spec (a field added or removed), not the user.
        for key in sorted(set(old) & set(new)):
            name = f"{prefix}.{key}" if prefix else str(key)
            out += _differences(old.get(key), new.get(key), name)
        return out
    return [] if old == new else [f"{prefix or 'settings'}: {json.dumps(old)} -> {json.dumps(new)}"]


def settings_differences(out_dir: str | Path, cfg: StageConfig) -> list[str] | None:
    """`field: old -> new` for every recorded result setting that differs now; None when nothing was recorded.

    An unreadable record counts as a difference: the work's settings are unknown.
    """
    path = Path(out_dir) / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return [f"{path}: unreadable record ({err})"]
    return _differences(recorded, result_settings(cfg))


def record_settings(out_dir: str | Path, cfg: StageConfig) -> None:
    """Record the stage's result settings in `out_dir` unless a record exists."""
    path = Path(out_dir) / SETTINGS_FILE
    if not path.is_file():
        write_json_atomic(path, result_settings(cfg))


def describe_changes(changed: list[str], limit: int = 8) -> str:
    return "; ".join(changed[:limit]) + ("; ..." if len(changed) > limit else "")


def check_settings(out_dir: str | Path, cfg: StageConfig, *, record: bool) -> None:
    """Raise SettingsChanged when `out_dir` was started under other result settings; else record them once.

    `record`: write the file when it is missing (the main rank only; the other ranks only compare).
    """
    changed = settings_differences(out_dir, cfg)
    if changed:
        raise SettingsChanged(
            f"{cfg.stage}: {out_dir} holds work started under other settings ({describe_changes(changed)}). "
            "A resume would mix both. Restore the settings, or run the stage again from scratch: locally "
            f"`purpcode run SPEC --rerun {cfg.stage}`, on a cluster delete that directory."
        )
    if changed is None and record:
        record_settings(out_dir, cfg)
