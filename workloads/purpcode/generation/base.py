"""The one interface every text-generation backend implements (vLLM, transformers, OpenAI-compatible HTTP).

Why one interface: synthesis, rule learning and evaluation all turn chat conversations into completions; which
engine does it depends only on where the stage runs (GPU Job, CPU pod, external endpoint), never on the caller.
"""

from __future__ import annotations

import abc
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Conversation = list[dict[str, Any]]


class GenerationError(RuntimeError):
    """A backend could not produce completions (bad model directory, endpoint failure after retries, ...)."""


class BackendUnavailable(GenerationError):
    """The backend asked for cannot run here (package not installed, no GPU)."""


VLLM_MISSING = "vLLM is not installed: install the 'gpu' extra or use backend: transformers"


@dataclass
class SamplingParams:
    """Sampling settings of one call, resolved from the spec's defaults and per-call overrides."""

    n: int = 1
    temperature: float = 0.8
    top_p: float = 1.0
    max_new_tokens: int = 512

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class GenerationStats:
    """Running totals of what a backend produced (for the stage manifest and metrics)."""

    calls: int = 0
    conversations: int = 0
    completions: int = 0
    completion_chars: int = 0
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        return {
            "calls": self.calls,
            "conversations": self.conversations,
            "completions": self.completions,
            "completion_chars": self.completion_chars,
            "seconds": round(self.seconds, 3),
            **self.extra,
        }


def batch_seed(seed: int, conversations: Sequence[Conversation]) -> int:
    """A seed derived from the run seed and the batch's content.

    Why content-derived: a resumed stage regenerates only the unfinished batches; each batch must sample the same
    way whether or not the batches before it ran in this process.
    """
    digest = zlib.crc32(
        repr([[(m.get("role"), m.get("content")) for m in c] for c in conversations]).encode()
    )
    return (seed * 1_000_003 + digest) % (2**31 - 1)


def validate_conversations(conversations: Sequence[Conversation]) -> None:
    """Reject malformed input early with the index of the bad conversation."""
    for i, conv in enumerate(conversations):
        if not conv:
            raise ValueError(f"conversations[{i}] is empty: each conversation needs at least one user turn")
        for j, msg in enumerate(conv):
            if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
                raise ValueError(f"conversations[{i}][{j}] must be a dict with 'role' and 'content'")


class GenerationBackend(abc.ABC):
    """Generate `n` completions per chat conversation, batched and seeded.

    Subclasses implement `_generate`; `generate` resolves sampling defaults from the spec, validates input and
    keeps statistics.
    """

    name: str = "base"

    def __init__(
        self,
        *,
        seed: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        batch_size: int = 64,
    ) -> None:
        self.seed = seed
        self.defaults = SamplingParams(
            n=1, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens
        )
        self.batch_size = max(1, batch_size)
        self.stats = GenerationStats()
        self.closed = False
        # Called as (conversations done, conversations in this call) while a call runs (per batch or answer), so a
        # stage can show progress inside a long call instead of only after it.
        self.on_progress: Callable[[int, int], None] | None = None

    def _progress(self, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(done, total)

    def generate(
        self,
        conversations: list[Conversation],
        *,
        n: int = 1,
        temperature: float | None = None,
        max_new_tokens: int | None = None,
        top_p: float | None = None,
    ) -> list[list[str]]:
        """Completions for each conversation (outer list in input order, inner list of length `n`).

        The model's chat template is applied with the generation prompt; only the new text is returned.
        """
        if n < 1:
            raise ValueError(f"n={n}: need at least one completion per conversation")
        validate_conversations(conversations)
        params = SamplingParams(
            n=n,
            temperature=self.defaults.temperature if temperature is None else temperature,
            top_p=self.defaults.top_p if top_p is None else top_p,
            max_new_tokens=self.defaults.max_new_tokens if max_new_tokens is None else max_new_tokens,
        )
        if not conversations:
            return []
        start = time.perf_counter()
        out = self._generate(conversations, params)
        if len(out) != len(conversations) or any(len(o) != n for o in out):
            raise GenerationError(f"{self.name} backend returned a wrong number of completions")
        self.stats.calls += 1
        self.stats.conversations += len(conversations)
        self.stats.completions += len(conversations) * n
        self.stats.completion_chars += sum(len(t) for o in out for t in o)
        self.stats.seconds += time.perf_counter() - start
        return out

    @abc.abstractmethod
    def _generate(self, conversations: list[Conversation], params: SamplingParams) -> list[list[str]]:
        """Backend-specific generation."""

    def close(self) -> None:
        """Free the engine (GPU memory, HTTP connections). The backend is unusable afterwards."""
        self.closed = True

    def __enter__(self) -> GenerationBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def throttled(fn: Callable[[int, int], None], every_s: float = 2.0) -> Callable[[int, int], None]:
    """`fn` at most every `every_s` seconds, and always for the last item (progress records, not a flood)."""
    last = [-float("inf")]  # the first call always goes

    def call(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= every_s:
            last[0] = now
            fn(done, total)

    return call
