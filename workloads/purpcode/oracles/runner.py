"""One API over the four oracles: `OracleRunner.score_batch(samples) -> list[Score]`.

Every sample names one oracle (no weighted sum). The format gate runs first (a failure scores 0); then the samples
go out together: judge requests and sandbox runs as concurrent tasks, codesec as analyzer batches in worker
processes, so the slow parts overlap instead of queueing one after the other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from purpcode.analyzers import Analyzer, get_analyzer
from purpcode.oracles.codesec import CodesecOracle
from purpcode.oracles.config import JudgeConfig, OracleConfig
from purpcode.oracles.correctness import CorrectnessOracle
from purpcode.oracles.format import check_format
from purpcode.oracles.judge import JudgeClient
from purpcode.oracles.metrics import OracleMetrics, default_metrics
from purpcode.oracles.models import ORACLE_NAMES, Sample, Score

LOG = logging.getLogger(__name__)
CODESEC_BATCH = 512  # answers per analyzer call (each call fans out over the analyzer's worker processes)


class OracleConfigError(ValueError):
    """A sample needs an oracle the runner was not given the means for (sandbox URL, judge)."""


class OracleLoopError(RuntimeError):
    """The runner's background event loop stopped before a call on it finished (closed from another thread, or a
    BaseException such as SystemExit escaped a task on it)."""


def _serve(loop: asyncio.AbstractEventLoop, ended: Future[None]) -> None:
    """The background thread: run the loop until stopped, then say so (callers waiting on it must not hang)."""
    try:
        loop.run_forever()
    finally:
        ended.set_result(None)


def _call(
    loop: asyncio.AbstractEventLoop,
    thread: threading.Thread,
    ended: Future[None],
    coro: Coroutine[Any, Any, Any],
) -> Any:
    """Run `coro` on the background loop and wait for it, or for the loop's thread to end (then raise)."""
    if not thread.is_alive():
        coro.close()
        raise OracleLoopError(
            "the oracle runner's event loop thread is not running (it ended or never started); the next call "
            "starts a new loop"
        )
    fut = asyncio.run_coroutine_threadsafe(coro, loop)
    wait((fut, ended), return_when=FIRST_COMPLETED)
    if not fut.done() or (fut.cancelled() and ended.done()):  # (cancelled: by close() winding the loop down)
        fut.cancel()
        raise OracleLoopError(
            "the oracle runner's event loop stopped before the call finished (the runner was closed from another "
            "thread, or a task on it raised SystemExit or KeyboardInterrupt); the next call starts a new loop"
        )
    return fut.result()


async def _cancel_then(closing: Coroutine[Any, Any, None]) -> None:
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current]
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await closing


def _wind_down(loop: asyncio.AbstractEventLoop, closing: Coroutine[Any, Any, None]) -> None:
    """Close a loop whose thread ended (so it is idle): cancel what was left on it, run `closing` (the HTTP
    clients bound to it), close it."""
    loop.run_until_complete(_cancel_then(closing))
    loop.close()


