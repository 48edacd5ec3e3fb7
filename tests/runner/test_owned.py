"""The runner owns its children: a runner killed any way leaves no process of its run behind, the lock is held while
one lives, state.json never keeps `running` for a stage nobody runs, and a rerun refuses or cleans up.

Fast tests of the mechanism (a small stand-in runner built from the real pieces); the real runner killed mid-stage
is in test_local_run.py (slow).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from purpcode.runner.local import WorkdirBusy, workdir_lock
from purpcode.runner.owned import GUARD_GRACE_S, MARKER_ENV, run_processes, settle_state, stop_run_processes

from .conftest import default_signals, wait_for

# A runner in miniature: the lock, the guard, a "stage" (own session, parent-death signal, holds the lock) that
# spawns a grandchild in yet another session (out of reach of a process-group kill), and a state saying running.
STANDIN = textwrap.dedent(
    """
    import json, subprocess, sys, time
    from pathlib import Path
    from purpcode.runner.local import child_env, workdir_lock
    from purpcode.runner.owned import MARKER_ENV, Guard, die_with_parent

    wd = Path(sys.argv[1]).resolve()
    grandchild = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True); time.sleep(600)"
    with workdir_lock(wd) as fd:
        Guard(wd, fd)
        stage = subprocess.Popen([sys.executable, "-c", grandchild], env=child_env({MARKER_ENV: str(wd)}),
                                 start_new_session=True, preexec_fn=die_with_parent(), pass_fds=(fd,))
        (wd / "state.json").write_text(json.dumps({"stages": {"evaluation": {"status": "running", "pid": stage.pid}}}))
        print("ready", flush=True)
        time.sleep(600)
    """
)


def _lock_free(workdir: Path) -> bool:
    with (workdir / ".lock").open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
        return True


def _start_standin(workdir: Path) -> subprocess.Popen[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", STANDIN, str(workdir)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=default_signals,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    wait_for(lambda: len(run_processes(workdir)) == 2, 20, "stage and grandchild", proc)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP])
def test_a_killed_runner_leaves_nothing_and_settles_its_state(tmp_path: Path, sig: signal.Signals) -> None:
    workdir = tmp_path / "work"
    proc = _start_standin(workdir)
    try:
        pids = run_processes(workdir)
        # While the run lives, a second runner is refused and told which processes hold the workdir.
        with pytest.raises(WorkdirBusy) as busy, workdir_lock(workdir):
            pass
        assert f"pid {proc.pid}" in str(busy.value) and all(str(p) in str(busy.value) for p in pids)

        os.kill(proc.pid, sig)
        # Bounded by the guard's worst case (3 passes of SIGTERM, GUARD_GRACE_S, SIGKILL, 5 s), not by a guess:
        # a loaded CI machine once took more than 15 s here. What is left is named if it times out.
        worst = 3 * (GUARD_GRACE_S + 5.0) + 10.0
        try:
            wait_for(lambda: run_processes(workdir) == [], worst, "the run's processes to be gone")
        except AssertionError as err:
            left = {
                p: Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")
                for p in run_processes(workdir)
            }
            raise AssertionError(f"{err}; still running: {left}") from err
        wait_for(lambda: _lock_free(workdir), 10, "the lock to be released")
        entry = json.loads((workdir / "state.json").read_text())["stages"]["evaluation"]
        assert entry["status"] == "interrupted" and "pid" not in entry
    finally:
        if proc.poll() is None:
            proc.kill()
        stop_run_processes(workdir, grace_s=0.5)
        proc.wait()


def test_a_stage_outliving_its_runner_keeps_the_lock(tmp_path: Path) -> None:
    """The stage holds the lock fd: with runner and guard gone, a rerun is still refused while the stage lives."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = {**os.environ, MARKER_ENV: str(workdir.resolve())}
    with workdir_lock(workdir) as fd:
        stage = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)"],
            env=env,
            pass_fds=(fd,),
            start_new_session=True,
        )
    try:
        with pytest.raises(WorkdirBusy, match=str(stage.pid)), workdir_lock(workdir):
            pass
    finally:
        stage.kill()
        stage.wait()
    with workdir_lock(workdir):
        pass


def test_leftovers_without_the_lock_are_stopped(tmp_path: Path) -> None:
    """What a rerun does when the lock is free but marked processes remain (runner and guard both killed)."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = {**os.environ, MARKER_ENV: str(workdir.resolve())}
    other = {**os.environ, MARKER_ENV: str(tmp_path / "other")}
    # One ignores SIGTERM (needs SIGKILL); one belongs to another workdir and must survive.
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
        ],
        env=env,
    )
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=other)
    try:
        wait_for(lambda: run_processes(workdir) == [stubborn.pid], 10, "the marked process")
        assert stop_run_processes(workdir, grace_s=0.5) == [stubborn.pid]
        stubborn.wait(timeout=5)
        assert run_processes(workdir) == [] and bystander.poll() is None
    finally:
        for p in (stubborn, bystander):
            p.kill()
            p.wait()


def test_settle_state_marks_only_running_stages(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(
        json.dumps({"stages": {"a": {"status": "done"}, "b": {"status": "running", "pid": 1}}})
    )
    assert settle_state(tmp_path, "why")
    stages = json.loads((tmp_path / "state.json").read_text())["stages"]
    assert stages["a"] == {"status": "done"} and stages["b"] == {"status": "interrupted", "note": "why"}
    assert not settle_state(tmp_path, "why")
