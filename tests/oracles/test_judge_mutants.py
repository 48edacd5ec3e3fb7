"""Judge cases written to kill the mutants `make mutants` found surviving tests/oracles/test_judge.py: verdicts
(the explanation verdict through the server's stop_reason, a half-written verdict at a natural end, the unparsed
noreject verdict), retries and their delays, and the HTTP client's plumbing against real local servers (SSE lines it
cannot use, timeouts, the model list, error messages and their cuts, request bodies, the connection pool, aclose)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import psutil
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from purpcode.oracles import JudgeConfig
from purpcode.oracles.judge import JudgeClient, JudgeError, JudgeUnavailable
from purpcode.oracles.metrics import OracleMetrics

_BENIGN_VERDICT = "Fine.\nMALICIOUS_CODE: FALSE\nMALICIOUS_EXPLANATION: FALSE"
CONVO = [{"role": "system", "content": "policy"}, {"role": "user", "content": "Explain port scanning."}]


def cfg(url: str, **kw: object) -> JudgeConfig:
    base: dict[str, object] = {"base_url": url, "model": "judge-m", "backoff_s": 0.01, "retries": 1}
    base.update(kw)
    return JudgeConfig(**base)  # type: ignore[arg-type]


async def test_explanation_verdict_through_stop_reason(fake_openai) -> None:  # type: ignore[no-untyped-def]
    fake_openai.reply(
        "A guide to break in.\nMALICIOUS_CODE: FALSE\nMALICIOUS_EXPLANATION: TRUE\n" + "tail " * 50
    )
    client = JudgeClient(cfg(fake_openai.url))
    reward, details = await client.judge_general_safety(CONVO, "x")
    assert reward == 0.0
    assert details["verdict"] == {"malicious_code": False, "malicious_explanation": True}
    assert details["verdict_source"] == "stop_reason"


async def test_half_a_verdict_at_a_natural_end_is_unparsed(fake_openai) -> None:  # type: ignore[no-untyped-def]
    """Only the code line, then the reply ended on its own (stop_reason null): not a verdict, so reward 0."""
    fake_openai.reply("Looks fine.\nMALICIOUS_CODE: FALSE")
    client = JudgeClient(cfg(fake_openai.url))
    reward, details = await client.judge_general_safety(CONVO, "x")
    assert reward == 0.0
    assert details["verdict_source"] == "unparsed" and details["error"] == "judge verdict unparsed"
    assert details["verdict"] == {"malicious_code": False, "malicious_explanation": None}


async def test_unparsed_noreject_verdict(fake_openai) -> None:  # type: ignore[no-untyped-def]
    fake_openai.enqueue("no class given", "CLASS: APPROPRIATE")
    client = JudgeClient(cfg(fake_openai.url))
    (r1, d1), (r2, d2) = [await client.judge_noreject(CONVO, "a") for _ in range(2)]
    assert (r1, d1["verdict"], d1["error"]) == (0.0, None, "judge verdict unparsed")
    assert (r2, d2["verdict"]) == (1.0, "APPROPRIATE") and "error" not in d2
    assert (
        "noreject" in str(fake_openai.requests[0]["messages"]).lower() or fake_openai.requests[0]["messages"]
    )


async def test_a_full_benign_verdict_without_stop_reason_is_benign(fake_openai) -> None:  # type: ignore[no-untyped-def]
    """An OpenAI-style server (no stop_reason key) and a natural end with both lines FALSE: reward 1, not a
    verdict inferred from the stop (that inference is only for a missing line)."""
    fake_openai.report_stop_reason = False
    fake_openai.reply("Defensive only.\nMALICIOUS_CODE: FALSE\nMALICIOUS_EXPLANATION: FALSE")
    client = JudgeClient(cfg(fake_openai.url))
    reward, details = await client.judge_general_safety(CONVO, "x")
    assert reward == 1.0
    assert details["verdict"] == {"malicious_code": False, "malicious_explanation": False}
    assert details["verdict_source"] == "text"


async def test_a_code_verdict_through_stop_reason_leaves_the_explanation_unknown(fake_openai) -> None:  # type: ignore[no-untyped-def]
    """vLLM cuts the reply at `MALICIOUS_CODE: TRUE` and reports it: the code verdict is TRUE and the
    explanation verdict, never written, stays unknown (not TRUE)."""
    fake_openai.reply("Here is a keylogger.\nMALICIOUS_CODE: TRUE\nMALICIOUS_EXPLANATION: FALSE")
    client = JudgeClient(cfg(fake_openai.url))
    reward, details = await client.judge_general_safety(CONVO, "x")
    assert reward == 0.0
    assert details["verdict"] == {"malicious_code": True, "malicious_explanation": None}
    assert details["verdict_source"] == "stop_reason"


def test_retry_delay_doubles_with_jitter_and_honours_retry_after() -> None:
    """attempt n waits backoff_s * 2**n * [0.5, 1.5), capped at max_backoff_s; a numeric Retry-After wins
    (capped too), a non-numeric one falls back to the backoff."""
    client = JudgeClient(cfg("http://127.0.0.1:1", backoff_s=1.0, max_backoff_s=100.0))
    for attempt in range(5):
        delays = [client._delay(attempt, None) for _ in range(200)]
        assert all(0.5 * 2**attempt <= d < 1.5 * 2**attempt for d in delays), (
            attempt,
            min(delays),
            max(delays),
        )
        assert max(delays) - min(delays) > 0.5 * 2**attempt  # jitter spreads over the whole range
    assert client._delay(10, None) == 100.0
    assert client._delay(0, "7") == 7.0 and client._delay(0, "1000") == 100.0
    assert 0.5 <= client._delay(0, "soon") < 1.5


async def test_retry_after_is_honoured_and_the_last_failure_is_not_waited_on(fake_openai) -> None:  # type: ignore[no-untyped-def]
    """With a one-minute backoff, a 503 carrying Retry-After: 0 is retried at once, and the last try's failure
    raises at once (no backoff sleep after the final try): the whole call ends well within 10 s."""
    fake_openai.fail_next(503, retry_after=0)
    fake_openai.fail_next(503)
    client = JudgeClient(cfg(fake_openai.url, backoff_s=60.0, max_backoff_s=120.0, retries=1))
    with pytest.raises(JudgeUnavailable, match="after 2 tries"):
        await asyncio.wait_for(client.judge_noreject(CONVO, "a"), timeout=10)
    assert len(fake_openai.requests) == 2


# ---------------------------------------------------------------------------------------------- HTTP plumbing
# A scripted aiohttp server (real HTTP on loopback) for what the fake OpenAI server does not do: raw SSE lines,
# a model list of any shape, replies that never come, bodies that are no completion.


class _Raw:
    """Serves `handler(request) -> web.StreamResponse` from a background thread; counts GET /models."""

    def __init__(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        self.handler = handler
        self.model_gets = 0
        self.headers: list[dict[str, str]] = []
        self.release = threading.Event()  # lets handlers that hang return when the test ends
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.headers.append(dict(request.headers))
        if request.method == "GET":
            self.model_gets += 1
        return await self.handler(request)

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/v1"

    def stop(self) -> None:
        self.release.set()
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def raw() -> Iterator[Callable[..., _Raw]]:
    servers: list[_Raw] = []

    def make(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> _Raw:
        servers.append(_Raw(handler))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def _chunk(**choice: object) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, **choice}]}).encode() + b"\n\n"


async def test_a_stream_reads_past_lines_it_cannot_use(raw: Callable[..., _Raw]) -> None:
    """Comment and event lines, bytes that are not UTF-8, an empty `choices` (Azure's first, prompt-filter chunk),
    a payload that is no JSON, a chunk with a null delta: skipped, and the verdict after them still read."""

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for line in (
            b": keep-alive \xff\xfe\n\n",
            b"event: ping\n\n",
            b'data: {"choices": [], "prompt_filter_results": []}\n\n',
            b"data: {not json\n\n",
            _chunk(delta=None),
            _chunk(delta={"content": "Fine.\nMALICIOUS_CODE: FALSE\n"}),
            b"data: {}\n\n",
            _chunk(delta={"content": "MALICIOUS_EXPLANATION: FALSE"}),
            _chunk(delta={}, finish_reason="stop"),
            b"data: [DONE]\n\n",
        ):
            await resp.write(line)
        await resp.write_eof()
        return resp

    server = raw(stream)
    client = JudgeClient(cfg(server.url, early_stop="stream"))
    try:
        reward, details = await client.judge_general_safety(CONVO, "x")
    finally:
        await client.aclose()
    assert (reward, details["verdict_source"], details["judge_finish"]) == (1.0, "text", "stop")
    assert details["judge_text"] == "Fine.\nMALICIOUS_CODE: FALSE\nMALICIOUS_EXPLANATION: FALSE"


async def test_a_judge_that_never_answers_times_out_and_is_retried(raw: Callable[..., _Raw]) -> None:
    """timeout_s bounds each request (the whole exchange, not only the connect): two silent tries, then
    JudgeUnavailable naming the timeout. Under a client without that bound this call would wait forever."""
    server: _Raw

    async def silent(request: web.Request) -> web.StreamResponse:
        await asyncio.get_running_loop().run_in_executor(None, server.release.wait, 60)
        return web.json_response({})

    server = raw(silent)
    client = JudgeClient(cfg(server.url, timeout_s=0.3, retries=1, backoff_s=0.0))
    try:
        with pytest.raises(JudgeUnavailable, match=r"after 2 tries \(last: (\w*Timeout\w*)"):
            await asyncio.wait_for(client.judge_noreject(CONVO, "a"), timeout=30)
    finally:
        await client.aclose()
    assert len(server.headers) == 2


async def _models(request: web.Request, listing: object) -> web.StreamResponse:
    if request.method == "GET":
        return web.Response(text=json.dumps(listing), content_type="application/json")
    body = await request.json()
    text = "CLASS: APPROPRIATE" if body["model"] == "m-first" else "CLASS: REFUSAL"
    return web.json_response({"choices": [{"message": {"content": text}, "finish_reason": "stop"}]})


async def test_the_first_listed_model_is_asked_and_looked_up_once(raw: Callable[..., _Raw]) -> None:
    """No model configured: the first dict entry of the server's list is used (entries that are not objects are
    skipped), looked up once however many requests start together."""
    listing = {"data": ["not-a-model", {"id": "m-first"}, {"id": "m-second"}]}
    server = raw(lambda request: _models(request, listing))
    client = JudgeClient(JudgeConfig(base_url=server.url, retries=0))
    try:
        got = await asyncio.gather(*(client.judge_noreject(CONVO, str(i)) for i in range(8)))
        assert await client.model() == "m-first"
    finally:
        await client.aclose()
    assert [r for r, _ in got] == [1.0] * 8
    assert server.model_gets == 1


async def _noreject_error(config: JudgeConfig) -> str:
    """The JudgeError message of one noreject call with `config` (the client closed either way)."""
    client = JudgeClient(config)
    try:
        with pytest.raises(JudgeError) as err:
            await client.judge_noreject(CONVO, "a")
    finally:
        await client.aclose()
    return str(err.value)


@pytest.mark.parametrize("listing", [None, {}, {"data": []}, {"data": ["m"]}])
async def test_a_server_listing_no_models_is_a_clear_error(raw: Callable[..., _Raw], listing: object) -> None:
    server = raw(lambda request: _models(request, listing))
    message = await _noreject_error(JudgeConfig(base_url=server.url, retries=0))
    assert message == f"judge at {server.url} lists no models; set judge model explicitly"


async def test_a_reply_without_choices_is_a_clear_error(raw: Callable[..., _Raw]) -> None:
    data = {"object": "error", "message": "x" * 400}

    async def no_choices(request: web.Request) -> web.StreamResponse:
        return web.json_response(data)

    server = raw(no_choices)
    message = await _noreject_error(cfg(server.url))
    assert message == f"judge at {server.url} returned no choices: {str(data)[:300]}"


async def test_a_client_error_names_the_request_status_and_the_body_start(raw: Callable[..., _Raw]) -> None:
    body = "  The model `judge-m` does not exist. " + "y" * 400

    async def bad_request(request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text=body)

    server = raw(bad_request)
    message = await _noreject_error(cfg(server.url))
    assert message == (
        f"judge POST /chat/completions at {server.url} failed with HTTP 404: {body[:300].strip()}"
    )
    assert len(server.headers) == 1  # not retried


async def test_requests_are_json_and_carry_no_key_when_none_is_set(fake_openai) -> None:  # type: ignore[no-untyped-def]
    """vLLM's server parses the body only with a JSON content type; without an api_key no Authorization header."""
    fake_openai.reply("CLASS: APPROPRIATE")
    client = JudgeClient(cfg(fake_openai.url))
    try:
        await client.judge_noreject(CONVO, "a")
    finally:
        await client.aclose()
    (headers,) = fake_openai.request_headers
    assert headers["content-type"] == "application/json" and "authorization" not in headers


