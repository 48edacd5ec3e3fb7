"""The GPU paths of the training stages, run on a CUDA machine: rule-learning SFT under DeepSpeed ZeRO-3 in bf16
(killed and resumed from its DeepSpeed checkpoint), GRPO with DeepSpeed ZeRO-3 and bf16 (transformers rollouts),
and the transformers generation backend on the GPU.

Skipped without a CUDA device (CI and most laptops); run them with `pytest -m gpu tests/gpu` on a GPU node or with
`bench/gpu_check.sh` (which installs what a bare CUDA image lacks). vLLM rollouts are not covered here: they need
the GPU image, whose vLLM wheel is far larger than what the ad-hoc GPU check can carry.
"""

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

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a GPU node: -m gpu)"),
]

from purpcode.metrics import read_metrics  # noqa: E402
from purpcode.tiny_model import TinyModelConfig, build_tiny_model  # noqa: E402
from purpcode.training.checkpoints import is_complete_checkpoint, list_checkpoints  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

# ~55M parameters: big enough that ZeRO-3 partitions, gathers and bf16 matter, small enough for a quick check.
GPU_SHAPE = {"hiddenSize": 512, "numLayers": 8, "numHeads": 8, "intermediateSize": 2048, "vocabSize": 512}


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "workloads"), str(REPO / "operator"), env.get("PYTHONPATH", "")]
    )
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    return env


@pytest.fixture(scope="module")
def gpu_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("gpu-model"), TinyModelConfig.model_validate(GPU_SHAPE))


