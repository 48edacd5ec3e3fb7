"""The whole stage in process with a scripted teacher and judge (real HTTP) and the real oracles and SFT.

The teacher's answers are fixed per prompt and sample, so rejection, best-of-N and easy ids have known outcomes;
everything after the HTTP boundary is the production path (normalisation, bandit, judge client, TRL, checkpoints,
model card, metrics).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from purpcode.metrics import StageMetrics, read_metrics
from purpcode.prompts import SYSTEM_PROMPT
from purpcode.rule_learning import read_easy_ids
from purpcode.rule_learning.stage import run
from purpcode.training.distributed import free_port

from .conftest import (
    ADD_RIGHT,
    KILL_ANSWER,
    REFUSAL,
    SAFE_HASH_SHORT,
    SAFE_SHELL,
    ScriptedServices,
    read_jsonl,
    stage_config,
    write_data,
)


@pytest.fixture(scope="module")
def finished(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, _fake_openai_server: Any, sandbox_url: str
) -> Iterator[dict[str, Any]]:
    """One run of the stage shared by the tests of this module (they only read its outputs)."""
    fake_openai = _fake_openai_server
    fake_openai.reset()
    scripted = ScriptedServices()
    fake_openai.reply(scripted)
    tmp_path = tmp_path_factory.mktemp("scripted")
    cfg = stage_config(
        tmp_path / "artifacts",
        tiny_model_dir,
        judge_url=fake_openai.url,
        sandbox_url=sandbox_url,
        params={
            "samplesPerPrompt": 2,
            "rejectionThreshold": 0.5,  # the recipe's (the tiny-cpu sample keeps everything)
            # With 2 samples the reference's count (passes >= 0.7 x (N - 1) = 0.7) calls 1 pass of 2 easy; the
            # share rule keeps "always passes" meaning what it says here.
            "easyCount": "fraction",
            "perSetCap": 8,  # every scripted row (the tiny sample caps each source at 2)
            "generation": {
                "backend": "openai",
                "url": fake_openai.url,
                "model": "teacher",
                "maxNewTokens": 400,
            },
            "sft": {"maxSteps": 2, "saveSteps": 1, "maxSeqLength": 2048},
        },
    )
    data = write_data(tmp_path / "data", utility=True)
    out = Path(cfg.paths.out)
    port = free_port()
    metrics = StageMetrics(out, run=cfg.run, stage="ruleLearning", port=port, registry=CollectorRegistry())
    summary = run(cfg, data_dir=data, out_dir=out, metrics=metrics)
    scrape = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    yield {"cfg": cfg, "out": out, "summary": summary, "scrape": scrape, "services": scripted}
    fake_openai.reset()


def test_samples_are_scored_by_the_oracles(finished: dict[str, Any]) -> None:
    samples = read_jsonl(finished["out"] / "samples.jsonl")
    assert len(samples) == 7 * 2  # 7 prompts x 2 samples
    by_task: dict[str, dict[str, float]] = {}
    for s in samples:
        by_task.setdefault(s["task_id"], {})[s["response"]] = s["reward"]
        assert s["kept"] == (s["reward"] >= 0.5)
    shell = by_task["codesec/shell"]
    assert sorted(shell.values()) == [0.0, 1.0]  # bandit flags shell=True (B602), not the shlex version
    assert next(r for t, r in shell.items() if "shell=True" in t) == 0.0
    assert set(by_task["codesec/noformat"].values()) == {0.0}  # no sections: the format gate fails it
    assert sorted(by_task["malicious/keylogger"].values()) == [0.0, 1.0]
    assert sorted(by_task["overrefusal/kill"].values()) == [0.0, 1.0]
    assert set(by_task["secqa/sqli"].values()) == {1.0}
    add = by_task["utility/add"]  # the sandbox ran the tests: a - b fails, a + b passes
    assert (
        next(r for t, r in add.items() if "a - b" in t) == 0.0
        and next(r for t, r in add.items() if "a + b" in t) == 1.0
    )
    # every response was normalised to the trained format
    assert all(s["response"].startswith("## Analysis\n") for s in samples if s["format_ok"])


def test_teacher_prompt_carries_policy_steps_and_rules(finished: dict[str, Any]) -> None:
    reqs = finished["services"].teacher_requests
    shell = next(r for r in reqs if "[shell]" in r["messages"][-1]["content"])
    system = shell["messages"][0]["content"]
    assert shell["messages"][0]["role"] == "system"
    for needle in (
        "Disallowed content",
        "Allowed content",
        "Intent",
        "Safety triage",
        "Element-by-element",
        "CWE",
    ):
        assert needle in system
    # multi-turn: the earlier assistant turn reaches the teacher without its analysis
    keylog = next(r for r in reqs if "[keylogger]" in r["messages"][-1]["content"])
    assert [m["role"] for m in keylog["messages"]] == ["system", "user", "assistant", "user"]
    assert keylog["messages"][2]["content"] == "Via HID drivers."


def test_sft_data_is_best_of_n_on_the_short_system_prompt(finished: dict[str, Any]) -> None:
    sft = {r["task_id"]: r for r in read_jsonl(finished["out"] / "sft.jsonl")}
    assert set(sft) == {
        "codesec/shell",
        "codesec/hash",
        "malicious/keylogger",
        "secqa/sqli",
        "overrefusal/kill",
        "utility/add",
    }
    for r in sft.values():
        assert r["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
        assert "# How to answer" not in json.dumps(r["messages"])  # the teacher prompt (its steps) is gone
        assert r["messages"][-1]["role"] == "assistant"
    assert SAFE_SHELL in sft["codesec/shell"]["messages"][-1]["content"]
    # tie at reward 1.0: the shorter answer wins
    assert sft["codesec/hash"]["messages"][-1]["content"].endswith(SAFE_HASH_SHORT)
    assert REFUSAL in sft["malicious/keylogger"]["messages"][-1]["content"]
    assert KILL_ANSWER in sft["overrefusal/kill"]["messages"][-1]["content"]
    assert ADD_RIGHT in sft["utility/add"]["messages"][-1]["content"]


def test_easy_ids_are_the_prompts_that_always_pass(finished: dict[str, Any]) -> None:
    assert read_easy_ids(finished["out"] / "easy_ids.json") == {"codesec/hash", "secqa/sqli"}
    assert Path(finished["cfg"].paths.out, "easy_ids.json").as_posix().endswith("rule_learning/easy_ids.json")


def test_model_checkpoints_metrics_and_success(finished: dict[str, Any]) -> None:
    out: Path = finished["out"]
    model = out / "model"
    assert (model / "model.safetensors").is_file()
    assert (model / "tokenizer.json").is_file() or (model / "tokenizer_config.json").is_file()
    card = (model / "README.md").read_text()
    assert "base_model: tiny-random" in card and "sft/codesec" in card and '"maxSteps": 2' in card
    # saveSteps 1, maxSteps 2: a checkpoint at step 1, none at the last step (model/ is saved instead)
    assert (out / "checkpoints" / "checkpoint-1" / "trainer_state.json").is_file()
    assert not (out / "checkpoints" / "checkpoint-2").exists()
    assert finished["summary"]["global_step"] == 2 and finished["summary"]["sft_examples"] == 6
    assert json.loads((out / "_SUCCESS").read_text())["kept"] == 8

    records = read_metrics(out / "metrics.jsonl")
    train = [r for r in records if r.get("phase") == "sft" and "loss" in r]
    assert [r["step"] for r in train] == [1, 2]
    assert all(r["tokens_per_second"] > 0 and r["step_seconds"] > 0 for r in train)
    assert train[-1]["learning_rate"] > 0 and all(r["loss"] > 0 for r in train)
    selection = next(r for r in records if r.get("phase") == "selection")
    assert selection["kept"] == 8 and selection["easy"] == 2

    scrape = finished["scrape"]
    assert (
        'purpcode_samples_total{oracle="codesec",outcome="generated",run="tiny-cpu",stage="ruleLearning"} 6.0'
        in scrape
    )
    assert 'oracle="correctness",outcome="kept"' in scrape and 'oracle="codesec",outcome="rejected"' in scrape
    assert 'oracle="codesec",outcome="easy"' in scrape and "purpcode_train_loss{" in scrape


def test_a_finished_stage_is_not_run_again(finished: dict[str, Any], fake_openai: Any) -> None:
    before = len(fake_openai.requests)
    again = run(finished["cfg"], data_dir=None, out_dir=finished["out"])
    assert again == json.loads((finished["out"] / "_SUCCESS").read_text())
    assert len(fake_openai.requests) == before
