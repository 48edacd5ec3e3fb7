"""The prompt mix: share of each safety set, per-set cap, utility count, fixed seed, train splits only."""

from __future__ import annotations

from pathlib import Path

import pytest

from purpcode.data.schema import TaskRow, write_jsonl_atomic
from purpcode.rule_learning.mix import select_prompts


def make_set(data: Path, name: str, n: int, oracle: str, split: str = "train") -> None:
    rows = [
        TaskRow(task_id=f"{name}/{i}", messages=[{"role": "user", "content": f"{name} {i}"}], oracle=oracle)
        for i in range(n)
    ]
    write_jsonl_atomic(data / f"{name}.{split}.jsonl", rows)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    make_set(tmp_path, "codesec", 40, "codesec")
    make_set(tmp_path, "malicious", 10, "general-safety")
    make_set(tmp_path, "secqa", 3, "noreject")
    make_set(tmp_path, "utility", 20, "correctness")
    make_set(tmp_path, "codesec", 5, "codesec", split="heldout")
    return tmp_path


def test_fraction_cap_and_utility_count(data: Path) -> None:
    mix = select_prompts(data, sample_fraction=0.25, per_set_cap=8, utility_prompts=6, seed=666)
    # codesec: ceil(0.25 * 40) = 10 capped at 8; malicious: ceil(2.5) = 3; secqa: ceil(0.75) = 1; utility: 6
    assert mix.chosen == {"codesec": 8, "malicious": 3, "overrefusal": 0, "secqa": 1, "utility": 6}
    assert mix.available == {"codesec": 40, "malicious": 10, "overrefusal": 0, "secqa": 3, "utility": 20}
    assert all(not r.task_id.startswith("codesec/heldout") for _, r in mix.rows)
    assert {s for s, _ in mix.rows} == {"codesec", "malicious", "secqa", "utility"}
    assert all(r.task_id.startswith(f"{s}/") for s, r in mix.rows)


def test_same_seed_same_mix_other_seed_other_mix(data: Path) -> None:
    a = select_prompts(data, sample_fraction=0.25, per_set_cap=8, utility_prompts=6, seed=666)
    b = select_prompts(data, sample_fraction=0.25, per_set_cap=8, utility_prompts=6, seed=666)
    c = select_prompts(data, sample_fraction=0.25, per_set_cap=8, utility_prompts=6, seed=1)
    ids = lambda m: [r.task_id for _, r in m.rows]  # noqa: E731
    assert ids(a) == ids(b)
    assert ids(a) != ids(c)


def test_whole_sets_when_fraction_is_one(data: Path) -> None:
    mix = select_prompts(data, sample_fraction=1.0, per_set_cap=1000, utility_prompts=1000, seed=666)
    assert mix.chosen["codesec"] == 40 and mix.chosen["utility"] == 20
    assert [r.task_id for s, r in mix.rows if s == "secqa"] == ["secqa/0", "secqa/1", "secqa/2"]


def test_no_sets_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="codesec.train.jsonl"):
        select_prompts(tmp_path, sample_fraction=0.25, per_set_cap=8, utility_prompts=6, seed=666)


def test_duplicate_task_ids_across_sets_are_rejected(tmp_path: Path) -> None:
    make_set(tmp_path, "codesec", 2, "codesec")
    row = TaskRow(task_id="codesec/0", messages=[{"role": "user", "content": "q"}], oracle="noreject")
    write_jsonl_atomic(tmp_path / "secqa.train.jsonl", [row])
    with pytest.raises(ValueError, match="codesec/0"):
        select_prompts(tmp_path, sample_fraction=1.0, per_set_cap=8, utility_prompts=0, seed=666)
