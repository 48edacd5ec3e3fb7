"""The run report on constructed artifacts: counts, series, the evaluation table, plots, missing stages."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import pytest
import yaml

from purpcode import report
from purpcode.report.collect import RunInfo
from purpcode.report.commands import write_report
from purpcode_operator.api import PurpCodeRun
from purpcode_operator.plan import build_plan

from .conftest import build_artifacts

ROOT = Path(__file__).resolve().parents[2]
ENABLED = ["synthesis", "ruleLearning", "rl", "evaluation"]


def _png_ok(path: Path) -> None:
    img = mpimg.imread(path)
    assert img.shape[0] > 200 and img.shape[1] > 400
    assert img.std() > 0.01  # not a blank canvas


def test_full_report(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    build_artifacts(root)
    out = root / "report"
    doc = write_report(root, out, RunInfo(run="demo", model="tiny-random", seed=666, enabled_stages=ENABLED))

    assert doc["stages"] == {s: "succeeded" for s in ("initialize", *ENABLED)}
    data = doc["synthesis"]
    assert data["sets"]["codesec"] == {"train": 12, "heldout": 2}
    assert data["total"] == 12 + 8 + 6 + 5 + 9 + 5 * 2
    assert data["by_strategy"]["general"] == 4 + 1  # train rows 0,3,6,9 + held-out row 0
    assert (
        data["by_cwe"]["CWE-78"] == 2 + 1 + 1 + 1
    )  # codesec train 0,6 + held-out 0; overrefusal train 0 + held-out 0
    assert data["manifest"] == {"steps": {"rule2code": {"kept": 6}}}
    loss = dict((int(s), v) for s, v in doc["ruleLearning"]["loss"])
    assert list(loss) == list(range(1, 9)) and loss[4] == 1.7  # a re-logged step keeps its last value
    assert doc["ruleLearning"]["summary"]["sft_examples"] == 7
    rl = doc["rl"]
    assert sorted(rl["reward"]) == ["codesec", "correctness", "general-safety", "noreject"]
    assert rl["steps"] == 6 and rl["final"]["reward/correctness"] == pytest.approx(0.6)
    assert len(rl["groups_dropped_fraction"]) == 6

    assert doc["plots"] == {
        "data_counts": "data_counts.png",
        "sft_loss": "sft_loss.png",
        "rl_rewards": "rl_rewards.png",
        "evaluation": "evaluation.png",
    }
    for name in doc["plots"].values():
        _png_ok(out / name)
    assert json.loads((out / "report.json").read_text())["run"]["run"] == "demo"

    md = (out / "report.md").read_text()
    assert md.startswith("# PurpCode run report: demo")
    for name in doc["plots"].values():
        assert f"]({name})" in md
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| ")}
    assert "50.0% (2/4) | 25.0% (1/4) | -25.0 pp (better)" in rows["codesec"]
    assert "0.0% (0/4) | 50.0% (2/4) | +50.0 pp (worse)" in rows["overrefusal"]
    assert "25.0% (1/4) | 75.0% (3/4) | +50.0 pp (better)" in rows["utility"]
    assert "±0.0 pp" in rows["malicious"]
    assert "n/a (0 of 4 judged)" in rows["secqa"]
    assert "| codesec | 12 | 2 | 14 |" in md


def test_disabled_and_missing_stages_say_not_run(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    build_artifacts(root, rl=False, evaluation=False)
    (root / "evaluation").mkdir()
    (root / "evaluation" / "metrics.jsonl").write_text('{"step": 0, "phase": "generate"}\n')
    out = root / "report"
    doc = write_report(
        root, out, RunInfo(run="demo", enabled_stages=["synthesis", "ruleLearning", "evaluation"])
    )
    assert doc["stages"]["rl"] == "disabled"
    assert doc["stages"]["evaluation"] == "incomplete"
    assert doc["plots"]["rl_rewards"] is None and doc["plots"]["evaluation"] is None
    assert not (out / "rl_rewards.png").exists()
    md = (out / "report.md").read_text()
    assert "_Not run (disabled)._" in md
    assert "_Incomplete: the stage started but did not finish._" in md

    empty = tmp_path / "empty"
    (empty / "synthesis").mkdir(parents=True)
    doc = write_report(empty, empty / "report", RunInfo(run="e"))
    assert set(doc["stages"].values()) == {"not run"}
    assert all(v is None for v in doc["plots"].values())
    assert (empty / "report" / "report.md").read_text().count("_Not run (not run)._") == 4


def test_stage_entry_point_from_plan_config(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "manifests" / "samples" / "tiny-cpu.yaml").read_text())
    plan = build_plan(PurpCodeRun.model_validate(doc), artifacts_root=str(tmp_path / "artifacts"))
    step = plan.stage("report")
    build_artifacts(Path(step.config.paths.artifacts))
    cfg_file = tmp_path / "report.json"
    cfg_file.write_text(step.config.to_json())
    assert report.main(step.argv(str(cfg_file))[3:]) == 0  # argv after `python -m purpcode.report`
    out = Path(step.config.paths.out)
    assert (out / "_SUCCESS").exists()
    written = json.loads((out / "report.json").read_text())
    assert written["run"] == {
        "run": "tiny-cpu",
        "model": "tiny-random",
        "seed": 666,
        "judge": "tiny-judge",
        "enabled_stages": ENABLED,
    }
    assert "This is a toy judge" in (out / "report.md").read_text()


def test_rerender_from_a_workdir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workdir = tmp_path / "runs" / "demo"
    root = workdir / "artifacts"
    build_artifacts(root)
    write_report(
        root, root / "report", RunInfo(run="demo", model="tiny-random", seed=5, enabled_stages=ENABLED)
    )
    (root / "report" / "evaluation.png").unlink()
    assert report.cli([str(workdir)]) == 0
    assert (root / "report" / "evaluation.png").exists()
    again = json.loads((root / "report" / "report.json").read_text())
    assert again["run"]["seed"] == 5  # the run facts survive a re-render
    assert str(root / "report" / "report.md") in capsys.readouterr().out
    assert not (root / "report" / "_SUCCESS").exists()  # a re-render is not the run's report step

    other = tmp_path / "elsewhere"
    assert report.cli([str(root), "--out", str(other)]) == 0
    assert (other / "report.md").exists()


def test_rerender_rejects_a_directory_without_stage_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report.cli([str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "x").mkdir()
    assert report.cli([str(tmp_path / "x")]) == 2
    assert "no stage output" in capsys.readouterr().err


def test_all_zero_rewards_are_explained(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from purpcode.metrics import StageMetrics

    root = tmp_path / "artifacts"
    build_artifacts(root, rl=False, evaluation=False)
    m = StageMetrics(root / "rl", run="t", stage="rl", registry=CollectorRegistry())
    for step in (1, 2):
        m.log(
            step,
            **{
                "reward/codesec": 0.0,
                "reward_mean": 0.0,
                "format_pass_rate": 0.0,
                "groups_dropped_fraction": 1.0,
            },
        )
    doc = write_report(root, root / "report", RunInfo(run="zero"))
    assert doc["rl"]["format_pass_rate"] == [[1.0, 0.0], [2.0, 0.0]]
    md = (root / "report" / "report.md").read_text()
    assert "Every reward was 0 (best format-gate pass rate 0%)" in md
    assert "mean 100.0% per step" in md
    _png_ok(root / "report" / "rl_rewards.png")
