"""Issue 19, point 3: which code blocks correctness runs ("all" = the reference, default; "python" = ours before)."""

from __future__ import annotations

import pytest

from purpcode.oracles import OracleConfig, OracleRunner, Sample
from purpcode.oracles.correctness import answer_code
from purpcode_operator.api import OracleSpec

FUNCTIONAL = {
    "kind": "functional",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
    "entry_point": "add",
}
WITH_SHELL = (
    "## Analysis\nThe task asks for an add function; plain and simple.\n## Answer\n"
    "Install nothing:\n```bash\npip install --upgrade pip\n```\n"
    "```python\ndef add(a, b):\n    return a + b\n```\n"
)
TWO_PYTHON = (
    "## Analysis\nThe task asks for an add function; plain and simple.\n## Answer\n"
    "```python\ndef _plus(a, b):\n    return a + b\n```\nthen\n```python\ndef add(a, b):\n    return _plus(a, b)\n```\n"
)


def test_extraction_all_blocks_in_document_order_vs_python_only() -> None:
    assert answer_code(WITH_SHELL, "all").startswith("pip install --upgrade pip\ndef add")
    assert answer_code(WITH_SHELL, "python") == "def add(a, b):\n    return a + b"
    both = answer_code(TWO_PYTHON, "all")
    assert both.index("def _plus") < both.index("def add")
    with pytest.raises(ValueError, match="correctness_code_blocks"):
        answer_code(TWO_PYTHON, "bash")


def test_default_is_the_references() -> None:
    assert OracleConfig().correctness_code_blocks == "all"
    assert OracleSpec().correctness_code_blocks == "all"


@pytest.mark.parametrize(("blocks", "reward"), [("all", 0.0), ("python", 1.0)])
def test_a_shell_block_fails_the_run_only_in_all_mode(sandbox_url: str, blocks: str, reward: float) -> None:
    runner = OracleRunner(
        OracleConfig(correctness_timeout_s=5.0, correctness_code_blocks=blocks), sandbox_url=sandbox_url
    )
    try:
        scores = runner.score_batch_sync(
            [
                Sample(prompt="add", response=WITH_SHELL, oracle="correctness", ground_truth=FUNCTIONAL),
                Sample(prompt="add", response=TWO_PYTHON, oracle="correctness", ground_truth=FUNCTIONAL),
            ]
        )
    finally:
        runner.close()
    assert [s.reward for s in scores] == [reward, 1.0]
