"""Warm-start pretraining on CPU: a tokenizer trained on the corpus, then a few hundred AdamW steps on the
assistant turns of a tiny Llama, deterministic under the seed and resumable from its own checkpoint.

Why Llama and not Qwen2 (the random tiny model's): transformers' AutoTokenizer replaces a Qwen2 checkpoint's
pre-tokenizer with Qwen's own regex, which would split the corpus tokenizer's multi-word tokens apart at load time;
for Llama it keeps the saved tokenizer as it is (tokenizer_class TokenizersBackend). vLLM and TRL load both.

Why a plain loop rather than the HF Trainer: minutes of CPU are the whole budget; a loop over pre-tokenised
batches with the step's batch a pure function of (seed, step) makes an interrupted build resume to bit-identical
weights, which is what the initializer's caching promises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from purpcode.tiny_model import CHAT_TEMPLATE, SPECIAL_TOKENS, TinyModelConfig

if TYPE_CHECKING:
    from purpcode.toy.corpus import Example

LOG = logging.getLogger(__name__)
STATE_DIR = ".warmstart"
STATS_FILE = "toy_pretraining.json"
TOY_VERSION = 1  # part of the checkpoint fingerprint: bump when the training code changes what it produces


class PretrainConfig(BaseModel):
    """Steps and sizes of one warm start (defaults: about a minute or two on 2 CPU cores)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=500, ge=1)
    batch_size: int = Field(default=16, ge=1)
    learning_rate: float = Field(default=2e-3, gt=0)
    warmup_steps: int = Field(default=20, ge=0)
    max_length: int = Field(default=640, ge=64)
    vocab_size: int = Field(default=2048, ge=300)
    checkpoint_every: int = Field(default=100, ge=1)


