"""The HTTP API against the real service: SandboxFusion compatibility, program semantics, bad requests,
overload, health and metrics, settings."""

from __future__ import annotations

import asyncio
import base64
import socket

import httpx
import pytest
from support.sandbox_fixture import SandboxService, running_sandbox

from purpcode.sandbox.client import AsyncSandboxClient, SandboxClient, SandboxClientError
from purpcode.sandbox.models import RunCodeRequest
from purpcode.sandbox.settings import SandboxSettings


def post(url: str, body: object) -> httpx.Response:
    return httpx.post(f"{url}/run_code", json=body, timeout=60)


def test_verl_payload_and_response_shape(sandbox_url: str) -> None:
    # Exactly what verl's sandbox_fusion client sends.
    body = {
        "compile_timeout": 10,
        "run_timeout": 10,
        "code": "a, b = map(int, input().split())\nprint(a + b)",
        "stdin": "2 3\n",
        "memory_limit_MB": -1,
        "language": "python",
        "files": {},
        "fetch_files": [],
    }
    r = post(sandbox_url, body)
    assert r.status_code == 200
    data = r.json()
    assert set(data) >= {"status", "message", "compile_result", "run_result", "executor_pod_name", "files"}
    assert data["status"] == "Success"
    run = data["run_result"]
    assert (
        run["status"] == "Finished"
        and run["return_code"] == 0
        and run["stdout"] == "5\n"
        and run["stderr"] == ""
    )
    assert isinstance(run["execution_time"], float) and run["execution_time"] > 0


def test_reference_client_style_and_pytest_language(sandbox_url: str) -> None:
    # The PurpCode reference joins solution and tests and runs them as language 'pytest' (and sends `timeout`).
    code = "def add(a, b):\n    return a + b\n\ndef test_add():\n    assert add(2, 2) == 4\n"
    ok = post(sandbox_url, {"code": code, "language": "pytest", "timeout": 15}).json()
    assert ok["status"] == "Success", ok
    assert "1 passed" in ok["run_result"]["stdout"]
    bad = post(sandbox_url, {"code": code.replace("== 4", "== 5"), "language": "pytest"}).json()
    assert bad["status"] == "Failed" and bad["run_result"]["return_code"] == 1


def test_program_semantics_match_a_fresh_interpreter(sandbox_url: str) -> None:
    code = """
import atexit, random, sys, threading, time
print(__name__, sys.argv[0].endswith("main.py"), __file__.startswith("/sandbox/"))
print(random.random() != random.random())
atexit.register(lambda: print("atexit ran"))
threading.Thread(target=lambda: (time.sleep(0.2), print("thread joined"))).start()
sys.stdout.write("no newline")
"""
    with SandboxClient(sandbox_url) as client:
        r = client.run_code(RunCodeRequest(code=code, language="python"))
        assert r.status == "Success", r
        assert r.run_result.stdout.splitlines() == [
            "__main__ True True",
            "True",
            "no newlinethread joined",
            "atexit ran",
        ]
        first = client.run_code(
            RunCodeRequest(code="import random\nprint(random.random())", language="python")
        )
        second = client.run_code(
            RunCodeRequest(code="import random\nprint(random.random())", language="python")
        )
        assert first.run_result.stdout != second.run_result.stdout  # every run is seeded afresh
        exited = client.run_code(
            RunCodeRequest(code="import sys\nprint('x')\nsys.exit(3)", language="python")
        )
        assert exited.status == "Failed" and exited.run_result.return_code == 3
        raised = client.run_code(
            RunCodeRequest(code="def f():\n    raise ValueError('boom')\nf()", language="python")
        )
        assert raised.run_result.return_code == 1
        assert "Traceback" in raised.run_result.stderr and "ValueError: boom" in raised.run_result.stderr
        syntax = client.run_code(RunCodeRequest(code="def f(:\n", language="python"))
        assert syntax.run_result.return_code == 1 and "SyntaxError" in syntax.run_result.stderr


