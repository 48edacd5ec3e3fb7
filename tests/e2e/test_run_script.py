"""Cheap checks of the kind suite's script that run everywhere (the suite itself needs kind and Docker)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_SH = ROOT / "tests" / "e2e" / "run.sh"


def test_the_script_parses() -> None:
    subprocess.run(["bash", "-n", str(RUN_SH)], check=True)


def test_everything_it_uses_exists() -> None:
    text = RUN_SH.read_text()
    for image in ("operator", "sandbox", "trainer"):
        assert (ROOT / "images" / image / "Dockerfile").exists(), image
    assert (ROOT / "helm" / "purpcode" / "Chart.yaml").exists()
    assert (ROOT / "manifests" / "samples" / "tiny-cpu.yaml").exists()
    from purpcode_operator.layout import STAGE_DIRS

    assert f"STAGE_DIRS=({' '.join(STAGE_DIRS.values())})" in text
    assert "bash tests/e2e/run.sh" in (ROOT / "Makefile").read_text()


def _path_without(tools: set[str], tmp_path: Path) -> str:
    """A PATH holding only the basic commands the script needs before its tool check (no docker/kind/...)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("bash", "env", "dirname", "python3", "printf", "cat"):
        found = shutil.which(name)
        if found and name not in tools:
            os.symlink(found, bin_dir / name)
    return str(bin_dir)


def test_missing_tools_skip_with_a_clear_reason(tmp_path: Path) -> None:
    env = {"PATH": _path_without({"docker", "kind", "kubectl", "helm"}, tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.run(
        ["bash", str(RUN_SH)], env=env, capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert "E2E SKIPPED: 'docker' is not installed" in proc.stdout
    proc = subprocess.run(
        ["bash", str(RUN_SH)],
        env={**env, "PURPCODE_E2E_REQUIRE": "1"},
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 1 and "E2E SKIPPED" in proc.stdout


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI to check the daemon test with")
def test_an_unreachable_docker_daemon_skips(tmp_path: Path) -> None:
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
        pytest.skip("a Docker daemon is running here: the suite would really run")
    bin_dir = Path(_path_without(set(), tmp_path))
    for tool in ("docker", "kubectl"):
        os.symlink(shutil.which(tool), bin_dir / tool)  # type: ignore[arg-type]
    for fake in ("kind", "helm"):
        (bin_dir / fake).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / fake).chmod(0o755)
    proc = subprocess.run(
        ["bash", str(RUN_SH)],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0 and "E2E SKIPPED: the Docker daemon is not reachable" in proc.stdout
