"""Which checkpoint a restarted trainer resumes from: the newest complete one; incomplete ones are moved aside."""

from __future__ import annotations

import json
from pathlib import Path

from purpcode.training.checkpoints import (
    checkpoint_step,
    discard_incomplete_checkpoints,
    is_complete_checkpoint,
    list_checkpoints,
    newest_complete_checkpoint,
    prune_discarded,
)


def make(
    root: Path, step: int, *, state: bool = True, weights: str | None = "model.safetensors", **kw: object
) -> Path:
    ckpt = root / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    if weights:
        (ckpt / weights).write_bytes(b"weights")
    if state:
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": kw.get("global_step", step)}))
    return ckpt


def test_complete_needs_state_for_its_own_step_and_weights(tmp_path: Path) -> None:
    assert is_complete_checkpoint(make(tmp_path, 2))
    assert not is_complete_checkpoint(make(tmp_path, 4, state=False))  # killed before the state was written
    assert not is_complete_checkpoint(make(tmp_path, 6, weights=None))
    assert not is_complete_checkpoint(make(tmp_path, 8, global_step=7))  # a copied/renamed directory
    torn = make(tmp_path, 10)
    (torn / "trainer_state.json").write_text('{"global_st')
    assert not is_complete_checkpoint(torn)
    empty = make(tmp_path, 12)
    (empty / "model.safetensors").write_bytes(b"")
    assert not is_complete_checkpoint(empty)
    assert not is_complete_checkpoint(tmp_path / "checkpoint-99")
    assert not is_complete_checkpoint(tmp_path)


def test_sharded_and_deepspeed_weights(tmp_path: Path) -> None:
    sharded = make(tmp_path, 1, weights=None)
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    (sharded / "model-00001-of-00002.safetensors").write_bytes(b"x")
    assert not is_complete_checkpoint(sharded)  # second shard missing
    (sharded / "model-00002-of-00002.safetensors").write_bytes(b"x")
    assert is_complete_checkpoint(sharded)

    ds = make(tmp_path, 3, weights=None)
    (ds / "latest").write_text("global_step3")
    assert not is_complete_checkpoint(ds)
    (ds / "global_step3").mkdir()
    (ds / "global_step3" / "mp_rank_00_model_states.pt").write_bytes(b"x")
    assert is_complete_checkpoint(ds)


def test_newest_complete_wins_and_numeric_order(tmp_path: Path) -> None:
    assert newest_complete_checkpoint(tmp_path / "missing") is None
    make(tmp_path, 2)
    make(tmp_path, 10)
    make(tmp_path, 12, state=False)
    (tmp_path / "checkpoint-x").mkdir()
    (tmp_path / "other").mkdir()
    assert [checkpoint_step(p) for p in list_checkpoints(tmp_path)] == [2, 10, 12]
    assert newest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"


def test_incomplete_newer_checkpoints_are_moved_aside(tmp_path: Path) -> None:
    make(tmp_path, 2)
    make(tmp_path, 3, state=False)  # older than the newest complete: left alone
    make(tmp_path, 4)
    make(tmp_path, 6, state=False)
    moved = discard_incomplete_checkpoints(tmp_path)
    assert len(moved) == 1 and moved[0].name.startswith(".incomplete-checkpoint-6-")
    assert (tmp_path / "checkpoint-3").exists() and not (tmp_path / "checkpoint-6").exists()
    assert newest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-4"
    prune_discarded(tmp_path)
    assert not any(p.name.startswith(".incomplete") for p in tmp_path.iterdir())


def test_nothing_complete_moves_every_incomplete_checkpoint(tmp_path: Path) -> None:
    make(tmp_path, 2, state=False)
    assert len(discard_incomplete_checkpoints(tmp_path)) == 1
    assert list_checkpoints(tmp_path) == []
