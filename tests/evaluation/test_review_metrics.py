"""Review findings on the evaluation metrics: what counts as a verdict for pass@1.

A sandbox_error is the sandbox failing (executor lost, no report in time), not the code failing: the oracle marks it
with `details['error']`, and pass@1 must leave it out of the denominator the way an unparsed judge verdict is left out
of the judge metrics; otherwise an infrastructure hiccup lowers pass@1 and skews the base vs trained delta.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from purpcode.data.schema import Message, TaskRow
from purpcode.evaluation.metrics import METRICS, summarize
from purpcode.evaluation.scoring import Item, score_items
from purpcode.oracles import OracleConfig, OracleRunner

ANSWER = "## Analysis\nThe task asks for an add function.\n## Answer\n```python\ndef add(a, b):\n    return a + b\n```"
TESTS = {
    "kind": "functional",
    "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
    "entry_point": "add",
}


class _BrokenSandbox(BaseHTTPRequestHandler):
    """A sandbox service whose executor fails: every /run_code answers SandboxError (HTTP 200, as the service does)."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"status": "SandboxError", "message": "executor pod lost"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def broken_sandbox_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenSandbox)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_sandbox_error_is_no_verdict_for_pass_at_1() -> None:
    details = {
        "test": {"passed": False, "status": "sandbox_error", "tests_run": 0},
        "error": "sandbox_error: executor pod lost",
    }
    assert METRICS["correctness"].flag(details) is None
    # the code's own failures stay verdicts
    assert METRICS["correctness"].flag({"test": {"passed": False, "status": "timeout"}}) is False
    assert METRICS["correctness"].flag({"test": {"passed": False, "status": "failed"}}) is False


def test_pass_at_1_leaves_sandbox_errors_out_of_the_denominator(broken_sandbox_url: str) -> None:
    row = TaskRow(
        task_id="utility/000",
        messages=[Message(role="user", content="write add(a, b)")],
        oracle="correctness",
        ground_truth=TESTS,
    )
    runner = OracleRunner(OracleConfig(), sandbox_url=broken_sandbox_url)
    try:
        recs = score_items(runner, [Item("utility", "base", row, ANSWER)])
    finally:
        runner.close()
    (rec,) = recs
    assert rec.details["test"]["status"] == "sandbox_error"
    assert rec.error and rec.error.startswith("sandbox_error")
    assert rec.flagged is None
    res = summarize(recs, METRICS["correctness"])
    assert (res.n, res.judged, res.errors, res.value) == (1, 0, 1, None)