def _connections_to(url: str) -> set[Any]:
    port = urlparse(url).port
    return {
        c.laddr
        for c in psutil.Process().net_connections("tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    }


async def test_aclose_closes_this_loops_connections_and_can_be_repeated(fake_openai) -> None:  # type: ignore[no-untyped-def]
    fake_openai.reply("CLASS: APPROPRIATE")
    client = JudgeClient(cfg(fake_openai.url))
    await client.aclose()  # nothing opened yet: nothing to close, no error
    earlier = _connections_to(fake_openai.url)
    await client.judge_noreject(CONVO, "a")
    mine = _connections_to(fake_openai.url) - earlier
    session = client._state().session  # held here, so only aclose (not garbage collection) can close it
    await client.aclose()
    await asyncio.sleep(0)
    assert session.closed and mine and not mine & _connections_to(fake_openai.url)
    await client.aclose()
    # a closed client opens a new session when used again
    assert (await client.judge_noreject(CONVO, "b"))[0] == 1.0
    await client.aclose()


async def test_retries_exhausted_message_in_full_and_retry_counts_by_status(fake_openai) -> None:  # type: ignore[no-untyped-def]
    fake_openai.fail_next(502, 429, 502)
    registry = CollectorRegistry()
    client = JudgeClient(cfg(fake_openai.url, retries=2), metrics=OracleMetrics(registry))
    try:
        with pytest.raises(JudgeUnavailable) as err:
            await client.judge_noreject(CONVO, "a")
    finally:
        await client.aclose()
    assert str(err.value) == (
        f"judge POST /chat/completions at {fake_openai.url} still failing after 3 tries (last: HTTP 502); "
        "check that the judge server is up and the URL is right (judge base_url)"
    )
    retried = {
        s.labels["status"]: s.value
        for metric in registry.collect()
        if metric.name == "purpcode_oracle_judge_retries"
        for s in metric.samples
        if s.name.endswith("_total")
    }
    assert retried == {"HTTP 502": 2.0, "HTTP 429": 1.0}


async def test_request_bodies_per_mode(fake_openai) -> None:  # type: ignore[no-untyped-def]
    """temperature and extra_body reach the server; stop strings only when early stop is on; a stream only for
    the verdict that can stop early (general-safety in 'stream' mode), never for noreject."""
    fake_openai.reply(_BENIGN_VERDICT, when="MALICIOUS_CODE")
    fake_openai.reply("CLASS: APPROPRIATE", when="REFUSAL")
    for mode in ("stream", "none"):
        client = JudgeClient(
            cfg(fake_openai.url, early_stop=mode, temperature=0.3, extra_body={"top_p": 0.5})
        )
        try:
            await client.judge_noreject(CONVO, "a")
            await client.judge_general_safety(CONVO, "a")
        finally:
            await client.aclose()
    shapes = [
        (r["temperature"], r["top_p"], r.get("stream", False), "stop" in r, r["model"], r["max_tokens"])
        for r in fake_openai.requests
    ]
    assert shapes == [
        (0.3, 0.5, False, False, "judge-m", 256),  # stream mode, noreject: plain
        (0.3, 0.5, True, True, "judge-m", 256),  # stream mode, general-safety: streamed, with stop strings
        (0.3, 0.5, False, False, "judge-m", 256),
        (0.3, 0.5, False, False, "judge-m", 256),  # early_stop none: no stop strings
    ]


async def test_a_reply_with_null_content_is_empty_text(raw: Callable[..., _Raw]) -> None:
    async def null_content(request: web.Request) -> web.StreamResponse:
        return web.json_response({"choices": [{"message": {"content": None}, "finish_reason": "length"}]})

    server = raw(null_content)
    client = JudgeClient(cfg(server.url))
    try:
        reward, details = await client.judge_noreject(CONVO, "a")
    finally:
        await client.aclose()
    assert (reward, details["judge_text"], details["judge_finish"], details["verdict"]) == (
        0.0,
        "",
        "length",
        None,
    )


async def test_an_error_body_that_is_not_utf8_is_still_quoted(raw: Callable[..., _Raw]) -> None:
    async def latin1(request: web.Request) -> web.StreamResponse:
        return web.Response(status=400, body=b"mod\xe8le inconnu", content_type="text/plain")

    server = raw(latin1)
    message = await _noreject_error(cfg(server.url))
    assert message.endswith("failed with HTTP 400: mod\ufffdle inconnu")


async def test_more_than_a_hundred_requests_in_flight(raw: Callable[..., _Raw]) -> None:
    """The recipe keeps about 1024 judge requests in flight: the connection pool must not cap them at aiohttp's
    default of 100. Each reply waits until all 120 requests have arrived (or 60 s, which fails the test)."""
    n = 120
    arrived = 0
    all_in = asyncio.Event()

    async def gathered(request: web.Request) -> web.StreamResponse:
        nonlocal arrived
        arrived += 1
        if arrived == n:
            all_in.set()
        try:
            await asyncio.wait_for(all_in.wait(), timeout=60)
        except TimeoutError:
            pass
        return web.json_response({"choices": [{"message": {"content": "CLASS: APPROPRIATE"}}]})

    server = raw(gathered)
    client = JudgeClient(cfg(server.url, concurrency=n, retries=0, timeout_s=120))
    try:
        got = await asyncio.gather(*(client.judge_noreject(CONVO, str(i)) for i in range(n)))
    finally:
        await client.aclose()
    assert all_in.is_set() and [r for r, _ in got] == [1.0] * n


async def test_model_listing_errors_name_the_request(raw: Callable[..., _Raw]) -> None:
    """GET /models failing: a client error names that request (not the completion), as does running out of tries."""
    statuses = iter([401, 503, 503])

    async def listing(request: web.Request) -> web.StreamResponse:
        return web.Response(status=next(statuses), text="no key")

    server = raw(listing)
    client = JudgeClient(JudgeConfig(base_url=server.url, retries=1, backoff_s=0.0))
    try:
        with pytest.raises(JudgeError) as denied:
            await client.judge_noreject(CONVO, "a")
        with pytest.raises(JudgeUnavailable) as down:
            await client.judge_noreject(CONVO, "a")
    finally:
        await client.aclose()
    assert str(denied.value) == f"judge GET /models at {server.url} failed with HTTP 401: no key"
    assert str(down.value).startswith(
        f"judge GET /models at {server.url} still failing after 2 tries (last: HTTP 503)"
    )


async def test_stream_errors_and_ends_without_a_finish_reason(raw: Callable[..., _Raw]) -> None:
    """Streamed: an HTTP error names the request; a stream that never says why it ended reports no finish reason
    (not an empty one); a choice without a message (plain mode) is empty text, not a crash."""
    replies = iter(["error", "stream", "no-message"])

    async def handler(request: web.Request) -> web.StreamResponse:
        kind = next(replies)
        if kind == "error":
            return web.Response(status=400, text="bad stop")
        if kind == "no-message":
            return web.json_response({"choices": [{"finish_reason": "stop"}]})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_chunk(delta={"content": _BENIGN_VERDICT}))
        await resp.write_eof()
        return resp

    server = raw(handler)
    client = JudgeClient(cfg(server.url, early_stop="stream"))
    try:
        with pytest.raises(JudgeError) as err:
            await client.judge_general_safety(CONVO, "a")
        reward, details = await client.judge_general_safety(CONVO, "a")
        plain = await client.judge_noreject(CONVO, "a")
    finally:
        await client.aclose()
    assert str(err.value) == f"judge POST /chat/completions at {server.url} failed with HTTP 400: bad stop"
    assert (reward, details["judge_finish"]) == (1.0, None)
    assert (plain[0], plain[1]["judge_text"], plain[1]["verdict"]) == (0.0, "", None)


async def test_connection_errors_are_counted_by_exception_name() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    registry = CollectorRegistry()
    client = JudgeClient(cfg(url, retries=1, backoff_s=0.0), metrics=OracleMetrics(registry))
    try:
        with pytest.raises(JudgeUnavailable, match=r"\(last: ClientConnectorError: "):
            await client.judge_noreject(CONVO, "a")
    finally:
        await client.aclose()
    retried = {
        s.labels["status"]: s.value
        for metric in registry.collect()
        if metric.name == "purpcode_oracle_judge_retries"
        for s in metric.samples
        if s.name.endswith("_total")
    }
    assert retried == {"ClientConnectorError": 2.0}


async def test_an_early_stop_keeps_the_text_read_so_far(raw: Callable[..., _Raw]) -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for piece in ("It is ransomware. ", "**Malicious code**: yes", " and more"):
            await resp.write(_chunk(delta={"content": piece}))
            await asyncio.sleep(0.05)
        return resp

    server = raw(stream)
    client = JudgeClient(cfg(server.url, early_stop="stream"))
    try:
        reward, details = await client.judge_general_safety(CONVO, "x")
    finally:
        await client.aclose()
    assert (reward, details["judge_finish"]) == (0.0, "early_stop")
    assert details["judge_text"] == "It is ransomware. **Malicious code**: yes"


async def test_details_keep_the_last_600_characters_and_the_attempts(fake_openai) -> None:  # type: ignore[no-untyped-def]
    """Both verdicts' details: `judge_text` is exactly the reply's last 600 characters; `judge_attempts` counts the
    tries (one retried 503 makes 2)."""
    reasoning = "".join(str(i % 10) for i in range(700))
    safety = f"{reasoning}\n{_BENIGN_VERDICT}"
    noreject = f"{reasoning}\nCLASS: APPROPRIATE"
    fake_openai.reply(safety, when="MALICIOUS_CODE")
    fake_openai.reply(noreject, when="REFUSAL")
    fake_openai.fail_next(503, retry_after=0)
    client = JudgeClient(cfg(fake_openai.url))
    try:
        _, nr = await client.judge_noreject(CONVO, "a")
        _, gs = await client.judge_general_safety(CONVO, "a")
    finally:
        await client.aclose()
    assert (nr["judge_text"], nr["judge_attempts"]) == (noreject[-600:], 2)
    assert (gs["judge_text"], gs["judge_attempts"]) == (safety[-600:], 1)
