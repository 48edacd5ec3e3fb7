"""The `purpcode` console script as a user runs it."""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted(glob.glob(str(ROOT / "manifests" / "samples" / "*.yaml")))


def purpcode(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("purpcode")
    assert exe, "the purpcode console script is not installed"
    return subprocess.run([exe, *args], capture_output=True, text=True, check=False, cwd=ROOT)


def test_validate_samples() -> None:
    out = purpcode("validate", *SAMPLES)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(": ok") == len(SAMPLES) >= 3


def test_validate_bad_spec_exits_2_one_line_per_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: purpcode.dev/v1alpha1\nkind: PurpCodeRun\nmetadata: {name: r}\n"
        "spec:\n  model: {name: tiny-random}\n  stages:\n    rl: {learningRate: -1, numGenerations: 1}\n"
    )
    out = purpcode("validate", str(bad))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert f"{bad}: spec.stages.rl.learningRate: must be > 0, got -1" in lines
    assert any("spec.stages.rl.numGenerations: must be >= 2, got 1" in line for line in lines)
    assert len(lines) == 2
    assert "Traceback" not in out.stderr


def test_validate_yaml_syntax_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("spec: [unclosed\n")
    out = purpcode("validate", str(bad))
    assert out.returncode == 2
    assert "not valid YAML: line" in out.stderr and "Traceback" not in out.stderr


def test_validate_missing_file() -> None:
    out = purpcode("validate", "no/such/file.yaml")
    assert out.returncode == 2 and "cannot read file" in out.stderr


def test_plan_text_and_json() -> None:
    out = purpcode("plan", str(ROOT / "manifests" / "samples" / "qwen2.5-32b.yaml"))
    assert out.returncode == 0, out.stderr
    assert "torchrun x2 nodes x8" in out.stdout
    assert "python -m purpcode.rl --config /etc/purpcode/config.json" in out.stdout
    data = json.loads(purpcode("plan", "-o", "json", str(ROOT / "manifests/samples/tiny-cpu.yaml")).stdout)
    assert [s["name"] for s in data["stages"]] == [
        "initialize",
        "synthesis",
        "ruleLearning",
        "rl",
        "evaluation",
        "report",
    ]


def test_crd_command_matches_checked_in_file() -> None:
    out = purpcode("crd")
    assert out.returncode == 0
    assert out.stdout == (ROOT / "manifests/crd/purpcode.dev_purpcoderuns.yaml").read_text()


def test_version() -> None:
    out = purpcode("--version")
    assert out.returncode == 0
    project = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{out.stdout.split()[1]}"' in project and out.stdout.startswith("purpcode ")
