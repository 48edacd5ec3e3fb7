"""Review of the RL stage's resume promise: killed at any moment and restarted with the same config, it ends with
what an uninterrupted run gives (metrics, validation, sampling state, model), never publishes a half-written model,
and refuses to resume under settings that change its result.

Kills are simulated in process (an exception no handler of the stage catches) on the codesec set only (bandit: no
services), with the tiny formatted policy; each run takes a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from prometheus_client import CollectorRegistry
from safetensors.torch import load_file

from purpcode.metrics import read_metrics
from purpcode.rl import validation
from purpcode.rl.stage import run_stage
from purpcode.rl.trainer import PurpCodeGRPOTrainer
from purpcode.training.checkpoints import list_checkpoints
from purpcode_operator.plan import StageConfig

from .conftest import rl_config, write_rl_sets

# No checkpoint at all: saveSteps 4 > maxSteps 3 (and none at the last step). Validation at every step.
RL = {
    "maxSteps": 3,
    "saveSteps": 4,
    "evalSteps": 1,
    "heldOutPerSet": 1,
    "maxCompletionLength": 24,
    "maxPromptLength": 2048,
}


class Kill(BaseException):
    """The pod dies here."""


def new_stage(root: Path, rl: dict[str, Any] | None = None) -> tuple[StageConfig, Path, Path]:
    config = rl_config(root / "artifacts", rl={**RL, **(rl or {})})
    data = Path(config.paths.data)
    data.mkdir(parents=True)
    write_rl_sets(data)
    for name in ("utility", "secqa", "malicious"):  # codesec only: bandit, no services needed
        (data / f"{name}.train.jsonl").unlink()
        (data / f"{name}.heldout.jsonl").unlink()
    easy = Path(config.paths.easy_ids or "")
    easy.parent.mkdir(parents=True)
    easy.write_text(json.dumps({"task_ids": []}))
    return config, data, Path(config.paths.out)


def run(config: StageConfig, data: Path, out: Path, model: Path) -> Path:
    return run_stage(config, data_dir=data, model_dir=model, out_dir=out, registry=CollectorRegistry())


def result(out: Path) -> dict[str, Any]:
    """What a resumed run must reproduce: metrics and validation records (timings aside), final state, weights."""
    timing = {"time", "step_seconds", "step_time", "tokens_per_second", "val_seconds", "generation_seconds"}
    timing |= {"reward_seconds", "generation_tokens_per_second", "train_runtime", "train_samples_per_second"}
    timing |= {"train_steps_per_second"}

    def strip(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k not in timing} for r in records]

    success = json.loads((out / "_SUCCESS").read_text())
    success.pop("seconds")
    return {
        "metrics": strip(read_metrics(out / "metrics.jsonl")),
        "validation": strip(read_metrics(out / "validation.jsonl")),
        "success": success,
        "sampling_state": json.loads((out / "sampling_state.json").read_text()),
        "weights": load_file(out / "model" / "model.safetensors"),
    }


def assert_same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert [(r.get("phase"), r["step"]) for r in got["metrics"]] == [
        (r.get("phase"), r["step"]) for r in expected["metrics"]
    ]
    for g, e in zip(got["metrics"], expected["metrics"], strict=True):
        assert {k: (g.get(k), e.get(k)) for k in g.keys() | e.keys() if g.get(k) != e.get(k)} == {}
    assert got["validation"] == expected["validation"]
    assert got["success"] == expected["success"] and got["sampling_state"] == expected["sampling_state"]
    assert all(torch.equal(got["weights"][k], v) for k, v in expected["weights"].items())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, formatted_policy: Path) -> dict[str, Any]:
    config, data, out = new_stage(tmp_path_factory.mktemp("uninterrupted"))
    run(config, data, out, formatted_policy)
    return result(out)


def kill_at_step_end(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Kill right after step `step` is validated (its metrics line is not written yet)."""
    original = validation.ValidationCallback.on_step_end

    def on_step_end(self: Any, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        original(self, args, state, control, **kwargs)
        if state.global_step == step:
            raise Kill(f"killed at step {step}")

    monkeypatch.setattr(validation.ValidationCallback, "on_step_end", on_step_end)


def test_rl_killed_before_the_first_checkpoint_logs_every_step_once(
    tmp_path: Path, formatted_policy: Path, uninterrupted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed at step 2 with no complete checkpoint: the restart trains from step 0. metrics.jsonl and
    validation.jsonl were truncated only when a checkpoint was resumed, so steps 1-2 appeared twice."""
    config, data, out = new_stage(tmp_path)
    with monkeypatch.context() as m:
        kill_at_step_end(m, 2)
        with pytest.raises(Kill):
            run(config, data, out, formatted_policy)
    assert list_checkpoints(out / "checkpoints") == []
    assert [r["step"] for r in read_metrics(out / "validation.jsonl")] == [1, 2]

    run(config, data, out, formatted_policy)
    assert_same(result(out), uninterrupted)


def test_rl_killed_during_the_final_save_publishes_no_partial_model(
    tmp_path: Path, formatted_policy: Path, uninterrupted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final model was saved straight into model/: a kill after the weights, before the model card, left a
    model/ directory that looks finished. It must appear whole or not at all, and the restart must finish it."""
    config, data, out = new_stage(tmp_path)
    original = PurpCodeGRPOTrainer.save_model

    def save_model(self: Any, output_dir: str | None = None, _internal_call: bool = False) -> None:
        original(self, output_dir, _internal_call)
        if not _internal_call:  # the final save, not a checkpoint's
            raise Kill("killed while saving the final model")

    with monkeypatch.context() as m:
        m.setattr(PurpCodeGRPOTrainer, "save_model", save_model)
        with pytest.raises(Kill):
            run(config, data, out, formatted_policy)
    assert not (out / "model").exists()
    assert not (out / "_SUCCESS").exists()

    run(config, data, out, formatted_policy)
    assert_same(result(out), uninterrupted)
    assert "GRPO" in (out / "model" / "README.md").read_text()
    assert not list(out.glob(".model.*"))


def test_rl_refuses_to_resume_under_changed_settings(
    tmp_path: Path, formatted_policy: Path, uninterrupted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resumed with another group size, the stream and dynamic-sampling state of the first attempt were reused with
    it: a silent mix. Refused, naming the field; a scheduling change (memory) still resumes."""
    config, data, out = new_stage(tmp_path, {"saveSteps": 1})
    with monkeypatch.context() as m:
        kill_at_step_end(m, 2)
        with pytest.raises(Kill):
            run(config, data, out, formatted_policy)
    assert [c.name for c in list_checkpoints(out / "checkpoints")] == ["checkpoint-1"]

    changed = rl_config(tmp_path / "artifacts", rl={**RL, "saveSteps": 1, "numGenerations": 2})
    with pytest.raises(ValueError, match=r"params\.numGenerations: 4 -> 2"):
        run(changed, data, out, formatted_policy)

    memory = rl_config(tmp_path / "artifacts", rl={**RL, "saveSteps": 1, "resources": {"memory": "12Gi"}})
    run(memory, data, out, formatted_policy)
    assert json.loads((out / "_SUCCESS").read_text())["steps"] == 3


def test_rl_entry_point_reports_changed_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from purpcode.rl.__main__ import main
    from purpcode.training.settings_guard import SETTINGS_FILE, check_settings

    config = rl_config(tmp_path / "artifacts", rl=RL)
    out = Path(config.paths.out)
    check_settings(out, config, record=True)
    assert (out / SETTINGS_FILE).is_file()
    changed = rl_config(tmp_path / "artifacts", rl={**RL, "learningRate": 1e-3})
    path = tmp_path / "rl.json"
    path.write_text(changed.to_json())
    model = tmp_path / "model-not-needed"
    assert main(["--config", str(path), "--data", str(tmp_path), "--model", str(model)]) == 2
    assert "params.learningRate: 1e-05 -> 0.001" in capsys.readouterr().err
