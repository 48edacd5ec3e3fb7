"""Issue 19, point 7: the reference's suites as named benchmarks, loaded from small fixtures in their public formats,
scored by the oracle the benchmark's metric needs, and the paper-layout table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from purpcode.evaluation.benchmarks import BENCHMARK_ORACLES, load_benchmark
from purpcode.evaluation.reference_suites import ReferenceFormatError
from purpcode.evaluation.table import paper_table
from purpcode_operator.api import BenchmarkSpec

FIX = Path(__file__).parent / "fixtures"
FILES = {
    "cyberseceval-mitre": FIX / "cyberseceval-mitre.json",
    "cyberseceval-frr": FIX / "cyberseceval-frr.json",
    "phtest": FIX / "phtest.jsonl",
    "xscode": FIX / "xscode.jsonl",
    "codelmsec": FIX / "codelmsec.json",
    "cweval": FIX / "cweval",
}


@pytest.mark.parametrize("kind", sorted(FILES))
def test_each_suite_loads_its_fixture_with_its_oracle(kind: str) -> None:
    BenchmarkSpec.model_validate({"kind": kind, "path": "x"})  # a named benchmark in the API
    rows = load_benchmark(kind, FILES[kind])
    assert rows and all(r.oracle == BENCHMARK_ORACLES[kind] for r in rows)
    assert all(r.messages[-1].role == "user" and r.task_id.startswith(f"bench/{kind}/") for r in rows)
    assert len({r.task_id for r in rows}) == len(rows)


def test_fields_the_metrics_need() -> None:
    mitre = load_benchmark("cyberseceval-mitre", FILES["cyberseceval-mitre"])
    assert (
        mitre[0].strategy == "Discovery" and "red-team lead" in mitre[0].prompt_text()
    )  # the mutated prompt
    ph = load_benchmark("phtest", FILES["phtest"])
    assert [r.strategy for r in ph] == ["harmless", "harmless", "controversial"]
    lm = load_benchmark("codelmsec", FILES["codelmsec"])
    assert lm[0].cwe == "CWE-78" and lm[0].ground_truth == {"cwe": ["CWE-78"], "detectors": []}
    cw = load_benchmark("cweval", FILES["cweval"])
    assert (
        cw[0].ground_truth["kind"] == "pytest"
        and "from solution import read_user_file" in cw[0].ground_truth["test"]
    )
    assert "def read_user_file" in cw[0].prompt_text() and cw[0].cwe == "CWE-22"


def test_a_wrong_shape_names_the_file_and_record(tmp_path: Path) -> None:
    bad = tmp_path / "frr.json"
    bad.write_text(json.dumps([{"mutated_prompt": "ok"}, {"nothing": 1}]))
    with pytest.raises(ReferenceFormatError, match=r"frr.json: record 1 has neither 'messages'"):
        load_benchmark("cyberseceval-frr", bad)
    with pytest.raises(ReferenceFormatError, match="no CWEval"):
        load_benchmark("cweval", tmp_path)


SAFE = """```python
import os


def read_user_file(base_dir, filename):
    base = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(base, filename))
    if os.path.commonpath([base, path]) != base or not os.path.isfile(path):
        return ""
    with open(path) as fh:
        return fh.read()
```"""
UNSAFE = """```python
import os


def read_user_file(base_dir, filename):
    path = os.path.join(base_dir, filename)
    if not os.path.isfile(path):
        return ""
    with open(path) as fh:
        return fh.read()
```"""


def test_cweval_scores_functional_and_security_tests_together(sandbox_url: str) -> None:
    from purpcode.oracles import OracleConfig, OracleRunner, Sample

    row = load_benchmark("cweval", FILES["cweval"])[0]
    runner = OracleRunner(OracleConfig(correctness_timeout_s=10.0), sandbox_url=sandbox_url)
    try:
        scores = runner.score_batch_sync(
            [
                Sample.from_row(
                    row, f"## Analysis\nRead inside the base only, no traversal.\n## Answer\n{code}"
                )
                for code in (SAFE, UNSAFE)
            ]
        )
    finally:
        runner.close()
    assert [s.reward for s in scores] == [1.0, 0.0]  # the unsafe one passes the functional tests only


def test_paper_table_puts_base_and_trained_side_by_side_in_the_papers_groups() -> None:
    def suite(name: str, lower: bool, base: float | None, trained: float | None) -> dict:
        return {
            "suite": name,
            "label": name,
            "lower_is_better": lower,
            "results": {"base": {"value": base}, "trained": {"value": trained}},
        }

    results = {
        "models": {"base": "/b", "trained": "/t"},
        "suites": [
            suite("utility", False, 0.5, 0.55),
            suite("xscode", True, 0.2, 0.1),
            suite("cyberseceval-mitre", True, 0.6, None),
            suite("codelmsec", True, 0.4, 0.25),
        ],
    }
    table = paper_table(results).splitlines()
    assert table[0] == "| Model | Code security | Malicious assistance | Over-refusal | Utility |"
    assert table[2] == "|  | CodeLMSec (↓) | CyberSecEval MITRE (↓) | XSCode (↓) | Held-out coding (↑) |"
    assert table[3] == "| base | 40.0 | 60.0 | 20.0 | 50.0 |"
    assert table[4] == "| trained | 25.0 | – | 10.0 | 55.0 |"
