"""Find the checkpoint to resume from: the newest *complete* `checkpoint-N` directory.

Why "complete": a pod killed while the HF Trainer writes a checkpoint leaves a directory with weights but no
`trainer_state.json` (the Trainer writes it last), or a torn JSON file. Resuming from that would crash or lose
optimizer state, so such directories are skipped and, before training restarts, moved out of the way (the Trainer
would otherwise write the same step's checkpoint into a directory holding stale files).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
# Any one of these means the model weights are there (plain, sharded, adapter, or DeepSpeed's own format).
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
)


def checkpoint_step(path: str | os.PathLike[str]) -> int | None:
    """The step number of a `checkpoint-N` directory name, else None."""
    m = CHECKPOINT_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def _weights_present(ckpt: Path) -> bool:
    for name in WEIGHT_FILES:
        f = ckpt / name
        if not f.is_file() or f.stat().st_size == 0:
            continue
        if name.endswith(".index.json"):
            try:
                shards = set(json.loads(f.read_text(encoding="utf-8"))["weight_map"].values())
            except (json.JSONDecodeError, KeyError, OSError):
                return False
            return all((ckpt / s).is_file() for s in shards)
        return True
    # DeepSpeed ZeRO checkpoints: a `latest` tag file naming a global_stepN directory that exists.
    latest = ckpt / "latest"
    if latest.is_file():
        tag = latest.read_text(encoding="utf-8").strip()
        return bool(tag) and (ckpt / tag).is_dir() and any((ckpt / tag).iterdir())
    return False


def is_complete_checkpoint(path: str | os.PathLike[str]) -> bool:
    """True when `path` holds a readable trainer state for its own step and the model weights."""
    ckpt = Path(path)
    step = checkpoint_step(ckpt)
    if step is None or not ckpt.is_dir():
        return False
    try:
        state = json.loads((ckpt / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if not isinstance(state, dict) or state.get("global_step") != step:
        return False
    return _weights_present(ckpt)


def list_checkpoints(output_dir: str | os.PathLike[str]) -> list[Path]:
    """All `checkpoint-N` directories under `output_dir`, oldest step first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0)


def newest_complete_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The complete checkpoint with the highest step, or None when there is none."""
    for ckpt in reversed(list_checkpoints(output_dir)):
        if is_complete_checkpoint(ckpt):
            return ckpt
    return None


def discard_incomplete_checkpoints(output_dir: str | os.PathLike[str]) -> list[Path]:
    """Move incomplete checkpoints newer than the newest complete one aside (`.incomplete-checkpoint-N-<time>`).

    Call on the main process only, before training resumes. Returns the new paths of what was moved. Moved rather
    than deleted, so nothing is lost if the completeness rule ever misjudges a directory.
    """
    keep = newest_complete_checkpoint(output_dir)
    keep_step = (checkpoint_step(keep) or 0) if keep else -1
    moved: list[Path] = []
    for ckpt in list_checkpoints(output_dir):
        step = checkpoint_step(ckpt)
        if step is not None and step > keep_step and not is_complete_checkpoint(ckpt):
            target = ckpt.with_name(f".incomplete-{ckpt.name}-{int(time.time() * 1000)}")
            os.replace(ckpt, target)
            moved.append(target)
    return moved


def prune_discarded(output_dir: str | os.PathLike[str]) -> None:
    """Delete directories moved aside by `discard_incomplete_checkpoints` (after a run finished)."""
    root = Path(output_dir)
    if root.is_dir():
        for p in root.glob(".incomplete-checkpoint-*"):
            shutil.rmtree(p, ignore_errors=True)
