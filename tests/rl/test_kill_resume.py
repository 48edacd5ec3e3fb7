"""RL killed for real: `python -m purpcode.rl` SIGKILLed after its first checkpoint and again between checkpoints,
restarted each time, ends with what one uninterrupted run of the same config gives.

Compared (test_review_resume.result): every metrics and validation record exactly (timings aside), the _SUCCESS
record, the dynamic-sampling state, and the final weights within WEIGHT_ATOL (in practice bit-identical: CPU, fixed
seeds). Codesec prompts only (bandit, no services) and the tiny formatted policy. The in-process versions are in
test_review_resume.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from purpcode.metrics import read_metrics
from purpcode.training.checkpoints import is_complete_checkpoint, list_checkpoints
from purpcode_operator.plan import StageConfig

from .test_review_resume import new_stage, result

REPO = Path(__file__).resolve().parents[2]
WEIGHT_ATOL = 1e-6
# Four steps, a checkpoint after each but the last (none at the last step: the model is saved instead).
RL = {"maxSteps": 4, "saveSteps": 1}


def command(config: StageConfig, data: Path, out: Path, model: Path, root: Path) -> list[str]:
    path = root / "config.json"
    path.write_text(config.to_json(), encoding="utf-8")
    return [
        sys.executable,
        "-m",
        "purpcode.rl",
        "--config",
        str(path),
        "--data",
        str(data),
        "--model",
        str(model),
        "--out",
        str(out),
    ]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"})
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        e.pop(var, None)
    return e


def run_ok(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]


def kill_when(cmd: list[str], ready: Callable[[], bool], what: str, timeout: float = 300) -> None:
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


def complete(out: Path) -> list[int]:
    return [
        int(c.name.split("-")[1]) for c in list_checkpoints(out / "checkpoints") if is_complete_checkpoint(c)
    ]


def validated_steps(out: Path) -> list[int]:
    path = out / "validation.jsonl"
    return [r["step"] for r in read_metrics(path)] if path.is_file() else []


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_rl_sigkilled_twice_ends_as_the_uninterrupted_run(tmp_path: Path, formatted_policy: Path) -> None:
    config, data, out = new_stage(tmp_path / "once", RL)
    run_ok(command(config, data, out, formatted_policy, tmp_path / "once"))
    reference = result(out)

    config, data, out = new_stage(tmp_path / "killed", RL)
    cmd = command(config, data, out, formatted_policy, tmp_path / "killed")
    # 1. Right after the first complete checkpoint.
    kill_when(cmd, lambda: 1 in complete(out), "checkpoint-1")
    # 2. Resumed from checkpoint-1 (or later), killed after step 3 was validated, before checkpoint-3 is whole.
    kill_when(cmd, lambda: 3 in validated_steps(out), "step 3 validated")
    assert not (out / "model").exists() and not (out / "_SUCCESS").exists()
    # 3. To the end.
    run_ok(cmd)
    got = result(out)

    assert [(r.get("phase"), r["step"]) for r in got["metrics"]] == [
        (r.get("phase"), r["step"]) for r in reference["metrics"]
    ]
    for g, e in zip(got["metrics"], reference["metrics"], strict=True):
        assert {k: (g.get(k), e.get(k)) for k in g.keys() | e.keys() if g.get(k) != e.get(k)} == {}
    assert got["validation"] == reference["validation"]
    assert got["success"] == reference["success"] and got["success"]["steps"] == 4
    assert got["sampling_state"] == reference["sampling_state"]
    weights: dict[str, Any] = reference["weights"]
    assert got["weights"].keys() == weights.keys()
    worst = max((got["weights"][k] - v).abs().max().item() for k, v in weights.items())
    assert worst <= WEIGHT_ATOL, f"weights differ by up to {worst}"
