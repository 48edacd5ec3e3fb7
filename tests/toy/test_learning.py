"""The recipe pushes the toy policy the right way: the RL stage (the real stage code, oracles and sandbox) raises
the mean reward of a warm-started toy policy in a fixed number of steps, and the same run with the reward negated
lowers it, which proves the sign and the routing of the rewards (codesec through the analyzer, correctness through
the sandbox). Slow (a toy warm start plus two short RL runs on CPU) but bounded: a few minutes on 2 cores.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from purpcode.data.schema import write_jsonl_atomic
from purpcode.metrics import StageMetrics
from purpcode.rl.rewards import reward_function
from purpcode.synthesis.pipeline import draft_row
from purpcode.tiny_model import TinyModelConfig
from purpcode.toy.pretrain import PretrainConfig
from purpcode.toy.warm_start import build_warm_policy
from purpcode_operator.api import PurpCodeRun
from purpcode_operator.plan import ServiceEndpoints, StageConfig, build_plan

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "manifests" / "samples" / "tiny-cpu.yaml"
CWES = ["CWE-78", "CWE-89", "CWE-502", "CWE-327", "CWE-22", "CWE-798"]
SEED = 666
STEPS = 8

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def toy_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("toy") / "policy"
    shape = TinyModelConfig(hiddenSize=128, numLayers=2, numHeads=2, intermediateSize=256, seed=SEED)
    build_warm_policy(out, shape, PretrainConfig(steps=400, batch_size=8, vocab_size=4096), cwes=CWES)
    return out


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RL sets written by the synthesis stage's own draft functions: codesec (Vul2Prompt on the analyzer-confirmed
    corpus seeds) and utility (the shipped tasks with their tests)."""
    from purpcode.analyzers import get_analyzer
    from purpcode.data.rules import load_rules
    from purpcode.synthesis.rule2code import run_rule2code
    from purpcode.synthesis.utility import shipped_tasks, task_draft
    from purpcode.synthesis.vul2prompt import run_vul2prompt
    from purpcode.synthesis.writer import Writer

    rules = [r for r in load_rules(cwes=CWES, detectors=False) if r.kind == "cwe"]
    seeds, _ = run_rule2code(
        rules, Writer(None, label="t"), get_analyzer("bandit", workers=0), seeds_per_rule=0
    )
    strategies = ["general", "benign2vul", "vul2vul", "jailbreak", "multi-turn"]
    codesec = [draft_row(d) for d in run_vul2prompt(seeds, {r.id: r for r in rules}, strategies, 1)]
    utility = [draft_row(task_draft(t, "template")) for t in shipped_tasks(64, SEED)]
    data = tmp_path_factory.mktemp("data")
    write_jsonl_atomic(data / "codesec.train.jsonl", [r.model_dump() for r in codesec])
    write_jsonl_atomic(data / "utility.train.jsonl", [r.model_dump() for r in utility])
    return data


def rl_config(artifacts: Path, sandbox_url: str) -> StageConfig:
    doc = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    doc["spec"]["stages"]["ruleLearning"]["enabled"] = False
    doc["spec"]["stages"]["rl"].update(
        {"maxSteps": STEPS, "heldOutPerSet": 0, "saveSteps": 100, "evalSteps": 100, "learningRate": 1.0e-3}
    )
    plan = build_plan(
        PurpCodeRun.model_validate(doc),
        artifacts_root=str(artifacts),
        endpoints=ServiceEndpoints(sandbox_url=sandbox_url),
    )
    return plan.stage("rl").config.model_copy(update={"metrics_port": None})


