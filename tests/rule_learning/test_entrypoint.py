"""The stage through its entry point (`python -m purpcode.rule_learning`) in a subprocess: the tiny-cpu sample with
the tiny model answering for itself, kill-and-restart during SFT, DeepSpeed ZeRO-3 on CPU, bad configs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from purpcode.metrics import read_metrics
from purpcode.training.checkpoints import is_complete_checkpoint, list_checkpoints

from .conftest import presampled, read_jsonl, stage_config, write_config, write_data

REPO = Path(__file__).resolve().parents[2]


def entry(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "purpcode.rule_learning", "--config", str(config), *extra]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"})
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        e.pop(var, None)
    return e


def run_ok(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.mark.slow
def test_tiny_cpu_sample_end_to_end(tmp_path: Path, tiny_model_dir: Path, fake_openai: Any) -> None:
    """The tiny-cpu sample's stage as shipped, with the tiny random model as its own teacher (transformers backend).

    The sample keeps every sample (rejectionThreshold 0: a random model never writes the response format) and
    sets maxSeqLength 2048 (the tiny byte-level tokenizer needs ~1450 tokens for the system prompt alone).
    """
    fake_openai.reply("Judged.\nMALICIOUS_CODE: FALSE\nMALICIOUS_EXPLANATION: FALSE\nCLASS: APPROPRIATE")
    cfg = stage_config(tmp_path / "artifacts", tiny_model_dir, judge_url=fake_openai.url)
    assert cfg.rule_learning().rejection_threshold == 0.0
    data = write_data(tmp_path / "data")
    config = write_config(cfg, tmp_path / "config.json")
    proc = run_ok(entry(config, "--data", str(data), "--out", cfg.paths.out))
    out = Path(cfg.paths.out)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    spec = cfg.rule_learning()
    # The sample caps each source at 2 (perSetCap): codesec's 3 rows are one source here, so 5 of the 6 prompts.
    assert summary["prompts"] == 5 and summary["samples"] == 5 * spec.samples_per_prompt
    assert summary["global_step"] == spec.sft.max_steps
    samples = read_jsonl(out / "samples.jsonl")
    assert all(not s["format_ok"] and s["reward"] == 0.0 for s in samples)  # noise fails the gate
    assert len(read_jsonl(out / "sft.jsonl")) == 5
    assert (out / "model" / "model.safetensors").is_file() and (out / "_SUCCESS").is_file()
    # saveSteps 2 of maxSteps 4: the periodic checkpoint only; the last step's state is the final model
    assert [c.name for c in list_checkpoints(out / "checkpoints")] == ["checkpoint-2"]


def test_bad_config_is_a_clear_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = stage_config(tmp_path / "artifacts", tiny_model_dir)
    raw = json.loads(cfg.to_json())
    raw["params"]["samplesPerPrompt"] = 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    proc = subprocess.run(entry(bad), cwd=REPO, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "samplesPerPrompt" in proc.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    good = write_config(cfg, tmp_path / "good.json")
    proc = subprocess.run(
        entry(good, "--data", str(empty), "--out", str(tmp_path / "out")),
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "no prompt sets found" in proc.stderr


@pytest.mark.slow
def test_killed_during_sft_resumes_from_the_newest_complete_checkpoint(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    max_steps = 8
    cfg = stage_config(
        tmp_path / "artifacts",
        tiny_model_dir,
        params={
            "sft": {"maxSteps": max_steps, "saveSteps": 2, "maxSeqLength": 2048, "perDeviceBatchSize": 1}
        },
    )
    out = Path(cfg.paths.out)
    presampled(out, cfg)
    config = write_config(cfg, tmp_path / "config.json")
    ckpts = out / "checkpoints"

    proc = subprocess.Popen(
        entry(config), cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 240
        while not any(is_complete_checkpoint(c) for c in list_checkpoints(ckpts)):
            assert proc.poll() is None, (
                f"stage exited early: {proc.stderr.read().decode()[-3000:] if proc.stderr else ''}"
            )
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    first = read_metrics(out / "metrics.jsonl")
    steps_before = [r["step"] for r in first if r.get("phase") == "sft" and "loss" in r]
    assert not (out / "_SUCCESS").exists() and not (out / "model").exists()
    complete = [c for c in list_checkpoints(ckpts) if is_complete_checkpoint(c)]
    resume_step = int(complete[-1].name.split("-")[1])
    assert 2 <= resume_step < max_steps

    run_ok(entry(config))
    records = read_metrics(out / "metrics.jsonl")
    steps = [r["step"] for r in records if r.get("phase") == "sft" and "loss" in r]
    # Every step logged once: the restart dropped what the killed attempt logged after its checkpoint and trained
    # exactly the steps after it (a restart from scratch would log 1..resume_step twice; a lost step shows a gap).
    assert steps == list(range(1, max_steps + 1))
    # checkpoints every 2 steps up to the last periodic one; none at the last step (model/ is saved instead)
    names = [c.name for c in list_checkpoints(ckpts)]
    assert names == [f"checkpoint-{s}" for s in range(2, max_steps, 2)]
    state = json.loads((ckpts / f"checkpoint-{max_steps - 2}" / "trainer_state.json").read_text())
    assert state["global_step"] == max_steps - 2
    logged = [h["step"] for h in state["log_history"] if "loss" in h]
    assert logged == list(range(1, max_steps - 1))
    assert (out / "model" / "model.safetensors").is_file()
    assert set(steps_before) >= set(range(1, resume_step + 1))
    assert json.loads((out / "_SUCCESS").read_text())["global_step"] == max_steps


@pytest.mark.slow
def test_deepspeed_zero3_step_on_cpu(tmp_path: Path, tiny_model_dir: Path) -> None:
    """One ZeRO-3 run through the entry point (single process, no launcher), checkpoint and final model."""
    cfg = stage_config(
        tmp_path / "artifacts",
        tiny_model_dir,
        params={
            "sft": {"maxSteps": 2, "saveSteps": 1, "maxSeqLength": 2048},
            "deepspeed": {"enabled": True, "zeroStage": 3},
        },
    )
    out = Path(cfg.paths.out)
    presampled(out, cfg, copies=1)
    run_ok(entry(write_config(cfg, tmp_path / "config.json")), timeout=500)
    ds = json.loads((out / "ds_config.json").read_text())
    assert ds["zero_optimization"]["stage"] == 3
    ckpt = out / "checkpoints" / "checkpoint-1"  # saveSteps 1; none at the last step (model/ instead)
    assert (ckpt / "latest").read_text().strip() == "global_step1" and is_complete_checkpoint(ckpt)
    assert [c.name for c in list_checkpoints(out / "checkpoints")] == ["checkpoint-1"]
    assert (
        out / "model" / "model.safetensors"
    ).stat().st_size > 100_000  # gathered 16-bit weights, not a stub
    train = [r for r in read_metrics(out / "metrics.jsonl") if r.get("phase") == "sft" and "loss" in r]
    assert [r["step"] for r in train] == [1, 2] and all(r["loss"] > 0 for r in train)


def test_nothing_kept_fails_naming_the_threshold(tmp_path: Path, tiny_model_dir: Path) -> None:
    from prometheus_client import CollectorRegistry

    from purpcode.metrics import StageMetrics
    from purpcode.rule_learning.stage import run

    cfg = stage_config(tmp_path / "artifacts", tiny_model_dir, params={"rejectionThreshold": 0.5})
    out = Path(cfg.paths.out)
    presampled(out, cfg, copies=1, reward=0.0)
    metrics = StageMetrics(out, run=cfg.run, stage="ruleLearning", registry=CollectorRegistry())
    with pytest.raises(ValueError, match="rejectionThreshold=0.5"):
        run(cfg, metrics=metrics)
    assert read_jsonl(out / "sft.jsonl") == [] and not (out / "_SUCCESS").exists()
    assert json.loads((out / "easy_ids.json").read_text())["task_ids"] == []
