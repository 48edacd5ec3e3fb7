"""Rejection sampling rules on constructed samples: threshold, best-of-N, ties, pass rate, easy ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from purpcode.rule_learning.rejection import (
    Scored,
    best_of_n,
    easy_task_ids,
    group_by_task,
    kept,
    pass_rate,
    read_easy_ids,
    write_easy_ids,
)


def s(task: str, index: int, reward: float, text: str = "x") -> Scored:
    return Scored(task_id=task, index=index, response=text, reward=reward)


def test_keep_is_reward_at_or_above_threshold() -> None:
    group = [s("t", 0, 0.0), s("t", 1, 0.49), s("t", 2, 0.5), s("t", 3, 0.8), s("t", 4, 1.0)]
    assert [x.index for x in kept(group, 0.5)] == [2, 3, 4]
    assert [x.index for x in kept(group, 0.0)] == [0, 1, 2, 3, 4]


def test_best_of_n_prefers_highest_reward_even_when_longer() -> None:
    group = [s("t", 0, 0.8, "short"), s("t", 1, 1.0, "a much longer answer"), s("t", 2, 0.0, "")]
    best = best_of_n(group, 0.5)
    assert best is not None and best.index == 1


def test_best_of_n_ties_go_to_the_shortest_then_lowest_index() -> None:
    group = [s("t", 0, 1.0, "aaaa"), s("t", 1, 1.0, "aa"), s("t", 2, 1.0, "bb"), s("t", 3, 0.8, "a")]
    best = best_of_n(group, 0.5)
    assert best is not None and best.index == 1  # "aa" and "bb" tie on length: lower index
    assert best_of_n(list(reversed(group)), 0.5) == best  # order of arrival does not matter


def test_best_of_n_none_when_nothing_passes() -> None:
    assert best_of_n([s("t", 0, 0.0), s("t", 1, 0.4)], 0.5) is None
    assert best_of_n([], 0.5) is None


def test_soft_codesec_reward_counts_as_kept() -> None:
    # 0.8 (safe answer without code) passes the 0.5 threshold but loses to a 1.0
    best = best_of_n([s("t", 0, 0.8, "no code"), s("t", 1, 1.0, "```python\nx = 1\n```")], 0.5)
    assert best is not None and best.reward == 1.0


@pytest.mark.parametrize(
    ("passing", "n", "easy"),
    [(7, 10, True), (6, 10, False), (3, 4, True), (2, 4, False), (6, 8, True), (5, 8, False)],
)
def test_easy_fraction_count_is_pass_rate_at_least_point_seven(passing: int, n: int, easy: bool) -> None:
    group = [s("t", i, 1.0 if i < passing else 0.0) for i in range(n)]
    assert pass_rate(group, 0.5) == pytest.approx(passing / n)
    assert (easy_task_ids({"t": group}, threshold=0.5, easy_threshold=0.7, count="fraction") == ["t"]) is easy


@pytest.mark.parametrize(
    ("passing", "n", "easy"),
    [(5, 8, True), (4, 8, False), (7, 10, True), (6, 10, False), (3, 4, True), (2, 4, False)],
)
def test_easy_reference_count_is_point_seven_of_n_minus_one(passing: int, n: int, easy: bool) -> None:
    """The reference compares passes with 0.7 x its largest 0-based sample index (N - 1): 5 of 8 is easy."""
    group = [s("t", i, 1.0 if i < passing else 0.0) for i in range(n)]
    assert (easy_task_ids({"t": group}, threshold=0.5, easy_threshold=0.7) == ["t"]) is easy
    assert (
        easy_task_ids({"t": group}, threshold=0.5, easy_threshold=0.7, count="reference") == ["t"]
    ) is easy


def test_easy_count_unknown_is_refused() -> None:
    with pytest.raises(ValueError, match="easyCount"):
        easy_task_ids({"t": [s("t", 0, 1.0)]}, threshold=0.5, easy_threshold=0.7, count="median")


def test_group_by_task_orders_by_sample_index() -> None:
    groups = group_by_task([s("b", 1, 0), s("a", 0, 0), s("b", 0, 1)])
    assert list(groups) == ["b", "a"]
    assert [x.index for x in groups["b"]] == [0, 1]


def test_easy_ids_file_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "easy_ids.json"
    write_easy_ids(path, ["a", "b"], threshold=0.5, easy_threshold=0.7, samples_per_prompt=8, prompts=3)
    data = json.loads(path.read_text())
    assert data["task_ids"] == ["a", "b"] and data["easy_threshold"] == 0.7 and data["prompts_sampled"] == 3
    assert read_easy_ids(path) == {"a", "b"}
    (tmp_path / "list.json").write_text('["x"]')
    assert read_easy_ids(tmp_path / "list.json") == {"x"}
    (tmp_path / "bad.json").write_text('{"ids": 3}')
    with pytest.raises(ValueError, match="task_ids"):
        read_easy_ids(tmp_path / "bad.json")
