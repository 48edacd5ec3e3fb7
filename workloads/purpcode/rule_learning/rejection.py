"""Rejection sampling rules, as pure functions over scored samples (RECIPE.md stage 2).

- keep a sample when its reward >= the rejection threshold (0.5);
- best-of-N per prompt among the kept: highest reward, ties broken by the shortest response (then the lowest
  sample index, so the choice is deterministic);
- a prompt is "easy" (skipped by RL, where it would mostly form zero-variance groups) by one of two counts
  (`ruleLearning.easyCount`):
  "reference": kept samples >= easy threshold x (N - 1). The reference writes `>= sample_per_prompt * 0.7` but its
  `sample_per_prompt` is the largest 0-based sample index, N - 1, so 5 of 8 is easy (0.7 x 7 = 4.9);
  "fraction": kept / N >= the easy threshold (6 of 8).
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


EASY_COUNTS: tuple[str, ...] = ("reference", "fraction")


def is_easy(
    samples: Sequence[Scored], *, threshold: float, easy_threshold: float, count: str = "reference"
) -> bool:
    """Whether a prompt's samples make it easy under the `count` rule (see the module docstring)."""
    if not samples:
        return False
    passes = len(kept(samples, threshold))
    if count == "reference":
        return passes >= easy_threshold * (len(samples) - 1)
    if count == "fraction":
        return passes / len(samples) >= easy_threshold
    raise ValueError(f"easyCount={count!r}: use one of {', '.join(EASY_COUNTS)}")


def easy_task_ids(
    groups: dict[str, list[Scored]], *, threshold: float, easy_threshold: float, count: str = "reference"
) -> list[str]:
    """Task ids that are easy under the `count` rule, sorted."""
    return sorted(
        t
        for t, group in groups.items()
        if is_easy(group, threshold=threshold, easy_threshold=easy_threshold, count=count)
    )


def write_easy_ids(
    path: str | os.PathLike[str],
    task_ids: Sequence[str],
    *,
    threshold: float,
    easy_threshold: float,
    samples_per_prompt: int,
    prompts: int,
    count: str = "reference",
) -> None:
    """Write the easy-id file RL reads (`layout.Layout.easy_ids`): the ids plus how they were decided."""
    write_json_atomic(
        path,
        {
            "task_ids": list(task_ids),
            "rejection_threshold": threshold,
            "easy_threshold": easy_threshold,
            "easy_count": count,
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
