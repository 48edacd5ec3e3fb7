"""MetricsCallback: Trainer log events -> StageMetrics records (loss, lr, tokens/s, step time), main rank only."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from transformers import TrainerControl, TrainerState, TrainingArguments

from purpcode.metrics import StageMetrics, read_metrics
from purpcode.training.callbacks import MetricsCallback


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
