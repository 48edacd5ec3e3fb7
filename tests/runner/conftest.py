"""Runner test helpers: small specs derived from the tiny-cpu sample, the CLI as a subprocess, process checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from purpcode.data.schema import Message, TaskRow, write_jsonl_atomic

# Before anything imports torch: spin-waiting OpenMP threads make CPU generation ~10x slower on a busy machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "manifests" / "samples" / "tiny-random-cpu.yaml"


def eval_only_spec(path: Path, *, name: str = "eval-only", evaluation: dict[str, Any] | None = None) -> Path:
    """The tiny-cpu sample with only the evaluation stage (plus the plan's initialize and report steps)."""
    doc = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    doc["metadata"]["name"] = name
    for stage in ("synthesis", "ruleLearning", "rl"):
        doc["spec"]["stages"][stage]["enabled"] = False
    ev = doc["spec"]["stages"]["evaluation"]
    ev.update({"suites": ["codesec"], "maxPerSuite": 4, "compareBase": True})
    ev.update(evaluation or {})
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def write_codesec_heldout(workdir: Path, n: int) -> None:
    """Held-out codesec prompts where synthesis would put them (the stage itself is disabled in these specs)."""
    rows = [
        TaskRow(
            task_id=f"codesec/{i:03d}",
            messages=[Message(role="user", content=f"Run the command {i} in a shell")],
            oracle="codesec",
            cwe="CWE-78",
        )
        for i in range(n)
    ]
    write_jsonl_atomic(workdir / "artifacts" / "synthesis" / "codesec.heldout.jsonl", rows)


def run_cli(
    *args: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`purpcode run ...` through the real console entry (purpcode.cli)."""
    return subprocess.run(
        [sys.executable, "-m", "purpcode.cli", "run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def state(workdir: Path) -> dict[str, Any]:
    return dict(json.loads((workdir / "state.json").read_text(encoding="utf-8")))


def live_group_members(pgid: int) -> list[int]:
    """Processes (not zombies) whose process group is `pgid`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(entry.name))
    return out


def default_signals() -> None:
    """preexec_fn for a runner under test: Ctrl-C and hangup at their defaults. A shell's background job (`cmd &`)
    starts with SIGINT ignored and `nohup` with SIGHUP ignored, and both are inherited across exec, so a suite
    started that way would otherwise send signals the runner never sees."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def wait_for(predicate: Any, timeout: float, what: str, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"runner exited ({proc.returncode}) before {what}: {proc.stdout.read() if proc.stdout else ''}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
