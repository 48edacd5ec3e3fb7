"""Dynamic-sampling cases written to kill the mutants `make mutants` found surviving tests/rl/test_sampling.py."""

from __future__ import annotations

import pytest

from purpcode.rl.sampling import GroupSelection, filter_groups, plan_prompt_count, refill_done, select_step


def test_planner_boundaries_and_errors() -> None:
    assert plan_prompt_count(1, None, 4.0) == 1  # one prompt is a valid batch
    assert plan_prompt_count(4, 0.5, 1.0) == 4  # maxOversample 1: never more than the batch
    with pytest.raises(ValueError, match=r"batch=0: must be >= 1 prompt"):
        plan_prompt_count(0, None, 4.0)
    with pytest.raises(ValueError, match=r"maxOversample=0.5: must be >= 1"):
        plan_prompt_count(4, None, 0.5)


def test_planner_rounds_up_beyond_float_noise_only() -> None:
    assert plan_prompt_count(8, 0.7, 4.0) == 12  # 11.43 -> 12 (rounding to an integer first would say 11)
    assert (
        plan_prompt_count(4, 4 / 4.0000000003, 4.0) == 4
    )  # 4.0000000003: noise below 1e-9, not a 5th prompt
    assert plan_prompt_count(4, 4 / 4.000001, 4.0) == 5  # a real excess still rounds up


def test_filter_groups_size_one_and_errors() -> None:
    sel = filter_groups([1.0, 0.0], 1, 0.0)
    assert (sel.variance, sel.zero_variance) == ([], [0, 1])  # one sample per group: never any variance
    with pytest.raises(ValueError, match=r"group_size=0: must be >= 1"):
        filter_groups([1.0], 0, 0.0)


def _sel(n: int) -> GroupSelection:
    return GroupSelection(group_size=2, stds=[0.5] * n, variance=list(range(n)), zero_variance=[])


def test_select_step_rejects_malformed_rounds() -> None:
    with pytest.raises(ValueError, match="select_step needs at least one generation round"):
        select_step([], "single-step", 2)
    with pytest.raises(ValueError, match="every generation round needs one selection per rank"):
        select_step([[_sel(1), _sel(1)], [_sel(1)]], "single-step", 2)  # rank count differs between rounds


def test_refill_done_at_exactly_the_batch() -> None:
    assert refill_done([], 2) is False
    assert refill_done([[_sel(2)]], 2) is True
    assert refill_done([[_sel(1)], [_sel(1)]], 2) is True
    assert refill_done([[_sel(1)]], 2) is False
