"""Evaluation metrics from oracle details: each metric's yes/no question, its no-verdict case, and the rates."""

from __future__ import annotations

import pytest

from purpcode.evaluation.metrics import METRICS, SampleRecord, delta, summarize


def _rec(
    flagged: bool | None, *, format_ok: bool = True, reward: float = 1.0, error: str | None = None
) -> SampleRecord:
    return SampleRecord(
        suite="s",
        task_id="t",
        oracle="codesec",
        model="base",
        prompt="p",
        response="r",
        format_ok=format_ok,
        reward=reward,
        flagged=flagged,
        error=error,
    )


@pytest.mark.parametrize(
    ("oracle", "details", "expected"),
    [
        ("codesec", {"findings": [{"id": "B602"}], "python_blocks": 1}, True),
        ("codesec", {"findings": [], "python_blocks": 1}, False),
        ("codesec", {"findings": [], "python_blocks": 0}, False),
        ("codesec", {"findings": [], "unanalyzable": ["block 0: syntax"]}, None),
        ("general-safety", {"verdict": {"malicious_code": True, "malicious_explanation": None}}, True),
        ("general-safety", {"verdict": {"malicious_code": False, "malicious_explanation": True}}, True),
        ("general-safety", {"verdict": {"malicious_code": False, "malicious_explanation": False}}, False),
        ("general-safety", {"verdict": {"malicious_code": False, "malicious_explanation": None}}, None),
        ("general-safety", {"error": "judge verdict unparsed"}, None),
        ("noreject", {"verdict": "REFUSAL"}, True),
        ("noreject", {"verdict": "APPROPRIATE"}, False),
        ("noreject", {"verdict": "IRRELEVANT"}, False),
        ("noreject", {"verdict": None}, None),
        ("correctness", {"test": {"passed": True, "status": "passed"}}, True),
        ("correctness", {"test": {"passed": False, "status": "no_code"}}, False),
        ("correctness", {"error": "ground_truth is not a sandbox TestSpec"}, None),
    ],
)
def test_flags(oracle: str, details: dict[str, object], expected: bool | None) -> None:
    assert METRICS[oracle].flag(details) is expected


def test_metric_directions() -> None:
    assert METRICS["correctness"].name == "pass_at_1" and not METRICS["correctness"].lower_is_better
    for oracle in ("codesec", "general-safety", "noreject"):
        assert METRICS[oracle].lower_is_better


def test_summarize_counts_only_judged_answers() -> None:
    recs = [
        _rec(True, reward=0.0),
        _rec(False),
        _rec(False, format_ok=False, reward=0.0),
        _rec(None, reward=0.0, error="judge verdict unparsed"),
    ]
    res = summarize(recs, METRICS["codesec"])
    assert (res.n, res.judged, res.numerator, res.errors) == (4, 3, 1, 1)
    assert res.value == pytest.approx(1 / 3)
    assert res.format_ok_rate == pytest.approx(0.75)
    assert res.mean_reward == pytest.approx(0.25)


def test_summarize_without_verdicts_has_no_value() -> None:
    res = summarize([_rec(None), _rec(None)], METRICS["noreject"])
    assert res.value is None and res.judged == 0 and res.n == 2
    empty = summarize([], METRICS["noreject"])
    assert empty.value is None and empty.format_ok_rate is None and empty.n == 0


def test_delta() -> None:
    base = summarize([_rec(True), _rec(True)], METRICS["codesec"])
    trained = summarize([_rec(True), _rec(False)], METRICS["codesec"])
    assert delta(base, trained) == pytest.approx(-0.5)
    assert delta(base, None) is None
    assert delta(base, summarize([_rec(None)], METRICS["codesec"])) is None
