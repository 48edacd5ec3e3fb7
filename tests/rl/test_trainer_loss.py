"""Dynamic sampling inside the real GRPOTrainer subclass: dropped groups never reach the loss.

Rewards are constructed (no oracles): prompts named `var/*` get alternating rewards (variance), `const/*` get a
constant (zero variance). The tiny model trains for two steps on CPU; a spy records what `compute_loss` sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from purpcode.rl.data import PromptStream, RLExample
from purpcode.rl.trainer import LIVE_KEY, ROW_KEY, PurpCodeGRPOTrainer

from .conftest import rl_config

EXAMPLES = [
    RLExample(
        f"{'var' if i % 2 == 0 else 'const'}/{i}",
        "codesec",
        "codesec",
        [{"role": "user", "content": f"prompt {i}"}],
    )
    for i in range(8)
]


def constructed_reward(
    prompts: list[Any], completions: list[Any], task_id: list[str], **_: Any
) -> list[float]:
    return [float(j % 2) if t.startswith("var") else 0.5 for j, t in enumerate(task_id)]


class SpyTrainer(PurpCodeGRPOTrainer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss_rows: list[list[int]] = []
        self.loss_advantages: list[torch.Tensor] = []

    def compute_loss(
        self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
    ):
        live = inputs[LIVE_KEY].bool()
        self.loss_rows.append(inputs[ROW_KEY][live].tolist())
        self.loss_advantages.append(inputs["advantages"][live].detach().clone())
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def make_trainer(tmp_path: Path, model_dir: Path, mode: str, steps: int = 2) -> SpyTrainer:
    from datasets import Dataset
    from transformers import AutoTokenizer

    from purpcode.rl.config import build_grpo_config

    cfg = rl_config(
        tmp_path, rl={"dynamicSampling": mode, "maxSteps": steps, "maxCompletionLength": 8, "saveSteps": 100}
    )
    spec = cfg.rl()
    args = build_grpo_config(cfg, spec, tmp_path / "out", max_steps=steps, on_gpu=False)
    tok = AutoTokenizer.from_pretrained(str(model_dir), padding_side="left")
    return SpyTrainer(
        model=str(model_dir),
        reward_funcs=[constructed_reward],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": e.prompt} for e in EXAMPLES]),
        processing_class=tok,
        examples=EXAMPLES,
        stream=PromptStream(len(EXAMPLES), seed=0),
        sampling_mode=mode,  # type: ignore[arg-type]
        max_oversample=spec.max_oversample,
        zero_variance_std=spec.zero_variance_std,
    )


def test_single_step_trains_only_groups_with_variance(tmp_path: Path, tiny_model_dir: Path) -> None:
    trainer = make_trainer(tmp_path, tiny_model_dir, "single-step")
    before = {n: p.detach().clone() for n, p in trainer.policy.named_parameters()}
    trainer.train()
    assert any(not torch.equal(before[n], p.detach()) for n, p in trainer.policy.named_parameters())
    assert trainer.state.global_step == 2
    seen = [r for rows in trainer.loss_rows for r in rows]
    # Step 1: 2 prompts (no history) -> 1 group with variance. Step 2: 2 / 0.5 = 4 prompts -> 2 groups.
    assert sorted(set(seen)) == [0, 2, 4]  # only var/* prompts reached the loss
    assert len(seen) == 3 * 4 == trainer.trained_rows
    assert trainer.sampling.steps == 2
    assert (trainer.sampling.groups_generated, trainer.sampling.groups_kept) == (6, 3)
    assert (trainer.sampling.groups_dropped, trainer.sampling.samples_wasted) == (3, 12)
    assert trainer.stream.cursor == 6
    # Every trained row carries a non-zero advantage (zero-variance groups would carry 0).
    assert all(bool((a != 0).all()) for a in trainer.loss_advantages if a.numel())
    logged = trainer.state.log_history
    assert [h.get("groups_kept") for h in logged if "groups_kept" in h] == [1.0, 2.0]
    assert [h.get("prompts_generated") for h in logged if "prompts_generated" in h] == [2.0, 4.0]
    assert [h.get("groups_dropped_fraction") for h in logged if "groups_dropped_fraction" in h] == [0.5, 0.5]


def test_no_filtering_trains_every_group(tmp_path: Path, tiny_model_dir: Path) -> None:
    trainer = make_trainer(tmp_path, tiny_model_dir, "none")
    trainer.train()
    seen = sorted(r for rows in trainer.loss_rows for r in rows)
    assert seen == sorted([0, 1, 2, 3] * 4)
    assert trainer.sampling.groups_dropped == 0 and trainer.sampling.groups_kept == 4


def test_refill_collects_a_full_batch(tmp_path: Path, tiny_model_dir: Path) -> None:
    trainer = make_trainer(tmp_path, tiny_model_dir, "refill", steps=1)
    trainer.train()
    # Rounds of 2 prompts (1 var + 1 const each) until 2 groups with variance: 2 rounds, 4 prompts.
    assert sorted(set(r for rows in trainer.loss_rows for r in rows)) == [0, 2]
    assert trainer.last_selection.rounds == 2 and trainer.sampling.groups_generated == 4


@pytest.mark.parametrize("mode", ["single-step"])
def test_all_groups_dropped_leaves_weights_unchanged(tmp_path: Path, tiny_model_dir: Path, mode: str) -> None:
    trainer = make_trainer(tmp_path, tiny_model_dir, mode, steps=1)

    def flat(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
        return [0.5] * len(prompts)  # no variance anywhere

    trainer.reward_funcs[0] = flat  # type: ignore[assignment]
    before = {n: p.detach().clone() for n, p in trainer.policy.named_parameters()}
    trainer.train()
    assert trainer.trained_rows == 0 and trainer.loss_rows == []
    assert trainer.sampling.groups_kept == 0 and trainer.sampling.last_ratio == 0.0
    for n, p in trainer.policy.named_parameters():
        assert torch.equal(before[n], p.detach()), n
