"""Noise a healthy run used to log above INFO, each at its source (the whole-run check is in test_tiny_e2e.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from purpcode.runner import local


def test_loading_bandit_logs_nothing_above_info() -> None:
    """Bandit's SARIF formatter plugin needs a package we do not install: stevedore logged an ERROR for it."""
    code = (
        "import logging; logging.basicConfig(level=logging.INFO);"
        "from purpcode.analyzers.bandit_analyzer import scan_one;"
        "assert scan_one('import os\\nos.system(input())\\n').findings;"
        "assert logging.getLogger('stevedore.extension').level == logging.NOTSET"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert res.returncode == 0, res.stderr
    assert "ERROR" not in res.stderr and "WARNING" not in res.stderr, res.stderr


@pytest.mark.parametrize(("devices", "expected"), [([], "cpu"), (["/dev/nvidia0"], None)])
def test_deepspeed_is_told_there_is_no_gpu(
    monkeypatch: pytest.MonkeyPatch, devices: list[str], expected: str | None
) -> None:
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)
    monkeypatch.setattr(local, "accelerator_devices", lambda: devices)
    assert local.child_env().get("DS_ACCELERATOR") == expected