class OracleRunner:
    """Scores batches of samples with the oracle each one names.

    `sandbox_url` is needed for correctness samples, `judge` (a `JudgeConfig` or a ready `JudgeClient`) for
    general-safety and noreject; `analyzer` is an `Analyzer` or a name for `get_analyzer` (bandit by default).
    """

    def __init__(
        self,
        config: OracleConfig | None = None,
        sandbox_url: str | None = None,
        judge: JudgeConfig | JudgeClient | None = None,
        analyzer: Analyzer | str = "bandit",
        *,
        analyzer_opts: dict[str, Any] | None = None,
        metrics: OracleMetrics | None = None,
    ) -> None:
        self.config = config or OracleConfig()
        self.metrics = metrics if metrics is not None else default_metrics()
        if isinstance(analyzer, str):
            analyzer = get_analyzer(analyzer, **(analyzer_opts or {}))
        self.analyzer = analyzer
        self.codesec = CodesecOracle(analyzer, self.config)
        self.correctness = CorrectnessOracle(sandbox_url, self.config) if sandbox_url else None
        if isinstance(judge, JudgeConfig):
            # The reward definition's judge limits apply unless the judge config set its own explicitly.
            update = {
                k: v
                for k, v in (
                    ("max_tokens", self.config.judge_max_tokens),
                    ("concurrency", self.config.judge_concurrency),
                )
                if k not in judge.model_fields_set
            }
            judge = JudgeClient(judge.model_copy(update=update), metrics=self.metrics)
        self.judge = judge
        self._bg_loop: asyncio.AbstractEventLoop | None = None
        self._bg_thread: threading.Thread | None = None
        self._bg_ended: Future[None] | None = None
        self._bg_lock = threading.Lock()

    # ------------------------------------------------------------------ validation

    def _check_can_score(self, samples: Sequence[Sample]) -> None:
        for i, s in enumerate(samples):
            if s.oracle == "correctness" and self.correctness is None:
                raise OracleConfigError(
                    f"samples[{i}] (task {s.task_id or '?'}) uses oracle 'correctness' but the runner has no "
                    "sandbox_url: pass OracleRunner(sandbox_url=...)"
                )
            if s.oracle in ("general-safety", "noreject") and self.judge is None:
                raise OracleConfigError(
                    f"samples[{i}] (task {s.task_id or '?'}) uses oracle '{s.oracle}' but the runner has no judge: "
                    "pass OracleRunner(judge=JudgeConfig(base_url=...))"
                )

    # ------------------------------------------------------------------ scoring

    async def score_batch(self, samples: Sequence[Sample | dict[str, Any]]) -> list[Score]:
        """Scores in input order. Infrastructure failures (judge or sandbox unreachable) raise; a bad row scores 0
        with `details['error']`."""
        items = [s if isinstance(s, Sample) else Sample.model_validate(s) for s in samples]
        self._check_can_score(items)
        results: list[Score | None] = [None] * len(items)
        tasks: list[asyncio.Task[None]] = []

        def done(i: int, reward: float, details: dict[str, Any], started: float, ok: bool = True) -> None:
            s = items[i]
            score = Score(
                reward=reward,
                oracle=s.oracle,
                format_ok=ok,
                details=details,
                task_id=s.task_id,
                latency_s=time.perf_counter() - started,
            )
            results[i] = score
            outcome = "error" if "error" in details and ok else score.outcome
            self.metrics.observe(s.oracle, outcome, score.latency_s)

        async def one(i: int, answer: str, started: float) -> None:
            s = items[i]
            try:
                if s.oracle == "correctness":
                    assert self.correctness is not None
                    reward, details = await self.correctness.score(answer, s.ground_truth)
                elif s.oracle == "general-safety":
                    assert self.judge is not None
                    reward, details = await self.judge.judge_general_safety(s.messages(), answer)
                else:
                    assert self.judge is not None
                    reward, details = await self.judge.judge_noreject(s.messages(), answer)
            except (
                ValueError
            ) as err:  # a bad row (e.g. ground_truth that is no TestSpec): score it 0, say why
                LOG.warning("sample %s (%s): %s", i, s.task_id or "?", err)
                reward, details = 0.0, {"error": str(err)}
            done(i, reward, details, started)

        async def codesec(idx: list[int], answers: list[str], started: float) -> None:
            scored = await asyncio.to_thread(self.codesec.score_answers, answers)
            for i, (reward, details) in zip(idx, scored, strict=True):
                done(i, reward, details, started)

        # Gate everything first (about a millisecond a response), then start the latency-bound work first: judge
        # requests, then sandbox runs, then the analyzer batches, which only need CPU and go to worker processes.
        started = time.perf_counter()
        routed: dict[str, list[tuple[int, str]]] = {name: [] for name in ORACLE_NAMES}
        for i, s in enumerate(items):
            gate = check_format(s.response, self.config)
            if gate.ok:
                routed[s.oracle].append((i, gate.answer))
            else:
                done(i, 0.0, {"format": gate.reason}, started, ok=False)
        try:
            for name in ("general-safety", "noreject", "correctness"):
                tasks.extend(asyncio.create_task(one(i, answer, started)) for i, answer in routed[name])
            cs = routed["codesec"]
            for lo in range(0, len(cs), CODESEC_BATCH):
                part = cs[lo : lo + CODESEC_BATCH]
                tasks.append(
                    asyncio.create_task(codesec([i for i, _ in part], [a for _, a in part], started))
                )
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return [r for r in results if r is not None]

    def warmup(self) -> None:
        """Start the analyzer's worker processes now (call once at stage start, not inside the first RL step)."""
        warm = getattr(self.analyzer, "warmup", None)
        if callable(warm):
            warm()

    def _loop(self) -> tuple[asyncio.AbstractEventLoop, threading.Thread, Future[None]]:
        """The background loop, its thread and a future set when that thread ends; a new one when there is none
        or the old thread ended (its loop was stopped, or a BaseException escaped a task on it)."""
        with self._bg_lock:
            if (
                self._bg_loop is None
                or self._bg_loop.is_closed()
                or self._bg_thread is None
                or not self._bg_thread.is_alive()
            ):
                if self._bg_loop is not None and not self._bg_loop.is_closed():
                    _wind_down(self._bg_loop, self.aclose())
                loop = asyncio.new_event_loop()
                ended: Future[None] = Future()
                thread = threading.Thread(
                    target=_serve, args=(loop, ended), name="purpcode-oracles", daemon=True
                )
                thread.start()
                self._bg_loop, self._bg_thread, self._bg_ended = loop, thread, ended
            assert self._bg_thread is not None and self._bg_ended is not None
            return self._bg_loop, self._bg_thread, self._bg_ended

    def run_sync(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the runner's own event loop thread (HTTP clients persist between calls).

        Raises OracleLoopError, rather than waiting forever, when that thread ends before the coroutine does."""
        return _call(*self._loop(), coro)

    def score_batch_sync(self, samples: Sequence[Sample | dict[str, Any]]) -> list[Score]:
        """`score_batch` for synchronous callers (TRL reward functions, rejection sampling, evaluation)."""
        return self.run_sync(self.score_batch(samples))  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        if self.judge is not None:
            await self.judge.aclose()
        if self.correctness is not None:
            await self.correctness.aclose()

    def close(self) -> None:
        """Close HTTP clients, stop the background loop and the analyzer's worker processes. Calls still waiting on
        the loop (from other threads) raise OracleLoopError."""
        with self._bg_lock:
            loop, thread = self._bg_loop, self._bg_thread
            self._bg_loop = self._bg_thread = self._bg_ended = None
        try:
            if loop is not None and not loop.is_closed():
                if thread is not None and thread.is_alive():
                    loop.call_soon_threadsafe(loop.stop)
                    thread.join(timeout=10)
                _wind_down(loop, self.aclose())  # on this thread: the loop is idle now
        finally:
            closer = getattr(self.analyzer, "close", None)
            if callable(closer):
                closer()

    def __enter__(self) -> OracleRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------- adapters


def _text_of(value: Any) -> str:
    """A completion or prompt as text: plain strings pass; conversational lists join the assistant contents."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [
            m.get("content", "")
            for m in value
            if isinstance(m, dict) and m.get("role", "assistant") == "assistant"
        ]
        return "".join(str(p) for p in parts)
    if isinstance(value, dict):
        return str(value.get("content", ""))
    raise TypeError(f"completion of type {type(value).__name__}: expected str or a list of messages")


