"""Dynamic sampling on constructed reward groups: planner, filter, per-step selection and counters."""

from __future__ import annotations

import math

import pytest

from purpcode.rl.sampling import (
    SamplingState,
    balance_groups,
    filter_groups,
    group_std,
    plan_prompt_count,
    refill_done,
    select_step,
)

G = 4
FLAT0 = [0.0] * G
FLAT1 = [1.0] * G
MIXED = [0.0, 1.0, 0.0, 0.8]


def test_plan_prompt_count_follows_last_ratio_and_cap() -> None:
    assert plan_prompt_count(8, None, 4.0) == 8  # first step: no evidence
    assert plan_prompt_count(8, 1.0, 4.0) == 8
    assert plan_prompt_count(8, 0.5, 4.0) == 16
    assert plan_prompt_count(8, 0.3, 4.0) == 27  # ceil(8 / 0.3) = 27
    assert plan_prompt_count(8, 0.1, 4.0) == 32  # capped at 4 x batch
    assert plan_prompt_count(8, 0.0, 4.0) == 32  # no group had variance: the cap
    assert plan_prompt_count(3, 0.5, 1.5) == 4  # floor(1.5 * 3) = 4
    assert plan_prompt_count(2, 2 / 3, 4.0) == 3  # 2 / 0.666.. = 3 exactly, float noise does not add one
    with pytest.raises(ValueError, match="batch"):
        plan_prompt_count(0, 0.5, 4.0)


def test_group_std_is_population_std_ignoring_nan() -> None:
    assert group_std(FLAT1) == 0.0
    assert group_std([0.0, 1.0]) == pytest.approx(0.5)
    assert group_std([1.0, math.nan, 1.0]) == 0.0
    assert group_std([math.nan, 1.0]) == 0.0  # one valid value: no variance


def test_filter_groups_drops_zero_variance_groups() -> None:
    rewards = FLAT0 + MIXED + FLAT1 + [0.8, 0.8, 0.8, 0.8 + 1e-7] + [0.0, 0.0, 0.0, 1.0]
    sel = filter_groups(rewards, G, 1e-5)
    assert sel.groups == 5
    assert sel.variance == [1, 4]
    assert sel.zero_variance == [0, 2, 3]  # std ~4e-8 <= 1e-5 counts as zero variance
    assert sel.ratio == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="groups of 4"):
        filter_groups(rewards[:-1], G, 1e-5)


def test_single_step_trains_on_a_variable_batch_and_counts_waste() -> None:
    # Rank 0 generated 6 groups, 3 with variance; one round only (single-step never regenerates).
    sel = filter_groups(FLAT0 + MIXED + MIXED + FLAT1 + MIXED + FLAT0, G, 1e-5)
    step = select_step([[sel]], "single-step", batch=2)
    assert step.kept == [
        [(0, 0, 1), (0, 0, 2), (0, 0, 4)]
    ]  # 3 groups although batch is 2: no cap in single-step
    assert (step.groups_generated, step.groups_kept, step.groups_dropped) == (6, 3, 3)
    assert step.zero_variance_groups == 3
    assert (step.samples_generated, step.samples_wasted) == (24, 12)
    assert step.variance_ratio == pytest.approx(0.5)
    # Another step with one group of variance: the batch really varies.
    step2 = select_step([[filter_groups(FLAT0 + MIXED, G, 1e-5)]], "single-step", batch=2)
    assert step2.kept == [[(0, 0, 1)]] and step2.groups_kept == 1


def test_single_step_with_no_variance_keeps_nothing() -> None:
    step = select_step([[filter_groups(FLAT0 + FLAT1, G, 1e-5)]], "single-step", batch=2)
    assert step.kept == [[]]
    assert (step.groups_kept, step.groups_dropped, step.samples_wasted) == (0, 2, 8)
    assert step.variance_ratio == 0.0


def test_none_mode_keeps_every_group_but_counts_zero_variance() -> None:
    step = select_step([[filter_groups(FLAT0 + MIXED + FLAT1, G, 1e-5)]], "none", batch=3)
    assert step.kept == [[(0, 0, 0), (0, 0, 1), (0, 0, 2)]]
    assert (step.groups_dropped, step.samples_wasted, step.zero_variance_groups) == (0, 0, 2)


