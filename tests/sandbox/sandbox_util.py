"""Helpers for the sandbox tests: a service wrapper that runs code and checks that nothing is left behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from support.sandbox_fixture import SandboxService, sandbox_service

from purpcode.sandbox.client import SandboxClient
from purpcode.sandbox.models import RunCodeRequest, RunCodeResponse

SECRET = "purpcode-test-secret-7f3a9c"


def descendants(pid: int) -> set[int]:
    """All live descendants of `pid` (from /proc; zombies included until reaped)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def proc_status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as a dict ({} once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)
    except OSError:
        return {}


def spares_removed(pids: set[int]) -> set[int]:
    """`pids` without the zygotes' prepared executions (namespaces mode, `zygote.spare_main`): at most one per
    zygote, its direct children, alone in their own pid namespace, with no child: a forked pid 1, or the
    machine-code pid 1 and the prepared program (pid 2). Anything else is a leftover."""
    left = set(pids)
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for pid in pids:
        st = proc_status(pid)
        try:
            ns = os.readlink(f"/proc/{pid}/ns/pid")
        except OSError:
            continue
        groups.setdefault((st.get("PPid", ""), ns), []).append((pid, (st.get("NSpid") or "?").split()[-1]))
    by_parent: dict[str, list[list[tuple[int, str]]]] = {}
    for (parent, _), members in groups.items():
        alone = not any(descendants(pid) for pid, _ in members)
        if alone and sorted(n for _, n in members) in (["1"], ["1", "2"]):
            by_parent.setdefault(parent, []).append(members)
    for parent, spares in by_parent.items():
        cmdline = (
            open(f"/proc/{parent}/cmdline", "rb").read()
            if parent and os.path.exists(f"/proc/{parent}")
            else b""
        )
        if b"ctrl_fd" in cmdline and len(spares) == 1:
            left -= {pid for pid, _ in spares[0]}
    return left


MODES = ("namespaces", "restricted")
UNPRIVILEGED_UID = 65534
RESTRICTED_POD = str(Path(__file__).with_name("restricted_pod.py"))


def unprivileged_python() -> str:
    """An interpreter any uid can run, with this environment's packages: a venv of Debian's /usr/bin/python3 (this
    one may live in root's home, which uid 65534 cannot traverse) whose `.pth` points at this venv's site-packages
    (same CPython minor version, so the same compiled extensions)."""
    base = "/usr/bin/python3"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    probe = subprocess.run(
        [base, "-c", "import sys; print(f'{sys.version_info.major}.{sys.version_info.minor}')"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if probe.returncode != 0 or probe.stdout.strip() != version:
        pytest.fail(f"{base} must exist and be Python {version} (got {probe.stdout.strip() or probe.stderr})")
    site_dirs = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    key = hashlib.sha256("\n".join([sys.prefix, *site_dirs]).encode()).hexdigest()[:12]
    venv = Path(f"/tmp/purpcode-uvenv-{key}")
    python = venv / "bin" / "python"
    if not python.exists():
        tmp = Path(f"{venv}.{os.getpid()}")
        subprocess.run([base, "-m", "venv", "--without-pip", str(tmp)], check=True)
        site = tmp / "lib" / f"python{version}" / "site-packages"
        (site / "purpcode-shared.pth").write_text("\n".join(site_dirs) + "\n")
        subprocess.run(["chmod", "-R", "a+rX", str(tmp)], check=True)
        check = subprocess.run(
            ["setpriv", f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}", "--clear-groups",
             str(tmp / "bin" / "python"), "-c", "import fastapi, uvicorn, pydantic, pyseccomp, pytest"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if check.returncode != 0:
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
            pytest.fail(
                f"uid {UNPRIVILEGED_UID} cannot import the test environment's packages from {site_dirs} (every "
                f"directory above them must be world-traversable; a venv under /root is not): {check.stderr[-800:]}"
            )
        with contextlib.suppress(OSError):
            os.rename(tmp, venv)
    return str(python)


def mode_launch(mode: str, env: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """(interpreter command, environment) that start the service in one isolation mode. `namespaces`: as this
    user (root here), the bubblewrap jail. `restricted`: inside a simulated restricted-PSS container (uid 65534,
    no capabilities, no_new_privs, user namespaces refused), with isolation `auto`, so the service must find out
    by itself that the jail cannot start and fall back to the restricted mode."""
    full = dict(env or {})
    if mode == "namespaces":
        full.setdefault("PURPCODE_SANDBOX_ISOLATION", "namespaces")
        return [sys.executable], full
    if os.getuid() != 0:
        pytest.fail("the restricted-mode tests drop to uid 65534 and must start as root (CI runs as root)")
    import purpcode

    tmp = Path(f"/tmp/purpcode-restricted-{os.getpid()}")
    tmp.mkdir(mode=0o700, exist_ok=True)
    os.chown(tmp, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
    src = str(Path(purpcode.__file__).resolve().parent.parent)
    path = [src, *[p for p in os.environ.get("PYTHONPATH", "").split(":") if p and p != src]]
    full.setdefault("PURPCODE_SANDBOX_ISOLATION", "auto")
    full.update({"TMPDIR": str(tmp), "PYTHONPATH": ":".join(path), "HOME": str(tmp)})
    return [sys.executable, RESTRICTED_POD, unprivileged_python()], full


def service_for_mode(mode: str, env: Mapping[str, str] | None = None, args: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """The real service in one isolation mode (see `mode_launch`)."""
    python, full = mode_launch(mode, env)
    return sandbox_service(args=args, env=full, python=python)


@contextlib.contextmanager
def sandbox_in_mode(mode: str, env: Mapping[str, str] | None = None) -> Iterator[Sandbox]:
    with service_for_mode(mode, env) as service:
        box = Sandbox(service, mode)
        try:
            yield box
        finally:
            box.client.close()


class Sandbox:
    """A running service plus what the tests check after each hostile run."""

    def __init__(self, service: SandboxService, mode: str = "namespaces") -> None:
        self.service = service
        self.mode = mode
        self.python = sys.executable if mode == "namespaces" else unprivileged_python()  # runs user code
        self.url = service.url
        self.metrics_url = service.metrics_url  # /metrics has a port of its own
        self.client = SandboxClient(service.url)
        self.baseline = descendants(service.proc.pid)

    def health(self) -> dict[str, object]:
        return self.client.healthz()

    def max_tasks(self) -> int:
        """Processes + threads one execution may reach: per execution (namespaces), per uid (restricted)."""
        return int(self.health()["isolation"]["max_tasks"])  # type: ignore[index]

    def run(self, code: str, **kwargs: object) -> RunCodeResponse:
        return self.client.run_code(
            RunCodeRequest(code=code, language=kwargs.pop("language", "python"), **kwargs)
        )

    def assert_serving_and_clean(self, timeout_s: float = 20.0) -> None:
        """The service answers a trivial run and /healthz, and no process of a finished run is left."""
        ok = self.run("print('still serving')")
        assert ok.status == "Success" and ok.run_result is not None
        assert ok.run_result.stdout == "still serving\n"
        assert httpx.get(f"{self.url}/healthz", timeout=10).status_code == 200
        deadline = time.monotonic() + timeout_s
        while True:
            extra = spares_removed(descendants(self.service.proc.pid) - self.baseline)
            if not extra:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"processes left behind: {sorted(extra)}")
            time.sleep(0.05)
