"""Which prompts rule learning samples: a share of each safety set (capped) plus utility coding tasks.

Recipe (stage 2): about 25% of each safety set, at most 4096 (or 2048) per set, plus utility tasks with tests; a
fixed seed. Only the train splits are read: the held-out splits stay unseen for RL validation and evaluation.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from purpcode.data.schema import TaskRow, read_rows

log = logging.getLogger(__name__)

SAFETY_SETS: tuple[str, ...] = ("codesec", "malicious", "overrefusal", "secqa")
UTILITY_SET = "utility"


@dataclass
class PromptMix:
    """The chosen rows (set name, row) in a fixed order, and how many each set offered and gave."""

    rows: list[tuple[str, TaskRow]] = field(default_factory=list)
    available: dict[str, int] = field(default_factory=dict)
    chosen: dict[str, int] = field(default_factory=dict)


def train_file(data_dir: str | Path, set_name: str) -> Path:
    return Path(data_dir) / f"{set_name}.train.jsonl"


def _take(rows: list[TaskRow], k: int, *, seed: int, set_name: str) -> list[TaskRow]:
    """k rows drawn without replacement by a RNG seeded from (seed, set name), in their file order."""
    if k >= len(rows):
        return list(rows)
    rng = random.Random(f"{seed}:{set_name}")
    picked = sorted(rng.sample(range(len(rows)), k))
    return [rows[i] for i in picked]


def select_prompts(
    data_dir: str | Path,
    *,
    sample_fraction: float,
    per_set_cap: int,
    utility_prompts: int,
    seed: int,
) -> PromptMix:
    """Read the train splits in `data_dir` and pick the prompt mix.

    Each safety set gives min(per_set_cap, ceil(sample_fraction x size)) rows; the utility set gives
    min(utility_prompts, size). A missing set file counts as empty (logged); no set at all is an error, as is a
    task id that appears twice.
    """
    mix = PromptMix()
    plan = [(s, None) for s in SAFETY_SETS] + [(UTILITY_SET, utility_prompts)]
    for set_name, fixed in plan:
        path = train_file(data_dir, set_name)
        if not path.is_file():
            log.warning("no %s in %s: the set contributes no prompts", path.name, data_dir)
            mix.available[set_name] = 0
            mix.chosen[set_name] = 0
            continue
        rows = read_rows(path)
        want = fixed if fixed is not None else min(per_set_cap, math.ceil(sample_fraction * len(rows)))
        picked = _take(rows, max(0, want), seed=seed, set_name=set_name)
        mix.available[set_name] = len(rows)
        mix.chosen[set_name] = len(picked)
        mix.rows.extend((set_name, r) for r in picked)
    if not any(mix.available.values()):
        expected = ", ".join(f"{s}.train.jsonl" for s in (*SAFETY_SETS, UTILITY_SET))
        raise FileNotFoundError(f"--data {data_dir}: no prompt sets found (expected some of {expected})")
    seen: dict[str, str] = {}
    for set_name, row in mix.rows:
        if row.task_id in seen:
            raise ValueError(
                f"task_id {row.task_id!r} appears in both {seen[row.task_id]} and {set_name}: task ids must be unique"
            )
        seen[row.task_id] = set_name
    return mix
