"""The warm start: deterministic under the seed, resumable to the same weights, cached by the initializer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from purpcode.initializer import provide_model
from purpcode.tiny_model import TinyModelConfig
from purpcode.toy.pretrain import PretrainConfig, pretrain
from purpcode.toy.warm_start import build_warm_policy
from purpcode_operator.api import ModelSpec, TinyModelSpec, ToyWarmStartSpec

SHAPE = TinyModelConfig(hiddenSize=32, numLayers=1, numHeads=1, intermediateSize=64, seed=7)
TRAINING = PretrainConfig(steps=4, batch_size=2, vocab_size=400, max_length=256, checkpoint_every=2)
CWES = ["CWE-89"]


def weights(folder: Path) -> dict[str, object]:
    return dict(load_file(str(folder / "model.safetensors")))


def same(a: dict[str, object], b: dict[str, object]) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "m"
    summary = build_warm_policy(out, SHAPE, TRAINING, cwes=CWES)
    assert summary["resumed_from"] == 0 and summary["loss_last_50"] < summary["loss_first_50"] + 1
    return out


def test_same_seed_same_weights_other_seed_other(reference: Path, tmp_path: Path) -> None:
    build_warm_policy(tmp_path / "again", SHAPE, TRAINING, cwes=CWES)
    assert same(weights(reference), weights(tmp_path / "again"))
    assert (reference / "tokenizer.json").read_bytes() == (tmp_path / "again" / "tokenizer.json").read_bytes()
    build_warm_policy(tmp_path / "other", SHAPE.model_copy(update={"seed": 8}), TRAINING, cwes=CWES)
    assert not same(weights(reference), weights(tmp_path / "other"))


def test_interrupted_build_resumes_to_the_same_weights(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    assert build_warm_policy(out, SHAPE, TRAINING, cwes=CWES, stop_after=2) == {"stopped_at": 2}
    assert not (out / "model.safetensors").exists()
    summary = build_warm_policy(out, SHAPE, TRAINING, cwes=CWES)
    assert summary["resumed_from"] == 2
    assert same(weights(reference), weights(out))
    assert not (out / ".warmstart").exists()


def test_changed_settings_start_over(tmp_path: Path) -> None:
    from purpcode.toy.warm_start import policy_corpus

    out = tmp_path / "m"
    examples = policy_corpus(CWES, SHAPE.seed)[:40]
    pretrain(out, examples, SHAPE, TRAINING, stop_after=2)
    summary = pretrain(out, examples, SHAPE, TRAINING.model_copy(update={"learning_rate": 1e-3}))
    assert summary["resumed_from"] == 0


def test_initializer_builds_caches_and_resumes(reference: Path, tmp_path: Path) -> None:
    warm = ToyWarmStartSpec(steps=4, batch_size=2, vocab_size=400, cwes=CWES)
    spec = ModelSpec(
        name="tiny-random",
        tiny=TinyModelSpec(hidden_size=32, num_layers=1, num_heads=1, intermediate_size=64, warm_start=warm),
    )
    artifacts = tmp_path / "a"
    # A crashed first attempt left its checkpoint in base.partial: the initializer resumes it.
    partial = artifacts / "model" / "base.partial"
    shape = SHAPE.model_copy(update={"seed": 7})
    training = TRAINING.model_copy(
        update={"max_length": PretrainConfig().max_length, "checkpoint_every": 100}
    )
    build_warm_policy(partial, shape, training, cwes=CWES, stop_after=3)
    result = provide_model(spec, artifacts, seed=7)
    assert result["action"] == "resumed"
    base = artifacts / "model" / "base"
    stats = json.loads((base / "toy_pretraining.json").read_text())
    assert stats["resumed_from"] == 3 and stats["steps"] == 4
    fresh = tmp_path / "fresh"
    build_warm_policy(fresh, shape, training, cwes=CWES)
    assert same(weights(base), weights(fresh))
    assert provide_model(spec, artifacts, seed=7)["action"] == "skipped"
    assert provide_model(spec, artifacts, seed=8)["action"] == "warm-started"  # another seed: another model
