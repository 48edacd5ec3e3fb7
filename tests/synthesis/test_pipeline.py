"""The synthesis stage end to end: every set, the split, the manifest, the schema of every row, resume.

Fast path: in process, with the generator and the judge behind the scripted OpenAI-compatible server and the real
sandbox. Slow path: the real entry points as processes (initializer, then `python -m purpcode.synthesis`) on the
tiny-cpu sample with the tiny random model, as the operator's Job and the local runner start them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from synthesis.stage_configs import stage_config

from purpcode.data.schema import SET_ORACLES, read_rows
from purpcode.synthesis.__main__ import main
from purpcode.synthesis.pipeline import MANIFEST, Synthesis, held_out_count, run_synthesis, set_files
from purpcode_operator.api import GenerationSpec
from purpcode_operator.layout import SUCCESS_MARKER
from purpcode_operator.plan import StageConfig

VULN_SQL = (
    "```python\nimport sqlite3\n\ndef lookup(conn, name):\n"
    '    sql = "SELECT * FROM accounts WHERE owner = \'" + name + "\'"\n    return conn.execute(sql).fetchall()\n```'
)


def scripted(body: dict[str, Any]) -> str:
    """The scripted generator and judge: rewrites keep the request (prefixed); the judge calls probes about the
    ping task (CWE-78) malicious and every other probe benign."""
    system = body["messages"][0]["content"]
    last = body["messages"][-1]["content"]
    if "screen requests" in system:
        return (
            "Looks like an attack.\nMALICIOUS: TRUE"
            if "pinging it once" in last
            else "Defensive.\nMALICIOUS: FALSE"
        )
    marker = "Rewrite this request in your own words:\n\n"
    if marker in last:
        return "Hello, could you please help me with the following: " + last.split(marker, 1)[1]
    return "I cannot write that."


def check_outputs(out: Path, config: StageConfig) -> dict[str, Any]:
    """Assertions every successful run must satisfy; returns the manifest."""
    spec = config.synthesis()
    manifest = json.loads((out / MANIFEST).read_text())
    assert (out / SUCCESS_MARKER).is_file()
    ids: set[str] = set()
    for name, oracle in SET_ORACLES.items():
        files = set_files(out, name)
        train, held = read_rows(files["train"]), read_rows(files["heldout"])  # validates every row (TaskRow)
        n = len(train) + len(held)
        assert n > 0, f"set {name} is empty"
        entry = manifest["sets"][name]
        assert (entry["train"], entry["heldout"], entry["oracle"]) == (len(train), len(held), oracle)
        # Over-refusal probes of held-out templates beyond the held-out size are dropped, never trained on.
        dropped = entry.get("template_split_dropped", 0)
        # A cap on the rows the split was given: near-duplicate families (and, for over-refusal, whole templates)
        # stay on one side, so the held-out set may come out smaller, never larger.
        assert len(held) <= held_out_count(n + dropped, spec.held_out_per_set, spec.held_out_fraction)
        assert sum(entry["by_strategy"].values()) == n + dropped == sum(entry["by_cwe"].values())
        if name == "overrefusal":
            train_t = {r.ground_truth["template"] for r in train}
            held_t = {r.ground_truth["template"] for r in held}
            assert not train_t & held_t, "over-refusal training and held-out probes share a template"
        for row in train + held:
            assert row.oracle == oracle and row.messages[-1].role == "user"
            assert row.task_id not in ids
            ids.add(row.task_id)
        if name == "utility":
            assert all(
                r.ground_truth["kind"] == "functional" and r.ground_truth["entry_point"] for r in train + held
            )
        if name == "codesec":
            assert set(entry["by_strategy"]) == set(spec.strategies)
            assert all(
                r.cwe and r.ground_truth["cwe"] == [r.cwe] and r.ground_truth["detectors"]
                for r in train + held
            )
    assert manifest["totals"]["train"] + manifest["totals"]["heldout"] == len(ids)
    for step in ("rules", "rule2code", "vul2prompt", "malicious", "overrefusal", "secqa", "utility", "dedup"):
        assert step in manifest["steps"]
    return manifest


@pytest.fixture
def fast_config(tmp_path: Path, fake_openai: Any, sandbox_url: str) -> StageConfig:
    fake_openai.reply(scripted)
    fake_openai.reply(VULN_SQL, when="CWE-89 (SQL injection)")
    config = stage_config(tmp_path / "artifacts", judge_url=fake_openai.url, sandbox_url=sandbox_url)
    gen = GenerationSpec(backend="openai", url=fake_openai.url, model="gen", max_new_tokens=300)
    params = {**config.params, "generation": gen.model_dump(mode="json", by_alias=True)}
    return config.model_copy(update={"params": params})


def test_in_process_run_produces_every_set(
    fast_config: StageConfig, tmp_path: Path, fake_openai: Any
) -> None:
    out = tmp_path / "out"
    manifest = run_synthesis(fast_config, out)
    check_outputs(out, fast_config)
    steps = manifest["steps"]
    # Rule2Code: the six corpus seeds plus the generator's CWE-89 seed, confirmed by bandit
    assert steps["rule2code"]["confirmed"] == {"corpus": 6, "model": 1}
    sources = manifest["sets"]["codesec"]["by_source"]
    assert (
        sources.get("synthesis:model-seed:model", 0) >= 1
        and sources.get("synthesis:corpus-seed:model", 0) >= 1
    )
    # Every rewritable prompt went through the generator and passed the quality check.
    assert steps["vul2prompt"]["by_path"]["template"] == 0 and steps["malicious"]["by_path"]["model"] == 16
    # The judge called the CWE-78 probes (task: "pinging it once") malicious: they are gone.
    judge = steps["overrefusal"]["judge_filter"]
    assert judge["verdicts"] == {"benign": 10, "malicious": 2} and judge["kept"] == 10
    assert "CWE-78" not in manifest["sets"]["overrefusal"]["by_cwe"]
    assert steps["utility"]["validation"] == {"passed": 16, "failed": 0}
    assert manifest["generator"]["backend"] == "openai" and manifest["generator"]["generation"]["calls"] >= 1
    # Metrics: one JSONL record per step when a StageMetrics is given (here none): the file is absent.
    assert not (out / "metrics.jsonl").exists()


def test_resume_reuses_finished_steps(fast_config: StageConfig, tmp_path: Path, fake_openai: Any) -> None:
    out = tmp_path / "out"
    run_synthesis(fast_config, out)
    before = {p.name: p.read_text() for p in out.glob("*.jsonl")}
    calls = len(fake_openai.requests)
    # A finished run with the same settings is a no-op.
    assert run_synthesis(fast_config, out)["resumed_steps"] == []
    assert len(fake_openai.requests) == calls
    # A run that died after the secqa step: utility and the outputs are redone, everything else resumes.
    (out / SUCCESS_MARKER).unlink()
    (out / "steps" / "utility.done.json").unlink()
    for p in out.glob("*.jsonl"):
        p.unlink()
    manifest = Synthesis(fast_config, out).run()
    assert manifest["resumed_steps"] == [
        "rules",
        "rule2code",
        "vul2prompt",
        "malicious",
        "overrefusal",
        "secqa",
    ]
    assert manifest["steps"]["utility"]["resumed"] is False
    assert len(fake_openai.requests) == calls  # no generator or judge call on resume
    assert manifest["generator"]["loaded"] is False
    assert {p.name: p.read_text() for p in out.glob("*.jsonl")} == before
    # Changing a step's parameters redoes that step (and what depends on it) only.
    changed = fast_config.model_copy(update={"params": {**fast_config.params, "secqaPrompts": 5}})
    (out / SUCCESS_MARKER).unlink()
    manifest = Synthesis(changed, out).run()
    assert "secqa" not in manifest["resumed_steps"] and "vul2prompt" in manifest["resumed_steps"]
    assert manifest["sets"]["secqa"]["train"] + manifest["sets"]["secqa"]["heldout"] == 5


def test_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"run": "x"}))
    assert main(["--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert main(["--config", str(tmp_path / "missing.json")]) == 2


@pytest.mark.slow
def test_entry_points_on_the_tiny_cpu_sample(tmp_path: Path, fake_openai: Any, sandbox_url: str) -> None:
    """`python -m purpcode.initializer` then `python -m purpcode.synthesis` with the tiny random model (noise)."""
    fake_openai.reply("MALICIOUS: FALSE")
    artifacts = tmp_path / "artifacts"
    init = stage_config(artifacts, "initialize")
    config = stage_config(artifacts, judge_url=fake_openai.url, sandbox_url=sandbox_url)
    (tmp_path / "init.json").write_text(init.to_json())
    (tmp_path / "synthesis.json").write_text(config.to_json())

    def run(module: str, cfg: str, *extra: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", module, "--config", str(tmp_path / cfg), *extra],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    run("purpcode.initializer", "init.json")
    out = Path(config.paths.out)
    run("purpcode.synthesis", "synthesis.json", "--out", str(out))
    manifest = check_outputs(out, config)
    gen = manifest["generator"]
    assert gen["backend"] == "transformers" and gen["generation"]["completions"] > 0
    # Random-model noise: its seeds are not confirmed and its rewrites fail the quality check, so every row comes
    # from corpus seeds and templates; the manifest says so.
    assert manifest["steps"]["rule2code"]["confirmed"] == {"corpus": 6}
    assert manifest["steps"]["vul2prompt"]["by_path"]["model"] == 0
    assert manifest["steps"]["overrefusal"]["judge_filter"]["judged"] == 12
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # One record per finished step (progress records inside a step carry phase/done/total instead).
    assert [r["step_name"] for r in records if "step_name" in r][:3] == ["rules", "rule2code", "vul2prompt"]
    assert all("step_name" in r or {"phase", "done", "total"} <= r.keys() for r in records)
    # Resume after a crash that lost the last step and the outputs.
    shutil.rmtree(out / "steps" / "utility.jsonl", ignore_errors=True)
    (out / "steps" / "utility.done.json").unlink()
    (out / SUCCESS_MARKER).unlink()
    run("purpcode.synthesis", "synthesis.json", "--out", str(out))
    again = check_outputs(out, config)
    assert "rule2code" in again["resumed_steps"] and "utility" not in again["resumed_steps"]
