"""Review of rule learning's resume promise: a stage killed at any moment and restarted with the same config ends
with what an uninterrupted run gives (samples, metrics, model, summary), and a changed config is refused.

Kills are simulated in process: an exception raised where the kill lands (BaseException, so no handler of the stage
catches it), plus, for writes torn mid-line, the bytes a killed append leaves behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from prometheus_client import CollectorRegistry
from safetensors.torch import load_file
from transformers import TrainerCallback

import purpcode.rule_learning.sft as sft_module
from purpcode.data.schema import TaskRow
from purpcode.generation.base import batch_seed
from purpcode.metrics import StageMetrics, read_metrics
from purpcode.oracles import Score
from purpcode.rule_learning import sampling
from purpcode.rule_learning.stage import run
from purpcode_operator.plan import StageConfig

from .conftest import presampled, stage_config


class Kill(BaseException):
    """The pod dies here."""


# ------------------------------------------------------------------------------------------------ sampling


def prompts(n: int) -> list[tuple[str, TaskRow]]:
    return [
        (
            "codesec",
            TaskRow.model_validate(
                {"task_id": f"c/{i}", "messages": [{"role": "user", "content": f"q{i}"}], "oracle": "codesec"}
            ),
        )
        for i in range(n)
    ]


def seeded_generate(convs: list[list[dict[str, str]]], n: int) -> list[list[str]]:
    """Like the real backends: sampling is seeded by the batch's content (`batch_seed`), so the text depends on
    which prompts share the generation call."""
    seed = batch_seed(666, convs)
    return [
        [
            f"## Analysis\nseed {seed} for {c[-1]['content']}, sample {k}\n## Answer\nanswer {k} for {seed}"
            for k in range(n)
        ]
        for c in convs
    ]


def score_all(samples: list[Any]) -> list[Score]:
    return [Score(reward=1.0, oracle="codesec", format_ok=True) for _ in samples]


def sample(out: Path, rows: list[tuple[str, TaskRow]], generate: Any = seeded_generate) -> dict[str, Any]:
    return sampling.sample_and_score(
        rows, out, generate=generate, score=score_all, n=2, threshold=0.5, chunk_prompts=2
    )


@pytest.mark.parametrize("cut", ["first record", "second record", "last record"])
def test_sampling_killed_mid_append_resumes_to_the_uninterrupted_samples(tmp_path: Path, cut: str) -> None:
    """A kill while a chunk's records were being appended leaves a torn last line. Before the fix the restart's
    first record was glued onto it and lost ("sampling left 1 samples missing"), and the chunks after the torn one
    were regenerated with shifted boundaries (other batches, other seeds, other samples)."""
    rows = prompts(6)
    reference = sample(tmp_path / "reference", rows)
    expected = (tmp_path / "reference" / sampling.SAMPLES).read_text()
    lines = expected.splitlines(keepends=True)
    chunk2 = "".join(lines[4:8])  # prompts c/2, c/3: 2 samples each
    cut_at = {
        "first record": len(lines[4]) // 2,
        "second record": len(lines[4]) + len(lines[5]) // 2,
        "last record": len(chunk2) - len(lines[7]) // 2,
    }[cut]

    out = tmp_path / "killed"
    out.mkdir()
    (out / sampling.PARTIAL).write_text("".join(lines[:4]) + chunk2[:cut_at], encoding="utf-8")
    calls: list[list[str]] = []

    def generate(convs: list[list[dict[str, str]]], n: int) -> list[list[str]]:
        calls.append([c[-1]["content"] for c in convs])
        return seeded_generate(convs, n)

    assert sample(out, rows, generate) == reference
    assert (out / sampling.SAMPLES).read_text() == expected
    assert calls == [["q2", "q3"], ["q4", "q5"]]  # the torn chunk again whole, then the rest; chunk 1 kept
    assert not (out / sampling.PARTIAL).exists()


def test_sampling_killed_before_the_marker_finishes_without_generating(tmp_path: Path) -> None:
    """Killed after samples.jsonl, before samples.done.json (the partial file is removed only after the marker)."""
    rows = prompts(4)
    reference = sample(tmp_path, rows)
    expected = (tmp_path / sampling.SAMPLES).read_text()
    (tmp_path / sampling.MARKER).unlink()
    (tmp_path / sampling.PARTIAL).write_text(expected)

    def generate(convs: list[list[dict[str, str]]], n: int) -> list[list[str]]:
        raise AssertionError("nothing is left to generate")

    assert sample(tmp_path, rows, generate) == reference
    assert (tmp_path / sampling.SAMPLES).read_text() == expected and not (
        tmp_path / sampling.PARTIAL
    ).exists()


def test_torn_tail_is_cut_before_appending(tmp_path: Path) -> None:
    partial = tmp_path / "p.jsonl"
    partial.write_text('{"a": 1}\n{"b": 2}\n{"c"', encoding="utf-8")
    assert sampling.repair_tail(partial) == len('{"c"')
    assert partial.read_text() == '{"a": 1}\n{"b": 2}\n'
    assert sampling.repair_tail(partial) == 0
    partial.write_text('{"torn', encoding="utf-8")
    assert sampling.repair_tail(partial) == 6 and partial.read_text() == ""


# ------------------------------------------------------------------------------------------------ SFT

SFT = {"sft": {"maxSteps": 4, "saveSteps": 2, "maxSeqLength": 2048}}


class KillBeforeStep(TrainerCallback):
    """Kill the pod as step `step + 1` starts (step `step` is trained and logged; its checkpoint only at saveSteps)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            raise Kill(f"killed after step {self.step}")


