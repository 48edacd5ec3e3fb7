"""The real sandbox service for tests: one `purpcode.sandbox.server` process per session on a free loopback port.

`sandbox_url` (session scope) yields e.g. "http://127.0.0.1:41234" once /healthz answers 200; the service runs the
real bubblewrap jail. `running_sandbox(...)` starts an extra instance with other settings (CLI args or
PURPCODE_SANDBOX_* variables) for tests that need them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import httpx
import pytest

STARTUP_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SandboxService:
    """A started service: its base URL and process (tests that look for leftovers need the pid)."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: str
    metrics_url: str = ""

    def log_tail(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()[-4000:]


@contextlib.contextmanager
def sandbox_service(
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    python: Sequence[str] = (),
) -> Iterator[SandboxService]:
    """Start the service in a subprocess, wait (bounded) for /healthz, yield it, stop it. `python`: the command
    that runs the service's interpreter (default: this one), e.g. behind a wrapper that drops privileges."""
    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="sandbox-", suffix=".log", delete=False)  # noqa: SIM115
    interpreter = list(python) or [sys.executable]
    cmd = [*interpreter, "-m", "purpcode.sandbox.server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--metrics-port", str(metrics_port), *args]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    service = SandboxService(url, proc, log.name, f"http://127.0.0.1:{metrics_port}")
    try:
        deadline = time.monotonic() + startup_timeout_s
        with httpx.Client(timeout=2.0) as http:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"sandbox service exited with {proc.returncode} during start:\n{service.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{url}/healthz").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"sandbox service not healthy after {startup_timeout_s:.0f}s:\n{service.log_tail()}"
                    )
                time.sleep(0.1)
        yield service
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)


@contextlib.contextmanager
def running_sandbox(
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> Iterator[str]:
    """Like `sandbox_service`, yielding only the base URL."""
    with sandbox_service(args, env, startup_timeout_s) as service:
        yield service.url


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[SandboxService]:
    """A real sandbox service shared by the whole test session (API and metrics URLs)."""
    with sandbox_service() as service:
        yield service


@pytest.fixture(scope="session")
def sandbox_url(shared_sandbox: SandboxService) -> str:
    """Base URL of the shared sandbox service's API (/run_code, /healthz)."""
    return shared_sandbox.url
