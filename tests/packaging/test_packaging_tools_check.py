"""A missing tool skips its test on a developer machine and fails it under CI (`.ci/run` sets CI=true)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tools_check import in_ci, require_tool

ROOT = Path(__file__).resolve().parents[2]
MISSING = "purpcode-no-such-tool"


@pytest.mark.parametrize(
    ("value", "ci"), [("true", True), ("1", True), ("TRUE", True), ("false", False), ("", False)]
)
def test_ci_flag(monkeypatch: pytest.MonkeyPatch, value: str, ci: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is ci


def test_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install it"):
        require_tool(MISSING, "nowhere")


def test_missing_tool_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_tool(MISSING, "nowhere")


def test_env_override_must_be_executable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PURPCODE_NO_SUCH_TOOL", str(tmp_path / "absent"))
    with pytest.raises(pytest.fail.Exception, match="PURPCODE_NO_SUCH_TOOL"):
        require_tool(MISSING, "nowhere", env="PURPCODE_NO_SUCH_TOOL")
    exe = tmp_path / "tool"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PURPCODE_NO_SUCH_TOOL", str(exe))
    assert require_tool(MISSING, "nowhere", env="PURPCODE_NO_SUCH_TOOL") == str(exe)


def test_ci_script_sets_ci_and_installs_semgrep() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "export CI=true" in script
    assert "PURPCODE_SEMGREP=" in script
