"""Issue 19, point 3: evaluation generates greedily and never shorter than RL completes (reference: 8192)."""

from __future__ import annotations

import pytest

from purpcode_operator.api import EvaluationSpec, RLSpec, Stages
from purpcode_operator.validate import SpecError, validate_run


def test_defaults_are_the_references() -> None:
    gen = EvaluationSpec().generation
    assert (gen.temperature, gen.max_new_tokens) == (0.0, 8192)
    assert gen.max_new_tokens >= RLSpec().max_completion_length == 3072


def test_evaluating_shorter_than_rl_is_refused_with_the_fields_named() -> None:
    with pytest.raises(
        ValueError, match="maxNewTokens must be >= rl.maxCompletionLength when both stages run"
    ):
        Stages.model_validate({"evaluation": {"generation": {"maxNewTokens": 2048}}})
    with pytest.raises(
        ValueError, match="maxNewTokens must be >= rl.maxCompletionLength when both stages run"
    ):
        Stages.model_validate({"rl": {"maxCompletionLength": 9000}})
    Stages.model_validate(
        {"rl": {"maxCompletionLength": 64}, "evaluation": {"generation": {"maxNewTokens": 64}}}
    )
    # Evaluation alone (a model trained elsewhere) may use any length.
    Stages.model_validate({"rl": {"enabled": False}, "evaluation": {"generation": {"maxNewTokens": 64}}})
    doc = {
        "apiVersion": "purpcode.dev/v1alpha1",
        "kind": "PurpCodeRun",
        "metadata": {"name": "r"},
        "spec": {
            "model": {"name": "tiny-random"},
            "stages": {"evaluation": {"generation": {"maxNewTokens": 100}}},
        },
    }
    with pytest.raises(SpecError) as err:
        validate_run(doc)
    assert "maxCompletionLength" in str(err.value)
