"""A full disk during a run: one line naming the path and the cause, exit 1, no process left, a workdir the next
call resumes. The fault is injected at the runner's write calls (ENOSPC without a filename, as a failing write()
or fsync() raises it); the stages and services are real.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from purpcode.runner import local
from purpcode.runner.owned import run_processes

from .conftest import eval_only_spec, write_codesec_heldout


def _disk_full_when(
    monkeypatch: pytest.MonkeyPatch, predicate: Callable[[dict[str, Any]], bool]
) -> list[str]:
    """From the first state write `predicate` accepts on, every write fails with ENOSPC (the disk stays full)."""
    real = local.write_json_atomic
    failed: list[str] = []

    def write(path: str | os.PathLike[str], data: Any) -> None:
        if failed or (Path(path).name == local.STATE_FILE and predicate(data)):
            failed.append(str(path))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, data)

    monkeypatch.setattr(local, "write_json_atomic", write)
    return failed


def test_disk_full_ends_in_one_line_and_the_next_call_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = eval_only_spec(tmp_path / "spec.yaml", name="full")
    workdir = tmp_path / "work"
    write_codesec_heldout(workdir, 1)
    argv = [str(spec), "--workdir", str(workdir), "--plain"]

    # 1. The disk fills once initialize finished: the state save fails.
    done = _disk_full_when(
        monkeypatch, lambda d: d.get("stages", {}).get("initialize", {}).get("status") == "done"
    )
    assert local.main(argv) == local.EXIT_FAILED
    out = capsys.readouterr()
    text = out.out + out.err
    assert done and "Traceback" not in text
    cause = f"{workdir / 'state.json'}: No space left on device"
    assert [line for line in text.splitlines() if "No space left" in line] == [
        line for line in text.splitlines() if cause in line
    ]
    assert len([line for line in text.splitlines() if cause in line]) == 1
    assert run_processes(workdir) == []
    assert (workdir / "artifacts" / "model" / "_SUCCESS").exists()  # the stage's own work is kept

    # 2. The next call resumes (initialize skipped) and this time fails as services start: nothing left running.
    monkeypatch.undo()
    starting = _disk_full_when(monkeypatch, lambda d: bool(d.get("services")))
    assert local.main(argv) == local.EXIT_FAILED
    out = capsys.readouterr()
    assert starting and "3 steps, 1 already done" in out.out and "Traceback" not in out.out + out.err
    assert f"{workdir / 'state.json'}: No space left on device" in out.out
    assert run_processes(workdir) == []
    # The last state written before the disk filled is intact JSON and says nothing is running.
    st = json.loads((workdir / "state.json").read_text())
    assert all(s.get("status") != "running" for s in st["stages"].values())