def test_refill_collects_batch_groups_over_rounds_and_truncates() -> None:
    r0 = [filter_groups(FLAT0 + MIXED, G, 1e-5)]
    assert not refill_done([r0], batch=2)
    r1 = [filter_groups(MIXED + MIXED, G, 1e-5)]
    assert refill_done([r0, r1], batch=2)
    step = select_step([r0, r1], "refill", batch=2)
    assert step.kept == [[(0, 0, 1), (1, 0, 0)]]  # exactly batch groups; the surplus one is wasted
    assert step.rounds == 2
    assert (step.groups_generated, step.groups_kept, step.groups_dropped) == (4, 2, 2)
    assert step.samples_wasted == 8


def test_ranks_share_informative_groups_instead_of_dropping_them() -> None:
    rank0 = filter_groups(MIXED + MIXED + MIXED, G, 1e-5)
    rank1 = filter_groups(FLAT0 + MIXED + FLAT1, G, 1e-5)
    step = select_step([[rank0, rank1]], "single-step", batch=3)
    # All 4 informative groups train: rank 0's third moves to rank 1 (the old rule trimmed both ranks to 1).
    assert step.kept == [[(0, 0, 0), (0, 0, 1)], [(0, 1, 1), (0, 0, 2)]]
    assert step.fillers == [0, 0] and step.groups_moved == 1
    assert (step.groups_generated, step.groups_kept, step.groups_dropped) == (6, 4, 2)
    assert step.variance_ratio == pytest.approx(4 / 6)


def test_an_odd_total_leaves_one_rank_a_filler() -> None:
    rank0 = filter_groups(MIXED + MIXED + MIXED, G, 1e-5)
    rank1 = filter_groups(FLAT0 + FLAT1 + FLAT0, G, 1e-5)
    step = select_step([[rank0, rank1]], "single-step", batch=3)
    assert step.kept == [[(0, 0, 0), (0, 0, 1)], [(0, 0, 2)]]
    assert step.fillers == [0, 1] and step.groups_kept == 3 and step.groups_dropped == 3


def test_balance_groups_moves_as_few_as_possible() -> None:
    per = [[(0, 0, i) for i in range(5)], [], [(0, 2, 0)], [(0, 3, 0), (0, 3, 1)]]
    out = balance_groups(per)
    assert sorted(len(x) for x in out) == [2, 2, 2, 2]
    assert sorted(ref for refs in out for ref in refs) == sorted(ref for refs in per for ref in refs)
    moved = sum(1 for k, refs in enumerate(out) for ref in refs if ref[1] != k)
    assert moved == 3  # rank 0's surplus of 3 fills rank 1 (2) and rank 2 (1)


def test_refill_caps_the_total_not_each_rank() -> None:
    rank0 = filter_groups(MIXED + MIXED + MIXED, G, 1e-5)
    rank1 = filter_groups(FLAT0 + MIXED + FLAT1, G, 1e-5)
    assert refill_done([[rank0, rank1]], batch=2)
    step = select_step([[rank0, rank1]], "refill", batch=2)
    assert [len(k) for k in step.kept] == [2, 2] and step.groups_kept == 4


def test_sampling_state_accumulates_and_tracks_ratio() -> None:
    state = SamplingState()
    state.update(select_step([[filter_groups(FLAT0 + MIXED, G, 1e-5)]], "single-step", 2))
    state.update(select_step([[filter_groups(MIXED + MIXED + FLAT1, G, 1e-5)]], "single-step", 2))
    assert state.steps == 2
    assert (state.groups_generated, state.groups_kept, state.groups_dropped) == (5, 3, 2)
    assert (state.samples_generated, state.samples_wasted) == (20, 8)
    assert state.last_ratio == pytest.approx(2 / 3)
    assert plan_prompt_count(2, state.last_ratio, 4.0) == 3
    restored = SamplingState.model_validate_json(state.model_dump_json())
    assert restored == state
