"""The correctness oracle: the answer's Python blocks, joined, must pass every test of the task in the sandbox.

Runs through the sandbox service's own harness (`purpcode.sandbox.harness.run_tests`), so tests are executed the
one way the sandbox makes reward-hack-proof; this module only extracts the code and bounds concurrency.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from purpcode.oracles.config import OracleConfig
from purpcode.oracles.format import code_to_run

DETAILS_CHARS = 1000  # of the test output kept in a score's details (logs, not storage)


class SandboxUnavailable(RuntimeError):
    """The sandbox service could not be reached: every correctness score would be wrong, so scoring stops."""


class CorrectnessOracle:
    """One sandbox client per event loop, at most `correctness_concurrency` tests in flight."""

    def __init__(self, sandbox_url: str, config: OracleConfig) -> None:
        self.sandbox_url = sandbox_url
        self.config = config
        self._states: dict[int, tuple[Any, asyncio.Semaphore]] = {}

    def _state(self) -> tuple[Any, asyncio.Semaphore]:
        from purpcode.sandbox.client import AsyncSandboxClient

        loop = asyncio.get_running_loop()
        state = self._states.get(id(loop))
        if state is None:
            state = (
                AsyncSandboxClient(self.sandbox_url),
                asyncio.Semaphore(self.config.correctness_concurrency),
            )
            self._states[id(loop)] = state
        return state

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        state = self._states.pop(id(loop), None)
        if state is not None:
            closer = getattr(state[0], "aclose", None) or getattr(state[0], "close", None)
            if closer is not None:
                res = closer()
                if asyncio.iscoroutine(res):
                    await res

    @staticmethod
    def parse_spec(ground_truth: dict[str, Any]) -> Any:
        """The task's TestSpec (a ValueError naming the problem when the row's ground_truth is not one)."""
        from pydantic import ValidationError

        from purpcode.sandbox.harness import TestSpec

        try:
            return TestSpec.model_validate(ground_truth)
        except ValidationError as err:
            raise ValueError(f"ground_truth is not a sandbox TestSpec: {err.errors()[:3]}") from err

    async def score(self, answer: str, ground_truth: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        from purpcode.sandbox.harness import run_tests

        spec = self.parse_spec(ground_truth)
        code = code_to_run(answer)
        if not code:
            return 0.0, {"test": {"status": "no_code", "passed": False}}
        client, sem = self._state()
        async with sem:
            try:
                outcome = await run_tests(client, code, spec, timeout_s=self.config.correctness_timeout_s)
            except httpx.TransportError as err:
                raise SandboxUnavailable(
                    f"sandbox at {self.sandbox_url} unreachable ({type(err).__name__}: {err}); check that the sandbox "
                    "service is up and sandbox_url is right"
                ) from err
        test: dict[str, Any] = {
            "passed": bool(outcome.passed),
            "status": str(outcome.status),
            "tests_run": int(getattr(outcome, "tests_run", 0) or 0),
            "execution_time": getattr(outcome, "execution_time", None),
        }
        if outcome.details:
            test["details"] = str(outcome.details)[-DETAILS_CHARS:]
        details: dict[str, Any] = {"test": test, "kind": str(spec.kind)}
        if outcome.status == "sandbox_error":
            # The sandbox failed, not the code: scored 0 but counted as an error, so it shows on dashboards.
            details["error"] = f"sandbox_error: {str(outcome.details)[:200]}"
        return (1.0 if outcome.passed else 0.0), details
