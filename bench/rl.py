"""One GRPO step of our RL path against a plain TRL GRPOTrainer with the same reward, in one process.

Same model, prompts, GRPOConfig and reward (the oracles: the real sandbox service, bandit, and a scripted judge on
loopback) for three trainers:
  plain   `trl.GRPOTrainer` + `purpcode.oracles.make_trl_reward_func` (TRL's own batching, no filtering)
  none    our `PurpCodeGRPOTrainer`, dynamic sampling off (the cost of our wrapping: stream, two-phase scoring,
          metrics callback feeding StageMetrics)
  single  our trainer with the recipe's single-step dynamic sampling
Each runs a warm-up step then `--steps` timed steps; the medians are reported as wall seconds and CPU seconds
(process time, all threads: on a shared CPU the wall figure swings with the load), the share of the step spent in
reward scoring, and rows that reached the loss. The last line is the ratio plain / single step time.

    python bench/rl.py                                   # tiny policy on CPU (built offline, ~1 minute)
    python bench/rl.py --model /models/Qwen2.5-0.5B-Instruct --vllm --prompts 16 --generations 8 --max-new 512
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tiny formatted policy, the data writer and the scripted judge


def _timer_callback() -> Any:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.wall: list[float] = []
            self.cpu: list[float] = []
            self._t = (0.0, 0.0)

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self._t = (time.perf_counter(), time.process_time())

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            self.wall.append(time.perf_counter() - self._t[0])
            self.cpu.append(time.process_time() - self._t[1])

    return StepTimer()


def run(kind: str, ctx: dict[str, Any], steps: int, work: Path) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from prometheus_client import CollectorRegistry
    from trl import GRPOTrainer

    from purpcode.metrics import StageMetrics
    from purpcode.oracles.runner import make_trl_reward_func
    from purpcode.rl.config import build_grpo_config
    from purpcode.rl.data import PromptStream
    from purpcode.rl.rewards import last_scores, reward_function
    from purpcode.rl.trainer import PurpCodeGRPOTrainer
    from purpcode.training.callbacks import MetricsCallback

    torch.manual_seed(0)
    cfg, spec, data, tok, runner = ctx["cfg"], ctx["spec"], ctx["data"], ctx["tok"], ctx["runner"]
    args = build_grpo_config(cfg, spec, work / kind, max_steps=steps + 1, on_gpu=ctx["on_gpu"])
    args.save_strategy = "no"  # all kinds: plain TRL would write an untimed checkpoint at its last step
    args.shuffle_dataset = False  # plain TRL then walks the prompts in the order our stream does (epoch 0)
    timer = _timer_callback()
    reward_seconds: list[float] = []
    if kind == "plain":
        inner = make_trl_reward_func(runner)

        def timed(prompts: Any, completions: Any, **kw: Any) -> list[float]:
            t = time.perf_counter()
            out = inner(prompts, completions, **kw)
            reward_seconds.append(time.perf_counter() - t)
            return out

        timed.__name__ = "purpcode_reward"
        rows = [
            {
                "prompt": e.prompt,
                "oracle": e.oracle,
                "ground_truth": json.dumps(e.ground_truth),
                "task_id": e.task_id,
            }
            for e in data.train
        ]
        trainer: Any = GRPOTrainer(
            model=ctx["model"],
            reward_funcs=[timed],  # type: ignore[list-item]
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tok,
            callbacks=[timer],
        )
    else:
        reward = reward_function(runner)
        metrics = StageMetrics(work / kind, run="bench", stage="rl", registry=CollectorRegistry())
        trainer = PurpCodeGRPOTrainer(
            model=ctx["model"],
            reward_funcs=[reward],
            args=args,
            train_dataset=Dataset.from_list([{"prompt": e.prompt} for e in data.train]),
            processing_class=tok,
            examples=data.train,
            stream=PromptStream(len(data.train), seed=cfg.seed),
            sampling_mode="none" if kind == "none" else "single-step",
            max_oversample=spec.max_oversample,
            zero_variance_std=spec.zero_variance_std,
            stage_metrics=metrics,
            scores_of=lambda: last_scores(reward),
            callbacks=[MetricsCallback(metrics, extra={"phase": "train"}), timer],
        )
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # keep the bench's output to its own lines
    trained = {"rows": 0}
    if kind == "plain":
        original = trainer.compute_loss

        def counting(model: Any, inputs: Any, *a: Any, **kw: Any) -> Any:
            trained["rows"] += int(inputs["completion_ids"].shape[0])
            return original(model, inputs, *a, **kw)

        trainer.compute_loss = counting
    trainer.train()
    if kind != "plain":
        reward_seconds = [h["reward_seconds"] for h in trainer.state.log_history if "reward_seconds" in h]
        trained["rows"] = trainer.trained_rows
    steps_logged = [h for h in trainer.state.log_history if "loss" in h][1:]
    rows_generated = [
        h.get("prompts_generated", args.generation_batch_size // spec.num_generations) * spec.num_generations
        for h in steps_logged
    ]
    completion_tokens = [
        n * h.get("completions/mean_length", 0.0) for n, h in zip(rows_generated, steps_logged, strict=True)
    ]
    wall, cpu, rew = timer.wall[1:], timer.cpu[1:], reward_seconds[1:]
    return {
        "kind": kind,
        "wall_steps": wall,
        "cpu_steps": cpu,
        "wall_s": statistics.median(wall),
        "cpu_s": statistics.median(cpu),
        "reward_s": statistics.median(rew) if rew else float("nan"),
        "reward_share": statistics.median(r / w for r, w in zip(rew, wall, strict=False))
        if rew
        else float("nan"),
        "rows_trained": trained["rows"],
        "rows_generated": sum(rows_generated),
        "tokens_per_s": sum(completion_tokens) / sum(wall),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="model directory (default: the tiny formatted policy, built now)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per trainer (after one warm-up)")
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step (promptsPerDevice)")
    parser.add_argument("--generations", type=int, default=4, help="samples per prompt")
    parser.add_argument("--max-new", type=int, default=48, help="max completion tokens")
    parser.add_argument("--vllm", action="store_true", help="vLLM colocated rollouts (GPU)")
    parser.add_argument("--kinds", default="plain,none,single")
    parser.add_argument("--rounds", type=int, default=2, help="alternate the kinds this many times")
    ns = parser.parse_args(argv)

    import torch
    from rl.conftest import judge_reply, rl_config, write_rl_sets  # tests/rl helpers
    from rl.policy import build_formatted_policy
    from support.fake_openai import FakeOpenAI
    from support.sandbox_fixture import running_sandbox
    from transformers import AutoTokenizer

    from purpcode.rl.data import chat_token_counter, load_rl_data
    from purpcode.rl.rewards import build_runner

    on_gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="bench-rl-") as tmp, running_sandbox() as sandbox_url:
        work = Path(tmp)
        t = time.perf_counter()
        model = ns.model or str(build_formatted_policy(work / "policy"))
        print(
            f"model: {model}"
            + ("" if ns.model else f" (tiny formatted policy, built in {time.perf_counter() - t:.0f}s)")
        )
        judge = FakeOpenAI().start()
        judge.reply(judge_reply)
        try:
            rl: dict[str, Any] = {
                "numGenerations": ns.generations,
                "promptsPerDevice": ns.prompts,
                "maxCompletionLength": ns.max_new,
                "maxPromptLength": 1024,
                "maxSteps": ns.steps + 1,
            }
            if ns.vllm:
                rl.update(
                    useVllm=True,
                    resources={"gpusPerNode": 1},
                    vllm={"tensorParallelSize": 1},
                    bf16=True,
                    learningRate=1e-6,
                )
            cfg = rl_config(
                work / "artifacts",
                rl=rl,
                sandbox_url=sandbox_url,
                judge_url=judge.url,
                judge_model=judge.model,
                rule_learning=False,
            )
            cfg = cfg.model_copy(update={"gpus_per_node": 1 if ns.vllm else 0})
            spec = cfg.rl()
            data_dir = Path(cfg.paths.data)
            data_dir.mkdir(parents=True)
            write_rl_sets(data_dir, n=8)
            tok = AutoTokenizer.from_pretrained(model, padding_side="left")
            data = load_rl_data(
                data_dir,
                seed=cfg.seed,
                count_tokens=chat_token_counter(tok),
                max_prompt_length=spec.max_prompt_length,
            )
            runner = build_runner(cfg, spec)
            ctx = {
                "cfg": cfg,
                "spec": spec,
                "data": data,
                "tok": tok,
                "runner": runner,
                "model": model,
                "on_gpu": on_gpu,
            }
            results = []
            try:
                for rnd in range(ns.rounds):
                    for kind in ns.kinds.split(","):
                        results.append(run(kind, ctx, ns.steps, work / f"round{rnd}"))
                        r = results[-1]
                        print(
                            f"{r['kind']:>7}: step {r['wall_s']:.2f}s wall, {r['cpu_s']:.2f}s CPU; reward scoring "
                            f"{r['reward_s']:.2f}s = {100 * r['reward_share']:.1f}% of the step; rows generated "
                            f"{r['rows_generated']}, trained {r['rows_trained']} (all steps); "
                            f"{r['tokens_per_s']:.0f} completion tokens/s of step time",
                            flush=True,
                        )
            finally:
                runner.close()
        finally:
            judge.stop()
    device = torch.cuda.get_device_name(0) if on_gpu else f"CPU ({os.cpu_count()} cores)"
    print(
        f"device: {device}; {ns.prompts} prompts x {ns.generations} samples, {ns.max_new} new tokens, "
        f"{'vLLM' if ns.vllm else 'transformers'} rollouts, medians of {ns.steps} steps after a warm-up"
    )
    # Medians over every timed step of every round, per kind (the rounds alternate, so load swings hit all kinds).
    steps_of: dict[str, dict[str, list[float]]] = {}
    for r in results:
        for key in ("wall", "cpu"):
            steps_of.setdefault(r["kind"], {}).setdefault(key, []).extend(r[f"{key}_steps"])
    med = {k: {key: statistics.median(v) for key, v in d.items()} for k, d in steps_of.items()}
    for kind in ns.kinds.split(","):
        print(f"median {kind:>7}: {med[kind]['wall']:.2f}s wall, {med[kind]['cpu']:.2f}s CPU per step")
    if "plain" in med and "none" in med:
        print(
            f"ratio plain / ours (no filtering, same prompts): wall {med['plain']['wall'] / med['none']['wall']:.2f}, "
            f"CPU {med['plain']['cpu'] / med['none']['cpu']:.2f}"
        )
    if "plain" in med and "single" in med:
        print(
            f"ratio plain / ours (single-step) step time: wall {med['plain']['wall'] / med['single']['wall']:.2f}, "
            f"CPU {med['plain']['cpu'] / med['single']['cpu']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