def new_stage(root: Path, model: Path, params: dict[str, Any] | None = None) -> tuple[StageConfig, Path]:
    cfg = stage_config(root, model, params={**SFT, **(params or {})})
    out = Path(cfg.paths.out)
    presampled(out, cfg, copies=1)
    return cfg, out


def run_stage(cfg: StageConfig, out: Path) -> dict[str, Any]:
    metrics = StageMetrics(out, run=cfg.run, stage="ruleLearning", registry=CollectorRegistry())
    return run(cfg, metrics=metrics)


def run_killed(cfg: StageConfig, out: Path, monkeypatch: pytest.MonkeyPatch, after_step: int) -> None:
    original = sft_module.sft_callbacks
    with monkeypatch.context() as m:
        m.setattr(
            sft_module,
            "sft_callbacks",
            lambda metrics, extra=None: [*original(metrics, extra=extra), KillBeforeStep(after_step)],
        )
        with pytest.raises(Kill):
            run_stage(cfg, out)


def logged(out: Path) -> list[tuple[Any, ...]]:
    """The metrics records as (phase, step, loss, train_loss): what a resumed run must log exactly once."""
    return [
        (
            r.get("phase"),
            r["step"],
            r.get("loss"),
            r.get("train_loss") and pytest.approx(r["train_loss"], rel=1e-6),
        )
        for r in read_metrics(out / "metrics.jsonl")
    ]


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "model" / "model.safetensors")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    cfg, out = new_stage(tmp_path_factory.mktemp("uninterrupted"), tiny_model_dir)
    summary = run_stage(cfg, out)
    return {"summary": summary, "logged": logged(out), "weights": weights(out)}


def same_result(out: Path, summary: dict[str, Any], reference: dict[str, Any]) -> None:
    expected = dict(reference["summary"])
    assert summary == {**expected, "train_loss": pytest.approx(expected["train_loss"], rel=1e-6)}
    assert logged(out) == reference["logged"]
    got = weights(out)
    assert got.keys() == reference["weights"].keys()
    assert all(torch.equal(got[k], v) for k, v in reference["weights"].items())


