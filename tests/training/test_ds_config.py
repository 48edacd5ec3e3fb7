"""The shipped DeepSpeed configs load, the builder picks them by ZeRO stage and offload, and HF fills "auto"."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from purpcode.training.ds_config import CONFIG_DIR, SHIPPED, deepspeed_config, load_shipped
from purpcode_operator.api import DeepSpeedSpec


def test_every_shipped_file_is_valid_json_for_its_stage() -> None:
    for name, file in SHIPPED.items():
        cfg = json.loads((CONFIG_DIR / file).read_text())
        assert cfg["zero_optimization"]["stage"] == (3 if name.startswith("zero3") else 2)
        assert cfg["train_micro_batch_size_per_gpu"] == "auto" and cfg["bf16"]["enabled"] == "auto"
    assert load_shipped("zero3")["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    with pytest.raises(ValueError, match="zero3_offload"):
        load_shipped("zero4")


def test_builder_selects_by_stage_and_offload() -> None:
    assert deepspeed_config(DeepSpeedSpec(enabled=False)) is None
    z3 = deepspeed_config(DeepSpeedSpec(zero_stage=3))
    assert z3 == load_shipped("zero3")
    assert deepspeed_config(DeepSpeedSpec(zero_stage=2)) == load_shipped("zero2")
    z1 = deepspeed_config(DeepSpeedSpec(zero_stage=1))
    assert z1 is not None and z1["zero_optimization"]["stage"] == 1
    z0 = deepspeed_config(DeepSpeedSpec(zero_stage=0))
    assert z0 is not None and z0["zero_optimization"] == {"stage": 0}
    # the builder's full-offload ZeRO-3 is the shipped offload file
    full = deepspeed_config(
        DeepSpeedSpec(zero_stage=3, offload_optimizer=True, offload_params=True), on_gpu=True
    )
    assert full == load_shipped("zero3_offload")
    cpu = deepspeed_config(DeepSpeedSpec(zero_stage=2, offload_optimizer=True), on_gpu=False)
    assert cpu is not None and cpu["zero_optimization"]["offload_optimizer"] == {
        "device": "cpu",
        "pin_memory": False,
    }
    assert cpu["optimizer"]["type"] == "AdamW"


def test_bad_combinations_name_the_field() -> None:
    with pytest.raises(ValueError, match="offloadParams needs zeroStage 3"):
        deepspeed_config(DeepSpeedSpec(zero_stage=2, offload_params=True))
    with pytest.raises(ValueError, match="offloadOptimizer"):
        deepspeed_config(DeepSpeedSpec(zero_stage=0, offload_optimizer=True))


def test_hf_fills_every_auto_value_from_training_arguments() -> None:
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    for spec in (
        DeepSpeedSpec(zero_stage=3),
        DeepSpeedSpec(zero_stage=3, offload_optimizer=True, offload_params=True),
    ):
        cfg = deepspeed_config(spec, on_gpu=False)
        args = TrainingArguments(
            output_dir="unused",
            per_device_train_batch_size=2,
            gradient_accumulation_steps=4,
            use_cpu=True,
            max_grad_norm=1.0,
            learning_rate=5e-6,
            report_to=[],
        )
        hf = HfTrainerDeepSpeedConfig(cfg)
        hf.trainer_config_process(args)
        model = SimpleNamespace(config=SimpleNamespace(hidden_size=64))  # only its hidden size is read
        hf.trainer_config_finalize(args, model=model, num_training_steps=10)
        resolved = hf.config
        assert (
            resolved["train_micro_batch_size_per_gpu"] == 2 and resolved["gradient_accumulation_steps"] == 4
        )
        assert resolved["gradient_clipping"] == 1.0 and resolved["bf16"]["enabled"] is False
        if "optimizer" in resolved:
            assert resolved["optimizer"]["params"]["lr"] == 5e-6
        assert resolved["zero_optimization"]["reduce_bucket_size"] == 64 * 64
        assert '"auto"' not in json.dumps(resolved)