def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A byte-level BPE trained on the corpus itself, with the ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Split at line ends only (not at spaces): merges cross words within a line, so the fixed system prompt,
    # template phrases and code lines the corpus repeats become a few tokens each (short sequences: the whole
    # budget is CPU minutes), while no token spans a line end, so 'assistant\n' ends a generation prompt exactly
    # as it does in training.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split("\n", behavior="merged_with_previous"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def encode(tokenizer: Any, examples: list[Example], max_length: int) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per example; labels are -100 outside the assistant reply. Over-long prompts lose their
    start (the reply and the prompt's end are what teach the behaviour)."""
    out = []
    for ex in examples:
        enc = tokenizer.apply_chat_template(
            ex.messages(), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids = list(enc["input_ids"])
        mask = list(enc["assistant_masks"])
        labels = [t if m else -100 for t, m in zip(ids, mask, strict=True)]
        if len(ids) > max_length:
            ids, labels = ids[-max_length:], labels[-max_length:]
        out.append((ids, labels))
    return out


def _schedule(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _assistant_loss(model: Any, ids: Any, attn: Any, labels: Any) -> Any:
    """Next-token loss on the assistant tokens only, with the LM head applied to those positions only (the head
    over the vocabulary is most of the cost of a model this small)."""
    import torch

    hidden = model.model(input_ids=ids, attention_mask=attn).last_hidden_state[:, :-1]
    target = labels[:, 1:]
    keep = target != -100
    logits = model.lm_head(hidden[keep])
    return torch.nn.functional.cross_entropy(logits, target[keep])


def batch_order(
    n: int, steps: int, batch_size: int, seed: int, lengths: list[int] | None = None
) -> list[list[int]]:
    """The example indices of every step: seeded epoch permutations (then, with `lengths`, sorted by length within
    windows of 8 batches so a batch pads little), a pure function of its arguments."""
    order: list[int] = []
    epoch = 0
    window = 8 * batch_size
    while len(order) < steps * batch_size:
        perm = list(range(n))
        random.Random(f"{seed}:{epoch}").shuffle(perm)
        if lengths is not None:
            perm = [
                i for k in range(0, n, window) for i in sorted(perm[k : k + window], key=lambda j: lengths[j])
            ]
        order.extend(perm)
        epoch += 1
    batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(steps)]
    random.Random(f"{seed}:batches").shuffle(batches)
    return batches


def fingerprint(examples: list[Example], shape: TinyModelConfig, cfg: PretrainConfig) -> str:
    h = hashlib.sha256()
    h.update(f"toy-v{TOY_VERSION}".encode())
    h.update(shape.model_dump_json().encode())
    h.update(cfg.model_dump_json().encode())
    for ex in examples:
        h.update(json.dumps(ex.messages(), sort_keys=True).encode())
    return h.hexdigest()[:16]


def _check_reload(out: Path, tokenizer: Any, example: Example) -> None:
    """The stages load the model with AutoTokenizer: it must tokenize exactly as training did."""
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(str(out))
    text = tokenizer.apply_chat_template(example.messages(), tokenize=False)
    if loaded(text)["input_ids"] != tokenizer(text)["input_ids"]:
        raise RuntimeError(
            f"{out}: AutoTokenizer loads a tokenizer ({type(loaded).__name__}) that splits text differently from "
            "the one the toy model was trained with"
        )


def _atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def pretrain(
    out_dir: str | Path,
    examples: list[Example],
    shape: TinyModelConfig,
    cfg: PretrainConfig,
    *,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train and save a warm-started tiny chat model in `out_dir`; resumes from `out_dir/.warmstart`.

    `stop_after` ends early after that many steps with the checkpoint written (tests use it to simulate a crash).
    Returns the training summary (also written to `toy_pretraining.json`).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    state_dir = out / STATE_DIR
    fp = fingerprint(examples, shape, cfg)
    state_file = state_dir / "state.pt"
    state: dict[str, Any] | None = None
    if state_file.is_file():
        loaded = torch.load(state_file, weights_only=False)
        if loaded.get("fingerprint") == fp:
            state = loaded
        else:
            LOG.info("warm start: checkpoint is for other settings; starting over")
    if state is None:
        shutil.rmtree(out, ignore_errors=True)
        state_dir.mkdir(parents=True)
        texts = [m["content"] for ex in examples for m in ex.messages()]
        train_tokenizer(texts, cfg.vocab_size).save_pretrained(state_dir / "tokenizer")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(state_dir / "tokenizer"))
    data = encode(tokenizer, examples, cfg.max_length)

    torch.manual_seed(shape.seed)
    model_cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_heads,
        max_position_embeddings=shape.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.01, betas=(0.9, 0.98))
    start = 0
    losses: list[float] = []
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
        losses = list(state["losses"])
        LOG.info("warm start: resuming at step %d of %d", start, cfg.steps)
    batches = batch_order(len(data), cfg.steps, cfg.batch_size, shape.seed, [len(d[0]) for d in data])
    pad = int(tokenizer.pad_token_id)
    model.train()
    t0 = time.perf_counter()
    for step in range(start, cfg.steps):
        rows = [data[i] for i in batches[step]]
        width = max(len(ids) for ids, _ in rows)
        ids = torch.tensor([r[0] + [pad] * (width - len(r[0])) for r in rows])
        labels = torch.tensor([r[1] + [-100] * (width - len(r[1])) for r in rows])
        attn = torch.tensor([[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows])
        for group in opt.param_groups:
            group["lr"] = cfg.learning_rate * _schedule(step, cfg)
        loss = _assistant_loss(model, ids, attn, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(round(float(loss.detach()), 4))
        done = step + 1
        if done % 50 == 0:
            LOG.info("warm start: step %d/%d loss %.3f", done, cfg.steps, losses[-1])
        if done % cfg.checkpoint_every == 0 or done == stop_after:
            _atomic_torch_save(
                {
                    "fingerprint": fp,
                    "step": done,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "losses": losses,
                },
                state_file,
            )
        if stop_after is not None and done >= stop_after and done < cfg.steps:
            return {"stopped_at": done}
    summary: dict[str, Any] = {
        "fingerprint": fp,
        "steps": cfg.steps,
        "resumed_from": start,
        "seconds": round(time.perf_counter() - t0, 1),
        "examples": len(examples),
        "by_set_and_mode": dict(sorted(Counter(f"{e.set}/{e.mode}" for e in examples).items())),
        "mean_tokens": round(sum(len(d[0]) for d in data) / max(1, len(data)), 1),
        "loss_first_50": round(sum(losses[:50]) / max(1, len(losses[:50])), 4),
        "loss_last_50": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 4),
        "config": cfg.model_dump(),
    }
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=True
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    _check_reload(out, tokenizer, examples[0])
    tmp = out / f".{STATS_FILE}.tmp"
    tmp.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out / STATS_FILE)
    shutil.rmtree(state_dir, ignore_errors=True)
    return summary
