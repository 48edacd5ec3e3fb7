"""The plan: pure, ordered, wiring each stage to the previous stage's outputs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from purpcode_operator.api import PurpCodeRun
from purpcode_operator.plan import ServiceEndpoints, StageConfig, build_plan

ROOT = Path(__file__).resolve().parents[2]
TINY: dict[str, Any] = yaml.safe_load((ROOT / "manifests/samples/tiny-cpu.yaml").read_text())


def run_of(doc: dict[str, Any]) -> PurpCodeRun:
    return PurpCodeRun.model_validate(doc)


def test_plan_is_pure_and_ordered() -> None:
    run = run_of(TINY)
    assert build_plan(run) == build_plan(run)
    plan = build_plan(run)
    assert [s.name for s in plan.stages] == [
        "initialize",
        "synthesis",
        "ruleLearning",
        "rl",
        "evaluation",
        "report",
    ]
    rl = plan.stage("rl")
    assert rl.config.paths.model == "/artifacts/rule_learning/model"
    assert rl.config.paths.easy_ids == "/artifacts/rule_learning/easy_ids.json"
    assert rl.args == [
        "--out",
        "/artifacts/rl",
        "--data",
        "/artifacts/synthesis",
        "--model",
        rl.config.paths.model,
    ]
    ev = plan.stage("evaluation")
    assert ev.config.paths.model == "/artifacts/rl/model" and "--base-model" in ev.args
    assert plan.stage("report").needs == [] and set(rl.needs) == {"sandbox", "judge"}


def test_rl_without_sft_starts_from_base() -> None:
    doc = copy.deepcopy(TINY)
    doc["spec"]["stages"]["ruleLearning"]["enabled"] = False
    plan = build_plan(run_of(doc))
    assert "ruleLearning" not in [s.name for s in plan.stages]
    rl = plan.stage("rl")
    assert rl.config.paths.model == "/artifacts/model/base" and rl.config.paths.easy_ids is None


def test_hard_codesec_ablation_only_changes_rl_rewards() -> None:
    doc = copy.deepcopy(TINY)
    doc["spec"]["stages"]["rl"]["hardCodesecReward"] = True
    plan = build_plan(run_of(doc))
    assert plan.stage("rl").config.oracles.codesec_no_code_reward == 0.0
    assert plan.stage("ruleLearning").config.oracles.codesec_no_code_reward == 0.8


def test_local_root_and_endpoints_and_config_round_trip(tmp_path: Path) -> None:
    endpoints = ServiceEndpoints(sandbox_url="http://127.0.0.1:1", judge_url="http://127.0.0.1:2/v1")
    plan = build_plan(run_of(TINY), artifacts_root=str(tmp_path), endpoints=endpoints)
    syn = plan.stage("synthesis")
    assert syn.config.paths.out == f"{tmp_path}/synthesis"
    assert syn.config.services.sandbox_url == "http://127.0.0.1:1"
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(syn.config.to_json())
    loaded = StageConfig.load(cfg_file)
    assert loaded == syn.config
    assert loaded.synthesis().utility_tasks == 16
    assert syn.argv(str(cfg_file), python="py") == [
        "py",
        "-m",
        "purpcode.synthesis",
        "--config",
        str(cfg_file),
        "--out",
        f"{tmp_path}/synthesis",
    ]


def test_cluster_endpoints_and_distribution() -> None:
    doc = yaml.safe_load((ROOT / "manifests/samples/qwen2.5-32b.yaml").read_text())
    doc["metadata"]["namespace"] = "purpcode"  # the samples name none: the namespace they are applied in
    plan = build_plan(run_of(doc))
    cfg = plan.stage("rl").config
    assert cfg.services.sandbox_url == "http://qwen25-32b-sandbox.purpcode.svc:8080"
    assert cfg.services.judge_url == "http://qwen25-32b-judge.purpcode.svc:8000/v1"
    assert plan.stage("ruleLearning").distributed and plan.stage("rl").distributed
    assert not plan.stage("synthesis").distributed
    assert plan.judge.deploy and plan.judge.tensor_parallel_size == 2


@pytest.mark.parametrize("root", ["/artifacts", "/", ".", "runs/tiny", "/tmp/work/", "a//b"])
def test_layout_paths_are_the_posix_paths_of_their_parts(root: str) -> None:
    """The layout joins strings (it runs on every reconcile); it must give exactly pathlib's POSIX paths."""
    from pathlib import PurePosixPath

    from purpcode_operator.layout import STAGE_DIRS, Layout

    layout, base = Layout(root), PurePosixPath(root)
    for stage, sub in STAGE_DIRS.items():
        assert layout.stage_dir(stage) == str(base / sub)
        assert layout.success_marker(stage) == str(base / sub / "_SUCCESS")
    assert layout.base_model == str(base / "model" / "base")
    assert layout.judge_model == str(base / "model" / "judge")
    assert layout.rule_learning_model == str(base / "rule_learning" / "model")
    assert layout.easy_ids == str(base / "rule_learning" / "easy_ids.json")
    assert layout.rl_model == str(base / "rl" / "model")
    assert layout.data == str(base / "synthesis")