@pytest.fixture(scope="module")
def formatted_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The RL tests' tiny policy that answers in the recipe's format part of the time (tests/rl/policy.py)."""
    from rl.policy import build_formatted_policy

    return build_formatted_policy(tmp_path_factory.mktemp("rl-policy") / "model")


def test_sft_zero3_bf16_on_gpu_resumes_after_kill(tmp_path: Path, gpu_model_dir: Path) -> None:
    from rule_learning.conftest import presampled, stage_config, write_config

    max_steps = 6
    cfg = stage_config(
        tmp_path / "artifacts",
        gpu_model_dir,
        params={
            "sft": {
                "maxSteps": max_steps,
                "saveSteps": 2,
                "maxSeqLength": 1024,
                "perDeviceBatchSize": 4,
                "bf16": True,
                "gradientCheckpointing": True,
            },
            "deepspeed": {"enabled": True, "zeroStage": 3},
        },
    )
    out = Path(cfg.paths.out)
    presampled(out, cfg)
    config = write_config(cfg, tmp_path / "config.json")
    cmd = [sys.executable, "-m", "purpcode.rule_learning", "--config", str(config)]
    ckpts = out / "checkpoints"
    log1 = tmp_path / "run1.log"
    with open(log1, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not any(is_complete_checkpoint(c) for c in list_checkpoints(ckpts)):
            assert proc.poll() is None, log1.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, "no complete checkpoint within 300 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    complete = [c for c in list_checkpoints(ckpts) if is_complete_checkpoint(c)]
    resume_step = int(complete[-1].name.split("-")[1])
    assert 2 <= resume_step < max_steps, f"killed too late to test resuming (at {resume_step})"
    assert (complete[-1] / "latest").read_text().strip() == f"global_step{resume_step}"  # a DeepSpeed ckpt
    first = read_metrics(out / "metrics.jsonl")

    proc2 = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=400)
    assert proc2.returncode == 0, proc2.stderr[-4000:]
    records = read_metrics(out / "metrics.jsonl")
    steps_after = [r["step"] for r in records[len(first) :] if r.get("phase") == "sft" and "loss" in r]
    assert steps_after == list(range(resume_step + 1, max_steps + 1))
    losses = [r["loss"] for r in records if r.get("phase") == "sft" and "loss" in r]
    assert all(0 < x < 100 for x in losses)
    ds = json.loads((out / "ds_config.json").read_text())
    assert ds["zero_optimization"]["stage"] == 3
    weights = out / "model" / "model.safetensors"
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        names = list(f.keys())
        emb = f.get_tensor(next(n for n in names if "embed_tokens" in n))
    assert emb.shape == (512, 512) and len(names) > 8 * 9  # gathered full weights, not ZeRO-3 shards
    assert emb.dtype == torch.bfloat16  # bf16 training (on CPU the stage falls back to fp32)
    print(
        json.dumps(
            {
                "check": "sft-zero3-bf16",
                "resumed_from": resume_step,
                "steps": max_steps,
                "losses": losses,
                "train": [r for r in records if r.get("phase") == "sft" and "train_runtime" in r][-1:],
            }
        )
    )


def test_grpo_zero3_bf16_on_gpu(tmp_path: Path, formatted_policy: Path, fake_openai: Any) -> None:
    from rl.conftest import judge_reply, rl_config, write_rl_sets

    fake_openai.reply(judge_reply)
    config = rl_config(
        tmp_path / "artifacts",
        rl={
            "resources": {"cpu": "4", "memory": "16Gi", "gpusPerNode": 1},
            "useVllm": False,
            "bf16": True,
            "deepspeed": {"enabled": True, "zeroStage": 3},
            "maxSteps": 3,
            "saveSteps": 2,
            "evalSteps": 100,
            "maxCompletionLength": 56,
            "maxPromptLength": 512,
        },
        judge_url=fake_openai.url,
        judge_model=fake_openai.model,
        rule_learning=False,
    )
    data = Path(config.paths.data)
    data.mkdir(parents=True)
    write_rl_sets(data)
    # The correctness oracle needs the sandbox service (bubblewrap), which a bare GPU machine lacks.
    (data / "utility.train.jsonl").unlink()
    (data / "utility.heldout.jsonl").unlink()
    cfg_path = tmp_path / "rl-config.json"
    cfg_path.write_text(config.to_json(), encoding="utf-8")
    cmd = [sys.executable, "-m", "purpcode.rl", "--config", str(cfg_path), "--data", str(data)]
    cmd += ["--model", str(formatted_policy), "--out", config.paths.out]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    out = Path(config.paths.out)
    success = json.loads((out / "_SUCCESS").read_text())
    assert success["steps"] == 3
    train = [
        r for r in read_metrics(out / "metrics.jsonl") if r.get("phase") == "train" and "groups_kept" in r
    ]
    assert [r["step"] for r in train] == [1, 2, 3]
    assert all("loss" in r and "kl" in r for r in train)
    assert fake_openai.requests  # the judge oracles were asked
    ckpt = out / "checkpoints" / "checkpoint-2"
    assert (ckpt / "latest").read_text().strip() == "global_step2"  # DeepSpeed engine checkpoint
    assert (out / "model" / "model.safetensors").stat().st_size > 100_000
    print(json.dumps({"check": "grpo-zero3-bf16", "train": train}))


def test_transformers_generation_on_gpu(gpu_model_dir: Path) -> None:
    from purpcode.generation import get_backend
    from purpcode.generation.hf import TransformersBackend
    from purpcode_operator.api import GenerationSpec

    spec = GenerationSpec(backend="transformers", max_new_tokens=32, batch_size=8, temperature=1.0)
    backend = get_backend(spec, str(gpu_model_dir), seed=3, gpus=1)  # the stage was given a GPU
    assert isinstance(backend, TransformersBackend) and backend.device.startswith("cuda")
    convs = [[{"role": "user", "content": f"Write function number {i}."}] for i in range(10)]
    out = backend.generate(convs, n=2)
    assert len(out) == 10 and all(len(o) == 2 and all(isinstance(t, str) for t in o) for o in out)
    again = get_backend(spec, str(gpu_model_dir), seed=3, gpus=1).generate(convs, n=2)
    assert again == out  # same seed, same batches: same samples
    print(json.dumps({"check": "generation-gpu", "completions": backend.stats.completions}))
