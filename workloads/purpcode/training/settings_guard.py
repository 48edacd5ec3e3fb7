"""Refuse to resume a stage under settings that change its result: the first attempt records them in the stage
directory, every restart compares.

Why: a restarted stage reuses what its earlier attempts left (samples, selection, checkpoints with optimizer and
scheduler state). Resumed under another learning rate, sample count, seed or model, it would silently finish with a
mix of both configurations, which no single uninterrupted run gives. Settings that only change how or where the
stage runs (scheduling, resources, endpoints, checkpoint cadence, memory savers) are not recorded, so a pod restarted
with more memory or a moved endpoint still resumes.
"""

from __future__ import annotations

import json
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
_EXCLUDE: dict[str, dict[str, Any]] = {
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


def result_settings(cfg: StageConfig) -> dict[str, Any]:
    """The settings a stage's result depends on (camelCase, as in the PurpCodeRun)."""
    if cfg.stage == "ruleLearning":
        spec: Any = cfg.rule_learning()
    elif cfg.stage == "rl":
        spec = cfg.rl()
    else:
        raise ValueError(f"stage {cfg.stage!r} has no resumable work to guard")
    return {
        "seed": cfg.seed,
        "model": cfg.model.model_dump(mode="json", by_alias=True, exclude={"token_secret_ref"}),
        "oracles": cfg.oracles.model_dump(mode="json", by_alias=True),
        "params": spec.model_dump(mode="json", by_alias=True, exclude=_EXCLUDE[cfg.stage]),
    }


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        # Keys on one side only come from another version of the spec (a field added or removed), not the user.
        for key in sorted(set(old) & set(new)):
            name = f"{prefix}.{key}" if prefix else str(key)
            out += _differences(old.get(key), new.get(key), name)
        return out
    return [] if old == new else [f"{prefix or 'settings'}: {json.dumps(old)} -> {json.dumps(new)}"]


def check_settings(out_dir: str | Path, cfg: StageConfig, *, record: bool) -> None:
    """Raise SettingsChanged when `out_dir` was started under other result settings; else record them once.

    `record`: write the file when it is missing (the main rank only; the other ranks only compare).
    """
    path = Path(out_dir) / SETTINGS_FILE
    current = result_settings(cfg)
    if path.is_file():
        recorded = json.loads(path.read_text(encoding="utf-8"))
        changed = _differences(recorded, current)
        if changed:
            raise SettingsChanged(
                f"{cfg.stage}: {path.parent} holds work started under other settings ("
                + "; ".join(changed[:8])
                + ("; ..." if len(changed) > 8 else "")
                + "). A resume would mix both. Restore the settings, or delete that directory to run the stage "
                "again from scratch."
            )
    elif record:
        write_json_atomic(path, current)
