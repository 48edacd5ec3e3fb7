"""The vLLM backend's optional import: asking for vLLM where it is not installed is a clear, actionable error."""

from __future__ import annotations

import sys

import pytest

from purpcode.generation import VLLM_MISSING, BackendUnavailable, get_backend, resolve_backend
from purpcode.generation.vllm_backend import vllm_available
from purpcode_operator.api import GenerationSpec


@pytest.fixture
def no_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import vllm` raise ImportError, like an image without the gpu extra.
    monkeypatch.setitem(sys.modules, "vllm", None)


def test_vllm_missing_error_names_the_fix(no_vllm: None) -> None:
    with pytest.raises(BackendUnavailable) as err:
        get_backend(GenerationSpec(backend="vllm"), "/models/base", seed=1, gpus=1)
    assert str(err.value) == VLLM_MISSING
    assert "install the 'gpu' extra or use backend: transformers" in str(err.value)


def test_auto_falls_back_to_transformers_without_vllm(no_vllm: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("purpcode.generation.vllm_backend.vllm_available", lambda: False)
    assert resolve_backend("auto", gpus=4) == "transformers"


@pytest.mark.skipif(
    not vllm_available(), reason="vLLM is a GPU-image extra (the trainer image): not installed here"
)
def test_auto_picks_vllm_with_gpus() -> None:
    assert resolve_backend("auto", gpus=1) == "vllm"
