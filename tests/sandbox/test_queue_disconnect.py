"""A queued check whose client has gone (verl's read timeout) is dropped, not run later: otherwise, under a burst,
every abandoned check still runs and delays the ones queued behind it, whose clients then time out too."""

from __future__ import annotations

import threading
import time

import httpx
from sandbox_util import sandbox_in_mode


def _executions(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("purpcode_sandbox_executions_total{")
    )


def test_queued_requests_of_clients_that_left_are_not_run() -> None:
    env = {"PURPCODE_SANDBOX_MAX_CONCURRENCY": "1", "PURPCODE_SANDBOX_MAX_RUNNING": "1"}
    with sandbox_in_mode("namespaces", env) as box:
        url = box.url
        blocker = threading.Thread(
            target=httpx.post,
            args=(f"{url}/run_code",),
            kwargs={"json": {"code": "import time; time.sleep(6)", "language": "python"}, "timeout": 60},
        )
        blocker.start()
        deadline = time.monotonic() + 20
        while box.health()["in_flight"] < 1:  # the blocker holds the only slot
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for i in range(4):  # queued behind it; each client gives up after 0.5 s
            try:
                httpx.post(f"{url}/run_code", json={"code": f"print({i})", "language": "python"}, timeout=0.5)
            except httpx.TimeoutException:
                pass
        blocker.join()
        after = box.run("print('next')")
        assert after.run_result is not None and after.run_result.stdout == "next\n"
        metrics = box.metrics_url
        assert _executions(metrics) == 2, "the abandoned requests ran"  # the blocker and the last one only
        assert (
            'purpcode_sandbox_rejections_total{reason="client_gone"} 4.0'
            in httpx.get(f"{metrics}/metrics").text
        )
