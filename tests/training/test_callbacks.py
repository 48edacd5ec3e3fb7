"""MetricsCallback: Trainer log events -> StageMetrics records (loss, lr, tokens/s, step time), main rank only.
SkipFinalCheckpoint: no full checkpoint at the last step, periodic ones kept."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from transformers import DefaultFlowCallback, TrainerControl, TrainerState, TrainingArguments

from purpcode.metrics import StageMetrics, read_metrics
from purpcode.training.callbacks import MetricsCallback, SkipFinalCheckpoint


@pytest.fixture
def args(tmp_path: Path) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path / "o"), use_cpu=True, report_to=[])


def steps(cb: MetricsCallback, args: TrainingArguments, state: TrainerState, n: int) -> None:
    for _ in range(n):
        cb.on_step_begin(args, state, TrainerControl())
        state.global_step += 1
        cb.on_step_end(args, state, TrainerControl())


def test_records_loss_lr_and_token_throughput(tmp_path: Path, args: TrainingArguments) -> None:
    registry = CollectorRegistry()
    metrics = StageMetrics(tmp_path, run="r", stage="ruleLearning", registry=registry)
    cb = MetricsCallback(metrics, extra={"phase": "sft"})
    state = TrainerState()
    cb.on_train_begin(args, state, TrainerControl())
    steps(cb, args, state, 2)
    cb.on_log(args, state, TrainerControl(), logs={"loss": 1.5, "learning_rate": 1e-5, "num_tokens": 100.0})
    steps(cb, args, state, 1)
    cb.on_log(args, state, TrainerControl(), logs={"loss": 1.25, "grad_norm": math.nan, "num_tokens": 250.0})
    first, second = read_metrics(tmp_path / "metrics.jsonl")
    assert first["step"] == 2 and first["phase"] == "sft" and first["loss"] == 1.5
    # tokens/s x seconds per step x steps = the tokens of those steps
    assert first["tokens_per_second"] * first["step_seconds"] * 2 == pytest.approx(100.0)
    assert second["tokens_per_second"] * second["step_seconds"] * 1 == pytest.approx(150.0)
    assert "grad_norm" not in second  # NaN is dropped, not exported
    scrape = generate_latest(registry).decode()
    assert 'purpcode_train_loss{run="r",stage="ruleLearning"} 1.25' in scrape
    assert "purpcode_train_tokens_per_second{" in scrape


def test_trainer_token_counter_is_counted_from_the_resume_point(
    tmp_path: Path, args: TrainingArguments
) -> None:
    metrics = StageMetrics(tmp_path, run="r", stage="rl", registry=CollectorRegistry())
    cb = MetricsCallback(metrics)
    state = TrainerState(global_step=10, num_input_tokens_seen=5000)  # restored from a checkpoint
    cb.on_train_begin(args, state, TrainerControl())
    steps(cb, args, state, 1)
    state.num_input_tokens_seen = 5300
    cb.on_log(args, state, TrainerControl(), logs={"loss": 0.5})
    (rec,) = read_metrics(tmp_path / "metrics.jsonl")
    assert rec["step"] == 11
    assert rec["tokens_per_second"] * rec["step_seconds"] == pytest.approx(300.0)


def test_other_ranks_write_nothing(tmp_path: Path, args: TrainingArguments) -> None:
    metrics = StageMetrics(tmp_path, run="r", stage="rl", registry=CollectorRegistry())
    cb = MetricsCallback(metrics)
    state = TrainerState(is_world_process_zero=False)
    cb.on_train_begin(args, state, TrainerControl())
    cb.on_log(args, state, TrainerControl(), logs={"loss": 0.5})
    MetricsCallback(None).on_log(args, TrainerState(), TrainerControl(), logs={"loss": 0.5})
    assert read_metrics(tmp_path / "metrics.jsonl") == []


@pytest.mark.parametrize("max_steps", [7, 6])
def test_skip_final_checkpoint_keeps_periodic_saves_only(tmp_path: Path, max_steps: int) -> None:
    """After DefaultFlowCallback (save_strategy steps, save_steps 3): saves at 3 and 6 except at the last step."""
    args = TrainingArguments(
        output_dir=str(tmp_path / "o"), use_cpu=True, report_to=[], save_strategy="steps", save_steps=3
    )
    flow, skip = DefaultFlowCallback(), SkipFinalCheckpoint()
    state = TrainerState(max_steps=max_steps, save_steps=3, logging_steps=1, eval_steps=3)
    saved_with, saved_without = [], []
    for step in range(1, max_steps + 1):
        state.global_step = step
        control = flow.on_step_end(args, state, TrainerControl())
        if control.should_save:
            saved_without.append(step)
        skip.on_step_end(args, state, control)
        if control.should_save:
            saved_with.append(step)
        assert control.should_training_stop == (step == max_steps)  # the stop itself is left alone
    assert saved_without == sorted({3, 6, max_steps})  # the Trainer alone also saves at the last step
    assert saved_with == [s for s in (3, 6) if s < max_steps]
