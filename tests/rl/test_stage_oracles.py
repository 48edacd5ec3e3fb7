"""Rule learning, RL and evaluation score with the same oracles: one mapping from the stage config."""

from __future__ import annotations

from pathlib import Path

import yaml

from purpcode.evaluation.stage import oracle_runner as evaluation_runner
from purpcode.rl.rewards import build_runner
from purpcode.rule_learning.stage import oracle_runner as rule_learning_runner
from purpcode_operator.api import PurpCodeRun
from purpcode_operator.plan import ServiceEndpoints, build_plan

from .conftest import SAMPLE


def test_every_stage_scores_with_the_spec_oracles(tmp_path: Path) -> None:
    doc = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    doc["spec"]["oracles"] = {
        "format": {"analysisMinChars": 7, "answerMinChars": 5},
        "codesecNoCodeReward": 0.5,
        "correctnessTimeoutSeconds": 4,
    }
    doc["spec"]["stages"]["rl"]["hardCodesecReward"] = True
    plan = build_plan(
        PurpCodeRun.model_validate(doc),
        artifacts_root=str(tmp_path),
        endpoints=ServiceEndpoints(
            sandbox_url="http://sandbox:8080", judge_url="http://judge:8000/v1", judge_model="j"
        ),
    )
    rule = rule_learning_runner(plan.stage("ruleLearning").config)
    rl_cfg = plan.stage("rl").config
    rl = build_runner(rl_cfg, rl_cfg.rl())
    ev = evaluation_runner(plan.stage("evaluation").config)
    try:
        assert rule.config == ev.config
        got = rule.config
        assert (got.analysis_min_chars, got.answer_min_chars) == (7, 5)
        assert (got.codesec_no_code_reward, got.correctness_timeout_s) == (0.5, 4)
        # RL's hard-codesec ablation changes that one value and nothing else.
        assert rl.config.codesec_no_code_reward == 0.0
        assert rl.config.model_copy(update={"codesec_no_code_reward": 0.5}) == got
        for runner in (rule, rl, ev):
            assert runner.correctness is not None and runner.judge is not None
    finally:
        for runner in (rule, rl, ev):
            runner.close()
