"""`purpcode run` on real stages (initializer, evaluation, report) with the real services: a whole run, resume,
a failing stage, Ctrl-C in the middle of a stage, and --rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from purpcode.runner.owned import run_processes

from .conftest import (
    default_signals,
    eval_only_spec,
    live_group_members,
    run_cli,
    state,
    wait_for,
    write_codesec_heldout,
)

STEPS = ["initialize", "evaluation", "report"]


@pytest.mark.slow  # a whole run of real processes: ~20-90 s on a busy 2-core machine
def test_run_then_resume_skips_finished_stages(tmp_path: Path) -> None:
    spec = eval_only_spec(tmp_path / "spec.yaml")
    workdir = tmp_path / "work"
    write_codesec_heldout(workdir, 3)

    first = run_cli(str(spec), "--workdir", str(workdir), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    art = workdir / "artifacts"
    for d in ("model", "evaluation", "report"):
        assert (art / d / "_SUCCESS").exists()
    results = json.loads((art / "evaluation" / "results.json").read_text())
    assert results["suites"][0]["results"]["base"]["n"] == 3
    assert (art / "report" / "report.md").read_text().startswith("# PurpCode run report: eval-only")
    for step in STEPS:
        cfg = json.loads((workdir / "configs" / f"{step}.json").read_text())
        assert cfg["paths"]["artifacts"] == str(art) and cfg["metrics_port"] is None
        assert (workdir / "logs" / f"{step}.log").exists()
    st = state(workdir)
    assert [st["stages"][s]["status"] for s in STEPS] == ["done"] * 3
    assert st["stages"]["evaluation"]["exit_code"] == 0
    ev_cfg = json.loads((workdir / "configs" / "evaluation.json").read_text())
    assert ev_cfg["services"]["sandbox_url"].startswith("http://127.0.0.1:")
    assert (
        ev_cfg["services"]["judge_url"].startswith("http://127.0.0.1:")
        and ev_cfg["services"]["judge_model"] == "tiny-random"
    )
    for svc in st["services"].values():
        assert live_group_members(svc["pid"]) == []  # services stopped at the end
    assert "finished" in first.stdout and str(art / "report" / "report.md") in first.stdout

    sandbox_log = (workdir / "logs" / "sandbox.log").read_text()
    second = run_cli(str(spec), "--workdir", str(workdir), cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "3 steps, 3 already done" in second.stdout
    assert (workdir / "logs" / "sandbox.log").read_text() == sandbox_log  # no service started for nothing


@pytest.mark.slow  # a whole run of real processes: ~20-90 s on a busy 2-core machine
def test_failing_stage_stops_the_run_and_names_its_log(tmp_path: Path) -> None:
    spec = eval_only_spec(
        tmp_path / "spec.yaml",
        name="broken",
        evaluation={"benchmarks": [{"kind": "xstest", "path": "benchmarks/missing.csv"}]},
    )
    workdir = tmp_path / "work"
    res = run_cli(str(spec), "--workdir", str(workdir), cwd=tmp_path)
    assert res.returncode == 1
    assert "stage evaluation failed with exit status 1" in res.stdout
    assert str(workdir / "logs" / "evaluation.log") in res.stdout
    assert "missing.csv" in res.stdout  # the log tail shows the cause
    st = state(workdir)
    assert st["stages"]["initialize"]["status"] == "done"
    assert st["stages"]["evaluation"]["status"] == "failed"
    assert "report" not in st["stages"]
    for svc in st["services"].values():
        assert live_group_members(svc["pid"]) == []


def _pending(pid: int, sig: signal.Signals) -> bool:
    """Whether `sig` is pending for process `pid` (sent to it, not yet handled: the process is stopped)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("ShdPnd:"):
            return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


