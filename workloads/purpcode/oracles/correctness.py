"""The correctness oracle: the answer's code, joined, must pass every test of the task in the sandbox.

Which code (`OracleConfig.correctness_code_blocks`): "all" (default, the reference) joins every fenced block in
document order, so an answer that adds a shell or output block fails the run as it would in the reference;
"python" runs the Python blocks only.

Runs through the sandbox service's own harness (`purpcode.sandbox.harness.run_tests`), so tests are executed the
one way the sandbox makes reward-hack-proof; this module only extracts the code, bounds concurrency, and remembers
verdicts: the same code against the same tests (common inside a GRPO group and across epochs) runs once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import httpx

from purpcode.oracles.config import OracleConfig
from purpcode.oracles.format import code_to_run, extract_code_blocks

DETAILS_CHARS = 1000  # of the test output kept in a score's details (logs, not storage)
# Only verdicts about the code are remembered; a timeout or sandbox error may be the machine's fault.
CACHEABLE = frozenset({"passed", "failed", "error"})


def answer_code(answer: str, blocks: str = "all") -> str:
    """The code correctness executes for an answer: every fenced block in order ("all") or the Python ones."""
    if blocks == "python":
        return code_to_run(answer)
    if blocks != "all":
        raise ValueError(f"correctness_code_blocks={blocks!r}: use 'all' or 'python'")
    ordered = sorted(extract_code_blocks(answer), key=lambda b: b.index)
    return "\n".join(b.code.strip("\n") for b in ordered).strip()


def _not_utf8(code: str) -> str:
    """Why `code` cannot be a Python source file ("" when it can): a lone surrogate (from JSON such as "\\ud800")
    has no UTF-8 encoding. Such an answer used to raise UnicodeEncodeError while the request was built, so it became
    a row error, left out of pass@1, instead of the failed run it is."""
    try:
        code.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"the solution is not valid UTF-8 text ({err.reason} at position {err.start}): Python cannot read it"
    return ""


class SandboxUnavailable(RuntimeError):
    """The sandbox service could not be reached: every correctness score would be wrong, so scoring stops."""


@dataclass
class _LoopState:
    client: Any
    sem: asyncio.Semaphore
    inflight: dict[str, asyncio.Future[tuple[float, dict[str, Any]]]] = field(default_factory=dict)


class CorrectnessOracle:
    """One sandbox client per event loop, at most `correctness_concurrency` runs in flight, an LRU of verdicts."""

    def __init__(self, sandbox_url: str, config: OracleConfig) -> None:
        self.sandbox_url = sandbox_url
        self.config = config
        self._states: dict[int, _LoopState] = {}
        self._cache: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.cache_hits = 0

    def _state(self) -> _LoopState:
        from purpcode.sandbox.client import AsyncSandboxClient

        loop = asyncio.get_running_loop()
        state = self._states.get(id(loop))
        if state is None:
            conc = self.config.correctness_concurrency
            state = _LoopState(
                AsyncSandboxClient(self.sandbox_url, max_connections=conc), asyncio.Semaphore(conc)
            )
            self._states[id(loop)] = state
        return state

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        state = self._states.pop(id(loop), None)
        if state is not None:
            await state.client.aclose()

    @staticmethod
    def parse_spec(ground_truth: dict[str, Any]) -> Any:
        """The task's TestSpec (a ValueError naming the problem when the row's ground_truth is not one)."""
        from pydantic import ValidationError

        from purpcode.sandbox.harness import TestSpec

        try:
            return TestSpec.model_validate(ground_truth)
        except ValidationError as err:
            raise ValueError(f"ground_truth is not a sandbox TestSpec: {err.errors()[:3]}") from err

    def _key(self, code: str, spec: Any) -> str:
        blob = json.dumps(
            [code, spec.model_dump(mode="json"), self.config.correctness_timeout_s], sort_keys=True
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _remember(self, key: str, value: tuple[float, dict[str, Any]]) -> None:
        if self.config.correctness_cache_size <= 0 or value[1]["test"]["status"] not in CACHEABLE:
            return
        with self._cache_lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self.config.correctness_cache_size:
                self._cache.popitem(last=False)

    async def score(self, answer: str, ground_truth: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        spec = self.parse_spec(ground_truth)
        code = answer_code(answer, self.config.correctness_code_blocks)
        if not code:
            return 0.0, {"test": {"status": "no_code", "passed": False}}
        unreadable = _not_utf8(code)
        if unreadable:  # no source file can hold it, so no sandbox can run it: a verdict, not a bad row
            test = {"status": "error", "passed": False, "tests_run": 0, "details": unreadable}
            return 0.0, {"test": test, "kind": str(spec.kind)}
        key = self._key(code, spec)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                self.cache_hits += 1
        if hit is not None:
            return hit[0], {**hit[1], "cached": True}
        state = self._state()
        running = state.inflight.get(key)
        if running is not None:  # the same code for the same tests is already running: share its verdict
            reward, details = await asyncio.shield(running)
            return reward, {**details, "cached": True}
        future: asyncio.Future[tuple[float, dict[str, Any]]] = asyncio.get_running_loop().create_future()
        state.inflight[key] = future
        try:
            result = await self._run(state, code, spec)
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # retrieved here, so an unshared failure is not reported as never retrieved
            raise
        finally:
            state.inflight.pop(key, None)
        future.set_result(result)
        self._remember(key, result)
        return result

    async def _run(self, state: _LoopState, code: str, spec: Any) -> tuple[float, dict[str, Any]]:
        from purpcode.sandbox.harness import run_tests

        async with state.sem:
            try:
                outcome = await run_tests(
                    state.client, code, spec, timeout_s=self.config.correctness_timeout_s
                )
            except httpx.TransportError as err:
                raise SandboxUnavailable(
                    f"sandbox at {self.sandbox_url} unreachable ({type(err).__name__}: {err}); check that the sandbox "
                    "service is up and sandbox_url is right"
                ) from err
        test: dict[str, Any] = {
            "passed": bool(outcome.passed),
            "status": str(outcome.status),
            "tests_run": int(outcome.tests_run),
            "execution_time": outcome.execution_time,
        }
        if outcome.details:
            test["details"] = str(outcome.details)[-DETAILS_CHARS:]
        details: dict[str, Any] = {"test": test, "kind": str(spec.kind)}
        if outcome.status == "sandbox_error":
            # The sandbox failed, not the code: scored 0 but counted as an error, so it shows on dashboards.
            details["error"] = f"sandbox_error: {str(outcome.details)[:200]}"
        return (1.0 if outcome.passed else 0.0), details
