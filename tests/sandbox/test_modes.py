"""Choosing the isolation mode: `auto` takes the namespaces jail where the pod allows it and falls back to the
restricted mode where it does not (a restricted-PSS pod, simulated by `restricted_pod.py`); the restricted mode
refuses to start without Landlock unless weaker isolation is accepted; a normal shutdown logs nothing above INFO."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time

import httpx
import pytest
from sandbox_util import mode_launch, sandbox_in_mode, service_for_mode
from support.sandbox_fixture import free_port, sandbox_service

from purpcode.sandbox.client import SandboxClientError


def test_auto_falls_back_to_restricted_where_the_pod_refuses_namespaces() -> None:
    with sandbox_in_mode("restricted") as box:
        health = box.health()
        iso = health["isolation"]
        assert (iso["mode"], iso["requested"]) == ("restricted", "auto"), iso
        assert "namespaces jail unavailable" in iso["reason"] and iso["landlock"]["abi"] >= 6
        assert iso["landlock"]["scopes"] == ["abstract_unix_socket", "signal"]
        assert iso["signals"] == "landlock scope" and iso["seccomp"] is True
        assert health["isolation_mode"] == "restricted"
        metrics = httpx.get(f"{box.metrics_url}/metrics", timeout=10).text
        assert 'purpcode_sandbox_isolation_info{mode="restricted",requested="auto"} 1.0' in metrics
        assert box.run("print('ok')").run_result.stdout == "ok\n"
        log = box.service.log_tail()
        assert len(re.findall(r"sandbox isolation: restricted \(asked: auto", log)) == 1, log


def test_auto_takes_the_namespaces_jail_where_the_pod_allows_it() -> None:
    with sandbox_service(env={"PURPCODE_SANDBOX_ISOLATION": "auto"}) as service:
        iso = httpx.get(f"{service.url}/healthz", timeout=10).json()["isolation"]
        assert (iso["mode"], iso["requested"]) == ("namespaces", "auto"), iso
        assert "pid" in iso["namespaces"]


def test_namespaces_mode_asked_for_in_a_restricted_pod_fails_clearly() -> None:
    with (
        pytest.raises(RuntimeError, match="user namespaces"),
        service_for_mode("restricted", {"PURPCODE_SANDBOX_ISOLATION": "namespaces"}),
    ):
        pass


def test_restricted_mode_refuses_to_start_without_landlock() -> None:
    env = {"PURPCODE_SANDBOX_ISOLATION": "restricted", "PURPCODE_SANDBOX_LANDLOCK": "off"}
    with pytest.raises(RuntimeError, match="allow_weaker_isolation"), service_for_mode("restricted", env):
        pass


def test_weaker_isolation_when_accepted_says_what_is_missing() -> None:
    env = {
        "PURPCODE_SANDBOX_ISOLATION": "restricted",
        "PURPCODE_SANDBOX_LANDLOCK": "off",
        "PURPCODE_SANDBOX_ALLOW_WEAKER_ISOLATION": "true",
    }
    with sandbox_in_mode("restricted", env) as box:
        iso = box.health()["isolation"]
        assert iso["landlock"]["abi"] == 0 and iso["landlock"]["scopes"] == []
        assert iso["signals"].startswith("NOT separated") and iso["abstract_unix_sockets"] == "not separated"
        r = box.run(
            "import socket\ntry:\n    socket.socket()\nexcept OSError as e:\n    print('no inet', e.errno)\n"
        )
        assert r.run_result.stdout == "no inet 1\n"  # seccomp still refuses network sockets
        assert "WARNING" in box.service.log_tail() and "allow_weaker_isolation" in box.service.log_tail()


def test_restricted_mode_does_not_run_as_root() -> None:
    with (
        pytest.raises(RuntimeError, match="does not run as root"),
        sandbox_service(env={"PURPCODE_SANDBOX_ISOLATION": "restricted"}),
    ):
        pass


@pytest.mark.parametrize("mode", ["namespaces", "restricted"])
def test_ctrl_c_shutdown_logs_nothing_above_info(mode: str) -> None:
    """Ctrl-C in a terminal signals the whole foreground process group: the zygotes died before the service and it
    logged "zygote exited; restarting" at ERROR. They run in their own session now and stop with the service."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="sandbox-", suffix=".log", delete=False)  # noqa: SIM115
    python, extra = mode_launch(mode)
    env = {**os.environ, **extra}
    cmd = [*python, "-m", "purpcode.sandbox.server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--metrics-port", str(free_port())]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, open(log.name).read()
            time.sleep(0.1)
        assert (
            httpx.post(
                f"http://127.0.0.1:{port}/run_code",
                json={"code": "print(1)", "language": "python"},
                timeout=30,
            ).json()["status"]
            == "Success"
        )
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) is not None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = open(log.name).read()
    os.unlink(log.name)
    assert "exited; restarting" not in text, text
    assert not re.search(r" (WARNING|ERROR|CRITICAL) ", text), text


