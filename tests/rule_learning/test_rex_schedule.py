"""The REX schedule (issue 19, point 2): its shape, and that the SFT trainer really steps with it."""

from __future__ import annotations

import pytest
import torch

from purpcode.rule_learning.schedule import get_rex_schedule_with_warmup, rex_multiplier
from purpcode_operator.api import SFTSpec


def _lrs(warmup: int, total: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = get_rex_schedule_with_warmup(opt, num_warmup_steps=warmup, num_training_steps=total)
    out = []
    for _ in range(total + 1):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_rex_shape_warmup_then_reflected_exponential_to_zero() -> None:
    lrs = _lrs(warmup=4, total=20)
    assert lrs[:5] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])  # linear warmup to the peak
    decay = lrs[4:]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))  # strictly decreasing
    assert decay[-1] == pytest.approx(0.0)
    # (1 - p) / (1 - p / 2): at half way 2/3 of the peak (linear decay would be 1/2, cosine 1/2).
    assert lrs[4 + 8] == pytest.approx(2.0 * (0.5 / 0.75))
    # Above linear decay everywhere in between.
    for i, lr in enumerate(decay[1:-1], start=1):
        assert lr > 2.0 * (1 - i / 16)


def test_rex_multiplier_min_ratio_and_bad_length() -> None:
    assert rex_multiplier(10, num_warmup_steps=0, num_training_steps=10, min_ratio=0.1) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="num_training_steps"):
        get_rex_schedule_with_warmup(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 0, 0)


def test_sft_defaults_match_the_reference() -> None:
    spec = SFTSpec()
    assert (spec.per_device_batch_size, spec.gradient_accumulation_steps) == (1, 1)
    assert spec.lr_scheduler == "rex" and spec.warmup_steps == 32 and spec.learning_rate == 5e-6


def test_sft_trainer_steps_with_rex(tmp_path) -> None:
    from purpcode.rule_learning.sft import build_dataset, build_trainer, load_tokenizer, sft_config
    from purpcode.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "m")
    tok = load_tokenizer(model)
    records = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": "## Analysis\nok ok ok ok ok ok\n## Answer\nfine"},
            ]
        }
        for i in range(6)
    ]
    spec = SFTSpec(
        learning_rate=1e-3,
        warmup_steps=1,
        max_steps=4,
        max_seq_length=2048,
        packing=False,
        bf16=False,
        gradient_checkpointing=False,
        save_steps=100,
    )
    cfg = sft_config(
        spec, output_dir=tmp_path / "out", seed=1, deepspeed=None, assistant_masks=False, gpu=False
    )
    trainer = build_trainer(model, tok, build_dataset(records), cfg)
    trainer.train()
    lrs = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    # The learning rate logged at step s is the one step s trained with: the multiplier of step s - 1.
    expected = [1e-3 * rex_multiplier(s, num_warmup_steps=1, num_training_steps=4) for s in range(4)]
    assert lrs == pytest.approx(expected)
    assert lrs == pytest.approx([0.0, 1e-3, 0.8e-3, 0.5e-3])