def test_files_in_and_out(sandbox_url: str) -> None:
    files = {"data/input.txt": base64.b64encode(b"hello\n").decode(), "empty.txt": None}
    code = "print(open('data/input.txt').read().strip(), open('empty.txt').read() == '')\nopen('out.bin', 'wb').write(b'\\x00\\x01')"
    with SandboxClient(sandbox_url + "/run_code") as client:  # verl-style URL with the endpoint path
        r = client.run_code(
            RunCodeRequest(code=code, language="python", files=files, fetch_files=["out.bin", "missing.txt"])
        )
    assert r.status == "Success", r
    assert r.run_result.stdout == "hello True\n"
    assert r.files == {"out.bin": base64.b64encode(b"\x00\x01").decode()}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"code": "print(1)", "language": "cpp"}, "language"),
        ({"code": "print(1)", "language": "python", "run_timeout": "soon"}, "run_timeout"),
        ({"code": "print(1)", "language": "python", "files": {"../escape": ""}}, "files"),
        ({"code": "print(1)", "language": "python", "files": {"/abs": ""}}, "files"),
        ({"language": "python"}, "code"),
    ],
)
def test_bad_requests_get_a_clear_4xx(sandbox_url: str, body: dict[str, object], needle: str) -> None:
    r = post(sandbox_url, body)
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"]


def test_not_json_and_oversize(sandbox_url: str) -> None:
    r = httpx.post(f"{sandbox_url}/run_code", content=b"{not json", timeout=10)
    assert r.status_code == 422 and "invalid request" in r.json()["detail"]
    # A declared 1 GiB body is refused from its header, before any of it is read.
    host, port = sandbox_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /run_code HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1073741824\r\n\r\n{"
        )
        head = conn.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413"), head


def test_health_and_metrics(shared_sandbox: SandboxService) -> None:
    sandbox_url = shared_sandbox.url
    with SandboxClient(sandbox_url) as client:
        client.run_code(RunCodeRequest(code="print(1)", language="python"))
        client.run_code(RunCodeRequest(code="while True: pass", language="python", run_timeout=0.5))
        health = client.healthz()
    assert health["status"] == "ok" and health["zygotes_alive"] >= 2
    iso = health["isolation"]
    assert iso["seccomp"] is True and "pid" in iso["namespaces"]
    assert set(iso["limits"]) >= {"wall_time", "cpu_time", "address_space", "processes", "output"}
    text = httpx.get(f"{shared_sandbox.metrics_url}/metrics", timeout=10).text
    assert 'purpcode_sandbox_executions_total{language="python",outcome="success"}' in text
    assert 'purpcode_sandbox_executions_total{language="python",outcome="timeout"}' in text
    for name in (
        "purpcode_sandbox_request_seconds_bucket",
        "purpcode_sandbox_in_flight",
        "purpcode_sandbox_queue_length",
        "purpcode_sandbox_timeouts_total",
        "purpcode_sandbox_rejections_total",
    ):
        assert name in text


def test_metrics_and_code_execution_are_on_separate_ports(shared_sandbox: SandboxService) -> None:
    """The NetworkPolicy admits Prometheus on the metrics port only: that port must not run code, and the API
    port (which stage pods reach) keeps /healthz for the probes but has no /metrics."""
    api, metrics = shared_sandbox.url, shared_sandbox.metrics_url
    assert api != metrics
    body = {"code": "print(1)", "language": "python"}
    assert httpx.post(f"{metrics}/run_code", json=body, timeout=10).status_code in (404, 405)
    assert httpx.get(f"{metrics}/healthz", timeout=10).status_code == 404
    assert httpx.get(f"{api}/metrics", timeout=10).status_code == 404
    assert httpx.get(f"{api}/healthz", timeout=10).status_code == 200
    assert "purpcode_sandbox_in_flight" in httpx.get(f"{metrics}/metrics", timeout=10).text


def test_the_metrics_port_must_differ_from_the_api_port() -> None:
    from purpcode.sandbox.server import main

    assert main(["--port", "8123", "--metrics-port", "8123"]) == 2


