"""codesec cases written to kill the mutants `make mutants` found surviving tests/oracles/test_codesec.py."""

from __future__ import annotations

import pytest

from purpcode.analyzers import Finding, get_analyzer
from purpcode.oracles import OracleConfig
from purpcode.oracles.codesec import CodesecOracle

VULN = "```python\nimport subprocess\nsubprocess.call(cmd, shell=True)\n```"


@pytest.fixture(scope="module")
def oracle() -> CodesecOracle:
    return CodesecOracle(get_analyzer("bandit", workers=0), OracleConfig())


def test_untagged_code_counts_only_without_tagged_python(oracle: CodesecOracle) -> None:
    comment_only_tagged = "```python\n# see below\n```\n```\nx = 1\n```"
    untagged_only = "```\nx = 1\n```"
    (r1, d1), (r2, d2) = oracle.score_answers([comment_only_tagged, untagged_only])
    assert (r1, d1["python_blocks"]) == (0.8, 0)  # the tagged block is what counts, and it has no statement
    assert (r2, d2["python_blocks"]) == (1.0, 1)


def test_block_count_and_finding_fields(oracle: CodesecOracle) -> None:
    two = "```python\nx = 1\n```\n```python\ny = 2\n```"
    ((r_two, d_two), (r_vuln, d_vuln)) = oracle.score_answers([two, VULN])
    assert (r_two, d_two["python_blocks"]) == (1.0, 2)
    assert r_vuln == 0.0
    (finding,) = d_vuln["findings"]
    assert set(finding) == {"id", "cwe", "severity", "line", "block", "analyzer"}
    assert (
        finding["severity"] in ("MEDIUM", "HIGH")
        and finding["analyzer"] == "bandit"
        and finding["block"] == 0
    )


def test_unparseable_block_is_named(oracle: CodesecOracle) -> None:
    ((reward, details),) = oracle.score_answers(["```python\ndef f(:\n    pass\n```"])
    assert reward == 0.0
    (error,) = details["unanalyzable"]
    assert error.startswith("block 0: ")


class ListOnlyAnalyzer:
    """An analyzer with only the protocol's `analyze_batch` (no detailed results)."""

    name = "list-only"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def analyze_batch(self, codes: list[str]) -> list[list[Finding]]:
        self.calls.append(list(codes))
        return [
            [Finding(detector_id="X1", severity="HIGH", cwe="CWE-78", line=1, analyzer=self.name)]
            if "shell=True" in c
            else []
            for c in codes
        ]


def test_an_analyzer_without_detailed_results() -> None:
    analyzer = ListOnlyAnalyzer()
    oracle = CodesecOracle(analyzer, OracleConfig())
    (r_vuln, d_vuln), (r_safe, _), (r_prose, _) = oracle.score_answers(
        [VULN, "```python\nx = 1\n```", "prose"]
    )
    assert (r_vuln, r_safe, r_prose) == (0.0, 1.0, 0.8)
    assert d_vuln["finding_ids"] == ["X1"] and d_vuln["cwes"] == ["CWE-78"]
    assert len(analyzer.calls) == 1 and len(analyzer.calls[0]) == 2  # one batch, the two Python blocks
