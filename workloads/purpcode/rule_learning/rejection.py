"""Rejection sampling rules, as pure functions over scored samples (RECIPE.md stage 2).

- keep a sample when its reward >= the rejection threshold (0.5);
- best-of-N per prompt among the kept: highest reward, ties broken by the shortest response (then the lowest
  sample index, so the choice is deterministic);
- a prompt is "easy" when the share of its samples that were kept is >= the easy threshold (0.7); easy prompts
  are skipped by RL, where they would mostly form zero-variance groups. This matches the reference, which counts
  verified samples (score >= 0.5) against 0.7 x samples per prompt.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from purpcode.data.schema import write_json_atomic


@dataclass(frozen=True)
class Scored:
    """One scored sample of one prompt."""

    task_id: str
    index: int
    response: str
    reward: float
    oracle: str = ""
    set_name: str = ""
    format_ok: bool = True


def kept(samples: Iterable[Scored], threshold: float) -> list[Scored]:
    """Samples whose reward reaches the threshold."""
    return [s for s in samples if s.reward >= threshold]


def best_of_n(samples: Sequence[Scored], threshold: float) -> Scored | None:
    """The sample to train on for one prompt, or None when none was kept."""
    candidates = kept(samples, threshold)
    if not candidates:
        return None
    return min(candidates, key=lambda s: (-s.reward, len(s.response), s.index))


def group_by_task(samples: Iterable[Scored]) -> dict[str, list[Scored]]:
    """Samples per task id, in first-seen task order, each group ordered by sample index."""
    groups: dict[str, list[Scored]] = defaultdict(list)
    for s in samples:
        groups[s.task_id].append(s)
    return {k: sorted(v, key=lambda s: s.index) for k, v in groups.items()}


def pass_rate(samples: Sequence[Scored], threshold: float) -> float:
    """Share of a prompt's samples that were kept (0 for no samples)."""
    return len(kept(samples, threshold)) / len(samples) if samples else 0.0


def easy_task_ids(groups: dict[str, list[Scored]], *, threshold: float, easy_threshold: float) -> list[str]:
    """Task ids whose pass rate >= easy_threshold, sorted."""
    return sorted(t for t, group in groups.items() if group and pass_rate(group, threshold) >= easy_threshold)


def write_easy_ids(
    path: str | os.PathLike[str],
    task_ids: Sequence[str],
    *,
    threshold: float,
    easy_threshold: float,
    samples_per_prompt: int,
    prompts: int,
) -> None:
    """Write the easy-id file RL reads (`layout.Layout.easy_ids`): the ids plus how they were decided."""
    write_json_atomic(
        path,
        {
            "task_ids": list(task_ids),
            "rejection_threshold": threshold,
            "easy_threshold": easy_threshold,
            "samples_per_prompt": samples_per_prompt,
            "prompts_sampled": prompts,
        },
    )


def read_easy_ids(path: str | os.PathLike[str]) -> set[str]:
    """The task ids in an easy-id file (a JSON object with `task_ids`, or a plain JSON list)."""
    with open(path, encoding="utf-8") as fh:
        data: Any = json.load(fh)
    ids = data.get("task_ids") if isinstance(data, dict) else data
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError(f"{path}: expected {{'task_ids': [str, ...]}}")
    return set(ids)