async def test_overload_gets_504_and_the_client_retries() -> None:
    """Past the queue the service answers 504 with Retry-After: the status verl's client retries (a 429 it did not,
    so those rewards silently became failures)."""
    args = ["--max-concurrency", "1", "--queue-size", "0", "--no-warm"]
    with running_sandbox(args) as url:
        body = {"code": "import time\ntime.sleep(0.5)\nprint('done')", "language": "python"}
        async with httpx.AsyncClient(timeout=60) as http:
            raw = await asyncio.gather(*(http.post(f"{url}/run_code", json=body) for _ in range(4)))
        codes = sorted(r.status_code for r in raw)
        assert codes[0] == 200 and 504 in codes
        rejected = next(r for r in raw if r.status_code == 504)
        assert rejected.headers["retry-after"] and "overloaded" in rejected.json()["detail"]
        async with AsyncSandboxClient(url, retries=20) as client:
            results = await asyncio.gather(
                *(client.run_code(RunCodeRequest.model_validate(body)) for _ in range(4))
            )
        assert all(
            r.status == "Success" and r.run_result.stdout == "done\n" for r in results
        )  # fresh interpreters
        async with AsyncSandboxClient(url, retries=0) as client:
            with pytest.raises(SandboxClientError) as err:
                await asyncio.gather(
                    *(client.run_code(RunCodeRequest.model_validate(body)) for _ in range(4))
                )
        assert err.value.status_code == 504


def test_client_does_not_retry_bad_requests(sandbox_url: str) -> None:
    with SandboxClient(sandbox_url, retries=5) as client, pytest.raises(SandboxClientError) as err:
        client.run_code(
            RunCodeRequest.model_construct(code="print(1)", language="python", files={"../x": ""})
        )
    assert err.value.status_code == 422


def test_settings_from_environment() -> None:
    env = {
        "PURPCODE_SANDBOX_ZYGOTES": "2",
        "PURPCODE_SANDBOX_PRELOAD": '["json"]',
        "PURPCODE_SANDBOX_SECCOMP": "0",
    }
    s = SandboxSettings.from_env(env, queue_size=7)
    assert (s.zygotes, s.preload, s.seccomp, s.queue_size) == (2, ["json"], False, 7)
    with pytest.raises(ValueError, match="zygotes"):
        SandboxSettings.from_env({"PURPCODE_SANDBOX_ZYGOTES": "0"})
    with pytest.raises(ValueError, match="PRELOAD"):
        SandboxSettings.from_env({"PURPCODE_SANDBOX_PRELOAD": "json"})
    # The names the operator renders into the sandbox Deployment.
    operator_env = {
        "PURPCODE_SANDBOX_CONCURRENCY": "6",
        "PURPCODE_SANDBOX_RUN_TIMEOUT_SECONDS": "15.0",
        "PURPCODE_SANDBOX_MEMORY_LIMIT_MB": "2048",
        "PURPCODE_SANDBOX_MAX_PROCESSES": "64",
        "PURPCODE_SANDBOX_MAX_OUTPUT_BYTES": "1048576",
    }
    s = SandboxSettings.from_env(operator_env)
    assert (s.concurrency, s.max_run_timeout_s, s.default_run_timeout_s) == (6, 15.0, 10.0)
    assert (s.default_memory_mb, s.max_memory_mb, s.max_processes, s.max_output_bytes) == (
        2048,
        2048,
        64,
        1 << 20,
    )


def test_a_dead_zygote_is_replaced() -> None:
    import os
    import signal
    import time

    from sandbox_util import descendants
    from support.sandbox_fixture import sandbox_service

    with sandbox_service() as service, SandboxClient(service.url) as client:
        zygotes = []
        for pid in descendants(service.proc.pid):
            try:
                cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
            except OSError:
                continue
            parent = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]
            parent_cmd = open(f"/proc/{parent}/cmdline", "rb").read()
            # The zygote itself (bwrap's child), not its prepared pid 1 (a fork of it, see zygote.spare_main).
            if b"ctrl_fd" in cmdline and not cmdline.startswith(b"bwrap") and parent_cmd.startswith(b"bwrap"):
                zygotes.append(pid)
        assert len(zygotes) == 2  # one per flavour
        for pid in zygotes:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            health = httpx.get(f"{service.url}/healthz", timeout=10)
            if health.status_code == 200 and health.json()["zygotes_alive"] == 2:
                break
            assert time.monotonic() < deadline, health.text
            time.sleep(0.2)
        r = client.run_code(RunCodeRequest(code="print('back')", language="python"))
        assert r.status == "Success" and r.run_result.stdout == "back\n"
        metrics = httpx.get(f"{service.metrics_url}/metrics", timeout=10).text
        assert "purpcode_sandbox_zygote_restarts 2.0" in metrics
