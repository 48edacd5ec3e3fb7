"""A finished workdir is not reused under changed settings: per stage, the run refuses naming the changed field and
the `--rerun` to use; `--rerun` then redoes that stage and every later one. Fast: no stage runs (the refusal comes
before any service starts); the real round trip is in test_local_run.py's --rerun test.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from purpcode.runner.local import EXIT_INVALID, LocalRun
from purpcode.runner.progress import PlainDisplay
from purpcode.training.settings_guard import SETTINGS_FILE, SettingsChanged, check_settings
from purpcode_operator.plan import build_plan
from purpcode_operator.validate import validate_run

from .conftest import SAMPLE

BASE: dict[str, Any] = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))


def _runner(doc: dict[str, Any], workdir: Path) -> tuple[LocalRun, io.StringIO]:
    out = io.StringIO()
    return LocalRun(validate_run(doc), workdir, display=PlainDisplay(stream=out)), out


def _finished(workdir: Path) -> LocalRun:
    """A workdir where every stage finished under BASE (markers and the records the runner writes at start)."""
    runner, _ = _runner(BASE, workdir)
    for stage in build_plan(runner.run, artifacts_root=str(runner.artifacts)).stages:
        if stage.name != "report":
            check_settings(stage.config.paths.out, stage.config, record=True)
        runner.marker(stage.name).parent.mkdir(parents=True, exist_ok=True)
        runner.marker(stage.name).touch()
    return runner


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node = doc["spec"]
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return doc


CHANGES = [
    ("initialize", "model.tiny.hiddenSize", 64, "model.tiny.hiddenSize: 128 -> 64"),
    ("synthesis", "stages.synthesis.seedsPerRule", 2, "params.seedsPerRule: 1 -> 2"),
    ("ruleLearning", "stages.ruleLearning.samplesPerPrompt", 3, "params.samplesPerPrompt: 2 -> 3"),
    ("rl", "stages.rl.learningRate", 2e-5, "params.learningRate: 1e-05 -> 2e-05"),
    ("evaluation", "stages.evaluation.maxPerSuite", 8, "params.maxPerSuite: 4 -> 8"),
]


@pytest.mark.parametrize(("stage", "path", "value", "shown"), CHANGES, ids=[c[0] for c in CHANGES])
def test_a_changed_setting_on_a_finished_workdir_is_refused(
    tmp_path: Path, stage: str, path: str, value: Any, shown: str
) -> None:
    _finished(tmp_path)
    runner, out = _runner(_set(BASE, path, value), tmp_path)
    assert runner.execute() == EXIT_INVALID
    text = out.getvalue()
    assert f"{stage}: " in text and shown in text, text
    assert f"--rerun {stage}`" in text
    assert not (tmp_path / "logs").exists()  # refused before any service or stage started

    # --rerun STAGE clears it and every later stage; earlier ones keep their work and their record.
    reset = runner.rerun_from(stage)
    assert reset[0] == stage and reset[-1] == "report"
    assert runner.changed_settings(build_plan(runner.run, artifacts_root=str(runner.artifacts))) is None
    for name in ("initialize", "synthesis", "ruleLearning", "rl", "evaluation"):
        assert runner.marker(name).exists() == (name not in reset)


def test_the_earliest_changed_stage_is_the_one_to_rerun(tmp_path: Path) -> None:
    _finished(tmp_path)
    doc = _set(_set(BASE, "stages.evaluation.maxPerSuite", 8), "stages.synthesis.seedsPerRule", 2)
    runner, out = _runner(doc, tmp_path)
    assert runner.execute() == EXIT_INVALID
    assert "--rerun synthesis`" in out.getvalue() and "evaluation: params.maxPerSuite" in out.getvalue()


def test_disabling_a_stage_changes_what_later_stages_used(tmp_path: Path) -> None:
    """Evaluation of the RL model is not the evaluation of the rule-learning model."""
    _finished(tmp_path)
    runner, out = _runner(_set(BASE, "stages.rl.enabled", False), tmp_path)
    assert runner.execute() == EXIT_INVALID
    assert 'evaluation: inputs.model: "rl/model" -> "rule_learning/model"' in out.getvalue()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("stages.rl.resources", {"cpu": "4", "memory": "8Gi"}),
        ("stages.evaluation.generation.gpuMemoryUtilization", 0.5),
        ("stages.rl.saveSteps", 1),
        ("services.judge.concurrency", 4),
    ],
)
def test_how_and_where_a_stage_runs_is_not_a_change(tmp_path: Path, path: str, value: Any) -> None:
    _finished(tmp_path)
    runner, _ = _runner(_set(BASE, path, value), tmp_path)
    assert runner.changed_settings(build_plan(runner.run, artifacts_root=str(runner.artifacts))) is None


def test_a_stage_finished_before_records_adopts_the_current_settings(tmp_path: Path) -> None:
    runner = _finished(tmp_path)
    record = Path(runner.layout.stage_dir("synthesis")) / SETTINGS_FILE
    record.unlink()
    plan = build_plan(runner.run, artifacts_root=str(runner.artifacts))
    assert runner.changed_settings(plan) is None and record.is_file()


def test_the_stage_guard_names_rerun(tmp_path: Path) -> None:
    _finished(tmp_path)
    runner, _ = _runner(_set(BASE, "stages.rl.learningRate", 2e-5), tmp_path)
    rl = build_plan(runner.run, artifacts_root=str(runner.artifacts)).stage("rl")
    with pytest.raises(SettingsChanged, match=r"--rerun rl`"):
        check_settings(rl.config.paths.out, rl.config, record=True)
