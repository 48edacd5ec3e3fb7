"""Glue for HF/TRL Trainers shared by the SFT and RL stages: precision, resume, final save.

Why here: both stages must resume the same way (newest complete checkpoint, found by themselves after a pod
restart), pick precision the same way (bf16 on GPUs that have it, fp32 on CPU) and publish the final model the same
way (safetensors + tokenizer + model card, atomically, so a crash never leaves a half-written model behind).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from purpcode.training.checkpoints import discard_incomplete_checkpoints, newest_complete_checkpoint
from purpcode.training.model_card import write_model_card

log = logging.getLogger(__name__)


def has_gpu() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def precision_kwargs(bf16: bool, *, gpu: bool | None = None) -> dict[str, Any]:
    """TrainingArguments precision fields: bf16 on a GPU that supports it (when asked), fp32 otherwise.

    On CPU it also sets `use_cpu=True`: TRL configs default to bf16 and DeepSpeed over gloo needs it.
    """
    import torch

    on_gpu = has_gpu() if gpu is None else gpu
    if not on_gpu:
        return {"use_cpu": True, "bf16": False, "fp16": False}
    use_bf16 = bool(bf16) and bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return {"bf16": use_bf16, "fp16": False}


def model_init_kwargs(bf16: bool, *, deepspeed: bool, gpu: bool | None = None) -> dict[str, Any]:
    """`from_pretrained` kwargs for a TRL trainer given a model path.

    Under DeepSpeed with bf16 the weights load in bf16 (DeepSpeed keeps fp32 master copies); otherwise fp32 master
    weights with bf16 autocast. FlashAttention 2 is used when installed (packed sequences need it or SDPA's
    position-id masks).
    """
    import importlib.util

    on_gpu = has_gpu() if gpu is None else gpu
    kwargs: dict[str, Any] = {"dtype": "bfloat16" if (on_gpu and bf16 and deepspeed) else "float32"}
    if on_gpu and importlib.util.find_spec("flash_attn") is not None:
        kwargs["attn_implementation"] = "flash_attention_2"
    return kwargs


def resume_point(trainer: Any) -> str | None:
    """The checkpoint this trainer should resume from (newest complete one in its output_dir), or None.

    The main process first moves incomplete checkpoints aside; every rank then reads the same answer.
    """
    out = trainer.args.output_dir
    if trainer.is_world_process_zero():
        moved = discard_incomplete_checkpoints(out)
        for p in moved:
            log.warning("moved incomplete checkpoint aside: %s", p)
    trainer.accelerator.wait_for_everyone()
    ckpt = newest_complete_checkpoint(out)
    return str(ckpt) if ckpt else None


def train_with_resume(trainer: Any) -> Any:
    """`trainer.train()`, resuming from the newest complete checkpoint when there is one. Returns TrainOutput."""
    ckpt = resume_point(trainer)
    if ckpt:
        log.info("resuming from %s", ckpt)
        restore_token_count(trainer, ckpt)
    return trainer.train(resume_from_checkpoint=ckpt)


def restore_token_count(trainer: Any, ckpt: str | Path) -> None:
    """TRL's SFTTrainer logs `num_tokens`, a running total it keeps in memory only: a resumed run counted from 0
    again, so its step logs differed from an uninterrupted run's. Restart the total at the checkpoint's last log
    (every step is logged; the value is already summed over ranks)."""
    if not hasattr(trainer, "_total_train_tokens"):
        return
    try:
        history = json.loads((Path(ckpt) / "trainer_state.json").read_text(encoding="utf-8"))["log_history"]
    except (OSError, ValueError, KeyError):
        return
    seen = [h["num_tokens"] for h in history if isinstance(h, dict) and "num_tokens" in h]
    if seen:
        trainer._total_train_tokens = seen[-1]


def mean_train_loss(log_history: Sequence[Mapping[str, Any]]) -> float | None:
    """The run's mean training loss per optimizer step, from the Trainer's log history (None: nothing logged).

    Why not the Trainer's own `train_loss`: that averages the steps trained by this process, so after a resume it
    covers only the steps after the checkpoint. The log history is restored from the checkpoint, so this covers
    every step; each logged loss is the mean over the steps since the previous log, hence the weights.
    """
    total, steps, last = 0.0, 0, 0
    for entry in log_history:
        loss, step = entry.get("loss"), entry.get("step")
        if isinstance(loss, int | float) and isinstance(step, int) and step > last:
            total += float(loss) * (step - last)
            steps += step - last
            last = step
    return total / steps if steps else None


def save_final_model(
    trainer: Any,
    model_dir: str | os.PathLike[str],
    *,
    tokenizer: Any,
    card: Mapping[str, Any] | None = None,
) -> Path:
    """Save the trained model (safetensors), tokenizer and model card to `model_dir`, atomically.

    Every rank must call this (ZeRO-3 gathers the weights across ranks); rank 0 writes into a temp sibling directory
    and renames it into place, replacing an older copy.
    """
    final = Path(model_dir)
    tmp = final.with_name(f".{final.name}.tmp")
    old = final.with_name(f".{final.name}.old")
    if trainer.is_world_process_zero():
        # Left by a kill during an earlier save: a partial copy, or (killed between the two renames) the old model.
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(tmp))
        if card is not None:
            write_model_card(tmp, **card)
        if final.exists():
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    trainer.accelerator.wait_for_everyone()
    return final
