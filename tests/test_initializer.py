"""The initializer (first step of every plan): tiny model build, skip on re-run, model.path, hub errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from synthesis.stage_configs import stage_config

from purpcode.initializer import COMPLETE, InitError, main, provide_model, run_initializer
from purpcode_operator.api import ModelSpec, TinyModelSpec
from purpcode_operator.layout import SUCCESS_MARKER
from purpcode_operator.plan import StageConfig


@pytest.fixture
def init_config(tmp_path: Path) -> StageConfig:
    return stage_config(tmp_path / "artifacts", "initialize")


def test_tiny_model_is_built_once(init_config: StageConfig) -> None:
    out = Path(init_config.paths.out)
    result = run_initializer(init_config, out)
    base = Path(init_config.paths.base_model)
    assert result["model"]["action"] == "built"
    assert (
        (base / "config.json").is_file()
        and (base / "tokenizer.json").is_file()
        and (base / COMPLETE).is_file()
    )
    cfg = json.loads((base / "config.json").read_text())
    assert cfg["hidden_size"] == 128 and cfg["num_hidden_layers"] == 2  # the sample's `tiny` shape
    assert (out / SUCCESS_MARKER).is_file()
    stamp = (base / "model.safetensors").stat().st_mtime_ns
    again = run_initializer(init_config, out)
    assert again["model"]["action"] == "skipped"
    assert (base / "model.safetensors").stat().st_mtime_ns == stamp
    assert not (base.parent / "base.partial").exists()


def test_changed_tiny_shape_rebuilds(tmp_path: Path) -> None:
    artifacts = tmp_path / "a"
    small = ModelSpec(
        name="tiny-random", tiny=TinyModelSpec(hidden_size=64, num_heads=1, intermediate_size=64)
    )
    assert provide_model(small, artifacts, seed=1)["action"] == "built"
    bigger = ModelSpec(name="tiny-random", tiny=TinyModelSpec(hidden_size=128, num_heads=2))
    assert provide_model(bigger, artifacts, seed=1)["action"] == "built"
    cfg = json.loads((artifacts / "model" / "base" / "config.json").read_text())
    assert cfg["hidden_size"] == 128


def test_model_path_is_linked(tmp_path: Path, tiny_model_dir: Path) -> None:
    artifacts = tmp_path / "a"
    (artifacts / "models").mkdir(parents=True)
    (artifacts / "models" / "mine").symlink_to(tiny_model_dir, target_is_directory=True)
    spec = ModelSpec(name="org/whatever", path="models/mine")
    assert provide_model(spec, artifacts, seed=1)["action"] == "linked"
    base = artifacts / "model" / "base"
    assert base.is_symlink() and (base / "config.json").is_file()
    assert provide_model(spec, artifacts, seed=1)["action"] == "skipped"
    with pytest.raises(InitError, match="has no config.json"):
        provide_model(ModelSpec(name="org/x", path="models/missing"), artifacts, seed=1)


def test_hub_download_offline_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InitError, match="cannot download model 'Qwen/Qwen2.5-0.5B-Instruct'"):
        provide_model(ModelSpec(name="Qwen/Qwen2.5-0.5B-Instruct"), tmp_path, seed=1)
    assert not (tmp_path / "model" / "base").exists()


def test_entry_point_exit_codes(tmp_path: Path, init_config: StageConfig) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["--config", str(bad)]) == 2
    hub = init_config.model_copy(update={"model": ModelSpec(name="org/not-reachable")})
    cfg = tmp_path / "hub.json"
    cfg.write_text(hub.to_json())
    assert main(["--config", str(cfg)]) == 1
    assert not (Path(hub.paths.out) / SUCCESS_MARKER).exists()


def test_module_runs_as_a_process(init_config: StageConfig, tmp_path: Path) -> None:
    cfg = tmp_path / "init.json"
    cfg.write_text(init_config.to_json())
    proc = subprocess.run(
        [sys.executable, "-m", "purpcode.initializer", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (Path(init_config.paths.out) / SUCCESS_MARKER).is_file()
    assert "base model: built" in proc.stderr


def test_released_sets_in_params_are_fetched_once(
    tmp_path: Path, init_config: StageConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from purpcode.data.released import COMPLETE_MARKER, released_dir

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = init_config.model_copy(
        update={"params": {"importDatasets": ["rl-secqa-11k"], "importOrg": "purpcode"}}
    )
    path = tmp_path / "init.json"
    path.write_text(cfg.to_json())
    assert main(["--config", str(path)]) == 1  # no hub here: a clear error, no _SUCCESS
    assert not (Path(cfg.paths.out) / SUCCESS_MARKER).exists()
    folder = released_dir(cfg.paths.artifacts, "rl-secqa-11k")
    (folder / COMPLETE_MARKER).write_text("ok\n")  # pre-loaded on the volume
    assert main(["--config", str(path)]) == 0
    assert json.loads((Path(cfg.paths.out) / SUCCESS_MARKER).read_text())["imports"] == ["rl-secqa-11k"]
