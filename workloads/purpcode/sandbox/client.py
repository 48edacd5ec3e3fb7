"""Clients for the sandbox service: sync and async, pooled connections, retries on overload only.

Why retry only 429/503/504: those mean "the service is healthy but full, come back"; any other failure (a 4xx for a
bad request, a 500, a refused connection) will not get better by retrying and must surface to the caller.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from purpcode.sandbox.models import RunCodeRequest, RunCodeResponse

RETRY_STATUSES = frozenset({429, 503, 504})  # 504: overload (what verl retries)
_JSON = {"content-type": "application/json"}
_BACKOFF_BASE_S = 0.05
_BACKOFF_CAP_S = 2.0
# How long past the run's own timeout an HTTP request may take (queueing, setup, the response).
_REQUEST_SLACK_S = 60.0


class SandboxClientError(RuntimeError):
    """The service refused the request (4xx/5xx), or kept answering 'overloaded' past all retries."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def _base(url: str) -> str:
    url = url.rstrip("/")
    if url.endswith("/run_code"):  # verl-style configs give the endpoint itself
        url = url[: -len("/run_code")]
    return url


def _limits(max_connections: int) -> httpx.Limits:
    return httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)


def _backoff(attempt: int, retry_after: str | None) -> float:
    if retry_after:
        try:
            return min(float(retry_after), _BACKOFF_CAP_S * 4)
        except ValueError:
            pass
    return min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * (2**attempt)) * (0.5 + random.random())


def _parse(response: httpx.Response) -> RunCodeResponse:
    if response.status_code >= 400:
        try:
            detail: Any = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise SandboxClientError(f"sandbox answered {response.status_code}: {detail}", response.status_code)
    return RunCodeResponse.model_validate_json(response.content)


class SandboxClient:
    """Synchronous client; one instance shares a connection pool across threads."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 64,
        retries: int = 5,
        timeout: float | None = None,
    ) -> None:
        self.base_url = _base(base_url)
        self.retries = retries
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.base_url, limits=_limits(max_connections), timeout=None)

    def run_code(self, req: RunCodeRequest) -> RunCodeResponse:
        """Run one request; retries with jittered exponential backoff while the service answers 429/503/504."""
        body = req.model_dump_json().encode()
        timeout = self.timeout if self.timeout is not None else req.run_timeout + _REQUEST_SLACK_S
        for attempt in range(self.retries + 1):
            response = self._http.post("/run_code", content=body, headers=_JSON, timeout=timeout)
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                time.sleep(_backoff(attempt, response.headers.get("retry-after")))
                continue
            return _parse(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def healthz(self) -> dict[str, Any]:
        """The service's /healthz document (which isolation features and limits are enforced)."""
        response = self._http.get("/healthz", timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSandboxClient:
    """Asyncio client; create it inside the event loop that uses it (httpx pools are per loop)."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 64,
        retries: int = 5,
        timeout: float | None = None,
    ) -> None:
        self.base_url = _base(base_url)
        self.retries = retries
        self.timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.base_url, limits=_limits(max_connections), timeout=None)

    async def run_code(self, req: RunCodeRequest) -> RunCodeResponse:
        """Run one request; retries with jittered exponential backoff while the service answers 429/503/504."""
        body = req.model_dump_json().encode()
        timeout = self.timeout if self.timeout is not None else req.run_timeout + _REQUEST_SLACK_S
        for attempt in range(self.retries + 1):
            response = await self._http.post("/run_code", content=body, headers=_JSON, timeout=timeout)
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                await asyncio.sleep(_backoff(attempt, response.headers.get("retry-after")))
                continue
            return _parse(response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def healthz(self) -> dict[str, Any]:
        """The service's /healthz document."""
        response = await self._http.get("/healthz", timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncSandboxClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
