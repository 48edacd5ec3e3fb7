"""Text-generation backends behind one interface: vLLM (GPU Jobs), transformers (CPU/GPU fallback), and any
OpenAI-compatible endpoint.

    backend = get_backend(spec, model_path, seed=666, gpus=0)
    completions = backend.generate([[{"role": "user", "content": "hi"}]], n=2)   # -> [[str, str]]
    backend.close()

Import-light: torch, transformers and vLLM load only when a backend is built.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from purpcode.generation.base import (
    VLLM_MISSING,
    BackendUnavailable,
    Conversation,
    GenerationBackend,
    GenerationError,
    GenerationStats,
    SamplingParams,
    batch_seed,
)

if TYPE_CHECKING:
    from purpcode_operator.api import GenerationSpec

BACKENDS: tuple[str, ...] = ("auto", "vllm", "transformers", "openai")
# The environment variable holding the openai backend's API key (the operator maps the spec's Secret onto it).
GENERATION_API_KEY_ENV = "PURPCODE_GENERATION_API_KEY"


def resolve_backend(name: str, gpus: int) -> str:
    """'auto' -> 'vllm' when the stage has GPUs and vLLM imports, else 'transformers'; other names pass through."""
    if name not in BACKENDS:
        raise ValueError(f"generation.backend={name!r}: use one of {', '.join(BACKENDS)}")
    if name != "auto":
        return name
    from purpcode.generation.vllm_backend import vllm_available

    return "vllm" if gpus > 0 and vllm_available() else "transformers"


def get_backend(
    spec: GenerationSpec,
    model_path: str,
    *,
    seed: int,
    gpus: int = 0,
    api_key: str | None = None,
    concurrency: int = 64,
) -> GenerationBackend:
    """Build the backend a stage's GenerationSpec asks for.

    `model_path` is the local model directory (vllm, transformers); for openai it is the model name sent to the
    server unless `spec.model` names one. `api_key` defaults to the `PURPCODE_GENERATION_API_KEY` environment
    variable (openai only).
    """
    backend = resolve_backend(spec.backend, gpus)
    common = {
        "seed": seed,
        "temperature": spec.temperature,
        "top_p": spec.top_p,
        "max_new_tokens": spec.max_new_tokens,
        "batch_size": spec.batch_size,
    }
    if backend == "openai":
        from purpcode.generation.openai_backend import OpenAIBackend

        if not spec.url:
            raise ValueError("generation.url is required for backend 'openai' (e.g. http://host:8000/v1)")
        key = api_key if api_key is not None else os.environ.get(GENERATION_API_KEY_ENV) or None
        return OpenAIBackend(
            spec.url,
            spec.model or model_path,
            api_key=key,
            concurrency=concurrency,
            **common,  # type: ignore[arg-type]
        )
    path = model_path
    if backend == "vllm":
        from purpcode.generation.vllm_backend import VLLMBackend, import_vllm

        import_vllm()  # the clear error first, before any GPU checks
        if gpus and spec.tensor_parallel_size > gpus:
            raise ValueError(
                f"generation.tensorParallelSize={spec.tensor_parallel_size} exceeds the stage's {gpus} GPU(s): "
                "lower it or give the stage more GPUs"
            )
        return VLLMBackend(
            path,
            tensor_parallel_size=spec.tensor_parallel_size,
            gpu_memory_utilization=spec.gpu_memory_utilization,
            **common,  # type: ignore[arg-type]
        )
    from purpcode.generation.hf import TransformersBackend

    device = None if gpus > 0 else "cpu"
    return TransformersBackend(path, device=device, **common)  # type: ignore[arg-type]


__all__ = [
    "BACKENDS",
    "GENERATION_API_KEY_ENV",
    "VLLM_MISSING",
    "BackendUnavailable",
    "Conversation",
    "GenerationBackend",
    "GenerationError",
    "GenerationStats",
    "SamplingParams",
    "batch_seed",
    "get_backend",
    "resolve_backend",
]
