"""The OpenAI-compatible backend against a real local HTTP server scripted per test.

Checks what goes on the wire (model, n, sampling, key header), retries on 503, fast failure on 400 without leaking
the key, servers that ignore n > 1, and the concurrency cap.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from purpcode.generation import GENERATION_API_KEY_ENV, GenerationError, get_backend
from purpcode.generation.openai_backend import OpenAIBackend
from purpcode_operator.api import GenerationSpec

Reply = tuple[int, dict[str, Any]]


@dataclass
class Server:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    script: Callable[[dict[str, Any], int], Reply] | None = None
    delay_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _choices(texts: list[str]) -> dict[str, Any]:
    return {
        "choices": [{"index": i, "message": {"role": "assistant", "content": t}} for i, t in enumerate(texts)]
    }


def _echo(body: dict[str, Any], _: int) -> Reply:
    last = body["messages"][-1]["content"]
    return 200, _choices([f"{last}#{i}" for i in range(body.get("n", 1))])


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests.append(body)
                state.headers.append(dict(self.headers))
                index = len(state.requests) - 1
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            time.sleep(state.delay_s)
            status, payload = (state.script or _echo)(body, index)
            with state.lock:
                state.in_flight -= 1
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield state
    httpd.shutdown()
    httpd.server_close()


def _backend(server: Server, **kw: Any) -> OpenAIBackend:
    spec = GenerationSpec(
        backend="openai", url=server.url, model="served-model", temperature=0.5, max_new_tokens=7
    )
    b = get_backend(spec, "ignored-path", seed=3, **kw)
    assert isinstance(b, OpenAIBackend)
    b.backoff_s = 0.01
    return b


CONVS = [[{"role": "user", "content": f"q{i}"}] for i in range(5)]


def test_request_shape_and_order(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GENERATION_API_KEY_ENV, "sk-secret-123")
    out = _backend(server).generate(CONVS, n=2, top_p=0.9)
    assert out == [[f"q{i}#0", f"q{i}#1"] for i in range(5)]
    body = server.requests[0]
    assert body["model"] == "served-model"
    assert body["n"] == 2 and body["temperature"] == 0.5 and body["max_tokens"] == 7 and body["top_p"] == 0.9
    assert isinstance(body["seed"], int)
    assert server.headers[0]["Authorization"] == "Bearer sk-secret-123"


def test_model_defaults_to_the_path_argument(server: Server) -> None:
    spec = GenerationSpec(backend="openai", url=server.url)
    get_backend(spec, "Qwen/Qwen2.5-7B-Instruct", seed=1).generate(CONVS[:1])
    assert server.requests[0]["model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert "Authorization" not in server.headers[0]


def test_retries_on_503_then_succeeds(server: Server) -> None:
    server.script = lambda body, i: (503, {"error": "busy"}) if i < 2 else _echo(body, i)
    assert _backend(server).generate(CONVS[:1]) == [["q0#0"]]
    assert len(server.requests) == 3


def test_gives_up_after_retries(server: Server) -> None:
    server.script = lambda body, i: (503, {"error": "down"})
    b = _backend(server)
    b.max_retries = 2
    with pytest.raises(GenerationError, match="failed after 3 attempts"):
        b.generate(CONVS[:1])


def test_client_error_fails_fast_without_leaking_key(server: Server) -> None:
    server.script = lambda body, i: (400, {"error": "bad model"})
    b = _backend(server, api_key="sk-do-not-print")
    with pytest.raises(GenerationError) as err:
        b.generate(CONVS[:1])
    assert len(server.requests) == 1
    assert "HTTP 400" in str(err.value)
    assert "sk-do-not-print" not in str(err.value) and "sk-do-not-print" not in repr(b)


def test_server_ignoring_n_gets_extra_requests(server: Server) -> None:
    server.script = lambda body, i: (200, _choices([f"only-{i}"]))
    out = _backend(server).generate(CONVS[:1], n=3)
    assert len(out[0]) == 3 and len(set(out[0])) == 3
    assert [r["n"] for r in server.requests] == [3, 1, 1]


def test_concurrency_is_capped(server: Server) -> None:
    server.delay_s = 0.05
    b = _backend(server, concurrency=2)
    b.generate([[{"role": "user", "content": str(i)}] for i in range(8)])
    assert server.max_in_flight <= 2
    assert len(server.requests) == 8


async def test_works_inside_a_running_event_loop(server: Server) -> None:
    assert _backend(server).generate(CONVS[:2]) == [["q0#0"], ["q1#0"]]


def test_openai_needs_url() -> None:
    with pytest.raises(ValueError, match="needs url"):
        GenerationSpec(backend="openai")
