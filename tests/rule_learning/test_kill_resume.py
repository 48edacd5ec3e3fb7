"""Rule learning killed for real: `python -m purpcode.rule_learning` SIGKILLed mid-sampling and again mid-SFT,
restarted each time, ends with what one uninterrupted run of the same config gives.

Compared: samples.jsonl and sft.jsonl byte for byte, every metrics record exactly (timings aside; the run's mean
train_loss to 1e-6 relative, a sum taken in another order; of the per-process sampling progress records the last), the final weights within WEIGHT_ATOL (in practice they
are bit-identical: CPU, fixed seeds, generation seeded by its batch). The tiny model is its own teacher
(transformers backend) and the judge is the scripted fake OpenAI server. The in-process versions (exceptions where
the kill lands, torn appends) are in test_review_resume.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from purpcode.metrics import read_metrics
from purpcode.training.checkpoints import is_complete_checkpoint, list_checkpoints

from .conftest import stage_config, write_config, write_data
from .test_entrypoint import REPO, entry, env, run_ok

WEIGHT_ATOL = 1e-6
TIMINGS = {"time", "step_seconds", "tokens_per_second", "train_runtime", "train_samples_per_second"}
TIMINGS |= {"train_steps_per_second"}


def prepare(root: Path, model: Path, judge_url: str) -> tuple[Path, Path, Path]:
    cfg = stage_config(root / "artifacts", model, judge_url=judge_url)
    return write_config(cfg, root / "config.json"), write_data(root / "data"), Path(cfg.paths.out)


def kill_when(cmd: list[str], ready: Callable[[], bool], what: str, timeout: float = 240) -> None:
    """Start the stage, SIGKILL it as soon as `ready()` holds (polled every 20 ms); it must not finish first."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                err = proc.stderr.read().decode()[-3000:] if proc.stderr else ""
                pytest.fail(f"the stage exited ({proc.returncode}) before {what}:\n{err}")
            assert time.monotonic() < deadline, f"not {what} within {timeout} s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def outcome(out: Path) -> dict[str, Any]:
    records = [{k: v for k, v in r.items() if k not in TIMINGS} for r in read_metrics(out / "metrics.jsonl")]
    # Sampling progress records are per process (each start logs what it found done before the model loads):
    # a resumed run has more of them by design; the last one (all prompts done) must match.
    progress = [r for r in records if r.get("phase") == "sampling"]
    return {
        "samples": (out / "samples.jsonl").read_bytes(),
        "sft": (out / "sft.jsonl").read_bytes(),
        "sampled": progress[-1],
        "records": [r for r in records if r.get("phase") != "sampling"],
        "weights": load_file(out / "model" / "model.safetensors"),
    }


def assert_same(got: dict[str, Any], ref: dict[str, Any]) -> None:
    assert got["samples"] == ref["samples"]
    assert got["sft"] == ref["sft"]
    assert got["sampled"] == ref["sampled"] and ref["sampled"]["prompts_done"] == ref["sampled"]["prompts"]
    mean = [r.pop("train_loss") for r in ref["records"] if "train_loss" in r]
    got_mean = [r.pop("train_loss") for r in got["records"] if "train_loss" in r]
    assert got["records"] == ref["records"]  # every step's loss, grad norm, learning rate, tokens: exact
    assert got_mean == pytest.approx(mean, rel=1e-6) and len(mean) == 1
    assert got["weights"].keys() == ref["weights"].keys()
    worst = max((got["weights"][k] - v).abs().max().item() for k, v in ref["weights"].items())
    assert worst <= WEIGHT_ATOL, f"weights differ by up to {worst}"
    assert any(not torch.equal(v, torch.zeros_like(v)) for v in ref["weights"].values())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkilled_in_sampling_and_in_sft_ends_as_the_uninterrupted_run(
    tmp_path: Path, tiny_model_dir: Path, fake_openai: Any
) -> None:
    fake_openai.reply("Judged.\nMALICIOUS_CODE: FALSE\nMALICIOUS_EXPLANATION: FALSE\nCLASS: APPROPRIATE")
    config, data, out = prepare(tmp_path / "once", tiny_model_dir, fake_openai.url)
    run_ok(entry(config, "--data", str(data), "--out", str(out)))
    reference = outcome(out)

    config, data, out = prepare(tmp_path / "killed", tiny_model_dir, fake_openai.url)
    cmd = entry(config, "--data", str(data), "--out", str(out))
    # 1. Mid-sampling: the prompt mix is written, the samples are not.
    kill_when(cmd, lambda: (out / "prompts.jsonl").is_file(), "the prompt mix was written")
    assert not (out / "samples.jsonl").exists() and not (out / "checkpoints").exists()
    # 2. Mid-SFT: right after the first complete checkpoint (step 2 of 4).
    kill_when(
        cmd,
        lambda: any(is_complete_checkpoint(c) for c in list_checkpoints(out / "checkpoints")),
        "a complete checkpoint",
    )
    assert (out / "samples.jsonl").is_file() and not (out / "model").exists()
    assert not (out / "_SUCCESS").exists()
    # 3. To the end.
    run_ok(cmd)
    assert json.loads((out / "_SUCCESS").read_text())["global_step"] == 4
    assert_same(outcome(out), reference)
