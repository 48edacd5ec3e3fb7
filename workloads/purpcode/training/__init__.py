"""Shared training utilities for the SFT (rule learning) and GRPO (RL) stages.

Import the submodules directly; this package imports nothing heavy.

- `purpcode.training.checkpoints` (no torch): `newest_complete_checkpoint(dir)`, `is_complete_checkpoint(path)`,
  `discard_incomplete_checkpoints(dir)`, `list_checkpoints(dir)`.
- `purpcode.training.hf`: `train_with_resume(trainer)` (resume from the newest complete checkpoint by itself),
  `resume_point(trainer)`, `save_final_model(trainer, dir, tokenizer=, card=)` (safetensors + tokenizer +
  README.md, atomic), `precision_kwargs(bf16)` (bf16 on capable GPUs, `use_cpu` on CPU),
  `model_init_kwargs(bf16, deepspeed=)`.
- `purpcode.training.ds_config` (no torch): `deepspeed_config(spec, on_gpu=)` -> dict for
  `TrainingArguments(deepspeed=...)` or None; the shipped files are in `purpcode/training/deepspeed/`.
- `purpcode.training.callbacks`: `MetricsCallback(stage_metrics)` -> loss, learning rate, grad norm, tokens/s,
  step seconds into `purpcode.metrics.StageMetrics` (Prometheus + metrics.jsonl); `SkipFinalCheckpoint()` -> no
  full checkpoint at the last step (the stage saves the final model right after; periodic ones are kept).
- `purpcode.training.distributed` (no torch at import): `dist_env()` (rank/local rank/world size from torchrun's
  variables), `ensure_launcher_env()` (one-process world for DeepSpeed without a launcher), `barrier()`,
  `cleanup()`.
- `purpcode.training.model_card`: `write_model_card(dir, title=, base_model=, stage=, data_counts=, settings=)`.
- `purpcode.training.settings_guard` (no torch): `check_settings(out, cfg, record=)` -> raises `SettingsChanged`
  when a stage directory was started under settings that change the result (resuming would mix both).
- `purpcode.training.hf.mean_train_loss(log_history)`: the run's train loss, right after a resume too.

Typical use in a stage::

    env = dist_env()
    if ds := deepspeed_config(spec.deepspeed, on_gpu=has_gpu()):
        ensure_launcher_env()
    args = SFTConfig(output_dir=out / "checkpoints", deepspeed=ds, **precision_kwargs(spec.bf16), ...)
    callbacks = [MetricsCallback(metrics if env.is_main else None), SkipFinalCheckpoint()]
    trainer = SFTTrainer(model=path, args=args, callbacks=callbacks)
    train_with_resume(trainer)
    save_final_model(trainer, out / "model", tokenizer=tok, card={...})
    cleanup()
"""
