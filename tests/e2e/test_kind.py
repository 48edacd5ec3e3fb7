"""The kind suite as a pytest test (marked e2e: deselected by default; `pytest -m e2e tests/e2e` or `make e2e`).

It runs tests/e2e/run.sh, which creates a kind cluster, builds and loads the images, installs the chart, applies
tiny-cpu.yaml and checks the run, its artifacts, Events and the operator's metrics. Skipped, with the reason, where
kind, Docker (a running daemon), kubectl or helm is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

RUN_SH = Path(__file__).with_name("run.sh")


def missing_tool() -> str | None:
    for tool in ("docker", "kind", "kubectl", "helm"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (the kind suite needs docker, kind, kubectl and helm)"
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return "the Docker daemon is not reachable ('docker info' failed)"
    return None


@pytest.mark.e2e
@pytest.mark.timeout(7200)
def test_tiny_cpu_on_kind() -> None:
    reason = missing_tool()
    if reason:
        pytest.skip(reason)
    proc = subprocess.run(
        ["bash", str(RUN_SH)],
        env={**os.environ, "PURPCODE_E2E_REQUIRE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-20000:]
    assert "E2E PASSED" in output
