"""The README's first command, end to end: `purpcode run manifests/samples/tiny-cpu.yaml` on CPU.

Every stage runs for real (tiny random model, real sandbox, the project's judge server, bandit); the test checks
every artifact the stages hand each other and the report a user opens at the end. Minutes on 2 cores.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from purpcode.data.schema import SET_ORACLES, read_rows

from .conftest import ROOT, live_group_members, run_cli, state

STEPS = ["initialize", "synthesis", "ruleLearning", "rl", "evaluation", "report"]
# A line a healthy run must not print: a log record above INFO, a Python warning, a traceback.
LOUD = re.compile(r"\b(WARNING|ERROR|CRITICAL|FATAL)\b|\[(WARNING|ERROR)\]|\b\w*Warning: |Traceback")


def loud_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if LOUD.search(line) and not line.startswith("==== ")]


@pytest.mark.slow
def test_tiny_cpu_sample_end_to_end(tmp_path: Path) -> None:
    workdir = tmp_path / "tiny-cpu"
    started = time.monotonic()
    res = run_cli("manifests/samples/tiny-cpu.yaml", "--workdir", str(workdir), cwd=ROOT, timeout=1800)
    wall = time.monotonic() - started
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    print(f"tiny-cpu run: {wall:.0f}s wall")

    art = workdir / "artifacts"
    st = state(workdir)
    assert [st["stages"][s]["status"] for s in STEPS] == ["done"] * len(STEPS)
    for d in ("model", "synthesis", "rule_learning", "rl", "evaluation", "report"):
        assert (art / d / "_SUCCESS").exists(), d
    for svc in st["services"].values():
        assert live_group_members(svc["pid"]) == []

    # initialize -> synthesis: the base model and every prompt set, split, with the manifest.
    assert (art / "model" / "base" / "config.json").exists()
    for name, oracle in SET_ORACLES.items():
        for split in ("train", "heldout"):
            rows = read_rows(art / "synthesis" / f"{name}.{split}.jsonl")
            assert rows, f"{name}.{split} is empty"
            assert {r.oracle for r in rows} == {oracle}
    assert json.loads((art / "synthesis" / "manifest.json").read_text())
    # rule learning -> RL -> evaluation: models in safetensors, easy ids, metrics.
    for model in ("rule_learning/model", "rl/model"):
        assert list((art / model).glob("*.safetensors")), model
    assert (art / "rule_learning" / "easy_ids.json").exists()
    assert (art / "rule_learning" / "metrics.jsonl").stat().st_size > 0
    assert (art / "rl" / "metrics.jsonl").stat().st_size > 0

    results = json.loads((art / "evaluation" / "results.json").read_text())
    assert results["models"] == {"base": str(art / "model" / "base"), "trained": str(art / "rl" / "model")}
    assert [s["suite"] for s in results["suites"]] == [
        "codesec",
        "malicious",
        "overrefusal",
        "secqa",
        "utility",
    ]
    for s in results["suites"]:
        assert s["n"] > 0 and set(s["results"]) == {"base", "trained"}

    report = json.loads((art / "report" / "report.json").read_text())
    assert set(report["stages"].values()) == {"succeeded"}
    for name, png in report["plots"].items():
        assert png, f"plot {name} missing"
        img = mpimg.imread(art / "report" / png)
        assert img.std() > 0.01
    md = (art / "report" / "report.md").read_text()
    assert "_Not run" not in md and "Incomplete" not in md
    for section in (
        "## Data (synthesis)",
        "## Rule learning",
        "## RL (GRPO)",
        "## Evaluation: base vs trained",
    ):
        assert section in md
    assert f"Report: {art / 'report' / 'report.md'}" in res.stdout

    # A healthy run logs nothing above INFO: not the runner, not a stage, not a service (even while stopping).
    loud = {"runner": loud_lines(res.stdout + res.stderr)}
    loud.update({log.name: loud_lines(log.read_text()) for log in sorted((workdir / "logs").glob("*.log"))})
    assert not any(loud.values()), {k: v[:5] for k, v in loud.items() if v}

    # A second call finds everything done and starts nothing.
    again = run_cli("manifests/samples/tiny-cpu.yaml", "--workdir", str(workdir), cwd=ROOT, timeout=300)
    assert again.returncode == 0 and "6 steps, 6 already done" in again.stdout
