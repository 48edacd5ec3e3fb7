"""Run the RL stage: data, reward, trainer, resume, validation, final model, `_SUCCESS`.

Outputs in `--out`: `checkpoints/` (every saveSteps, none at the step training ends since `model/` follows at
once; the newest complete one is resumed after a restart),
`model/` (final weights in safetensors + tokenizer + model card, renamed into place whole), `metrics.jsonl` and
`validation.jsonl` (a restart first drops the records after the step it resumes from), `validation/`,
`data_summary.json`, `sampling_state.json`, `stage_settings.json` (a restart under settings that change the result
fails instead of mixing both), and `_SUCCESS` last.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from purpcode.data.schema import write_json_atomic
from purpcode.rl.data import PromptStream, chat_token_counter, load_easy_ids, load_rl_data
from purpcode.rl.rewards import build_runner, check_services, last_scores, reward_function
from purpcode.rule_learning.multiturn import CONTEXTS_FILE, read_contexts
from purpcode_operator.layout import SUCCESS_MARKER
from purpcode_operator.plan import StageConfig

log = logging.getLogger("purpcode.rl")


def run_stage(
    config: StageConfig,
    *,
    data_dir: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    registry: Any = None,
) -> Path:
    """Train and return the final model directory. Safe to re-run: resumes, or returns at once when done."""
    out = Path(out_dir)
    final_dir = out / "model"
    if (out / SUCCESS_MARKER).is_file():
        log.info("%s exists: the RL stage already finished; nothing to do", out / SUCCESS_MARKER)
        return final_dir
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer

    from purpcode.metrics import StageMetrics
    from purpcode.rl.config import build_grpo_config, plan_max_steps
    from purpcode.rl.trainer import PurpCodeGRPOTrainer, StopWhenExhausted, write_state_snapshot
    from purpcode.rl.validation import ValidationCallback, truncate_jsonl_after
    from purpcode.training.callbacks import MetricsCallback, SkipFinalCheckpoint
    from purpcode.training.checkpoints import (
        checkpoint_step,
        discard_incomplete_checkpoints,
        newest_complete_checkpoint,
        prune_discarded,
    )
    from purpcode.training.distributed import barrier, cleanup, dist_env, ensure_launcher_env
    from purpcode.training.hf import save_final_model
    from purpcode.training.settings_guard import check_settings

    spec = config.rl()
    env = dist_env()
    check_settings(out, config, record=env.is_main)
    on_gpu = torch.cuda.is_available() and config.gpus_per_node > 0
    deepspeed = None
    if spec.deepspeed.enabled and on_gpu:
        from purpcode.training.ds_config import deepspeed_config

        ensure_launcher_env()
        deepspeed = deepspeed_config(spec.deepspeed, on_gpu=True)
    elif spec.deepspeed.enabled:
        log.info("no GPU: DeepSpeed is not used for RL on CPU (set deepspeed.enabled: false to silence this)")

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    data = load_rl_data(
        data_dir,
        easy_ids=load_easy_ids(config.paths.easy_ids),
        easy_sets=spec.easy_skip_sets,
        contexts=read_contexts(
            Path(config.paths.easy_ids).parent / CONTEXTS_FILE if config.paths.easy_ids else None
        ),
        held_out_per_set=spec.held_out_per_set,
        seed=config.seed,
        count_tokens=chat_token_counter(tokenizer),
        max_prompt_length=spec.max_prompt_length,
    )
    check_services(config, sorted({e.oracle for e in (*data.train, *data.validation)}))
    log.info("RL data: %s", data.summary.model_dump_json())
    max_steps, budget = plan_max_steps(spec, len(data.train), env.world_size)

    metrics = (
        StageMetrics(
            out,
            run=config.run,
            stage="rl",
            port=config.metrics_port if env.is_main else None,
            registry=registry,
        )
        if env.is_main
        else None
    )
    args = build_grpo_config(config, spec, out, max_steps=max_steps, on_gpu=on_gpu, deepspeed=deepspeed)

    ckpt_dir = out / "checkpoints"
    if env.is_main:
        discard_incomplete_checkpoints(ckpt_dir)
    barrier()
    resume = newest_complete_checkpoint(ckpt_dir)
    if env.is_main:
        # What an earlier attempt logged after the step this one starts from is logged again: drop it (all of it
        # when no checkpoint was complete).
        step = (checkpoint_step(resume) or 0) if resume is not None else 0
        for name in ("metrics.jsonl", "validation.jsonl"):
            truncate_jsonl_after(out / name, step)
        if resume is not None:
            log.info("resuming from %s", resume)
        write_json_atomic(out / "data_summary.json", data.summary.model_dump())

    runner = build_runner(config, spec)
    reward = reward_function(runner)
    stream = PromptStream(len(data.train), seed=config.seed, budget=budget)
    train_ds = Dataset.from_list([{"prompt": ex.prompt, "task_id": ex.task_id} for ex in data.train])
    try:
        trainer = PurpCodeGRPOTrainer(
            model=str(model_dir),
            reward_funcs=[reward],
            args=args,
            train_dataset=train_ds,
            processing_class=tokenizer,
            examples=data.train,
            stream=stream,
            sampling_mode=spec.dynamic_sampling,
            max_oversample=spec.max_oversample,
            zero_variance_std=spec.zero_variance_std,
            stage_metrics=metrics,
            scores_of=lambda: last_scores(reward),
            # No full checkpoint at the last step: model/ is saved right after training.
            callbacks=[MetricsCallback(metrics, extra={"phase": "train"}), SkipFinalCheckpoint()],
        )
        trainer.add_callback(StopWhenExhausted(trainer))
        trainer.add_callback(
            ValidationCallback(
                trainer,
                data.validation,
                runner.score_batch_sync,
                out,
                eval_steps=spec.eval_steps,
                batch_rows=spec.prompts_per_device * spec.num_generations,
                metrics=metrics,
            )
        )
        started = time.time()
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        # Every rank (ZeRO-3 gathers); written to a temp sibling and renamed, so model/ is never half there.
        save_final_model(
            trainer,
            final_dir,
            tokenizer=tokenizer,
            card={
                "title": f"{config.run}: PurpCode RL (GRPO)",
                "base_model": config.model.name,
                "stage": "rl",
                "data_counts": data.summary.train,
                "settings": {
                    **spec.model_dump(by_alias=True, mode="json", include=_CARD_FIELDS),
                    "codesecNoCodeReward": runner.config.codesec_no_code_reward,
                    "startedFrom": str(model_dir),
                    "steps": trainer.state.global_step,
                },
                "description": "GRPO on the PurpCode oracles' rewards with single-step dynamic sampling.",
            },
        )
        if env.is_main:
            write_state_snapshot(out / "sampling_state.json", trainer)
            prune_discarded(ckpt_dir)
            write_json_atomic(
                out / SUCCESS_MARKER,
                {"steps": trainer.state.global_step, "seconds": time.time() - started, **trainer.rl_state()},
            )
        barrier()
    finally:
        runner.close()
        cleanup()
    return final_dir


_CARD_FIELDS = {
    "learning_rate",
    "num_generations",
    "prompts_per_device",
    "max_prompt_length",
    "max_completion_length",
    "kl_coef",
    "clip_ratio",
    "entropy_coef",
    "temperature",
    "dynamic_sampling",
    "max_oversample",
    "zero_variance_std",
    "hard_codesec_reward",
}