def test_sft_killed_mid_training_ends_as_the_uninterrupted_run(
    tmp_path: Path, tiny_model_dir: Path, uninterrupted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after step 3 (checkpoint-2 is the newest): the restart trains steps 3-4 again. Before the fix
    metrics.jsonl held selection, sft_data, step 3 and step 4 twice, and the summary's train_loss was the mean of
    steps 3-4 only (the Trainer's train_loss covers the steps of its own process)."""
    cfg, out = new_stage(tmp_path, tiny_model_dir)
    run_killed(cfg, out, monkeypatch, after_step=3)
    assert [c.name for c in (out / "checkpoints").iterdir() if c.name.startswith("checkpoint-")] == [
        "checkpoint-2"
    ]
    assert ("sft", 3) in [r[:2] for r in logged(out)]  # step 3 was logged before the kill

    same_result(out, run_stage(cfg, out), uninterrupted)


def test_sft_killed_after_the_model_was_saved_ends_as_the_uninterrupted_run(
    tmp_path: Path, tiny_model_dir: Path, uninterrupted: dict[str, Any]
) -> None:
    """Killed after model/ was saved, before `_SUCCESS`: the restart trains again from the newest periodic checkpoint
    (there is none at the last step) and must log and report what one run does."""
    cfg, out = new_stage(tmp_path, tiny_model_dir)
    run_stage(cfg, out)
    (out / "_SUCCESS").unlink()
    (out / "summary.json").unlink()

    same_result(out, run_stage(cfg, out), uninterrupted)
    assert not list(out.glob(".model.*"))


def test_changed_settings_are_refused_scheduling_changes_are_not(
    tmp_path: Path, tiny_model_dir: Path, uninterrupted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart under another learning rate resumed checkpoint-2's optimizer and scheduler (and the samples, the
    selection) with the new setting: a silent mix of both configs. It must be refused, naming the field."""
    cfg, out = new_stage(tmp_path, tiny_model_dir)
    run_killed(cfg, out, monkeypatch, after_step=3)
    before = sorted(p.name for p in out.iterdir())

    changed = stage_config(tmp_path, tiny_model_dir, params={"sft": {**SFT["sft"], "learningRate": 3e-4}})
    with pytest.raises(ValueError, match=r"params\.sft\.learningRate: 0\.0001 -> 0\.0003"):
        run_stage(changed, out)
    other_seed = changed.model_copy(update={"seed": 1, "params": cfg.params})
    with pytest.raises(ValueError, match=r"seed: 666 -> 1"):
        run_stage(other_seed, out)
    assert sorted(p.name for p in out.iterdir()) == before  # nothing touched

    # More memory, other checkpoint cadence: how the stage runs, not what it computes. It resumes.
    params = json.loads(json.dumps(cfg.params))
    params["resources"] = {**params.get("resources", {}), "memory": "12Gi"}
    params["sft"]["saveSteps"] = 3
    same_result(out, run_stage(cfg.model_copy(update={"params": params}), out), uninterrupted)


def test_mean_train_loss_weights_each_log_by_its_steps() -> None:
    from purpcode.training.hf import mean_train_loss

    history = [
        {"loss": 2.0, "step": 1},
        {"loss": 4.0, "step": 3},
        {"eval_loss": 9.0, "step": 3},
        {"train_loss": 1.0},
    ]
    assert mean_train_loss(history) == pytest.approx((2.0 + 4.0 * 2) / 3)
    assert mean_train_loss([]) is None


def test_sft_killed_while_writing_a_checkpoint_resumes_and_leaves_no_debris(
    tmp_path: Path, tiny_model_dir: Path, uninterrupted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while checkpoint-2 was written (weights and optimizer there, trainer_state.json not yet): the restart
    moves it aside as incomplete and trains from step 0 (this part worked). The moved-aside directory, a whole
    checkpoint's worth of disk, was never deleted by rule learning (RL prunes them once it has finished)."""
    from transformers import Trainer

    cfg, out = new_stage(tmp_path, tiny_model_dir)
    original = Trainer._save_rng_state

    def save_rng_state(self: Any, output_dir: str) -> None:
        original(self, output_dir)
        raise Kill("killed while writing a checkpoint")

    with monkeypatch.context() as m:
        m.setattr(Trainer, "_save_rng_state", save_rng_state)
        with pytest.raises(Kill):
            run_stage(cfg, out)
    ckpt = out / "checkpoints" / "checkpoint-2"
    assert (ckpt / "model.safetensors").is_file() and not (ckpt / "trainer_state.json").exists()

    same_result(out, run_stage(cfg, out), uninterrupted)
    assert [p.name for p in (out / "checkpoints").iterdir() if "checkpoint" in p.name] == ["checkpoint-2"]