def run_rl(
    tmp: Path, policy: Path, data: Path, sandbox_url: str, monkeypatch: pytest.MonkeyPatch, sign: float
) -> list[float]:
    """The RL stage with the reward multiplied by `sign`; returns the true (unsigned) mean reward of each step's
    generations, as the oracles scored them."""
    from purpcode.rl import stage

    true_means: list[float] = []
    real_factory = reward_function  # the real one (stage.reward_function may be an earlier run's patch)

    def signed_factory(runner: Any, **kw: Any) -> Callable[..., list[float]]:
        real = real_factory(runner, **kw)

        def reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
            values = real(prompts, completions, **kwargs)
            true_means.append(sum(values) / len(values))
            return [sign * v for v in values]

        reward.__name__ = real.__name__
        reward.inner = real.inner  # type: ignore[attr-defined]
        return reward

    monkeypatch.setattr(stage, "reward_function", signed_factory)
    cfg = rl_config(tmp / "artifacts", sandbox_url)
    from prometheus_client import CollectorRegistry

    stage.run_stage(cfg, data_dir=data, model_dir=policy, out_dir=tmp / "rl", registry=CollectorRegistry())
    assert len(true_means) >= STEPS
    return true_means


def half_means(values: list[float]) -> tuple[float, float]:
    k = len(values) // 2
    return sum(values[:k]) / k, sum(values[-k:]) / k


def test_rl_raises_the_reward_and_the_negated_reward_lowers_it(
    tmp_path: Path, toy_policy: Path, toy_data: Path, sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = run_rl(tmp_path / "up", toy_policy, toy_data, sandbox_url, monkeypatch, 1.0)
    down = run_rl(tmp_path / "down", toy_policy, toy_data, sandbox_url, monkeypatch, -1.0)
    up_first, up_last = half_means(up)
    down_first, down_last = half_means(down)
    print(f"RL true mean reward per step: +reward {up}, -reward {down}")
    assert 0.02 < up_first < 0.9, "the toy policy must start imperfect, with reward variance"
    assert up_last > up_first + 0.05, "the reward must rise"
    assert down_last < down_first, "the negated reward must lower the reward"
    assert up_last > down_last + 0.1


def assistant_nll(model_dir: Path, conversations: list[list[dict[str, str]]]) -> float:
    """Mean next-token loss on the assistant turns (what rule learning's SFT trains on)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    losses = []
    for messages in conversations:
        enc: Any = tok.apply_chat_template(
            messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids = torch.tensor([enc["input_ids"]])
        labels = torch.tensor(
            [[t if m else -100 for t, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True)]]
        )
        with torch.no_grad():
            losses.append(float(model(input_ids=ids, labels=labels).loss))
    return sum(losses) / len(losses)


def test_rule_learning_keeps_at_the_recipe_threshold_and_sft_lowers_the_loss(
    tmp_path: Path, toy_policy: Path, toy_data: Path, sandbox_url: str
) -> None:
    import json

    from purpcode.rule_learning import stage

    doc = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    plan = build_plan(
        PurpCodeRun.model_validate(doc),
        artifacts_root=str(tmp_path / "artifacts"),
        endpoints=ServiceEndpoints(sandbox_url=sandbox_url),
    )
    cfg = plan.stage("ruleLearning").config.model_copy(update={"metrics_port": None})
    cfg = cfg.model_copy(
        update={
            "paths": cfg.paths.model_copy(update={"base_model": str(toy_policy), "model": str(toy_policy)})
        }
    )
    assert cfg.rule_learning().rejection_threshold == 0.5  # the recipe's, not an override
    out = tmp_path / "rl_out"
    # Its own registry: other tests in this process may have registered the stage gauges in the global one.
    metrics = StageMetrics(out, run=cfg.run, stage=stage.STAGE, registry=CollectorRegistry())
    summary = stage.run(cfg, data_dir=toy_data, out_dir=out, metrics=metrics)
    kept = [json.loads(line) for line in (out / stage.SFT_FILE).read_text().splitlines()]
    print(f"rule learning: {summary}")
    assert 0 < summary["kept"] < summary["samples"], (
        "the toy base must write both passing and failing samples"
    )
    assert kept and all(r["reward"] >= 0.5 for r in kept)
    before = assistant_nll(toy_policy, [r["messages"] for r in kept])
    after = assistant_nll(out / "model", [r["messages"] for r in kept])
    print(f"loss on the kept answers: base {before:.3f} -> after SFT {after:.3f}")
    assert after < before
