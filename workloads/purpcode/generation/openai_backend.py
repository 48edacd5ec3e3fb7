"""The OpenAI-compatible backend: a vLLM server the operator deploys, or an external API (key from a Secret).

Async httpx with a concurrency limit and retries with exponential backoff on 429, 5xx and transport errors. The API
key is read from an environment variable by the caller and never logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
from typing import Any

from purpcode.generation.base import (
    Conversation,
    GenerationBackend,
    GenerationError,
    SamplingParams,
    batch_seed,
)

LOG = logging.getLogger(__name__)
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class OpenAIBackend(GenerationBackend):
    """POST `<url>/chat/completions` per conversation, up to `concurrency` in flight."""

    name = "openai"

    def __init__(
        self,
        url: str,
        model: str,
        *,
        seed: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        api_key: str | None = None,
        concurrency: int = 64,
        max_retries: int = 5,
        timeout_s: float = 600.0,
        backoff_s: float = 0.5,
        batch_size: int = 64,
    ) -> None:
        super().__init__(
            seed=seed,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
        )
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"generation.url={url!r}: use an http(s) base URL ending in /v1")
        self.url = url.rstrip("/")
        self.model = model
        self._api_key = api_key
        self.concurrency = max(1, concurrency)
        self.max_retries = max(0, max_retries)
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def _post(self, client: Any, payload: dict[str, Any], sem: asyncio.Semaphore) -> list[str]:
        import httpx

        endpoint = f"{self.url}/chat/completions"
        last = ""
        for attempt in range(self.max_retries + 1):
            async with sem:
                try:
                    resp = await client.post(endpoint, json=payload, headers=self._headers())
                except httpx.TransportError as err:
                    last = f"{type(err).__name__}: {err}"
                    resp = None
            if resp is not None:
                if resp.status_code == 200:
                    try:
                        body = resp.json()
                        return [str((c.get("message") or {}).get("content") or "") for c in body["choices"]]
                    except (ValueError, KeyError, TypeError, AttributeError) as err:
                        raise GenerationError(f"{endpoint}: unreadable completion response ({err})") from err
                last = f"HTTP {resp.status_code}: {resp.text[:300]}"
                if resp.status_code not in RETRY_STATUS:
                    raise GenerationError(f"{endpoint} refused the request: {last}")
            if attempt < self.max_retries:
                delay = self.backoff_s * (2**attempt) * (1 + random.random() * 0.25)
                LOG.warning(
                    "generation request failed (%s); retry %d/%d in %.1fs",
                    last,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)
        raise GenerationError(f"{endpoint} failed after {self.max_retries + 1} attempts: {last}")

    async def _one(
        self, client: Any, conv: Conversation, params: SamplingParams, seed: int, sem: asyncio.Semaphore
    ) -> list[str]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": conv,
            "n": params.n,
            "temperature": max(params.temperature, 0.0),
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "seed": seed,
        }
        texts = await self._post(client, payload, sem)
        # Some servers ignore n > 1: ask for the rest one at a time.
        extra = 0
        while len(texts) < params.n:
            extra += 1
            more = await self._post(client, {**payload, "n": 1, "seed": seed + extra}, sem)
            if not more:
                raise GenerationError(f"{self.url}: the server returned no choices")
            texts.extend(more)
        return texts[: params.n]

    async def agenerate(self, conversations: list[Conversation], params: SamplingParams) -> list[list[str]]:
        """Async generation (for callers that already run an event loop)."""
        import httpx

        sem = asyncio.Semaphore(self.concurrency)
        base = batch_seed(self.seed, conversations)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout_s, limits=limits) as client:
            done = 0

            async def one(i: int, c: Conversation) -> list[str]:
                nonlocal done
                texts = await self._one(client, c, params, base + i, sem)
                done += 1
                self._progress(done, len(conversations))
                return texts

            return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(conversations))))

    def _generate(self, conversations: list[Conversation], params: SamplingParams) -> list[list[str]]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(conversations, params))
        # Called from inside an event loop: run ours on a helper thread instead of nesting loops.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self.agenerate(conversations, params)).result()

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIBackend(url={self.url!r}, model={self.model!r})"
