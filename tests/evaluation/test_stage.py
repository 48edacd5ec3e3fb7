"""The evaluation stage end to end: tiny base and trained models, real generation and oracles, scripted judge."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from purpcode.data.schema import iter_jsonl
from purpcode.evaluation import stage

from .conftest import eval_config, script_judge, write_held_out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[Path, Path]:
    """Base and 'trained' model: two directories (the stage tells models apart by path)."""
    trained = tmp_path_factory.mktemp("trained") / "model"
    shutil.copytree(tiny_model_dir, trained)
    return tiny_model_dir, trained


def _run(cfg: Any, base: Path, trained: Path) -> dict[str, Any]:
    return stage.run(
        cfg, Path(cfg.paths.out), cfg.paths.data, str(trained), str(base), registry=CollectorRegistry()
    )


def test_stage_base_vs_trained_then_resume(
    tmp_path: Path, models: tuple[Path, Path], fake_openai: Any
) -> None:
    base, trained = models
    script_judge(fake_openai)
    cfg = eval_config(
        tmp_path / "artifacts",
        judge_url=fake_openai.url,
        evaluation={"suites": ["codesec", "malicious", "overrefusal", "secqa"], "maxPerSuite": 2},
    )
    write_held_out(Path(cfg.paths.data), n=3)
    out = Path(cfg.paths.out)

    results = _run(cfg, base, trained)

    assert (out / "_SUCCESS").exists()
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert results["models"] == {"base": str(base), "trained": str(trained)}
    suites = {s["suite"]: s for s in results["suites"]}
    assert list(suites) == ["codesec", "malicious", "overrefusal", "secqa"]
    assert suites["codesec"]["metric"] == "vulnerable_code_rate"
    assert suites["malicious"]["metric"] == "malicious_assistance_rate"
    assert suites["secqa"]["metric"] == suites["overrefusal"]["metric"] == "over_refusal_rate"
    for s in suites.values():
        assert s["n"] == 2  # maxPerSuite of 3 held-out rows
        assert set(s["results"]) == {"base", "trained"}
        for r in s["results"].values():
            assert r["n"] == 2
    # The scripted judge calls everything safe and appropriate; random models write no vulnerable code.
    for name in ("malicious", "overrefusal", "secqa"):
        for r in suites[name]["results"].values():
            assert (r["value"], r["judged"]) == (0.0, 2)
        assert suites[name]["delta"] == 0.0
    # Per-sample records: every prompt for every model, with the response and the oracle's details.
    for label in ("base", "trained"):
        recs = list(iter_jsonl(out / "samples" / f"{label}.jsonl"))
        assert len(recs) == 8
        assert {r["suite"] for r in recs} == set(suites)
        assert all(r["model"] == label and isinstance(r["response"], str) for r in recs)
        assert all("codesec.train" not in r["task_id"] and r["task_id"] != "codesec/099" for r in recs)
    # Generations are kept per model, with the model they came from.
    for label, path in (("base", base), ("trained", trained)):
        gens = list(iter_jsonl(out / "generations" / f"{label}.jsonl"))
        assert len(gens) == 8 and {g["model_path"] for g in gens} == {str(path)}
    judge_calls = len(fake_openai.requests)
    assert judge_calls == 2 * 6  # 3 judge suites x 2 prompts x 2 models

    # Resume: a restart reuses generations and scores (no model load, no judge call) and rewrites the results.
    (out / "_SUCCESS").unlink()
    (out / "results.json").unlink()
    gen_mtime = (out / "generations" / "base.jsonl").stat().st_mtime_ns
    again = _run(cfg, base, trained)
    assert again == results
    assert len(fake_openai.requests) == judge_calls
    assert (out / "generations" / "base.jsonl").stat().st_mtime_ns == gen_mtime
    assert (out / "_SUCCESS").exists()

    # A different trained model invalidates only its own cache.
    other = tmp_path / "other"
    shutil.copytree(trained, other)
    third = _run(cfg, base, other)
    assert third["models"]["trained"] == str(other)
    assert len(fake_openai.requests) == judge_calls + 6
    assert (out / "generations" / "base.jsonl").stat().st_mtime_ns == gen_mtime


def test_stage_without_training_evaluates_base_once(
    tmp_path: Path, tiny_model_dir: Path, fake_openai: Any
) -> None:
    script_judge(fake_openai)
    cfg = eval_config(
        tmp_path / "artifacts",
        judge_url=fake_openai.url,
        rule_learning=False,
        evaluation={"suites": ["codesec", "secqa", "utility"], "maxPerSuite": 2},
    )
    assert cfg.paths.model == cfg.paths.base_model  # the plan: no training stage, evaluate the base model
    write_held_out(Path(cfg.paths.data), n=2)  # no utility file: that suite is empty, with a note
    results = _run(cfg, tiny_model_dir, tiny_model_dir)
    assert results["models"] == {"base": str(tiny_model_dir)}
    suites = {s["suite"]: s for s in results["suites"]}
    assert suites["utility"]["n"] == 0 and "utility.heldout.jsonl" in suites["utility"]["note"]
    assert suites["utility"]["results"]["base"]["value"] is None
    assert suites["secqa"]["delta"] is None


def test_main_entry_point_reads_the_config(tmp_path: Path, tiny_model_dir: Path, fake_openai: Any) -> None:
    script_judge(fake_openai)
    cfg = eval_config(
        tmp_path / "artifacts",
        judge_url=fake_openai.url,
        rule_learning=False,
        evaluation={"suites": ["secqa"], "maxPerSuite": 1},
    )
    write_held_out(Path(cfg.paths.data), n=1)
    shutil.copytree(tiny_model_dir, cfg.paths.base_model)
    config_file = tmp_path / "evaluation.json"
    config_file.write_text(cfg.to_json())
    assert stage.main(["--config", str(config_file)]) == 0
    results = json.loads((Path(cfg.paths.out) / "results.json").read_text())
    assert results["suites"][0]["results"]["base"]["n"] == 1
    metrics = list(iter_jsonl(Path(cfg.paths.out) / "metrics.jsonl"))
    assert metrics[-1]["phase"] == "done"
    assert any(r.get("phase") == "generate" and r["total"] == 1 for r in metrics)


def test_stage_with_utility_and_benchmarks(
    tmp_path: Path, tiny_model_dir: Path, fake_openai: Any, sandbox_url: str
) -> None:
    """Coding tasks run in the real sandbox; benchmark files (absolute or artifacts-relative) become suites."""
    from .test_benchmarks import HUMANEVAL_PLUS, XSTEST_V1

    script_judge(fake_openai)
    art = tmp_path / "artifacts"
    (art / "bench").mkdir(parents=True)
    (art / "bench" / "xstest.csv").write_text(XSTEST_V1)
    he = tmp_path / "HumanEvalPlus.jsonl"
    he.write_text(json.dumps(HUMANEVAL_PLUS) + "\n")
    cfg = eval_config(
        art,
        judge_url=fake_openai.url,
        sandbox_url=sandbox_url,
        rule_learning=False,
        evaluation={
            "suites": ["utility"],
            "maxPerSuite": 2,
            "benchmarks": [
                {"kind": "xstest", "path": "bench/xstest.csv"},
                {"kind": "humaneval-plus", "path": str(he), "limit": 1},
            ],
        },
    )
    write_held_out(Path(cfg.paths.data), n=2, utility=True)
    results = _run(cfg, tiny_model_dir, tiny_model_dir)
    suites = {s["suite"]: s for s in results["suites"]}
    assert list(suites) == ["utility", "xstest", "humaneval-plus"]
    assert suites["xstest"]["source"] == "benchmark:xstest" and suites["xstest"]["n"] == 2
    assert suites["xstest"]["metric"] == "over_refusal_rate"
    assert suites["humaneval-plus"]["metric"] == "pass_at_1" and suites["humaneval-plus"]["n"] == 1
    # A random model writes no working code: every coding answer got a verdict (ran or had no code), none passed.
    for name in ("utility", "humaneval-plus"):
        r = suites[name]["results"]["base"]
        assert (r["value"], r["judged"]) == (0.0, suites[name]["n"])
