"""The correctness oracle's survivors of mutation testing (docs/testing.md), killed through its public behaviour.

Each test pins something a mutant changed while every earlier test still passed: the verdict details the
evaluation and the dashboards read, the configured timeout, the verdict cache's size and LRU order, one sandbox
client per event loop and `aclose` releasing it, the sandbox-error marking, and an answer whose code has no UTF-8
encoding. The sandbox is the real service (`sandbox_url`); only the sandbox-error test uses a stand-in, because the
real service returns SandboxError only when its executor is lost.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

import psutil
import pytest

from purpcode.oracles import OracleConfig, OracleRunner, Sample
from purpcode.oracles.correctness import CorrectnessOracle, SandboxUnavailable, answer_code

ADD = {
    "kind": "functional",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
}


def fenced(*blocks: str, tag: str = "python") -> str:
    return "Here it is.\n" + "\n".join(f"```{tag}\n{b}\n```" for b in blocks)


def add_code(note: str) -> str:
    """A correct solution, made distinct by a comment so each call is its own cache key."""
    return f"def add(a, b):\n    return a + b  # {note}"


def oracle(url: str, **config: Any) -> CorrectnessOracle:
    return CorrectnessOracle(url, OracleConfig(**{"correctness_timeout_s": 5.0, **config}))


def score_all(o: CorrectnessOracle, answers: list[str], spec: dict[str, Any] = ADD) -> list[dict[str, Any]]:
    """Score the answers one after the other in one event loop; the details of each."""

    async def main() -> list[dict[str, Any]]:
        try:
            return [(await o.score(a, spec))[1] for a in answers]
        finally:
            await o.aclose()

    return asyncio.run(main())


# --- which code runs (no sandbox needed) -------------------------------------------------------------------------


def test_blocks_default_to_all_and_keep_their_own_indentation_and_edges() -> None:
    with_shell = fenced("pip install nothing", tag="bash") + "\n" + fenced("def add(a, b):\n    return a + b")
    assert answer_code(with_shell) == answer_code(with_shell, "all") != answer_code(with_shell, "python")
    # a block continuing the previous one keeps its indentation; only blank lines around a block are trimmed
    assert answer_code(fenced("def add(a, b):", "    return a + b")) == "def add(a, b):\n    return a + b"
    assert answer_code(fenced("\nX = 1\nY = X\n", "print(Y)X")) == "X = 1\nY = X\nprint(Y)X"


def test_a_bad_ground_truth_names_at_most_three_problems() -> None:
    bad = {"kind": "functional", "a": 1, "b": 2, "c": 3, "d": 4}
    with pytest.raises(ValueError, match="ground_truth is not a sandbox TestSpec") as err:
        CorrectnessOracle.parse_spec(bad)
    assert str(err.value).count("'loc':") == 3


def test_an_unreachable_sandbox_says_why_and_what_to_check() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(SandboxUnavailable) as err:
        score_all(oracle(url), [fenced(add_code("x"))])
    assert str(err.value).startswith(f"sandbox at {url} unreachable (ConnectError: ")
    assert str(err.value).endswith("; check that the sandbox service is up and sandbox_url is right")


# --- verdicts from the real sandbox ------------------------------------------------------------------------------


def test_verdict_details(sandbox_url: str) -> None:
    passed, failed, no_code = score_all(
        oracle(sandbox_url),
        [fenced(add_code("ok")), fenced("def add(a, b):\n    return a - b"), "Just add them, no code."],
    )
    assert passed["test"]["passed"] is True and passed["test"]["status"] == "passed"
    assert passed["test"]["tests_run"] == 2  # both asserts of check() ran
    assert isinstance(passed["test"]["execution_time"], float) and passed["test"]["execution_time"] > 0
    assert failed["test"]["passed"] is False and failed["test"]["status"] == "failed"
    assert failed["test"]["tests_run"] == 0 and "execution_time" in failed["test"]
    # only a sandbox failure is marked as an error (the dashboards and pass@1 read this key)
    assert "error" not in passed and "error" not in failed
    assert no_code == {"test": {"status": "no_code", "passed": False}}


def test_the_configured_timeout_is_the_runs_limit(sandbox_url: str) -> None:
    slow = fenced("import time\n\ndef add(a, b):\n    time.sleep(3)\n    return a + b")
    (details,) = score_all(oracle(sandbox_url, correctness_timeout_s=1.0), [slow])
    assert details["test"]["status"] == "timeout" and details["test"]["passed"] is False


def test_code_without_a_utf8_encoding_is_a_failed_run_not_a_bad_row(sandbox_url: str) -> None:
    # A lone surrogate (JSON "\ud800") cannot be written to a source file. It used to raise UnicodeEncodeError
    # while the request was built, so the runner scored it as a bad row (an error, left out of pass@1).
    runner = OracleRunner(OracleConfig(correctness_timeout_s=5.0), sandbox_url=sandbox_url)
    try:
        (score,) = runner.score_batch_sync(
            [
                Sample(
                    prompt="add",
                    response="## Analysis\nThe task asks for add; a one-line function does it.\n## Answer\n"
                    + fenced(add_code("\ud800")),
                    oracle="correctness",
                    ground_truth=ADD,
                )
            ]
        )
    finally:
        runner.close()
    where = add_code("\ud800").index("\ud800")
    assert score.reward == 0.0 and score.details == {
        "test": {
            "status": "error",
            "passed": False,
            "tests_run": 0,
            "details": f"the solution is not valid UTF-8 text (surrogates not allowed at position {where}): "
            "Python cannot read it",
        },
        "kind": "functional",
    }


# --- the verdict cache --------------------------------------------------------------------------------------------


def cached(details: list[dict[str, Any]]) -> list[bool]:
    return [bool(d.get("cached")) for d in details]


def test_a_cache_of_one_keeps_the_latest_verdict(sandbox_url: str) -> None:
    a, b = fenced(add_code("a")), fenced(add_code("b"))
    o = oracle(sandbox_url, correctness_cache_size=1)
    assert o.cache_hits == 0
    assert cached(score_all(o, [a, b, b, a])) == [False, False, True, False]
    assert o.cache_hits == 1


def test_the_cache_evicts_the_least_recently_used(sandbox_url: str) -> None:
    a, b, c = (fenced(add_code(n)) for n in "abc")
    o = oracle(sandbox_url, correctness_cache_size=2)
    # a is used again after b, so c evicts b: a is still remembered, b is not
    assert cached(score_all(o, [a, b, a, c, a, b])) == [False, False, True, False, True, False]
    assert o.cache_hits == 2


# --- clients per event loop ---------------------------------------------------------------------------------------


def test_each_event_loop_gets_its_own_client(sandbox_url: str) -> None:
    o = oracle(sandbox_url)
    for n in range(3):  # a fresh loop each time, without aclose in between (asyncio.run closes its loop)
        _, details = asyncio.run(o.score(fenced(add_code(f"loop {n}")), ADD))
        assert details["test"]["status"] == "passed"


def connections_to(url: str) -> set[Any]:
    """This process's open TCP connections to the service (by local address)."""
    port = urlparse(url).port
    return {
        c.laddr
        for c in psutil.Process().net_connections("tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    }


def test_aclose_releases_the_loops_connections(sandbox_url: str) -> None:
    o = oracle(sandbox_url)

    async def main() -> tuple[set[Any], set[Any]]:
        earlier = connections_to(sandbox_url)  # other tests' clients may still hold some
        await o.score(fenced(add_code("aclose")), ADD)
        mine = connections_to(sandbox_url) - earlier
        await o.aclose()
        return mine, connections_to(sandbox_url)

    mine, left = asyncio.run(main())
    assert mine and not mine & left


# --- a sandbox that fails ------------------------------------------------------------------------------------------

LOST = "executor pod lost: " + "x" * 300


class _FailingSandbox(BaseHTTPRequestHandler):
    """Answers every /run_code as the service does when its executor is lost: HTTP 200, status SandboxError."""

    requests = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
        self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).requests += 1
        body = json.dumps({"status": "SandboxError", "message": LOST}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def failing_sandbox() -> Iterator[str]:
    _FailingSandbox.requests = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FailingSandbox)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_sandbox_error_is_marked_and_never_remembered(failing_sandbox: str) -> None:
    answer = fenced(add_code("lost"))
    first, second = score_all(oracle(failing_sandbox), [answer, answer])
    assert first["test"]["status"] == "sandbox_error" and first["test"]["passed"] is False
    assert first["error"] == f"sandbox_error: {LOST[:200]}"
    assert "cached" not in second and _FailingSandbox.requests == 2
