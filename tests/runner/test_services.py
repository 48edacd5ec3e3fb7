"""Local services: the judge and the sandbox as real subprocesses, healthy, answering, and stopped whole."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from purpcode.runner.services import (
    Service,
    ServiceError,
    gpu_vllm_available,
    judge_service,
    sandbox_service,
)

from .conftest import live_group_members


def _stopped_clean(svc: Service) -> None:
    assert svc.proc is not None
    pgid = svc.proc.pid
    svc.stop()
    assert svc.proc.poll() is not None
    assert live_group_members(pgid) == []


def test_judge_service_tiny_random(tmp_path: Path, tiny_model_dir: Path) -> None:
    svc = judge_service(
        model=str(tiny_model_dir),
        served_name="tiny-random",
        logs=tmp_path / "logs",
        cache_dir=tmp_path / "cache",
        max_model_len=2048,
        backend="transformers",
    )
    assert "purpcode.judge_server" in svc.argv and "--truncate-long-prompts" in svc.argv
    svc.start()
    try:
        svc.wait_ready()
        r = httpx.post(
            f"{svc.url}/chat/completions",
            timeout=60,
            json={"model": "tiny-random", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        )
        assert r.status_code == 200
    finally:
        _stopped_clean(svc)
    assert (tmp_path / "logs" / "judge.log").read_text().startswith("\n==== ")


def test_sandbox_service_runs_code(tmp_path: Path) -> None:
    svc = sandbox_service(tmp_path / "logs")
    svc.start()
    try:
        svc.wait_ready()
        r = httpx.post(f"{svc.url}/run_code", json={"code": "print(6 * 7)", "language": "python"}, timeout=60)
        assert r.status_code == 200 and r.json()["run_result"]["stdout"].strip() == "42"
    finally:
        _stopped_clean(svc)


def test_a_service_that_dies_reports_its_log(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    svc = Service(
        "broken",
        [sys.executable, "-c", "import sys; print('boom: bad flag'); sys.exit(3)"],
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/health",
        log,
        start_timeout_s=30,
    )
    svc.start()
    with pytest.raises(ServiceError, match="exited with status 3") as err:
        svc.wait_ready()
    assert "boom: bad flag" in str(err.value)


def test_a_service_that_never_gets_healthy_times_out(tmp_path: Path) -> None:
    svc = Service(
        "silent",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/health",
        tmp_path / "s.log",
        start_timeout_s=1,
    )
    svc.start()
    try:
        with pytest.raises(ServiceError, match="not healthy"):
            svc.wait_ready()
    finally:
        _stopped_clean(svc)


def test_judge_backend_choice(tmp_path: Path, tiny_model_dir: Path) -> None:
    """backend='vllm' runs vLLM's OpenAI server module on the model directory ('tiny-random' is built first)."""
    svc = judge_service(
        model="tiny-random",
        served_name="tiny-random",
        logs=tmp_path,
        cache_dir=tmp_path / "c",
        max_model_len=2048,
        tensor_parallel_size=2,
        backend="vllm",
    )
    assert svc.argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    model_dir = Path(svc.argv[svc.argv.index("--model") + 1])
    assert (model_dir / "config.json").exists() and model_dir.is_relative_to(tmp_path / "c")
    assert svc.argv[svc.argv.index("--tensor-parallel-size") + 1] == "2"
    assert svc.health_url.endswith("/health") and svc.url.endswith("/v1")
    cpu = judge_service(
        model=str(tiny_model_dir),
        served_name="j",
        logs=tmp_path,
        cache_dir=tmp_path / "c",
        max_model_len=1024,
        backend="auto",
    )
    # auto: vLLM only with a GPU and vLLM installed, else the project's transformers server.
    assert ("purpcode.judge_server" in cpu.argv) == (not gpu_vllm_available())
