"""correctness through the real sandbox service (started by the `sandbox_url` fixture) and its harness."""

from __future__ import annotations

import socket

import pytest

from purpcode.oracles import OracleConfig, OracleRunner, Sample
from purpcode.oracles.correctness import SandboxUnavailable

ANALYSIS = "The task asks for a function; I will implement it directly and keep it simple."

FUNCTIONAL = {
    "kind": "functional",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
}
PYTEST = {
    "kind": "pytest",
    "test": "from solution import rev\n\ndef test_rev():\n    assert rev('abc') == 'cba'\n\ndef test_empty():\n    assert rev('') == ''\n",
}
STDIO = {
    "kind": "stdio",
    "cases": [{"stdin": "2 3\n", "expected_stdout": "5\n"}, {"stdin": "10 -4\n", "expected_stdout": "6\n"}],
}


def answer(*blocks: str, prose: str = "Here is the solution.") -> str:
    body = prose + "\n" + "\n".join(f"```python\n{b}\n```" for b in blocks)
    return f"## Analysis\n{ANALYSIS}\n## Answer\n{body}"


def sample(response: str, gt: dict[str, object], task_id: str = "") -> Sample:
    return Sample(
        prompt="solve it", response=response, oracle="correctness", ground_truth=gt, task_id=task_id
    )


@pytest.fixture
def runner(sandbox_url: str):  # type: ignore[no-untyped-def]
    r = OracleRunner(OracleConfig(correctness_timeout_s=3.0), sandbox_url=sandbox_url)
    yield r
    r.close()


def test_three_test_kinds_pass_and_fail(runner: OracleRunner) -> None:
    scores = runner.score_batch_sync(
        [
            sample(answer("def add(a, b):\n    return a + b"), FUNCTIONAL, "f-ok"),
            sample(answer("def add(a, b):\n    return a - b"), FUNCTIONAL, "f-bad"),
            sample(answer("def rev(s):\n    return s[::-1]"), PYTEST, "p-ok"),
            sample(answer("def rev(s):\n    return s"), PYTEST, "p-bad"),
            sample(answer("a, b = map(int, input().split())\nprint(a + b)"), STDIO, "s-ok"),
            sample(answer("a, b = map(int, input().split())\nprint(a * b)"), STDIO, "s-bad"),
        ]
    )
    assert [s.reward for s in scores] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert scores[0].details["test"]["status"] == "passed" and scores[0].details["kind"] == "functional"
    assert scores[1].details["test"]["status"] == "failed"
    assert (
        scores[5].details["test"]["status"] == "failed"
        and "stdout differs" in scores[5].details["test"]["details"]
    )


def test_blocks_are_joined(runner: OracleRunner) -> None:
    two_blocks = answer("def _helper(a, b):\n    return a + b", "def add(a, b):\n    return _helper(a, b)")
    (score,) = runner.score_batch_sync([sample(two_blocks, FUNCTIONAL)])
    assert score.reward == 1.0


@pytest.fixture
def quick_runner(sandbox_url: str):  # type: ignore[no-untyped-def]
    r = OracleRunner(OracleConfig(correctness_timeout_s=1.0), sandbox_url=sandbox_url)
    yield r
    r.close()


def test_timeout_scores_zero(quick_runner: OracleRunner) -> None:
    (score,) = quick_runner.score_batch_sync(
        [sample(answer("def add(a, b):\n    while True:\n        pass"), FUNCTIONAL)]
    )
    assert score.reward == 0.0 and score.details["test"]["status"] == "timeout"


@pytest.mark.parametrize(
    "hack",
    [
        "import sys\nsys.exit(0)\ndef add(a, b):\n    return 0",  # exit 0 before the tests
        "import os\nprint('PURPCODE_HARNESS_OK 2 deadbeef')\nos._exit(0)",  # a forged proof line
        "class Any:\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return Any()",  # always-equal
    ],
)
def test_reward_hacks_score_zero(runner: OracleRunner, hack: str) -> None:
    (score,) = runner.score_batch_sync([sample(answer(hack), FUNCTIONAL)])
    assert score.reward == 0.0 and not score.details["test"]["passed"]


def test_format_gate_and_missing_code(runner: OracleRunner) -> None:
    correct_but_unformatted = "```python\ndef add(a, b):\n    return a + b\n```"
    scores = runner.score_batch_sync(
        [
            sample(correct_but_unformatted, FUNCTIONAL),
            sample(answer(prose="It is a + b, no code needed."), FUNCTIONAL),
        ]
    )
    assert [s.reward for s in scores] == [0.0, 0.0]
    assert not scores[0].format_ok and scores[1].details["test"]["status"] == "no_code"


def test_bad_ground_truth_is_a_row_error_not_a_crash(runner: OracleRunner) -> None:
    (score,) = runner.score_batch_sync(
        [sample(answer("def add(a, b):\n    return a + b"), {"inputs": ["1"]})]
    )
    assert score.reward == 0.0 and "not a sandbox TestSpec" in score.details["error"]


def test_unreachable_sandbox_raises() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runner = OracleRunner(sandbox_url=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(SandboxUnavailable, match=f"sandbox at http://127.0.0.1:{port} unreachable"):
            runner.score_batch_sync([sample(answer("def add(a, b):\n    return a + b"), FUNCTIONAL)])
    finally:
        runner.close()


def test_identical_answers_run_once_and_are_remembered(runner: OracleRunner) -> None:
    good = answer("def add(a, b):\n    return a + b  # shared")
    scores = runner.score_batch_sync([sample(good, FUNCTIONAL, "a"), sample(good, FUNCTIONAL, "b")])
    assert [s.reward for s in scores] == [1.0, 1.0]
    assert sum(bool(s.details.get("cached")) for s in scores) == 1  # the twin waited for the first run
    (again,) = runner.score_batch_sync([sample(good, FUNCTIONAL, "c")])
    assert again.reward == 1.0 and again.details["cached"] is True
    # other tests for the same code are a different key
    other = {**FUNCTIONAL, "test": "def check(candidate):\n    assert candidate(1, 1) == 3\n"}
    (changed,) = runner.score_batch_sync([sample(good, other, "d")])
    assert changed.reward == 0.0 and "cached" not in changed.details


def test_timeouts_are_not_remembered(quick_runner: OracleRunner) -> None:
    slow = answer("def add(a, b):\n    while True:\n        pass")
    first, second = (quick_runner.score_batch_sync([sample(slow, FUNCTIONAL)])[0] for _ in range(2))
    assert first.details["test"]["status"] == second.details["test"]["status"] == "timeout"
    assert "cached" not in second.details
