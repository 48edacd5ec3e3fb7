"""A scripted OpenAI-compatible HTTP server for tests and benches: real HTTP, canned completions.

What it offers: `/v1/models` and `/v1/chat/completions` (plain and `stream: true` SSE), replies picked from a queue,
then by substring rules matched against the request's messages, then a default (text or a function of the request);
a fixed latency; scripted failures (e.g. 429 then 500 then success) for retry tests; `stop` strings honoured the
way vLLM does (the stop string is cut from the text and reported as `stop_reason`); a `max_tokens` cap counted in
whitespace-separated words. Every request body is recorded in `.requests`.

In tests: the `fake_openai` fixture (function scope, one server per session, state reset per test).
Standalone (benches): `python tests/support/fake_openai.py --latency 0.2 --script script.json` prints
`PORT <n>` once listening; script.json = {"default": "...", "rules": [["substring", "reply"], ...]}.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

ReplyFn = Callable[[dict[str, Any]], str]


@dataclass
class _Failure:
    status: int
    retry_after: float | None = None


class FakeOpenAI:
    """The server and its script. Mutate the script between requests from any thread."""

    def __init__(
        self, model: str = "fake-judge", latency_s: float = 0.0, report_stop_reason: bool = True
    ) -> None:
        self.model = model
        self.latency_s = latency_s
        self.report_stop_reason = report_stop_reason
        self.stream_chunk_delay_s = 0.0
        self._lock = threading.Lock()
        self._queue: collections.deque[str] = collections.deque()
        self._rules: list[tuple[str, str | ReplyFn]] = []
        self._failures: collections.deque[_Failure] = collections.deque()
        self._default: str | ReplyFn = "OK"
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self.streams_started = 0
        self.streams_finished = 0  # streams whose last chunk was sent (not closed early by the client)
        self.in_flight = 0
        self.max_in_flight = 0
        self.app = self._build_app()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ------------------------------------------------------------------ script

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._rules.clear()
            self._failures.clear()
            self._default = "OK"
            self.requests.clear()
            self.request_headers.clear()
            self.latency_s = 0.0
            self.stream_chunk_delay_s = 0.0
            self.report_stop_reason = True
            self.streams_started = self.streams_finished = 0
            self.max_in_flight = 0

    def enqueue(self, *contents: str) -> None:
        """Replies used first, in order, whatever the request."""
        with self._lock:
            self._queue.extend(contents)

    def reply(self, content: str | ReplyFn, *, when: str | None = None) -> None:
        """Reply `content` when `when` occurs in the request's messages; with `when=None`, set the default."""
        with self._lock:
            if when is None:
                self._default = content
            else:
                self._rules.append((when, content))

    def fail_next(self, *statuses: int, retry_after: float | None = None) -> None:
        """The next requests answer these HTTP statuses (in order) before scripted replies resume."""
        with self._lock:
            self._failures.extend(_Failure(s, retry_after) for s in statuses)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _choose(self, body: dict[str, Any]) -> str:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
            for needle, content in self._rules:
                if needle in text:
                    return content(body) if callable(content) else content
            default = self._default
        return default(body) if callable(default) else default

    # ------------------------------------------------------------------ HTTP

    @staticmethod
    def _apply_limits(text: str, body: dict[str, Any]) -> tuple[str, str, str | None]:
        stop = body.get("stop") or []
        if isinstance(stop, str):
            stop = [stop]
        cut, hit = len(text), None
        for s in stop:
            i = text.find(s)
            if 0 <= i < cut:
                cut, hit = i, s
        finish = "stop"
        if hit is not None:
            keep = bool(body.get("include_stop_str_in_output"))
            text = text[: cut + (len(hit) if keep else 0)]
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(max_tokens, int):
            words = text.split(" ")
            if len(words) > max_tokens:
                text, finish, hit = " ".join(words[:max_tokens]), "length", None
        return text, finish, hit

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            return {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "test"}]}

        @app.post("/v1/chat/completions", response_model=None)
        async def chat(request: Request) -> Response:
            body = await request.json()
            with self._lock:
                self.requests.append(body)
                self.request_headers.append(dict(request.headers))
                failure = self._failures.popleft() if self._failures else None
            if failure is not None:
                headers = {"retry-after": str(failure.retry_after)} if failure.retry_after is not None else {}
                return JSONResponse(
                    {"error": {"message": f"scripted failure {failure.status}", "code": failure.status}},
                    status_code=failure.status,
                    headers=headers,
                )
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                if self.latency_s:
                    await asyncio.sleep(self.latency_s)
                text, finish, hit = self._apply_limits(self._choose(body), body)
            finally:
                self.in_flight -= 1
            cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
            created = int(time.time())
            stop_reason = hit if self.report_stop_reason else None
            if body.get("stream"):
                return StreamingResponse(
                    self._stream(cid, created, text, finish, stop_reason), media_type="text/event-stream"
                )
            return JSONResponse(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": body.get("model", self.model),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": finish,
                            # An OpenAI-style server has no such key at all; vLLM sends it (null on a natural end).
                            **({"stop_reason": stop_reason} if self.report_stop_reason else {}),
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()), "total_tokens": 1},
                }
            )

        return app

    async def _stream(
        self, cid: str, created: int, text: str, finish: str, stop_reason: str | None
    ) -> AsyncIterator[str]:
        self.streams_started += 1
        pieces = [p + " " for p in text.split(" ")]
        if pieces:
            pieces[-1] = pieces[-1][:-1]
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": self.model}
        for piece in pieces:
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n"
            await asyncio.sleep(self.stream_chunk_delay_s)
        last = {
            **base,
            "choices": [{"index": 0, "delta": {}, "finish_reason": finish, "stop_reason": stop_reason}],
        }
        yield f"data: {json.dumps(last)}\n\n"
        yield "data: [DONE]\n\n"
        self.streams_finished += 1

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeOpenAI:
        """Serve on a free loopback port from a daemon thread."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", backlog=4096, timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


@pytest.fixture(scope="session")
def _fake_openai_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def fake_openai(_fake_openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """A running scripted OpenAI-compatible server (`.url` ends in /v1), reset for each test."""
    _fake_openai_server.reset()
    yield _fake_openai_server
    _fake_openai_server.reset()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--script", help="JSON file: {'default': str, 'rules': [[substring, reply], ...]}")
    parser.add_argument("--model", default="fake-judge")
    args = parser.parse_args(argv)
    server = FakeOpenAI(model=args.model, latency_s=args.latency)
    if args.script:
        with open(args.script, encoding="utf-8") as fh:
            script = json.load(fh)
        if "default" in script:
            server.reply(script["default"])
        for needle, content in script.get("rules", []):
            server.reply(content, when=needle)
    server.latency_s = args.latency
    server.start()
    print(f"PORT {server.port}", flush=True)
    try:
        while server._thread is not None and server._thread.is_alive():
            server._thread.join(timeout=1)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
