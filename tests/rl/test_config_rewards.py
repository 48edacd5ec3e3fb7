"""Recipe defaults in the GRPOConfig, the ablation switches' effect on rewards, micro-batch splitting."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from purpcode.rl.config import build_grpo_config, plan_max_steps
from purpcode.rl.rewards import build_runner, check_services, oracle_config, reward_function
from purpcode.rl.trainer import LIVE_KEY, split_micro_batches
from purpcode_operator.api import RLSpec

from .conftest import rl_config
from .policy import ANSWERS

SAFE_CODE, REFUSAL, VULNERABLE, UNFORMATTED = ANSWERS


def test_recipe_defaults_map_onto_grpo_config(tmp_path: Path) -> None:
    cfg = rl_config(tmp_path)
    spec = RLSpec()  # the recipe's numbers
    args = build_grpo_config(cfg, spec, tmp_path / "rl", max_steps=10, on_gpu=False)
    assert args.num_generations == 8
    assert args.learning_rate == 5e-7 and args.lr_scheduler_type == "constant"
    assert args.beta == 0.001 and not args.use_bias_correction_kl
    assert args.epsilon == 0.2 and args.epsilon_high == 0.2
    assert args.entropy_coef == 0.001
    assert args.temperature == 1.0 and args.max_completion_length == 3072
    assert args.loss_type == "dapo" and args.num_iterations == 1
    # 48 prompts per device per step, one group per micro-step, one optimizer step per RL step.
    assert args.gradient_accumulation_steps == args.steps_per_generation == 48
    assert args.generation_batch_size == 48 * 8
    assert args.save_steps == 32 and args.output_dir == str(tmp_path / "rl" / "checkpoints")
    assert not args.use_vllm and args.use_cpu and not args.bf16


def test_vllm_settings_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = rl_config(tmp_path)
    with pytest.raises(ValueError, match="no GPU"):
        build_grpo_config(
            cfg,
            RLSpec.model_validate({"useVllm": True, "resources": {"gpusPerNode": 1}}),
            tmp_path,
            max_steps=1,
            on_gpu=False,
        )
    spec = RLSpec.model_validate(
        {"useVllm": True, "resources": {"gpusPerNode": 2}, "vllm": {"mode": "server"}}
    )
    monkeypatch.delenv("PURPCODE_VLLM_SERVER_URL", raising=False)
    with pytest.raises(ValueError, match="PURPCODE_VLLM_SERVER_URL"):
        build_grpo_config(cfg, spec, tmp_path, max_steps=1, on_gpu=True)


def test_max_steps_from_epochs_or_spec() -> None:
    assert plan_max_steps(RLSpec(max_steps=7), 1000, 1) == (7, None)
    assert plan_max_steps(RLSpec(prompts_per_device=4, epochs=1.0), 10, 1) == (3, 10)
    assert plan_max_steps(RLSpec(prompts_per_device=4, epochs=2.0), 10, 2) == (3, 20)
    with pytest.raises(ValueError, match="ranks"):
        plan_max_steps(RLSpec(epochs=1.0), 1, 2)


def _rewards(hard: bool, tmp_path: Path) -> list[float]:
    cfg = rl_config(tmp_path, rl={"hardCodesecReward": hard})
    runner = build_runner(cfg, cfg.rl())
    try:
        reward = reward_function(runner)
        answers = [SAFE_CODE, REFUSAL, VULNERABLE, UNFORMATTED]
        return reward(
            prompts=[[{"role": "user", "content": "Run a shell command from user input."}]] * 4,
            completions=[[{"role": "assistant", "content": a}] for a in answers],
            oracle=["codesec"] * 4,
            ground_truth=[{"cwe": ["CWE-78"]}] * 4,
            task_id=[f"codesec/{i}" for i in range(4)],
            log_metric=lambda *a: pytest.fail("the RL reward logs its own per-oracle metrics"),
        )
    finally:
        runner.close()


def test_hard_codesec_ablation_changes_only_the_no_code_reward(tmp_path: Path) -> None:
    assert _rewards(False, tmp_path / "soft") == [1.0, 0.8, 0.0, 0.0]
    assert _rewards(True, tmp_path / "hard") == [1.0, 0.0, 0.0, 0.0]


def test_hard_codesec_is_applied_by_the_plan_and_by_the_stage(tmp_path: Path) -> None:
    hard = rl_config(tmp_path, rl={"hardCodesecReward": True})
    assert hard.oracles.codesec_no_code_reward == 0.0  # the plan
    hand_written = hard.model_copy(
        update={"oracles": hard.oracles.model_copy(update={"codesec_no_code_reward": 0.8})}
    )
    assert (
        oracle_config(hand_written, hand_written.rl()).codesec_no_code_reward == 0.0
    )  # the stage, regardless
    assert oracle_config(rl_config(tmp_path), RLSpec()).codesec_no_code_reward == 0.8


def test_rl_without_sft_starts_from_the_base_model(tmp_path: Path) -> None:
    with_sft = rl_config(tmp_path, rule_learning=True)
    without = rl_config(tmp_path, rule_learning=False)
    assert with_sft.paths.model == str(tmp_path / "rule_learning" / "model")
    assert with_sft.paths.easy_ids == str(tmp_path / "rule_learning" / "easy_ids.json")
    assert without.paths.model == str(tmp_path / "model" / "base") and without.paths.easy_ids is None


def test_missing_services_fail_before_training(tmp_path: Path) -> None:
    cfg = rl_config(tmp_path)
    with pytest.raises(ValueError, match="sandboxUrl"):
        check_services(cfg, ["codesec", "correctness"])
    with pytest.raises(ValueError, match="general-safety/noreject.*judgeUrl"):
        check_services(cfg, ["noreject", "general-safety"])
    check_services(cfg, ["codesec"])


def _batch(rows: int) -> dict[str, object]:
    return {
        "completion_ids": torch.arange(rows * 3).view(rows, 3),
        "completion_mask": torch.ones(rows, 3, dtype=torch.long),
        "advantages": torch.arange(1, rows + 1, dtype=torch.float32),
        LIVE_KEY: torch.ones(rows, dtype=torch.long),
        "num_items_in_batch": torch.tensor(rows * 3),
    }


def test_micro_batches_take_every_row_once_in_unequal_chunks() -> None:
    chunks = split_micro_batches(_batch(7), 3)
    assert [c["advantages"].tolist() for c in chunks] == [[1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0]]
    assert all(int(c["num_items_in_batch"]) == 21 for c in chunks)  # the normaliser spans the whole batch


def test_micro_batches_pad_with_masked_fillers_first() -> None:
    chunks = split_micro_batches(_batch(2), 4)
    assert [int(c[LIVE_KEY].sum()) for c in chunks] == [0, 0, 1, 1]  # the last (syncing) micro-step is real
    assert int(chunks[0]["completion_mask"].sum()) == 0 and float(chunks[0]["advantages"].abs().sum()) == 0.0
    assert [c["advantages"].tolist() for c in chunks[2:]] == [[1.0], [2.0]]


def test_entry_point_errors_and_finished_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from purpcode.rl.__main__ import main

    bad = tmp_path / "bad.json"
    bad.write_text('{"run": "x"}')
    assert main(["--config", str(bad)]) == 2
    assert "--config" in capsys.readouterr().err
    cfg = rl_config(tmp_path / "artifacts")
    good = tmp_path / "rl.json"
    good.write_text(cfg.to_json())
    out = Path(cfg.paths.out)
    out.mkdir(parents=True)
    (out / "_SUCCESS").write_text("{}")
    # A finished stage returns at once: no data, no model, nothing loaded.
    assert (
        main(["--config", str(good), "--data", str(tmp_path / "nope"), "--model", str(tmp_path / "nope")])
        == 0
    )
