"""The transformers backend on CPU with the tiny random model: shapes, seeding, chat template, defaults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from purpcode.generation import GenerationError, get_backend, resolve_backend
from purpcode.generation.hf import TransformersBackend
from purpcode_operator.api import GenerationSpec

CONVS = [
    [{"role": "user", "content": "Write a function that adds two numbers."}],
    [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "hello"}],
    [{"role": "user", "content": "x"}],
]


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> Iterator[TransformersBackend]:
    import torch

    threads = torch.get_num_threads()
    spec = GenerationSpec(backend="transformers", max_new_tokens=8, batch_size=2, temperature=1.0)
    b = get_backend(spec, str(tiny_model_dir), seed=7)
    assert isinstance(b, TransformersBackend)
    yield b
    torch.set_num_threads(threads)  # the backend's thread policy is process-wide: leave other tests as found


def test_small_model_on_cpu_uses_one_thread(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    threads = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        torch.set_num_threads(2)
        get_backend(GenerationSpec(backend="transformers"), str(tiny_model_dir), seed=1)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # an explicit setting wins
        get_backend(GenerationSpec(backend="transformers"), str(tiny_model_dir), seed=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_returns_n_completions_per_conversation_in_order(backend: TransformersBackend) -> None:
    out = backend.generate(CONVS, n=3)
    assert len(out) == len(CONVS)
    assert all(len(o) == 3 and all(isinstance(t, str) for t in o) for o in out)
    # batch_size=2 with 3 conversations: two generate calls, still one result per input
    assert backend.stats.completions >= 9


def test_same_seed_same_samples_and_other_seed_differs(
    backend: TransformersBackend, tiny_model_dir: Path
) -> None:
    first = backend.generate(CONVS, n=2, max_new_tokens=12)
    again = backend.generate(CONVS, n=2, max_new_tokens=12)
    assert first == again
    other = get_backend(
        GenerationSpec(backend="transformers", max_new_tokens=12, batch_size=2, temperature=1.0),
        str(tiny_model_dir),
        seed=8,
    )
    assert other.generate(CONVS, n=2) != first


def test_greedy_at_temperature_zero_repeats(backend: TransformersBackend) -> None:
    a = backend.generate(CONVS[:1], n=2, temperature=0.0)
    assert a[0][0] == a[0][1]


def test_chat_template_with_generation_prompt(backend: TransformersBackend) -> None:
    text = backend.render(CONVS[1])
    assert text.startswith("<|im_start|>system\nYou are helpful.<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")


def test_max_new_tokens_caps_length(backend: TransformersBackend) -> None:
    out = backend.generate(CONVS[:1], n=1, max_new_tokens=2)
    ids = backend.tokenizer(out[0][0], add_special_tokens=False)["input_ids"]
    assert len(ids) <= 4  # 2 tokens, re-tokenised text may split differently but stays short


def test_bad_input_is_named(backend: TransformersBackend) -> None:
    with pytest.raises(ValueError, match=r"conversations\[1\] is empty"):
        backend.generate([CONVS[0], []])
    with pytest.raises(ValueError, match="at least one completion"):
        backend.generate(CONVS, n=0)
    assert backend.generate([]) == []


def test_auto_is_transformers_without_gpus() -> None:
    assert resolve_backend("auto", gpus=0) == "transformers"
    with pytest.raises(ValueError, match="generation.backend"):
        resolve_backend("tgi", gpus=0)


def test_missing_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="cannot load model"):
        get_backend(GenerationSpec(backend="transformers"), str(tmp_path / "nope"), seed=1)
