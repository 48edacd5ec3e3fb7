"""The RL stage from its entry point (`python -m purpcode.rl`) on CPU with the real oracles: the sandbox service,
bandit, and a judge behind the test's OpenAI-compatible server; then a kill and an automatic resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.sandbox_fixture import free_port

from purpcode.metrics import read_metrics
from purpcode.oracles import ORACLE_NAMES

from .conftest import judge_reply, rl_config, write_rl_sets

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env["OMP_NUM_THREADS"] = "1"  # tiny model on a shared CPU: one thread per process beats contention
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "workloads"), str(ROOT / "operator"), env.get("PYTHONPATH", "")]
    )
    return env


def _launch(config: Any, tmp: Path, model: Path, log_name: str) -> tuple[subprocess.Popen[bytes], Path]:
    cfg_path = tmp / "rl-config.json"
    cfg_path.write_text(config.to_json(), encoding="utf-8")
    log = tmp / log_name
    cmd = [
        sys.executable,
        "-m",
        "purpcode.rl",
        "--config",
        str(cfg_path),
        "--data",
        config.paths.data,
        "--model",
        str(model),
        "--out",
        config.paths.out,
    ]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT)
    return proc, log


def _wait(proc: subprocess.Popen[bytes], log: Path, timeout: float = 420) -> None:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert rc == 0, log.read_text(errors="replace")[-6000:]


@pytest.mark.slow
def test_rl_stage_end_to_end_with_real_oracles(
    tmp_path: Path, formatted_policy: Path, sandbox_url: str, fake_openai: Any
) -> None:
    fake_openai.reply(judge_reply)
    artifacts = tmp_path / "artifacts"
    port = free_port()
    config = rl_config(
        artifacts,
        rl={"maxCompletionLength": 56, "maxPromptLength": 2048},
        sandbox_url=sandbox_url,
        judge_url=fake_openai.url,
        judge_model=fake_openai.model,
        metrics_port=port,
        rule_learning=False,  # RL straight from the base model: no easy ids
    )
    assert config.paths.easy_ids is None and config.rl().max_steps == 3
    data = Path(config.paths.data)
    data.mkdir(parents=True)
    write_rl_sets(data)

    scrapes: list[str] = []
    proc, log = _launch(config, tmp_path, formatted_policy, "rl.log")

    def scrape() -> None:
        with httpx.Client(timeout=1.0) as http:
            while proc.poll() is None:
                try:
                    scrapes.append(http.get(f"http://127.0.0.1:{port}/metrics").text)
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    _wait(proc, log)
    scraper.join(timeout=5)

    out = Path(config.paths.out)
    assert (out / "_SUCCESS").is_file()
    success = json.loads((out / "_SUCCESS").read_text())
    assert success["steps"] == 3
    model = out / "model"
    assert (model / "model.safetensors").is_file() and (model / "tokenizer.json").is_file()
    assert "GRPO" in (model / "README.md").read_text()

    records = read_metrics(out / "metrics.jsonl")
    train = [r for r in records if r.get("phase") == "train" and "groups_kept" in r]
    assert [r["step"] for r in train] == [1, 2, 3]
    for r in train:
        for key in (
            "loss",
            "kl",
            "entropy",
            "response_length",
            "tokens_per_second",
            "step_seconds",
            "reward_seconds",
            "groups_dropped_fraction",
            "reward_mean",
            "groups_dropped",
            "wasted_samples",
        ):
            if key in ("kl", "entropy") and r["groups_kept"] == 0:
                continue  # a step where every group had zero variance runs no forward pass: no KL or entropy
            assert key in r, (key, r)
        assert r["groups_kept"] + r["groups_dropped"] == r["prompts_generated"]
        assert r["wasted_samples"] == r["groups_dropped"] * 4
        assert 0.0 <= r["groups_dropped_fraction"] <= 1.0
    # Per-oracle rewards and pass rates across the run; every oracle was asked at least once.
    seen = {k.split("/", 1)[1] for r in train for k in r if k.startswith("pass_rate/")}
    assert seen == set(ORACLE_NAMES)
    assert sum(r["groups_kept"] for r in train) > 0  # the policy's samples differ: some groups had variance
    assert success["sampling"]["groups_kept"] == sum(r["groups_kept"] for r in train)
    # Prompts per step follow the planner: 2 at the first step, then batch / last variance ratio (max 4 x 2).
    assert train[0]["prompts_generated"] == 2
    for prev, cur in zip(train, train[1:], strict=False):
        expected = 8 if prev["variance_ratio"] == 0 else min(8, max(2, -(-2 // prev["variance_ratio"])))
        assert cur["prompts_generated"] in (expected, expected + 1)  # ceil of a float ratio

    # The oracles really ran: judge requests arrived, the sandbox ran the utility tests.
    assert fake_openai.requests
    validation = [json.loads(line) for line in (out / "validation.jsonl").read_text().splitlines()]
    assert [v["step"] for v in validation] == [2, 3]
    assert validation[-1]["val_n"] == 8  # 2 held-out prompts x 4 sets
    per_answer = [json.loads(x) for x in (out / "validation" / "step-000003.jsonl").read_text().splitlines()]
    assert {a["oracle"] for a in per_answer} == set(ORACLE_NAMES)
    assert [r for r in records if r.get("phase") == "validation"]

    # Prometheus: the stage served its gauges and counters while it ran.
    assert any("purpcode_rl_groups_total" in s and "purpcode_rl_reward_mean_all" in s for s in scrapes), (
        scrapes[-1:]
    )


@pytest.mark.slow
def test_rl_stage_resumes_after_kill(tmp_path: Path, formatted_policy: Path) -> None:
    artifacts = tmp_path / "artifacts"
    config = rl_config(
        artifacts,
        rl={
            "maxSteps": 5,
            "saveSteps": 2,
            "evalSteps": 100,
            "maxCompletionLength": 24,
            "maxPromptLength": 2048,
            "dynamicSampling": "none",
        },
    )
    data = Path(config.paths.data)
    data.mkdir(parents=True)
    write_rl_sets(data)
    for name in ("utility", "secqa", "malicious"):  # codesec only: bandit, no services needed
        (data / f"{name}.train.jsonl").unlink()
        (data / f"{name}.heldout.jsonl").unlink()
    easy = Path(config.paths.easy_ids or "")
    easy.parent.mkdir(parents=True)
    easy.write_text(json.dumps({"task_ids": ["codesec/0"]}))  # rule learning's format

    out = Path(config.paths.out)
    ckpt2 = out / "checkpoints" / "checkpoint-2"
    proc, log = _launch(config, tmp_path, formatted_policy, "run1.log")
    deadline = time.monotonic() + 420
    while not (ckpt2 / "trainer_state.json").is_file():
        assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "_SUCCESS").exists()
    state2 = json.loads((ckpt2 / "purpcode_rl_state.json").read_text())
    assert state2["sampling"]["steps"] == 2 and state2["stream"]["cursor"] == 4

    proc, log = _launch(config, tmp_path, formatted_policy, "run2.log")
    _wait(proc, log)
    text = log.read_text(errors="replace")
    assert "resuming from" in text and "checkpoint-" in text
    success = json.loads((out / "_SUCCESS").read_text())
    assert success["steps"] == 5
    # The restored sampling state continued: 5 steps counted in total, 2 prompts per step drawn, none twice.
    assert success["sampling"]["steps"] == 5 and success["stream"]["cursor"] == 10
    steps = [
        r["step"]
        for r in read_metrics(out / "metrics.jsonl")
        if r.get("phase") == "train" and "groups_kept" in r
    ]
    assert steps == [1, 2, 3, 4, 5]
    summary = json.loads((out / "data_summary.json").read_text())
    assert summary["easy_removed"] == {"codesec": 1} and summary["train"] == {"codesec": 3}
