"""The two toy models the initializer and the judge server build: the warm-started policy and the toy judge.

Both are deterministic under their seed: the corpus (seeded template choices and answer mixtures), the tokenizer
(BPE on that corpus), the initial weights (torch seed) and every step's batch (a function of seed and step).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from purpcode.tiny_model import TinyModelConfig
from purpcode.toy.pretrain import PretrainConfig, pretrain

TOY_JUDGE_NAME = "tiny-judge"
TOY_JUDGE_SEED = 20
# Shape and steps keep the judge's build near a minute on 2 cores; only the verdict lines are learned.
TOY_JUDGE_SHAPE = TinyModelConfig(hiddenSize=128, numLayers=2, numHeads=2, intermediateSize=256)
TOY_JUDGE_TRAINING = PretrainConfig(
    steps=200, batch_size=8, learning_rate=2e-3, max_length=768, vocab_size=4096
)
TOY_JUDGE_EXAMPLES = 1000


def policy_corpus(cwes: list[str], seed: int, answers_per_prompt: int = 3) -> list[Any]:
    """The policy's pretraining conversations (see purpcode.toy.corpus)."""
    from purpcode.toy.corpus import policy_examples, prompt_items

    items = prompt_items(cwes, seed=seed, malicious=80)
    return policy_examples(items, seed=seed, answers_per_prompt=answers_per_prompt)


def build_warm_policy(
    out_dir: str | Path,
    shape: TinyModelConfig,
    training: PretrainConfig,
    *,
    cwes: list[str],
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Pretrain the tiny policy into `out_dir` (resuming an interrupted build there); returns the summary."""
    return pretrain(out_dir, policy_corpus(cwes, shape.seed), shape, training, stop_after=stop_after)


def judge_corpus(seed: int = TOY_JUDGE_SEED, limit: int = TOY_JUDGE_EXAMPLES) -> list[Any]:
    from purpcode.toy.corpus import prompt_items
    from purpcode.toy.judge import judge_examples

    items = prompt_items(None, seed=seed, utility_tasks=40, malicious=120, per_cwe=1, teacher=False)
    examples = judge_examples(items, seed=seed)
    random.Random(f"toy-judge-pick:{seed}").shuffle(examples)
    return examples[:limit]


def build_toy_judge(out_dir: str | Path, *, seed: int = TOY_JUDGE_SEED) -> dict[str, Any]:
    """Pretrain the toy judge into `out_dir` (resumable like the policy); returns the summary."""
    shape = TOY_JUDGE_SHAPE.model_copy(update={"seed": seed})
    return pretrain(out_dir, judge_corpus(seed), shape, TOY_JUDGE_TRAINING)
