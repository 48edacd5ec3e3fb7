"""Validation during RL: greedy answers to the held-out prompts, scored by the same oracles as the rewards.

Written to `<out>/validation.jsonl` (one summary per validation step) and `<out>/validation/step-NNNNNN.jsonl`
(every answer with its score), and to metrics.jsonl under `val_*` keys. Runs every evalSteps steps and once at
the end of training.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from purpcode.data.schema import filter_jsonl, iter_jsonl, write_jsonl_atomic
from purpcode.metrics import StageMetrics
from purpcode.rl.data import RLExample

log = logging.getLogger(__name__)


def summarize(records: list[dict[str, Any]]) -> dict[str, float]:
    """Mean reward, pass rate (reward 1) and format pass rate, overall and per oracle."""
    out: dict[str, float] = {"val_n": float(len(records))}
    if not records:
        return out
    out["val_reward_mean"] = sum(r["reward"] for r in records) / len(records)
    out["val_format_pass_rate"] = sum(1 for r in records if r["format_ok"]) / len(records)
    by_oracle: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_oracle[r["oracle"]].append(r)
    for oracle, rows in sorted(by_oracle.items()):
        out[f"val_reward/{oracle}"] = sum(r["reward"] for r in rows) / len(rows)
        out[f"val_pass_rate/{oracle}"] = sum(1 for r in rows if r["reward"] >= 1.0) / len(rows)
    return out


def truncate_jsonl_after(path: str | os.PathLike[str], step: int) -> int:
    """Drop records with `step` > `step` (written after the checkpoint a resumed run restarts from) and torn lines
    left by the kill; returns how many went."""
    return filter_jsonl(path, lambda record: int(record.get("step", 0)) <= step)


class ValidationCallback(TrainerCallback):
    """Validate every `eval_steps` optimizer steps and at the end of training."""

    def __init__(
        self,
        trainer: Any,
        examples: list[RLExample],
        score: Any,
        out_dir: str | os.PathLike[str],
        *,
        eval_steps: int,
        batch_rows: int,
        metrics: StageMetrics | None,
    ) -> None:
        self.trainer = trainer
        self.examples = examples
        self.score = score  # Callable[[list[Sample]], list[Score]]
        self.out = Path(out_dir)
        self.eval_steps = eval_steps
        self.batch_rows = batch_rows
        self.metrics = metrics
        self.last_step: int | None = None

    def validate(self, step: int) -> dict[str, float] | None:
        if not self.examples or self.last_step == step:
            return None
        from accelerate.utils import gather_object

        from purpcode.oracles.models import Sample

        started = time.perf_counter()
        answers = self.trainer.generate_validation(self.examples, self.batch_rows)
        samples = [
            Sample(
                prompt=self.examples[i].prompt,
                response=text,
                oracle=self.examples[i].oracle,  # type: ignore[arg-type]
                ground_truth=self.examples[i].ground_truth,
                task_id=self.examples[i].task_id,
            )
            for i, text in answers
        ]
        scores = self.score(samples) if samples else []
        local = [
            {
                "step": step,
                "task_id": s.task_id,
                "set": self.examples[i].set_name,
                "oracle": s.oracle,
                "reward": sc.reward,
                "format_ok": sc.format_ok,
                "response": s.response,
                "details": sc.details,
            }
            for (i, _), s, sc in zip(answers, samples, scores, strict=True)
        ]
        records = gather_object(local) if self.trainer.accelerator.num_processes > 1 else local
        self.last_step = step
        if not self.trainer.accelerator.is_main_process:
            return None
        summary = summarize(records)
        summary["val_seconds"] = time.perf_counter() - started
        write_jsonl_atomic(self.out / "validation" / f"step-{step:06d}.jsonl", records)
        history = (
            list(iter_jsonl(self.out / "validation.jsonl"))
            if (self.out / "validation.jsonl").is_file()
            else []
        )
        write_jsonl_atomic(self.out / "validation.jsonl", [*history, {"step": step, **summary}])
        if self.metrics is not None:
            self.metrics.log(step, phase="validation", **summary)
        log.info("validation at step %d: %s", step, summary)
        return summary

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.global_step % self.eval_steps == 0:
            self.validate(state.global_step)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.validate(state.global_step)
