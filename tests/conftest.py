"""Shared test fixtures (append yours; keep each one cheap or session-scoped)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning made tiny-model work ~10x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Shared fixture modules under tests/support (tests/ is on sys.path via this rootdir conftest): append yours.
pytest_plugins = [
    "support.fake_openai",  # fake_openai: scripted OpenAI-compatible HTTP server (oracles, RL, evaluation)
    "support.sandbox_fixture",  # sandbox_url: the real sandbox service (bubblewrap jail) on a loopback port
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 chat model (purpcode.tiny_model), built once per test session."""
    from purpcode.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
