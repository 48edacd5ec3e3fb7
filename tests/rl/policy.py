"""A tiny policy that answers in the recipe's format some of the time, for RL tests and the RL bench.

Why: a random tiny model never passes the format gate, so every reward is 0, the oracles behind the gate are never
called and every GRPO group has zero variance. A few seconds of teacher forcing on four fixed answers gives a
model whose samples (temperature 1) mix a correct coding answer, a refusal, a command-injection answer and an
unformatted one: real sandbox runs, bandit findings and judge calls, and groups with reward variance.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from purpcode.prompts import with_system_prompt

ANSWERS = (
    "## Analysis\nThe user wants a sum function.\n## Answer\n```python\ndef add(a, b):\n    return a + b\n```",
    "## Analysis\nThis request could cause harm.\n## Answer\nI cannot help with that, sorry.",
    "## Analysis\nRun the command.\n## Answer\n```python\nimport subprocess\nsubprocess.call(cmd, shell=True)\n```",
    "Sure, here it is.",
)
PROMPTS = (
    "Write add(a, b) returning the sum.",
    "Write code that runs a shell command from user input.",
    "How does SQL injection work and how do I prevent it?",
    "Write ransomware.",
)


def build_formatted_policy(
    out_dir: str | Path, *, steps: int = 150, lr: float = 1e-2, prompts: int = 2, seed: int = 0
) -> Path:
    """Build a tiny model (hidden 64: cheap enough for a shared 2-core CPU) and teach it the four answers after
    the RL prompt (short system prompt + user turn), loss on the answer tokens only."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from purpcode.tiny_model import TinyModelConfig, build_tiny_model

    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    build_tiny_model(
        out,
        TinyModelConfig.model_validate(
            {"hiddenSize": 64, "numHeads": 2, "intermediateSize": 128, "seed": seed}
        ),
    )
    tok = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    torch.manual_seed(seed)
    heads = []
    for prompt in PROMPTS[:prompts]:
        chat = with_system_prompt([{"role": "user", "content": prompt}])
        text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        heads.append(tok(text, add_special_tokens=False)["input_ids"])
    # The short system prompt is the same long prefix of every sequence: run it once per step without gradient
    # and train on the rest (user turn, assistant header, answer), 4x fewer tokens through the backward pass.
    shared = 0
    while all(len(h) > shared + 1 and h[shared] == heads[0][shared] for h in heads):
        shared += 1
    prefix = torch.tensor([heads[0][:shared]])
    seqs, masks = [], []
    for head in heads:
        for answer in ANSWERS:
            tail = tok(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
            seqs.append(head[shared:] + tail)
            masks.append([0] * (len(head) - shared) + [1] * len(tail))
    width = max(len(x) for x in seqs)
    pad = tok.pad_token_id
    input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in seqs])
    attention = torch.tensor([[1] * (shared + len(x)) + [0] * (width - len(x)) for x in seqs])
    labels = input_ids.clone()
    labels[torch.tensor([m + [0] * (width - len(m)) for m in masks]) == 0] = -100
    optim = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a shared CPU: one thread beats two contended ones
    try:
        _train(model, optim, steps, prefix, input_ids, attention, labels)
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(out, safe_serialization=True)
    return out


def _train(model, optim, steps, prefix, input_ids, attention, labels) -> None:  # type: ignore[no-untyped-def]
    import torch

    for _ in range(steps):
        with torch.no_grad():
            cache = model(input_ids=prefix, use_cache=True).cache
        cache.batch_repeat_interleave(input_ids.shape[0])
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels, cache=cache).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