def _ground_truth(value: Any, i: int) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"ground_truth[{i}] is a string but not JSON: {err.msg}") from err
    if not isinstance(value, dict):
        raise ValueError(f"ground_truth[{i}]: expected a dict (or its JSON), got {type(value).__name__}")
    return value


def samples_from_columns(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    oracle: Sequence[str],
    ground_truth: Sequence[Any] | None = None,
    task_id: Sequence[str] | None = None,
) -> list[Sample]:
    """Samples from TRL-style columns (prompts may be text or messages, completions text or messages)."""
    if len(oracle) != len(completions):
        raise ValueError(
            f"{len(completions)} completions but {len(oracle)} 'oracle' values: the dataset needs an "
            "'oracle' column (one oracle name per row)"
        )
    out = []
    for i, completion in enumerate(completions):
        name = oracle[i]
        if name not in ORACLE_NAMES:
            raise ValueError(f"oracle[{i}]={name!r}: use one of {', '.join(ORACLE_NAMES)}")
        prompt = prompts[i] if i < len(prompts) else ""
        out.append(
            Sample(
                prompt=prompt if isinstance(prompt, str | list) else str(prompt),
                response=_text_of(completion),
                oracle=name,  # type: ignore[arg-type]
                ground_truth=_ground_truth(ground_truth[i] if ground_truth is not None else None, i),
                task_id=str(task_id[i]) if task_id is not None else "",
            )
        )
    return out


def make_trl_reward_func(
    runner: OracleRunner, *, name: str = "purpcode_reward"
) -> Callable[..., list[float]]:
    """A TRL `reward_funcs` entry: `(prompts, completions, **kwargs) -> list[float]`.

    The dataset must carry the columns `oracle` and `ground_truth` (dict or JSON string), optionally `task_id`;
    TRL passes them as keyword lists. When TRL passes `log_metric`, per-oracle mean rewards are logged as
    `reward/<oracle>`. The latest scores stay on `func.last_scores` for the stage's own logs.
    """

    def reward_func(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        samples = samples_from_columns(
            prompts,
            completions,
            kwargs.get("oracle") or [],
            kwargs.get("ground_truth"),
            kwargs.get("task_id"),
        )
        scores = runner.score_batch_sync(samples)
        reward_func.last_scores = scores  # type: ignore[attr-defined]
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            by_oracle: dict[str, list[float]] = {}
            for s in scores:
                by_oracle.setdefault(s.oracle, []).append(s.reward)
            for oracle, values in by_oracle.items():
                log_metric(f"reward/{oracle}", sum(values) / len(values))
            log_metric("format_pass_rate", sum(s.format_ok for s in scores) / max(1, len(scores)))
        return [s.reward for s in scores]

    reward_func.__name__ = name
    reward_func.__qualname__ = name
    reward_func.last_scores = []  # type: ignore[attr-defined]
    return reward_func


def score_for_rejection(runner: OracleRunner, samples: Sequence[Sample | dict[str, Any]]) -> list[Score]:
    """Scores for rejection sampling (rule learning keeps score >= 0.5, best of N): a plain blocking call."""
    return runner.score_batch_sync(samples)
