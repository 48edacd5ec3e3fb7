"""Helpers for the sandbox tests: a service wrapper that runs code and checks that nothing is left behind."""

from __future__ import annotations

import os
import time

import httpx
from support.sandbox_fixture import SandboxService

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


class Sandbox:
    """A running service plus what the tests check after each hostile run."""

    def __init__(self, service: SandboxService) -> None:
        self.service = service
        self.url = service.url
        self.client = SandboxClient(service.url)
        self.baseline = descendants(service.proc.pid)

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
            extra = descendants(self.service.proc.pid) - self.baseline
            if not extra:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"processes left behind: {sorted(extra)}")
            time.sleep(0.05)
