"""The vLLM backend: the offline engine with tensor parallelism, for GPU Jobs.

vLLM is an optional import (the 'gpu' extra); asking for it without it installed is a clear error, not a crash deep
inside a stage.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from purpcode.generation.base import (
    VLLM_MISSING,
    BackendUnavailable,
    Conversation,
    GenerationBackend,
    SamplingParams,
    batch_seed,
)


def vllm_available() -> bool:
    """True when the vllm package can be imported here."""
    return importlib.util.find_spec("vllm") is not None


def import_vllm() -> Any:
    """Import vllm or raise `BackendUnavailable` with the fix."""
    try:
        return importlib.import_module("vllm")
    except ImportError as err:
        raise BackendUnavailable(VLLM_MISSING) from err


class VLLMBackend(GenerationBackend):
    """`vllm.LLM.chat` with `SamplingParams(n=...)`; the engine batches and schedules by itself."""

    name = "vllm"

    def __init__(
        self,
        model_path: str,
        *,
        seed: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        batch_size: int = 64,
        max_model_len: int | None = None,
    ) -> None:
        super().__init__(
            seed=seed,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
        )
        vllm = import_vllm()
        self._vllm = vllm
        kwargs: dict[str, Any] = {
            "model": model_path,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "seed": seed,
        }
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        self.llm: Any = vllm.LLM(**kwargs)

    def _generate(self, conversations: list[Conversation], params: SamplingParams) -> list[list[str]]:
        sampling = self._vllm.SamplingParams(
            n=params.n,
            temperature=max(params.temperature, 0.0),
            top_p=1.0 if params.greedy else params.top_p,
            max_tokens=params.max_new_tokens,
            seed=batch_seed(self.seed, conversations),
        )
        outputs = self.llm.chat(conversations, sampling, add_generation_prompt=True, use_tqdm=False)
        return [[c.text for c in o.outputs] for o in outputs]

    def close(self) -> None:
        super().close()
        self.llm = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