@pytest.mark.slow  # a whole run of real processes: ~20-90 s on a busy 2-core machine
def test_ctrl_c_stops_everything_and_the_next_call_resumes(tmp_path: Path) -> None:
    spec = eval_only_spec(
        tmp_path / "spec.yaml",
        name="interrupted",
        evaluation={
            "maxPerSuite": 64,
            "generation": {"backend": "transformers", "temperature": 0.0, "maxNewTokens": 96, "batchSize": 4},
        },
    )
    workdir = tmp_path / "work"
    write_codesec_heldout(workdir, 32)
    metrics = workdir / "artifacts" / "evaluation" / "metrics.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "purpcode.cli", "run", str(spec), "--workdir", str(workdir), "--plain"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        start_new_session=True,
        preexec_fn=default_signals,
    )
    try:
        # Interrupt once evaluation has generated its first batch (the stage is mid-way).
        wait_for(
            lambda: metrics.exists() and '"generate"' in metrics.read_text(), 300, "evaluation progress", proc
        )
        running = state(workdir)
        # The stage is frozen until the runner's SIGTERM to it is pending, so the evaluation cannot finish between
        # the progress check and Ctrl-C (on a fast machine the toy model's whole evaluation takes a few seconds).
        stage_pgid = running["stages"]["evaluation"]["pid"]
        os.killpg(stage_pgid, signal.SIGSTOP)
        try:
            os.kill(proc.pid, signal.SIGINT)
            wait_for(
                lambda: _pending(stage_pgid, signal.SIGTERM), 60, "the runner's SIGTERM to the stage", proc
            )
        finally:
            os.killpg(stage_pgid, signal.SIGCONT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted" in out and "run the same command again" in out.lower()
    st = state(workdir)
    assert st["stages"]["evaluation"]["status"] == "interrupted"
    assert not (workdir / "artifacts" / "evaluation" / "_SUCCESS").exists()
    stage_pid = running["stages"]["evaluation"]["pid"]
    for pid in [stage_pid, *(s["pid"] for s in st["services"].values())]:
        assert live_group_members(pid) == [], f"process group {pid} left running"

    again = run_cli(str(spec), "--workdir", str(workdir), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "3 steps, 1 already done" in again.stdout  # initialize skipped; evaluation and report run
    results = json.loads((workdir / "artifacts" / "evaluation" / "results.json").read_text())
    assert results["suites"][0]["results"]["base"]["n"] == 32


@pytest.mark.slow  # a whole run of real processes, twice: ~40-120 s on a busy 2-core machine
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_a_killed_runner_leaves_no_process_and_the_rerun_resumes_once(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGKILL (nothing can be caught: the guard cleans up) and SIGHUP (terminal closed: the runner stops cleanly)."""
    spec = eval_only_spec(
        tmp_path / "spec.yaml",
        name="killed",
        evaluation={
            "maxPerSuite": 16,
            "generation": {"backend": "transformers", "temperature": 0.0, "maxNewTokens": 64, "batchSize": 2},
        },
    )
    workdir = tmp_path / "work"
    write_codesec_heldout(workdir, 8)
    metrics = workdir / "artifacts" / "evaluation" / "metrics.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "purpcode.cli", "run", str(spec), "--workdir", str(workdir), "--plain"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        start_new_session=True,
        preexec_fn=default_signals,
    )
    try:
        wait_for(
            lambda: metrics.exists() and '"generate"' in metrics.read_text(), 300, "evaluation progress", proc
        )
        assert len(run_processes(workdir)) >= 3  # the stage and both services, marked as this run's
        os.kill(proc.pid, sig)
        proc.communicate(timeout=60)
        wait_for(lambda: run_processes(workdir) == [], 15, "every process of the run to be gone")
    finally:
        if proc.poll() is None:
            proc.kill()
    st = state(workdir)
    assert st["stages"]["evaluation"]["status"] == "interrupted"
    assert not (workdir / "artifacts" / "evaluation" / "_SUCCESS").exists()

    again = run_cli(str(spec), "--workdir", str(workdir), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "3 steps, 1 already done" in again.stdout and "another" not in again.stdout
    assert (workdir / "logs" / "evaluation.log").read_text().count(
        "\n==== "
    ) == 2  # the killed start + one rerun
    results = json.loads((workdir / "artifacts" / "evaluation" / "results.json").read_text())
    assert results["suites"][0]["results"]["base"]["n"] == 8
    assert run_processes(workdir) == []


@pytest.mark.slow  # a whole run of real processes: ~20-90 s on a busy 2-core machine
def test_rerun_resets_a_stage_and_the_ones_after_it(tmp_path: Path) -> None:
    spec = eval_only_spec(tmp_path / "spec.yaml", name="rerun")
    workdir = tmp_path / "work"
    write_codesec_heldout(workdir, 1)
    assert run_cli(str(spec), "--workdir", str(workdir), cwd=tmp_path).returncode == 0
    first_report = (workdir / "artifacts" / "report" / "report.json").stat().st_mtime_ns
    bad = run_cli(str(spec), "--workdir", str(workdir), "--rerun", "nope", cwd=tmp_path)
    assert bad.returncode == 2 and "initialize, evaluation, report" in bad.stderr
    # A changed setting on the finished workdir: refused, naming the field and the --rerun to use.
    spec.write_text(spec.read_text().replace("maxPerSuite: 4", "maxPerSuite: 3"))
    changed = run_cli(str(spec), "--workdir", str(workdir), cwd=tmp_path)
    assert changed.returncode == 2, changed.stdout + changed.stderr
    assert (
        "evaluation: params.maxPerSuite: 4 -> 3" in changed.stdout
        and "`--rerun evaluation`" in changed.stdout
    )
    stale = workdir / "artifacts" / "evaluation" / "left-by-the-first-run.txt"
    stale.write_text("old")
    kept = workdir / "artifacts" / "model" / "base"
    assert kept.is_dir()
    res = run_cli(str(spec), "--workdir", str(workdir), "--rerun", "evaluation", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "re-running: evaluation, report" in res.stdout
    assert (workdir / "artifacts" / "report" / "report.json").stat().st_mtime_ns != first_report
    assert not stale.exists()  # the stage ran again from scratch, not on top of its old directory
    assert kept.is_dir()  # earlier stages keep their artifacts


def test_invalid_spec_exits_2_naming_the_field(tmp_path: Path) -> None:
    spec = eval_only_spec(tmp_path / "spec.yaml")
    spec.write_text(spec.read_text().replace("maxPerSuite: 4", "maxPerSuite: -1"))
    res = run_cli(str(spec), cwd=tmp_path)
    assert res.returncode == 2
    assert "spec.stages.evaluation.maxPerSuite" in res.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow  # a whole run of real processes
def test_external_judge_url_is_used_and_its_key_comes_from_the_env(
    tmp_path: Path, fake_openai: object
) -> None:
    import yaml

    fake: Any = fake_openai
    fake.reply("Fine.\nCLASS: APPROPRIATE")
    spec = eval_only_spec(tmp_path / "spec.yaml", name="external", evaluation={"suites": ["secqa"]})
    doc = yaml.safe_load(spec.read_text())
    doc["spec"]["services"]["judge"] = {
        "url": fake.url,
        "model": "fake-judge",
        "apiKeySecretRef": {"name": "judge-key", "key": "token"},
    }
    spec.write_text(yaml.safe_dump(doc))
    workdir = tmp_path / "work"
    rows = [
        {
            "task_id": f"secqa/{i}",
            "messages": [{"role": "user", "content": f"What is XSS {i}?"}],
            "oracle": "noreject",
        }
        for i in range(2)
    ]
    (workdir / "artifacts" / "synthesis").mkdir(parents=True)
    (workdir / "artifacts" / "synthesis" / "secqa.heldout.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )

    missing = run_cli(str(spec), "--workdir", str(workdir), cwd=tmp_path, env={"PURPCODE_JUDGE_API_KEY": ""})
    assert missing.returncode == 2 and "PURPCODE_JUDGE_API_KEY" in missing.stdout

    res = run_cli(
        str(spec), "--workdir", str(workdir), cwd=tmp_path, env={"PURPCODE_JUDGE_API_KEY": "sk-test-123"}
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert not (workdir / "logs" / "judge.log").exists()  # no local judge started
    assert len(fake.requests) == 2 and all(
        h.get("authorization") == "Bearer sk-test-123" for h in fake.request_headers
    )
    cfg = json.loads((workdir / "configs" / "evaluation.json").read_text())
    assert (
        cfg["services"]["judge_url"] == fake.url
        and cfg["services"]["judge_api_key_env"] == "PURPCODE_JUDGE_API_KEY"
    )
    assert "sk-test-123" not in (workdir / "configs" / "evaluation.json").read_text()
    results = json.loads((workdir / "artifacts" / "evaluation" / "results.json").read_text())
    assert results["suites"][0]["results"]["base"]["value"] == 0.0  # judged APPROPRIATE: no over-refusal
