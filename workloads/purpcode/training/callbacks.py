"""An HF TrainerCallback that feeds `purpcode.metrics.StageMetrics` (Prometheus gauges + metrics.jsonl).

Works for every Trainer subclass (TRL's SFTTrainer and GRPOTrainer included): it reads the `logs` dict the
Trainer hands to `on_log`, maps known keys to the metric names in `purpcode.metrics`, and adds tokens/s and
seconds per step measured over optimizer steps only (checkpoint saving and logging are not counted, so a save does
not show up as a throughput drop).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from purpcode.metrics import StageMetrics
from purpcode.training.hf import mean_train_loss

# HF/TRL log key -> our key (the names purpcode.metrics exports). Unlisted numeric keys pass through unchanged
# into the JSONL line (and are exported when purpcode.metrics knows them).
KEY_MAP: dict[str, str] = {
    "loss": "loss",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
    "epoch": "epoch",
}
# Cumulative token counters the Trainers log: TRL's per-process count first, then the Trainer's own.
TOKEN_KEYS = ("num_tokens", "num_input_tokens_seen")


class MetricsCallback(TrainerCallback):
    """Log loss, learning rate, grad norm, tokens/s and step time at every Trainer log event.

    `metrics` may be None on ranks other than 0 (nothing is written there). `extra` is added to each record
    (e.g. {"phase": "sft"}).
    """

    def __init__(self, metrics: StageMetrics | None, *, extra: Mapping[str, Any] | None = None) -> None:
        self.metrics = metrics
        self.extra = dict(extra or {})
        self._step_started: float | None = None
        self._busy_seconds = 0.0
        self._steps = 0
        self._last_tokens: float | None = None
        self._state_tokens0 = 0

    # --- timing of optimizer steps
    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # After a resume the Trainer has already restored its state here; token counters continue from it.
        self._state_tokens0 = int(state.num_input_tokens_seen or 0)
        self._last_tokens = None
        self._busy_seconds, self._steps = 0.0, 0

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._step_started = time.perf_counter()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._step_started is not None:
            self._busy_seconds += time.perf_counter() - self._step_started
            self._steps += 1
            self._step_started = None

    # --- logging
    def _tokens_since_last(self, logs: Mapping[str, Any], state: TrainerState) -> float | None:
        current: float | None = None
        baseline = 0.0
        if isinstance(logs.get("num_tokens"), int | float):
            current = float(logs["num_tokens"])  # TRL: counted since this process started
        elif state.num_input_tokens_seen:
            current = float(state.num_input_tokens_seen)  # Trainer: restored on resume
            baseline = float(self._state_tokens0)
        if current is None:
            return None
        last = self._last_tokens if self._last_tokens is not None else baseline
        self._last_tokens = current
        return max(0.0, current - last)

    def record(self, logs: Mapping[str, Any], state: TrainerState) -> dict[str, Any]:
        """The record for one log event (also used by tests and the bench)."""
        out: dict[str, Any] = dict(self.extra)
        for key, value in logs.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                continue
            out[KEY_MAP.get(key, key)] = value
        if "train_loss" in out:  # the Trainer's covers this process's steps only: wrong after a resume
            loss = mean_train_loss(state.log_history)
            if loss is not None:
                out["train_loss"] = loss
        tokens = self._tokens_since_last(logs, state)
        if self._steps and self._busy_seconds > 0:
            out["step_seconds"] = self._busy_seconds / self._steps
            if tokens is not None:
                out["tokens_per_second"] = tokens / self._busy_seconds
        self._busy_seconds, self._steps = 0.0, 0
        return out

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs is None:
            return
        record = self.record(logs, state)
        if self.metrics is not None and state.is_world_process_zero:
            self.metrics.log(int(state.global_step), **record)


class SkipFinalCheckpoint(TrainerCallback):
    """Do not write a full checkpoint at the last training step: the stage saves the final model right after.

    With `save_strategy="steps"` the HF Trainer's DefaultFlowCallback asks for a checkpoint at the last step
    whatever `save_steps` is. That checkpoint (weights + optimizer state: ~12 extra bytes per parameter for Adam,
    the whole partitioned state under ZeRO-3) is never read when the stage goes on to save the final model
    (safetensors + tokenizer + card), and on a GPU it was most of a short run's time. Periodic checkpoints at the
    other multiples of `save_steps` are kept. Resuming is unchanged: a pod killed after the last step but before
    the final save resumes from the newest periodic checkpoint and loses at most `save_steps` steps, as for any
    kill.

    It must run after DefaultFlowCallback: pass it in the Trainer's `callbacks=` (those come after the default
    ones) or add it with `trainer.add_callback`.
    """

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.max_steps > 0 and state.global_step >= state.max_steps:
            control.should_save = False
