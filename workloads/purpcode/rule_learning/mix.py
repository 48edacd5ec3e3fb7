"""Which prompts rule learning samples: a share of each source of each safety set (capped per source), multi-turn
conversations whole, security Q&A and utility coding tasks with caps of their own.

Recipe (stage 2, as the reference's distillation script does it): 25% of each source data set, at most 4096 prompts
from one source (2048 for the vul2vul and jailbreaking Vul2Prompt sets), security Q&A and utility coding tasks
sampled separately with their own caps, multi-turn sets taken whole; a fixed seed. A "source" is a released data
set for imported rows (`source: import:<name>`) and `<set>/<strategy>` for synthesised ones, so a merged set of
several sources is not capped as one (which would leave ~4k codesec prompts against the reference's ~17k).
Only the train splits are read: the held-out splits stay unseen for RL validation and evaluation.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from purpcode.data.schema import TaskRow, read_rows

log = logging.getLogger(__name__)

SAFETY_SETS: tuple[str, ...] = ("codesec", "malicious", "overrefusal", "secqa")
UTILITY_SET = "utility"
SECQA_SET = "secqa"
# The reference's per-source caps below the common one (its released names, and our synthesis strategies).
REFERENCE_SOURCE_CAPS: dict[str, int] = {
    "vul2prompt-vul2vul-oss-21k": 2048,
    "vul2prompt-jailbreaking-oss-11k": 2048,
    "codesec/vul2vul": 2048,
    "codesec/jailbreak": 2048,
}


@dataclass
class PromptMix:
    """The chosen rows (set name, row) in a fixed order, and how many each set and source offered and gave."""

    rows: list[tuple[str, TaskRow]] = field(default_factory=list)
    available: dict[str, int] = field(default_factory=dict)
    chosen: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)


def train_file(data_dir: str | Path, set_name: str) -> Path:
    return Path(data_dir) / f"{set_name}.train.jsonl"


def source_key(set_name: str, row: TaskRow) -> str:
    """The source a row is capped within: the released set's name for imports, else `<set>/<strategy>`."""
    if row.source.startswith("import:"):
        return row.source.removeprefix("import:")
    return f"{set_name}/{row.strategy}" if row.strategy else set_name


def is_multi_turn(row: TaskRow) -> bool:
    return sum(1 for m in row.messages if m.role == "user") > 1


def _take(rows: list[TaskRow], k: int, *, seed: int, key: str) -> list[TaskRow]:
    """k rows drawn without replacement by a RNG seeded from (seed, key), in their file order."""
    if k >= len(rows):
        return list(rows)
    rng = random.Random(f"{seed}:{key}")
    picked = sorted(rng.sample(range(len(rows)), k))
    return [rows[i] for i in picked]


def select_prompts(
    data_dir: str | Path,
    *,
    sample_fraction: float,
    per_set_cap: int,
    utility_prompts: int,
    seed: int,
    source_caps: Mapping[str, int] | None = None,
    secqa_cap: int | None = None,
    utility_fraction: float = 1.0,
    multi_turn_whole: bool = True,
) -> PromptMix:
    """Read the train splits in `data_dir` and pick the prompt mix.

    Each source of a safety set gives min(cap, ceil(sample_fraction x its size)) rows, where cap is
    `source_caps[source]`, else `secqa_cap` for security Q&A, else `per_set_cap` (the common per-source cap); with
    `multi_turn_whole` its multi-turn rows are all taken. Utility gives min(utility_prompts, ceil(utility_fraction x
    size)). A missing set file counts as empty (logged); no set at all is an error, as is a task id seen twice.
    """
    caps = dict(source_caps or {})
    mix = PromptMix()
    for set_name in (*SAFETY_SETS, UTILITY_SET):
        path = train_file(data_dir, set_name)
        if not path.is_file():
            log.warning("no %s in %s: the set contributes no prompts", path.name, data_dir)
            mix.available[set_name] = 0
            mix.chosen[set_name] = 0
            continue
        rows = read_rows(path)
        picked: list[TaskRow] = []
        if set_name == UTILITY_SET:
            want = min(utility_prompts, math.ceil(utility_fraction * len(rows)))
            picked = _take(rows, max(0, want), seed=seed, key=set_name)
            mix.by_source[set_name] = {"available": len(rows), "chosen": len(picked)}
        else:
            sources: dict[str, list[TaskRow]] = {}
            for row in rows:
                sources.setdefault(source_key(set_name, row), []).append(row)
            chosen_ids: set[str] = set()
            for key, members in sources.items():
                whole = [r for r in members if multi_turn_whole and is_multi_turn(r)]
                single = [r for r in members if not (multi_turn_whole and is_multi_turn(r))]
                default_cap = secqa_cap if (set_name == SECQA_SET and secqa_cap is not None) else per_set_cap
                cap = caps.get(key, default_cap)
                want = min(cap, math.ceil(sample_fraction * len(single)))
                # Seeded by the set for the set-named source: the same draw as before sources existed.
                taken = _take(single, max(0, want), seed=seed, key=key)
                chosen_ids.update(r.task_id for r in (*whole, *taken))
                mix.by_source[f"{set_name}:{key}"] = {
                    "available": len(members),
                    "chosen": len(whole) + len(taken),
                    "multi_turn_whole": len(whole),
                }
            picked = [r for r in rows if r.task_id in chosen_ids]  # file order
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
