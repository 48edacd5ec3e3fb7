"""Pick and adjust the shipped DeepSpeed config for a `DeepSpeedSpec` (ZeRO stage, offload switches).

Why files plus a builder: the JSON files in `deepspeed/` are what people read, diff and reuse outside the
operator; the builder only selects one and flips the offload switches, so the spec and the files cannot drift.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Protocol

CONFIG_DIR = Path(__file__).parent / "deepspeed"
SHIPPED = {"zero2": "zero2.json", "zero3": "zero3.json", "zero3_offload": "zero3_offload.json"}
_OFFLOAD = {"device": "cpu", "pin_memory": True}
_DS_ADAMW = {
    "type": "AdamW",
    "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"},
}


class DeepSpeedSettings(Protocol):
    """What the builder reads (`purpcode_operator.api.DeepSpeedSpec` has these fields)."""

    @property
    def enabled(self) -> bool: ...
    @property
    def zero_stage(self) -> int: ...
    @property
    def offload_optimizer(self) -> bool: ...
    @property
    def offload_params(self) -> bool: ...


def load_shipped(name: str) -> dict[str, Any]:
    """One of the shipped configs by name: zero2, zero3, zero3_offload."""
    if name not in SHIPPED:
        raise ValueError(f"no shipped DeepSpeed config {name!r}; choose one of {sorted(SHIPPED)}")
    data: dict[str, Any] = json.loads((CONFIG_DIR / SHIPPED[name]).read_text(encoding="utf-8"))
    return data


def deepspeed_config(spec: DeepSpeedSettings, *, on_gpu: bool = True) -> dict[str, Any] | None:
    """The DeepSpeed config dict for the HF Trainer (`TrainingArguments(deepspeed=...)`), or None when disabled.

    Stages 0 and 1 start from `zero2.json` with the stage number changed. Parameter offload exists only in
    ZeRO-3. `pin_memory` is turned off without a GPU (there is no device to pin for).
    """
    if not spec.enabled:
        return None
    stage = int(spec.zero_stage)
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"deepspeed.zeroStage={stage}: use 0, 1, 2 or 3")
    if spec.offload_params and stage != 3:
        raise ValueError(
            f"deepspeed.offloadParams needs zeroStage 3 (got {stage}): set zeroStage: 3 or offloadParams: false"
        )
    if spec.offload_optimizer and stage == 0:
        raise ValueError(
            "deepspeed.offloadOptimizer needs zeroStage >= 1: raise zeroStage or turn offload off"
        )
    cfg = copy.deepcopy(load_shipped("zero3" if stage == 3 else "zero2"))
    zero = cfg["zero_optimization"]
    zero["stage"] = stage
    if stage == 0:
        zero = {"stage": 0}
        cfg["zero_optimization"] = zero
    if spec.offload_optimizer:
        zero["offload_optimizer"] = dict(_OFFLOAD, pin_memory=on_gpu)
        # A client (torch) optimizer with ZeRO-Offload is refused by DeepSpeed; its own AdamW picks the CPU kernel.
        cfg["optimizer"] = copy.deepcopy(_DS_ADAMW)
    if spec.offload_params:
        zero["offload_param"] = dict(_OFFLOAD, pin_memory=on_gpu)
    return cfg


def write_config(cfg: dict[str, Any], path: str | Path) -> Path:
    """Write a resolved config (for the record, next to the checkpoints) and return its path."""
    from purpcode.data.schema import write_json_atomic

    write_json_atomic(path, cfg)
    return Path(path)
