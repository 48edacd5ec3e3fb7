"""The API's defaults are the recipe's (RECIPE.md), pinned so a change is deliberate."""

from __future__ import annotations

from purpcode_operator.api import PurpCodeRun, PurpCodeRunSpec


def minimal() -> PurpCodeRunSpec:
    return PurpCodeRunSpec.model_validate({"model": {"name": "Qwen/Qwen2.5-14B-Instruct"}})


def test_recipe_defaults() -> None:
    spec = minimal()
    assert spec.seed == 666
    assert spec.oracles.format.analysis_min_chars == 16
    assert spec.oracles.format.answer_min_chars == 8
    assert spec.oracles.format.repeat_substring_length == 32
    assert spec.oracles.format.repeat_max_count == 8
    assert spec.oracles.codesec_no_code_reward == 0.8
    assert spec.oracles.correctness_timeout_seconds == 15
    rl_ = spec.stages.rule_learning
    assert (rl_.rejection_threshold, rl_.easy_threshold, rl_.samples_per_prompt) == (0.5, 0.7, 8)
    assert rl_.generation.temperature == 0.8 and rl_.generation.max_new_tokens == 4096
    assert rl_.sample_fraction == 0.25 and rl_.per_set_cap == 4096
    assert rl_.sft.learning_rate == 5e-6 and rl_.sft.warmup_steps == 32 and rl_.sft.max_seq_length == 4096
    assert rl_.sft.packing and rl_.sft.max_grad_norm == 1.0 and rl_.deepspeed.zero_stage == 3
    rl = spec.stages.rl
    assert rl.learning_rate == 5e-7 and rl.num_generations == 8 and rl.prompts_per_device == 48
    assert (rl.max_prompt_length, rl.max_completion_length) == (2048, 3072)
    assert (rl.kl_coef, rl.clip_ratio, rl.entropy_coef, rl.temperature) == (0.001, 0.2, 0.001, 1.0)
    assert rl.dynamic_sampling == "single-step" and rl.zero_variance_std == 1e-5 and rl.max_oversample == 4
    assert (rl.save_steps, rl.eval_steps, rl.held_out_per_set) == (32, 16, 800)
    assert (rl.vllm.tensor_parallel_size, rl.vllm.gpu_memory_utilization) == (2, 0.6)
    assert spec.stages.evaluation.generation.temperature == 0.0
    assert spec.stages.synthesis.dedup.ngram == 3
    assert spec.stages.synthesis.dedup.num_perm == 250 and spec.stages.synthesis.dedup.threshold == 0.4
    assert spec.services.judge.max_tokens == 256
    assert (
        spec.services.judge.deploy is not None
        and spec.services.judge.deploy.model == "Qwen/Qwen2.5-32B-Instruct"
    )
    assert spec.services.analyzer.kind == "bandit" and spec.services.analyzer.min_severity == "MEDIUM"


def test_round_trip_by_alias() -> None:
    run = PurpCodeRun.model_validate(
        {
            "apiVersion": "purpcode.dev/v1alpha1",
            "kind": "PurpCodeRun",
            "metadata": {"name": "r"},
            "spec": {"model": {"name": "tiny-random"}, "stages": {"rl": {"learningRate": 1e-6}}},
        }
    )
    dumped = run.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["spec"]["stages"]["rl"]["learningRate"] == 1e-6
    assert "ruleLearning" in dumped["spec"]["stages"]
    assert PurpCodeRun.model_validate(dumped) == run
