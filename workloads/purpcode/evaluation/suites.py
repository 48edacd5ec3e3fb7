"""What the evaluation stage evaluates: the held-out prompt sets of synthesis, plus public benchmark files.

Held-out sets are `<data>/<set>.heldout.jsonl` (the synthesis stage's split; RL validates on the same files, and
neither stage trains on them). Every suite is a list of TaskRows with one oracle and so one metric.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from purpcode.data.schema import SET_ORACLES, TaskRow, read_rows
from purpcode.evaluation.metrics import METRICS, MetricDef

LOG = logging.getLogger(__name__)

HELD_OUT_SUFFIX = ".heldout.jsonl"

SUITE_LABELS: dict[str, str] = {
    "codesec": "Vulnerability-inducing prompts",
    "malicious": "Malicious-event prompts",
    "overrefusal": "Benign trigger-word prompts",
    "secqa": "Security Q&A",
    "utility": "Coding tasks",
}


@dataclass
class Suite:
    """One evaluated prompt set and its metric."""

    name: str
    label: str
    source: str  # 'held-out' or 'benchmark:<kind>'
    metric: MetricDef
    rows: list[TaskRow] = field(default_factory=list)
    note: str = ""


def held_out_path(data_dir: str | Path, set_name: str) -> Path:
    return Path(data_dir) / f"{set_name}{HELD_OUT_SUFFIX}"


def load_held_out(data_dir: str | Path, name: str, limit: int) -> Suite:
    """The first `limit` held-out rows of a synthesis set (a missing file is an empty suite with a note)."""
    if name not in SET_ORACLES:
        raise ValueError(f"evaluation suite {name!r}: use one of {', '.join(SET_ORACLES)}")
    oracle = SET_ORACLES[name]
    suite = Suite(name=name, label=SUITE_LABELS.get(name, name), source="held-out", metric=METRICS[oracle])
    path = held_out_path(data_dir, name)
    if not path.is_file():
        suite.note = f"{path.name} not found in the synthesis output"
        LOG.warning("evaluation: %s is missing; suite %r is empty", path, name)
        return suite
    rows = read_rows(path)
    wrong = [r.task_id for r in rows if r.oracle != oracle]
    if wrong:
        raise ValueError(f"{path}: rows {wrong[:3]} have an oracle other than {oracle!r} (suite {name!r})")
    suite.rows = rows[:limit]
    return suite
