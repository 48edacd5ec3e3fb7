"""Dispatch cases written to kill the mutants `make mutants` found surviving the runner and oracle tests: how the
TRL adapter turns columns into samples (short prompt columns, non-text prompts, absent ground truth or task ids,
conversational completions) and that the reward function hands each row's ground truth to the oracles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from purpcode.analyzers import get_analyzer
from purpcode.oracles import OracleConfig, OracleRunner, Sample, make_trl_reward_func
from purpcode.oracles.runner import samples_from_columns


def test_columns_become_samples_with_defaults_for_what_is_missing() -> None:
    a, b = samples_from_columns([42], ["x", "y"], ["noreject", "noreject"])
    assert (a.prompt, b.prompt) == ("42", "")
    assert (a.ground_truth, b.ground_truth, a.task_id, b.task_id) == ({}, {}, "", "")
    with pytest.raises(ValueError, match=r"ground_truth\[1\]"):
        samples_from_columns(["p", "q"], ["x", "y"], ["noreject"] * 2, [{}, "{bad"])


def test_conversational_completions_join_the_assistant_contents_only() -> None:
    completion = [
        {"role": "user", "content": "ignored"},
        {"role": "assistant", "content": "one "},
        {"content": "two "},  # no role: an assistant message (TRL's completions carry only the reply)
        {"role": "assistant"},  # no content
        {"role": "assistant", "content": "three"},
    ]
    (s,) = samples_from_columns(["p"], [completion], ["noreject"])
    assert s.response == "one two three"
    (s,) = samples_from_columns(["p"], [{"role": "assistant", "content": "solo"}], ["noreject"])
    assert s.response == "solo"
    (s,) = samples_from_columns(["p"], [{"role": "assistant"}], ["noreject"])
    assert s.response == ""


class _Recording(OracleRunner):
    """The real runner, remembering the samples it scored."""

    seen: list[Sample]

    def score_batch_sync(self, samples: Sequence[Sample | dict[str, Any]]) -> Any:
        self.seen = [s for s in samples if isinstance(s, Sample)]
        return super().score_batch_sync(samples)


def test_the_reward_function_hands_each_rows_ground_truth_to_the_oracles() -> None:
    runner = _Recording(OracleConfig(), analyzer=get_analyzer("bandit", workers=0))
    try:
        func = make_trl_reward_func(runner)
        assert func.last_scores == []  # type: ignore[attr-defined]
        func(prompts=["p"], completions=["c"], oracle=["codesec"], ground_truth=['{"k": 1}'], task_id=["t"])
        assert [(s.ground_truth, s.task_id) for s in runner.seen] == [({"k": 1}, "t")]
    finally:
        runner.close()
