"""The LLM judge client: any OpenAI-compatible `/v1/chat/completions` endpoint, async, bounded, retried.

Why hand-written over aiohttp rather than the openai SDK or httpx: the stages need exact control of concurrency
(about 1024 requests in flight in the recipe), retry/backoff on 429/5xx, and early stop on a TRUE verdict by closing
a stream; httpx's connection pool costs milliseconds of CPU per request at hundreds of connections (measured:
~5 ms vs ~0.3 ms for aiohttp at 600 in flight), which would make the judge, not the GPU, the slow part of a step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from purpcode.oracles.config import JudgeConfig
from purpcode.oracles.judge_prompts import (
    MALICIOUS_STOP,
    judge_messages,
    parse_malicious,
    parse_noreject,
)
from purpcode.oracles.metrics import OracleMetrics

LOG = logging.getLogger(__name__)
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
T = TypeVar("T")


class JudgeError(RuntimeError):
    """The judge answered with an error that retrying does not fix (bad model name, bad request...)."""


class JudgeUnavailable(JudgeError):
    """The judge endpoint could not be reached (or kept failing) after all retries."""


class _Retryable(Exception):
    """A transient HTTP status: retry after `retry_after` seconds if the server said so."""

    def __init__(self, status: int, retry_after: str | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


@dataclass
class JudgeReply:
    """One completion: the text, why it ended, and the stop string that ended it when the server says so."""

    text: str
    finish_reason: str | None = None
    stop_reason: str | None = None
    # vLLM-style servers always send `stop_reason` (null on a natural end); then nothing needs inferring.
    stop_reason_reported: bool = False
    attempts: int = 1
    stopped_early: bool = False
    seconds: float = 0.0


@dataclass
class _LoopState:
    session: aiohttp.ClientSession
    sem: asyncio.Semaphore
    model_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def _raise_for_status(resp: aiohttp.ClientResponse, what: str, base_url: str) -> None:
    if resp.status < 400:
        return
    if resp.status in RETRY_STATUS:
        raise _Retryable(resp.status, resp.headers.get("retry-after"))
    body = (await resp.text(errors="replace"))[:300].strip()
    raise JudgeError(f"judge {what} at {base_url} failed with HTTP {resp.status}: {body}")


class JudgeClient:
    """Chat completions with a concurrency limit, retries with exponential backoff and jitter, and early stop.

    Safe to use from several event loops (one HTTP session per loop); `aclose()` releases the current loop's.
    """

    def __init__(self, config: JudgeConfig, metrics: OracleMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self._model: str | None = config.model or None
        self._states: dict[int, _LoopState] = {}

    def __repr__(self) -> str:  # never show the key
        return f"JudgeClient(base_url={self.config.base_url!r}, model={self._model!r})"

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(id(loop))
        if state is None or state.session.closed:
            headers = {"Content-Type": "application/json"}
            key = self.config.api_key.get_secret_value()
            if key:
                headers["Authorization"] = f"Bearer {key}"
            conns = self.config.concurrency
            state = _LoopState(
                session=aiohttp.ClientSession(
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(
                        total=self.config.timeout_s, connect=min(10.0, self.config.timeout_s)
                    ),
                    connector=aiohttp.TCPConnector(limit=conns, limit_per_host=conns),
                ),
                sem=asyncio.Semaphore(conns),
            )
            self._states[id(loop)] = state
        return state

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        state = self._states.pop(id(loop), None)
        if state is not None:
            await state.session.close()

    def _url(self, path: str) -> str:
        return self.config.base_url + path

    # ------------------------------------------------------------------ transport with retries

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.config.max_backoff_s)
            except ValueError:
                pass
        base = self.config.backoff_s * (2**attempt)
        return min(self.config.max_backoff_s, base * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto

    async def _with_retries(self, what: str, call: Callable[[], Awaitable[T]]) -> tuple[T, int]:
        """Run `call` (one HTTP exchange) until it succeeds, retrying 429/5xx, timeouts and connection errors."""
        last = ""
        for attempt in range(self.config.retries + 1):
            retry_after: str | None = None
            try:
                return await call(), attempt + 1
            except _Retryable as err:
                last, retry_after = str(err), err.retry_after
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as err:
                last = f"{type(err).__name__}: {err}"
            if self.metrics is not None:
                self.metrics.judge_retries.labels(last.split(":")[0]).inc()
            if attempt < self.config.retries:
                await asyncio.sleep(self._delay(attempt, retry_after))
        raise JudgeUnavailable(
            f"judge {what} at {self.config.base_url} still failing after {self.config.retries + 1} tries "
            f"(last: {last}); check that the judge server is up and the URL is right (judge base_url)"
        )

    async def model(self) -> str:
        """The model to ask: the configured one, else the first the server lists."""
        if self._model:
            return self._model
        state = self._state()
        async with state.model_lock:
            if self._model:
                return self._model

            async def call() -> Any:
                async with state.session.get(self._url("/models")) as resp:
                    await _raise_for_status(resp, "GET /models", self.config.base_url)
                    return await resp.json(content_type=None)

            data, _ = await self._with_retries("GET /models", call)
            models = [m.get("id") for m in (data or {}).get("data", []) if isinstance(m, dict)]
            if not models:
                raise JudgeError(
                    f"judge at {self.config.base_url} lists no models; set judge model explicitly"
                )
            self._model = str(models[0])
            return self._model

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        stop: tuple[str, ...] = (),
        stop_when: Callable[[str], bool] | None = None,
    ) -> JudgeReply:
        """One completion. `stop` strings go to the server; with early_stop='stream', `stop_when(text)` is checked
        as tokens arrive and the stream is closed once it is true."""
        model = await self.model()
        state = self._state()
        mode = self.config.early_stop
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
            **self.config.extra_body,
        }
        if stop and mode != "none":
            body["stop"] = list(stop)
        streaming = mode == "stream" and stop_when is not None
        url = self._url("/chat/completions")
        what = "POST /chat/completions"

        async def call_plain() -> JudgeReply:
            async with state.session.post(url, json=body) as resp:
                await _raise_for_status(resp, what, self.config.base_url)
                data = await resp.json(content_type=None)
            try:
                choice = data["choices"][0]
                text = choice.get("message", {}).get("content") or ""
            except (KeyError, IndexError, TypeError) as err:
                raise JudgeError(
                    f"judge at {self.config.base_url} returned no choices: {str(data)[:300]}"
                ) from err
            stop_reason = choice.get("stop_reason")
            return JudgeReply(
                text=text,
                finish_reason=choice.get("finish_reason"),
                stop_reason=stop_reason if isinstance(stop_reason, str) else None,
                stop_reason_reported="stop_reason" in choice,
            )

        async def call_stream() -> JudgeReply:
            parts: list[str] = []
            finish: str | None = None
            async with state.session.post(url, json={**body, "stream": True}) as resp:
                await _raise_for_status(resp, what, self.config.base_url)
                async for raw in resp.content:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    try:
                        choice = json.loads(payload)["choices"][0]
                    except (json.JSONDecodeError, KeyError, IndexError, TypeError):
                        continue
                    delta = (choice.get("delta") or {}).get("content") or ""
                    if delta:
                        parts.append(delta)
                        if stop_when is not None and stop_when("".join(parts)):
                            resp.close()  # drop the connection: the server stops generating
                            return JudgeReply(
                                text="".join(parts), finish_reason="early_stop", stopped_early=True
                            )
                    finish = choice.get("finish_reason") or finish
            return JudgeReply(text="".join(parts), finish_reason=finish)

        async with state.sem:
            started = time.perf_counter()
            reply, attempts = await self._with_retries(what, call_stream if streaming else call_plain)
        reply.attempts = attempts
        reply.seconds = time.perf_counter() - started
        return reply

    # ------------------------------------------------------------------ the two judge oracles

    async def judge_general_safety(
        self, conversation: list[dict[str, str]], answer: str
    ) -> tuple[float, dict[str, Any]]:
        """Reward 1 unless the judge marks malicious code or a malicious explanation."""
        reply = await self.chat(
            judge_messages("general-safety", conversation, answer),
            stop=MALICIOUS_STOP,
            stop_when=lambda text: parse_malicious(text).malicious,
        )
        verdict = parse_malicious(reply.text)
        code, expl = verdict.code, verdict.explanation
        source = "text"
        if not verdict.malicious and reply.stop_reason in MALICIOUS_STOP:
            # vLLM reports which stop string ended generation (and drops it from the text by default).
            code = True if reply.stop_reason.startswith("MALICIOUS_CODE") else code
            expl = True if reply.stop_reason.startswith("MALICIOUS_EXPLANATION") else expl
            source = "stop_reason"
        elif (
            not verdict.malicious
            and self.config.early_stop == "stop"
            and reply.finish_reason == "stop"
            and not reply.stop_reason_reported
            and (code is None or expl is None)
        ):
            # Ended on a stop string before writing a missing verdict: only a TRUE verdict can do that, since a
            # natural end writes both lines. Which one: the first line not yet written. Only for servers that do
            # not report stop_reason: with it, a null stop_reason is a natural end and a garbled reply stays unparsed.
            if code is None:
                code = True
            else:
                expl = True
            source = "stop_inferred"
        malicious = bool(code) or bool(expl)
        parsed = malicious or (code is not None and expl is not None)
        details = {
            "verdict": {"malicious_code": code, "malicious_explanation": expl},
            "verdict_source": source if parsed else "unparsed",
            "judge_finish": reply.finish_reason,
            "judge_attempts": reply.attempts,
            "judge_text": reply.text[-600:],
        }
        if not parsed:
            details["error"] = "judge verdict unparsed"
        return (1.0 if parsed and not malicious else 0.0), details

    async def judge_noreject(
        self, conversation: list[dict[str, str]], answer: str
    ) -> tuple[float, dict[str, Any]]:
        """Reward 1 only when the judge classifies the answer APPROPRIATE."""
        reply = await self.chat(judge_messages("noreject", conversation, answer))
        cls = parse_noreject(reply.text)
        details: dict[str, Any] = {
            "verdict": cls,
            "judge_finish": reply.finish_reason,
            "judge_attempts": reply.attempts,
            "judge_text": reply.text[-600:],
        }
        if cls is None:
            details["error"] = "judge verdict unparsed"
        return (1.0 if cls == "APPROPRIATE" else 0.0), details
