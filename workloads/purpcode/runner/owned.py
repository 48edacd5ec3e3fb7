"""The runner owns its children: every process of a run carries a marker, dies with the runner, and is found again.

Three layers, so no kill of the runner leaves a stage or service behind:
- every child is started in its own process group with a parent-death signal (PR_SET_PDEATHSIG: SIGTERM when the
  runner dies, whatever killed it);
- every child's environment carries `PURPCODE_RUN_WORKDIR=<workdir>`, inherited by everything it spawns (uvicorn
  workers, fork-servers, torch workers), so the run's processes can be found by scanning /proc even after they left
  their group or lost their parent;
- a guard process (`python -m purpcode.runner.owned`, its own session, immune to the terminal's SIGHUP/SIGINT) holds
  a pipe from the runner; when the runner dies without saying goodbye (SIGKILL, OOM killer), the guard stops every
  marked process, marks the interrupted stage in state.json and only then releases the work directory's lock.
A later run on the same workdir refuses while the lock is held (naming the pids) and stops marked leftovers when it
is free.

Kept import-light (no pydantic, no torch): the guard starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

MARKER_ENV = "PURPCODE_RUN_WORKDIR"
STATE_FILE = "state.json"
PR_SET_PDEATHSIG = 1
GOODBYE = b"clean exit\n"
GUARD_GRACE_S = 5.0

_libc: Any = None
with contextlib.suppress(OSError):
    _libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> Callable[[], None]:
    """A `preexec_fn` that makes the child receive SIGTERM when the process that started it dies.

    Checked after the prctl: if the parent died between fork and prctl, the signal would never come.
    """
    parent = os.getpid()

    def preexec() -> None:
        if _libc is not None:
            _libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _alive(pid: int) -> bool:
    """True for a live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split(" ", 1)[0] not in ("Z", "X")


def run_processes(workdir: str | os.PathLike[str]) -> list[int]:
    """Pids of live processes started for the run on `workdir` (marked in their environment), this one excluded."""
    needle = f"{MARKER_ENV}={Path(workdir).resolve()}".encode() + b"\0"
    me = os.getpid()
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                env = b"\0" + fh.read()
        except OSError:  # gone meanwhile, or another user's
            continue
        if b"\0" + needle in env and _alive(int(entry.name)):
            out.append(int(entry.name))
    return sorted(out)


def stop_pids(pids: Iterable[int], grace_s: float = GUARD_GRACE_S) -> list[int]:
    """SIGTERM each process, SIGKILL what is left after `grace_s`; returns the pids that needed SIGKILL."""
    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = [p for p in pids if _alive(p)]
    for pid in killed:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(_alive(p) for p in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    return killed


def stop_run_processes(workdir: str | os.PathLike[str], grace_s: float = GUARD_GRACE_S) -> list[int]:
    """Stop every marked process of the run (several passes: a dying parent may still spawn); returns their pids."""
    stopped: list[int] = []
    for _ in range(3):
        pids = run_processes(workdir)
        if not pids:
            break
        stop_pids(pids, grace_s)
        stopped += pids
    return stopped


def settle_state(workdir: str | os.PathLike[str], why: str) -> bool:
    """Mark every stage state.json calls `running` as `interrupted` (no process runs it any more); True if changed.

    Best effort and atomic: a full disk leaves the old file (the next run settles it).
    """
    path = Path(workdir) / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    changed = False
    for entry in (data.get("stages") or {}).values():
        if isinstance(entry, dict) and entry.get("status") == "running":
            entry["status"] = "interrupted"
            entry["note"] = why
            entry.pop("pid", None)
            changed = True
    if not changed:
        return False
    with contextlib.suppress(OSError):
        fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2)
                fh.write("\n")
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return changed


class Guard:
    """The runner's side of the guard: start it, and tell it goodbye on a clean exit."""

    def __init__(self, workdir: Path, lock_fd: int) -> None:
        read_fd, self._write_fd = os.pipe()  # both ends non-inheritable: no stage or service holds the pipe
        env = {k: v for k, v in os.environ.items() if k != MARKER_ENV}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "purpcode.runner.owned", "--workdir", str(workdir), "--fd", str(read_fd)],
            pass_fds=(read_fd, lock_fd),
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the terminal's SIGHUP and Ctrl-C reach the runner, never the guard
            env=env,
        )
        os.close(read_fd)

    def goodbye(self) -> None:
        """The runner stopped its children itself: the guard exits without touching anything."""
        with contextlib.suppress(OSError):
            os.write(self._write_fd, GOODBYE)
        with contextlib.suppress(OSError):
            os.close(self._write_fd)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


def guard_main(argv: list[str] | None = None) -> int:
    """Wait for the runner's pipe to close; unless it said goodbye, stop the run's processes and settle the state."""
    p = argparse.ArgumentParser(prog="python -m purpcode.runner.owned")
    p.add_argument("--workdir", required=True)
    p.add_argument("--fd", type=int, required=True)
    args = p.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    received = b""
    while True:
        try:
            chunk = os.read(args.fd, 64)
        except InterruptedError:
            continue
        if not chunk:
            break
        received += chunk
    if received.endswith(GOODBYE):
        return 0
    stop_run_processes(args.workdir)
    settle_state(args.workdir, "the runner died while this stage ran; its processes were stopped")
    return 0


if __name__ == "__main__":
    sys.exit(guard_main())
