"""A tiny random chat model built offline: the embedded default for a first run and for every CPU test.

Why: nothing may download weights here, yet every stage must run end to end. A byte-level BPE tokenizer trained on a
few strings plus a random Qwen2 (hidden 128, 2 heads of 64, so vLLM can load it too) gives a real model directory
that transformers, TRL, DeepSpeed and vLLM treat like any checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

# ChatML with generation markers so TRL's assistant_only_loss can mask everything but the assistant turns.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "## Analysis\nThe user asks for a function. ## Answer\n```python\ndef add(a, b):\n    return a + b\n```",
    "import os, subprocess, hashlib, sqlite3, yaml, pickle, tempfile, requests",
    "I can't help with creating malware, but here is how to defend against it.",
    "def solve(n: int) -> int:\n    total = 0\n    for i in range(n):\n        total += i * i\n    return total",
    "SELECT * FROM users WHERE name = ?; cursor.execute(query, (name,))",
    "The quick brown fox jumps over the lazy dog. 0123456789 {}[]()<>=+-*/%!?:;,.'\"#@$^&|~`\\",
]


class TinyModelConfig(BaseModel):
    """Shape of the tiny random model (defaults: ~1.3M parameters, seconds to build, vLLM-loadable)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    hidden_size: int = Field(default=128, ge=16, alias="hiddenSize")
    num_layers: int = Field(default=2, ge=1, alias="numLayers")
    num_heads: int = Field(default=2, ge=1, alias="numHeads")
    intermediate_size: int = Field(default=256, ge=16, alias="intermediateSize")
    vocab_size: int = Field(default=512, ge=300, alias="vocabSize")
    max_position_embeddings: int = Field(default=4096, ge=128, alias="maxPositionEmbeddings")
    seed: int = 666


def build_tokenizer(vocab_size: int = 512):  # type: ignore[no-untyped-def]
    """Train a byte-level BPE tokenizer locally and wrap it as a fast HF tokenizer with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(out_dir: str | Path, config: TinyModelConfig | None = None) -> Path:
    """Build, save (safetensors) and return the directory of a tiny random Qwen2 chat model."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    cfg = config or TinyModelConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(cfg.vocab_size)
    torch.manual_seed(cfg.seed)
    model_cfg = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(model_cfg)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=True
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
