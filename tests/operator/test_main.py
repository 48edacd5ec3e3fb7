"""Command line and environment of `purpcode-operator`."""

from __future__ import annotations

import pytest

from purpcode_operator.config import OperatorConfig
from purpcode_operator.main import build_config, main, parse_args


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PURPCODE_WATCH_NAMESPACES", "a, b")
    monkeypatch.setenv("PURPCODE_METRICS_PORT", "9000")
    monkeypatch.setenv("PURPCODE_RETRY_BACKOFF_SECONDS", "2.5")
    monkeypatch.setenv("PURPCODE_TRAINER_IMAGE", "registry.local/trainer:dev")
    config = build_config(parse_args([]))
    assert config.namespaces == ["a", "b"] and config.metrics_port == 9000
    assert (
        config.retry_backoff_seconds == 2.5 and config.defaults.trainer_image == "registry.local/trainer:dev"
    )
    config = build_config(parse_args(["-n", "x", "-n", "y", "--metrics-port", "8081", "--workers", "4"]))
    assert config.namespaces == ["x", "y"] and config.metrics_port == 8081 and config.workers == 4
    assert build_config(parse_args(["-A"])).namespaces == []
    assert build_config(parse_args(["--peering", "purpcode"])).peering == "purpcode"
    monkeypatch.setenv("PURPCODE_JUDGE_URL", "http://j/v1")
    monkeypatch.setenv("PURPCODE_SANDBOX_RUNTIME_CLASS_NAME", "gvisor")
    config = build_config(parse_args([]))
    assert config.judge_url == "http://j/v1" and config.sandbox_runtime_class_name == "gvisor"


def test_defaults() -> None:
    config = OperatorConfig()
    assert config.namespaces == [] and config.peering is None and config.workers == 16
    assert config.retry_backoff_seconds == 10.0 and config.resync_seconds == 600.0


def test_a_bad_value_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PURPCODE_WORKERS", "many")
    assert main([]) == 2
    assert "PURPCODE_WORKERS must be an integer, got 'many'" in capsys.readouterr().err


def test_namespace_flags_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        parse_args(["-n", "a", "-A"])