def _pgid(pid: int) -> int | None:
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[2])
    except OSError:
        return None


def test_stopping_the_service_ends_running_executions_and_their_children() -> None:
    """Restricted mode has no pid namespace: a program's children outlive their leader unless someone kills the
    process group. When the service goes (stopped, or killed as here), the zygote sees its control socket close and
    kills every running execution's group on its way out, so nothing of them is left on the pod."""
    import threading

    from sandbox_util import descendants

    from purpcode.sandbox.models import RunCodeRequest

    code = "import os, time\nif os.fork() == 0:\n    os.fork()\ntime.sleep(60)\n"
    with sandbox_in_mode("restricted") as box:
        service_pid = box.service.proc.pid
        request = RunCodeRequest(code=code, language="python", run_timeout=60)

        def run() -> None:
            with contextlib.suppress(httpx.HTTPError, SandboxClientError):  # the service goes away under it
                box.client.run_code(request)

        threading.Thread(target=run, daemon=True).start()
        deadline = time.monotonic() + 20
        group: list[int] = []
        while time.monotonic() < deadline and len(group) < 3:
            tree = descendants(service_pid)
            zygote_groups = {_pgid(service_pid)} | {p for p in tree if _pgid(p) == p and p in box.baseline}
            group = [p for p in tree if _pgid(p) not in zygote_groups]
            time.sleep(0.1)
        assert len(group) == 3, group  # the leader, its child and its grandchild, in their own process group
        box.service.proc.kill()  # the hardest stop: the zygote only sees its control socket close
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in group):
        time.sleep(0.1)
    assert not [p for p in group if os.path.exists(f"/proc/{p}")]


def test_namespaces_mode_with_a_forked_pid1() -> None:
    """pid 1 of each execution is the zygote's machine-code init on x86_64; elsewhere (and with `tiny_init:
    false`) it is a forked interpreter that forks the program. That path keeps the same exit statuses as
    `python3 file.py`, fetch_files, and leaves nothing behind."""
    cases = {
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n": -9,
        "import os\nos.abort()\n": -6,
        "import sys\nsys.exit(3)\n": 3,
        "import os\nif os.fork() == 0:\n    os.setsid()\n    import time; time.sleep(60)\nprint('ok')\n": 0,
    }
    with sandbox_in_mode("namespaces", {"PURPCODE_SANDBOX_TINY_INIT": "false"}) as box:
        assert box.health()["isolation"]["pid1"] == "forked interpreter"  # type: ignore[index]
        for code, status in cases.items():
            r = box.run(code, run_timeout=10)
            assert r.run_result is not None and r.run_result.return_code == status, (code, r)
        r = box.run("open('out.txt', 'w').write('kept')\nprint(open('/proc/1/status').read().split()[1])",
                    run_timeout=10, fetch_files=["out.txt"])  # fmt: skip
        assert r.status == "Success" and r.files == {"out.txt": "a2VwdA=="}, r
        box.assert_serving_and_clean()
