"""Checkpoints of the stage's SFT run (its config, callbacks and trainer): every saveSteps, none at the last step,
where the final model is saved instead; a run stopped between training and the final save resumes from the newest
periodic checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from purpcode.rule_learning.sft import build_dataset, build_trainer, load_tokenizer, sft_callbacks, sft_config
from purpcode.training.checkpoints import is_complete_checkpoint, list_checkpoints
from purpcode.training.hf import save_final_model, train_with_resume
from purpcode_operator.api import SFTSpec


def records() -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "system", "content": "SYS"},
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": f"## Analysis\nreasoning {i}\n## Answer\nanswer {i}"},
            ]
        }
        for i in range(8)
    ]


def trainer_for(model_dir: Path, out: Path, *, max_steps: int, save_steps: int) -> Any:
    """The trainer `rule_learning.stage.run_sft` builds, for a tiny run."""
    spec = SFTSpec(
        max_steps=max_steps,
        save_steps=save_steps,
        max_seq_length=2048,
        per_device_batch_size=1,
        warmup_steps=0,
        bf16=False,
        gradient_checkpointing=False,
    )
    tokenizer = load_tokenizer(model_dir)
    cfg = sft_config(
        spec, output_dir=out / "checkpoints", seed=3, deepspeed=None, assistant_masks=False, gpu=False
    )
    trainer = build_trainer(
        model_dir,
        tokenizer,
        build_dataset(records()),
        cfg,
        callbacks=sft_callbacks(None, extra={"phase": "sft"}),
    )
    return trainer, tokenizer


@pytest.mark.parametrize(("max_steps", "save_steps"), [(3, 2), (4, 2)])
def test_periodic_checkpoints_but_none_at_the_last_step(
    tmp_path: Path, tiny_model_dir: Path, max_steps: int, save_steps: int
) -> None:
    trainer, tokenizer = trainer_for(tiny_model_dir, tmp_path, max_steps=max_steps, save_steps=save_steps)
    train_with_resume(trainer)
    assert trainer.state.global_step == max_steps
    save_final_model(trainer, tmp_path / "model", tokenizer=tokenizer)
    ckpts = list_checkpoints(tmp_path / "checkpoints")
    # checkpoint-2 is periodic; step 3 (not a multiple) and step 4 (a multiple, but the last) get the final model
    assert [c.name for c in ckpts] == ["checkpoint-2"] and is_complete_checkpoint(ckpts[0])
    assert (ckpts[0] / "optimizer.pt").is_file()  # a full checkpoint, resumable
    assert (tmp_path / "model" / "model.safetensors").stat().st_size > 10_000
    assert not (tmp_path / "model" / "optimizer.pt").exists()  # the final model is weights only


def test_stopped_before_the_final_save_resumes_from_the_periodic_checkpoint(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Training finished but the pod died before model/ was saved: the restart redoes the steps after the newest
    periodic checkpoint (as after any kill) and then saves the model."""
    first, _ = trainer_for(tiny_model_dir, tmp_path, max_steps=3, save_steps=2)
    train_with_resume(first)
    assert [c.name for c in list_checkpoints(tmp_path / "checkpoints")] == ["checkpoint-2"]

    again, tokenizer = trainer_for(tiny_model_dir, tmp_path, max_steps=3, save_steps=2)
    train_with_resume(again)
    assert again.state.global_step == 3
    logged = [h["step"] for h in again.state.log_history if "loss" in h]
    assert logged == [1, 2, 3]  # steps 1-2 restored from checkpoint-2, step 3 trained again
    state2 = json.loads((tmp_path / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert [h["step"] for h in state2["log_history"] if "loss" in h] == [1, 2]
    save_final_model(again, tmp_path / "model", tokenizer=tokenizer)
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert [c.name for c in list_checkpoints(tmp_path / "checkpoints")] == ["checkpoint-2"]
