"""The generation engine behind the judge server: a transformers causal LM answering chat requests in batches.

Why batches: the judge client keeps hundreds of requests in flight; answering them one `generate` call at a time
would leave the CPU idle between tiny matrix products. Requests with the same sampling settings share one call.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from purpcode.tiny_model import TinyModelConfig, build_tiny_model

LOG = logging.getLogger(__name__)

TINY_MODEL_NAME = "tiny-random"
_BUILT_MARKER = ".purpcode-built"


def default_cache_dir() -> Path:
    """Where built models go: $PURPCODE_CACHE, else ~/.cache/purpcode."""
    env = os.environ.get("PURPCODE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "purpcode"


class ModelNotFound(ValueError):
    """A model named by a local path that does not exist (it must not be looked up on the Hub instead)."""


def is_local_path(name: str) -> bool:
    """A path, not a Hub id (`org/name`): absolute, ./ ../ ~, more than one `/`, or an existing directory."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or Path(name).is_dir()


def resolve_model(name: str, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """A loadable model location: 'tiny-random' is built once under the cache dir, a directory or hub id passes.

    A local path that does not exist raises ModelNotFound: passed on as a "hub id" it would fail later with a
    misleading download error (or, online, fetch something else).
    The tiny model is built in a temporary directory and renamed into place, so a server killed mid-build never
    leaves a half-written model that a later start would load.
    """
    if name != TINY_MODEL_NAME:
        if is_local_path(name):
            path = Path(name).expanduser()
            if not path.is_dir():
                raise ModelNotFound(
                    f"model path {name} does not exist (give an existing model directory, or a Hub id such as "
                    "Qwen/Qwen2.5-32B-Instruct)"
                )
            return str(path)
        return name
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    target = root / TINY_MODEL_NAME
    if (target / _BUILT_MARKER).exists():
        return str(target)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{TINY_MODEL_NAME}.", dir=root))
    try:
        build_tiny_model(tmp, TinyModelConfig())
        (tmp / _BUILT_MARKER).write_text("ok\n", encoding="utf-8")
        if target.exists():  # a stale, unmarked build from an interrupted start
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / _BUILT_MARKER).exists():  # not a concurrent builder that won the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


@dataclass(frozen=True)
class SamplingKey:
    """Settings that must be equal for two requests to share one `generate` call."""

    temperature: float
    top_p: float
    max_tokens: int
    n: int
    stop: tuple[str, ...]
    seed: int | None


@dataclass
class GenRequest:
    """One chat completion request, already validated."""

    messages: list[dict[str, str]]
    key: SamplingKey
    include_stop: bool = False


@dataclass
class Choice:
    """One completion: its text, why it ended, and how many tokens it took."""

    text: str
    finish_reason: str
    completion_tokens: int
    stop_reason: str | None = None  # the stop string that ended it (vLLM reports this too)


@dataclass
class GenResult:
    """The completions of one request plus its prompt length."""

    choices: list[Choice]
    prompt_tokens: int
    extra: dict[str, Any] = field(default_factory=dict)


class PromptTooLong(ValueError):
    """The prompt plus max_tokens exceed the model's context (the server answers 400, as vLLM does)."""


def truncate_at_stop(text: str, stops: tuple[str, ...], include_stop: bool) -> tuple[str, str | None]:
    """Cut `text` at the earliest stop string; return the text and the stop string found (None: none)."""
    best: tuple[int, str] | None = None
    for s in stops:
        if not s:
            continue
        i = text.find(s)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    if best is None:
        return text, None
    i, s = best
    return (text[: i + len(s)] if include_stop else text[:i]), s


class ChatEngine:
    """A causal LM and its tokenizer, answering batches of chat requests with `model.generate`."""

    def __init__(
        self,
        model_path: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        max_model_len: int | None = None,
        truncate: bool = False,
    ) -> None:
        """`truncate`: cut over-long prompts in the middle instead of refusing them (vLLM refuses with a 400)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.truncate = truncate
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype: Any = (
            getattr(torch, dtype)
            if dtype
            else (torch.bfloat16 if self.device.startswith("cuda") else torch.float32)
        )
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
        loaded: Any = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype)
        self.model: Any = loaded.to(self.device)
        self.model.eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        limit = getattr(self.model.config, "max_position_embeddings", None) or 4096
        self.max_model_len = min(max_model_len, limit) if max_model_len else limit
        eos = self.model.generation_config.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        if self.tokenizer.eos_token_id is not None:
            self._eos_ids.add(self.tokenizer.eos_token_id)

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text: the model's chat template with the generation prompt, or role-tagged turns."""
        if getattr(self.tokenizer, "chat_template", None):
            return str(
                self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            )
        turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n\n".join(turns) + "\n\nAssistant:"

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """Answer requests that share one SamplingKey in a single left-padded `generate` call."""
        if not requests:
            return []
        key = requests[0].key
        if any(r.key != key for r in requests):
            raise ValueError("one generate call takes requests with equal sampling settings")
        torch = self._torch
        texts = [self.render(r.messages) for r in requests]
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        budget = self.max_model_len - key.max_tokens
        for i, tokens in enumerate(ids):
            if len(tokens) <= budget:
                continue
            if not self.truncate or budget < 2:
                raise PromptTooLong(
                    f"This model's maximum context length is {self.max_model_len} tokens. However, you requested "
                    f"{len(tokens) + key.max_tokens} tokens ({len(tokens)} in the messages, {key.max_tokens} in the "
                    "completion). Please reduce the length of the messages or completion."
                )
            # Keep the head (instructions) and the tail (the answer and the verdict format), drop the middle.
            head = budget // 2
            ids[i] = tokens[:head] + tokens[len(tokens) - (budget - head) :]
        enc = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
        lengths = [len(t) for t in ids]
        enc = enc.to(self.device)
        greedy = key.temperature <= 0
        # Greedy decoding gives one answer per prompt; n copies of it are what vLLM returns too.
        per_prompt = 1 if greedy else key.n
        kwargs: dict[str, Any] = {
            "max_new_tokens": key.max_tokens,
            "num_return_sequences": per_prompt,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=key.temperature, top_p=key.top_p, top_k=0)
        if key.stop:
            kwargs.update(stop_strings=list(key.stop), tokenizer=self.tokenizer)
        if key.seed is not None:
            torch.manual_seed(key.seed)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        results: list[GenResult] = []
        for i, req in enumerate(requests):
            choices = []
            rows = new[i * per_prompt : (i + 1) * per_prompt]
            for generated in rows * (key.n // per_prompt):
                cut = next((j for j, t in enumerate(generated) if t in self._eos_ids), None)
                hit_eos = cut is not None
                seq = generated[:cut] if cut is not None else generated
                text = str(self.tokenizer.decode(seq, skip_special_tokens=True))
                text, stop_hit = truncate_at_stop(text, key.stop, req.include_stop)
                reason = "stop" if (hit_eos or stop_hit is not None) else "length"
                choices.append(
                    Choice(text=text, finish_reason=reason, completion_tokens=len(seq), stop_reason=stop_hit)
                )
            results.append(GenResult(choices=choices, prompt_tokens=int(lengths[i])))
        return results
