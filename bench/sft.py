"""Tokens/s of our SFT path against a plain TRL SFTTrainer, same model and data, in one process.

Our path = exactly what the rule-learning stage trains with: `purpcode.rule_learning.sft` config, callbacks
(`sft_callbacks`: the `MetricsCallback` feeding StageMetrics, i.e. metrics.jsonl + Prometheus gauges logging every
step, and `SkipFinalCheckpoint`) and trainer builder, run by `train_with_resume`. The baseline = `trl.SFTTrainer`
with the same hyper-parameters and TRL's own defaults otherwise (logging every 10 steps, no callbacks, no
checkpoints). Neither run writes a checkpoint (save_steps is beyond the run and our stage writes none at the last
step); `--final-checkpoint` drops `SkipFinalCheckpoint` to show what the Trainer's last-step checkpoint (weights +
optimizer state) used to cost. Runs alternate (baseline, ours, baseline, ours, ...) and the medians are compared;
the goal is ratio >= 0.95.
Both wall-clock tokens/s and tokens per CPU-second (process time, all threads) are reported: on a CPU shared with
other work the wall-clock figure swings with the load, the CPU-time one measures what our wrapping costs.

    python bench/sft.py                       # tiny random model on CPU (built locally, offline)
    python bench/sft.py --model /path/to/Qwen2.5-0.5B-Instruct --steps 50 --seq 2048   # a real model (GPU)
    python bench/sft.py --model DIR --first ours --profile  # torch.profiler tables of every run
    python bench/sft.py --final-checkpoint   # ours also writes the Trainer's last-step checkpoint (the old cost)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def make_records(n: int, seed: int) -> list[dict[str, Any]]:
    """SFT conversations of varied length: short system prompt, a question, an analysed answer with code."""
    from purpcode.prompts import SYSTEM_PROMPT

    rng = random.Random(seed)
    out = []
    for i in range(n):
        body = "\n".join(
            f"    total += {rng.randint(1, 99)} * x  # step {k}" for k in range(rng.randint(4, 40))
        )
        answer = (
            f"## Analysis\nThe user wants function number {i}; it has no unsafe parts.\n## Answer\n"
            f"```python\ndef f{i}(x: int) -> int:\n    total = 0\n{body}\n    return total\n```"
        )
        out.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": f"Write function {i} that sums weighted steps of x."},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return out


def run_once(
    kind: str, model: str, records: list[dict[str, Any]], args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry
    from trl import SFTConfig, SFTTrainer

    from purpcode.metrics import StageMetrics
    from purpcode.rule_learning.sft import (
        build_dataset,
        build_trainer,
        has_generation_markers,
        load_tokenizer,
        sft_callbacks,
        sft_config,
    )
    from purpcode.training.callbacks import MetricsCallback, SkipFinalCheckpoint
    from purpcode.training.hf import has_gpu, model_init_kwargs, precision_kwargs, train_with_resume
    from purpcode_operator.api import SFTSpec

    gpu = has_gpu()
    spec = SFTSpec(
        learning_rate=1e-5,
        warmup_steps=2,
        max_steps=args.steps,
        max_seq_length=args.seq,
        packing=True,
        per_device_batch_size=args.batch,
        gradient_accumulation_steps=1,
        bf16=gpu,
        save_steps=10**6,  # no periodic checkpoint in the run: the comparison is the training loop
        gradient_checkpointing=args.grad_ckpt,
    )
    tokenizer = load_tokenizer(model)
    dataset = build_dataset(records)
    out = work / kind
    if kind == "ours":
        cfg = sft_config(
            spec,
            output_dir=out,
            seed=666,
            deepspeed=None,
            assistant_masks=has_generation_markers(tokenizer),
            gpu=gpu,
            logging_steps=args.ours_logging_steps,
        )
        metrics = StageMetrics(out, run="bench", stage="ruleLearning", registry=CollectorRegistry())
        callbacks = [
            c
            for c in sft_callbacks(metrics, extra={"phase": "sft"})
            if not (args.no_callback and isinstance(c, MetricsCallback))
            and not (args.final_checkpoint and isinstance(c, SkipFinalCheckpoint))
        ]
        trainer = build_trainer(model, tokenizer, dataset, cfg, callbacks=callbacks)
        run = lambda: train_with_resume(trainer)  # noqa: E731
    else:
        extra = {
            "activation_checkpointing"
            if "activation_checkpointing" in SFTConfig.__dataclass_fields__
            else "gradient_checkpointing": args.grad_ckpt
        }
        cfg = SFTConfig(
            output_dir=str(out),
            learning_rate=spec.learning_rate,
            warmup_steps=spec.warmup_steps,
            max_steps=spec.max_steps,
            max_length=spec.max_seq_length,
            packing=True,
            per_device_train_batch_size=spec.per_device_batch_size,
            gradient_accumulation_steps=1,
            save_strategy="no",
            logging_steps=args.plain_logging_steps,
            report_to=[],
            seed=666,
            completion_only_loss=True,
            assistant_only_loss=has_generation_markers(tokenizer),
            model_init_kwargs=model_init_kwargs(spec.bf16, deepspeed=False, gpu=gpu),
            disable_tqdm=True,
            **extra,
            **precision_kwargs(spec.bf16, gpu=gpu),
        )
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=dataset, processing_class=tokenizer)
        run = trainer.train  # noqa: E731
    start, cpu0 = time.perf_counter(), time.process_time()
    if args.profile:
        result = profiled(run, kind)
    else:
        result = run()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    tokens = float(trainer._total_train_tokens)  # TRL's count of tokens fed to the model (all ranks)
    return {
        "kind": kind,
        "steps": int(trainer.state.global_step),
        "tokens": tokens,
        "train_runtime": float(result.metrics["train_runtime"]),
        "wall": wall,
        "cpu_seconds": cpu,
        "tokens_per_second": tokens / float(result.metrics["train_runtime"]),
        "tokens_per_cpu_second": tokens / cpu,
        "device": "cuda" if gpu else "cpu",
    }


def profiled(run: Any, kind: str) -> Any:
    """Run under torch.profiler and print the ops that took the most CPU and device time (to find a gap)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        result = run()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60)
    print(f"--- profile: {kind} (by self CPU time)\n{table}", flush=True)
    if torch.cuda.is_available():
        table = prof.key_averages().table(
            sort_by="self_cuda_time_total", row_limit=10, max_name_column_width=60
        )
        print(f"--- profile: {kind} (by self device time)\n{table}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (default: build the tiny random model)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each kind (alternating)")
    parser.add_argument("--grad-ckpt", action="store_true", help="activation checkpointing in both runs")
    parser.add_argument("--ours-logging-steps", type=int, default=1, help="our stage logs every step")
    parser.add_argument("--plain-logging-steps", type=int, default=10, help="TRL's default")
    parser.add_argument("--no-callback", action="store_true", help="our path without the MetricsCallback")
    parser.add_argument(
        "--final-checkpoint",
        action="store_true",
        help="our run without SkipFinalCheckpoint: the Trainer's full last-step checkpoint inside the timed run "
        "(what the stage wrote before; plain TRL saves none)",
    )
    parser.add_argument("--first", choices=("plain", "ours"), default="plain", help="which kind runs first")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler tables for every run")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0 = torch's default); 1 steadies a shared CPU",
    )
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-sft-") as tmp:
        work = Path(tmp)
        model = args.model
        if model is None:
            from purpcode.tiny_model import build_tiny_model

            model = str(build_tiny_model(work / "tiny"))
        records = make_records(args.examples, seed=666)
        runs: dict[str, list[dict[str, Any]]] = {"plain": [], "ours": []}
        for i in range(args.repeats):
            for kind in ("plain", "ours") if args.first == "plain" else ("ours", "plain"):
                r = run_once(kind, model, records, args, work / f"r{i}")
                runs[kind].append(r)
                print(json.dumps(r), flush=True)
        med = {k: statistics.median(r["tokens_per_second"] for r in v) for k, v in runs.items()}
        med_cpu = {k: statistics.median(r["tokens_per_cpu_second"] for r in v) for k, v in runs.items()}
        ratio = med["ours"] / med["plain"]
        ratio_cpu = med_cpu["ours"] / med_cpu["plain"]
        print(
            json.dumps(
                {
                    "model": args.model or "tiny-random",
                    "threads": args.threads or None,
                    "device": runs["ours"][0]["device"],
                    "median_tokens_per_second": med,
                    "ratio_ours_over_plain": round(ratio, 3),
                    "median_tokens_per_cpu_second": med_cpu,
                    "ratio_cpu_ours_over_plain": round(ratio_cpu, 3),
                    "goal": 0.95,
                    "met": ratio >= 0.95,
                }
            )
        )
        print(f"ratio ours/plain tokens/s: {ratio:.3f} (goal >= 0.95)")
        print(
            f"ratio ours/plain tokens per CPU-second: {ratio_cpu:.3f} (steadier than wall time on a shared machine)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
