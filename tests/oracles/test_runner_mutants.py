"""Dispatch cases written to kill the mutants `make mutants` found surviving the runner and oracle tests: how the
TRL adapter turns columns into samples (short prompt columns, non-text prompts, absent ground truth or task ids,
conversational completions) and that the reward function hands each row's ground truth to the oracles."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import psutil
import pytest

from purpcode.analyzers import get_analyzer
from purpcode.oracles import OracleConfig, OracleRunner, Sample, make_trl_reward_func
from purpcode.oracles.runner import OracleLoopError, _call, samples_from_columns


def test_columns_become_samples_with_defaults_for_what_is_missing() -> None:
    a, b = samples_from_columns([42], ["x", "y"], ["noreject", "noreject"])
    assert (a.prompt, b.prompt) == ("42", "")
    assert (a.ground_truth, b.ground_truth, a.task_id, b.task_id) == ({}, {}, "", "")
    with pytest.raises(ValueError, match=r"ground_truth\[1\]"):
        samples_from_columns(["p", "q"], ["x", "y"], ["noreject"] * 2, [{}, "{bad"])


def test_conversational_completions_join_the_assistant_contents_only() -> None:
    completion = [
        {"role": "user", "content": "ignored"},
        {"role": "assistant", "content": "one "},
        {"content": "two "},  # no role: an assistant message (TRL's completions carry only the reply)
        {"role": "assistant"},  # no content
        {"role": "assistant", "content": "three"},
    ]
    (s,) = samples_from_columns(["p"], [completion], ["noreject"])
    assert s.response == "one two three"
    (s,) = samples_from_columns(["p"], [{"role": "assistant", "content": "solo"}], ["noreject"])
    assert s.response == "solo"
    (s,) = samples_from_columns(["p"], [{"role": "assistant"}], ["noreject"])
    assert s.response == ""


class _Recording(OracleRunner):
    """The real runner, remembering the samples it scored."""

    seen: list[Sample]

    def score_batch_sync(self, samples: Sequence[Sample | dict[str, Any]]) -> Any:
        self.seen = [s for s in samples if isinstance(s, Sample)]
        return super().score_batch_sync(samples)


def test_the_reward_function_hands_each_rows_ground_truth_to_the_oracles() -> None:
    runner = _Recording(OracleConfig(), analyzer=get_analyzer("bandit", workers=0))
    try:
        func = make_trl_reward_func(runner)
        assert func.last_scores == []  # type: ignore[attr-defined]
        func(prompts=["p"], completions=["c"], oracle=["codesec"], ground_truth=['{"k": 1}'], task_id=["t"])
        assert [(s.ground_truth, s.task_id) for s in runner.seen] == [({"k": 1}, "t")]
    finally:
        runner.close()


# ---------------------------------------------------------------------------------------------- the loop thread
# `run_sync` waits for the runner's background loop. A loop stopped while a call waits (close() from another thread,
# or a SystemExit escaping a task on it) used to leave that call, and every later one, waiting forever.


class _ClosingRecorded(OracleRunner):
    """The real runner, counting its HTTP-client shutdowns."""

    acloses = 0

    async def aclose(self) -> None:
        self.acloses += 1
        await super().aclose()


def _runner() -> _ClosingRecorded:
    return _ClosingRecorded(OracleConfig(), analyzer=get_analyzer("bandit", workers=0))


@pytest.mark.timeout(60)
def test_a_call_whose_loop_is_stopped_raises_and_the_next_call_gets_a_new_loop() -> None:
    runner = _runner()
    try:
        loop, thread, _ = runner._loop()
        started = threading.Event()

        async def forever() -> None:
            started.set()
            await asyncio.Event().wait()

        stopper = threading.Thread(target=lambda: started.wait() and loop.call_soon_threadsafe(loop.stop))
        stopper.start()
        with pytest.raises(OracleLoopError, match="event loop stopped before the call finished"):
            runner.run_sync(forever())
        stopper.join()
        thread.join()
        scores = runner.score_batch_sync([Sample(response="no sections", oracle="codesec")])
        assert [(s.reward, s.format_ok) for s in scores] == [(0.0, False)]
        assert runner._loop()[0] is not loop
        assert loop.is_closed() and runner.acloses == 1  # the dead loop's clients closed, then the loop
    finally:
        runner.close()
    assert runner.acloses == 2


@pytest.mark.timeout(60)
def test_a_call_in_flight_when_another_thread_closes_the_runner_raises() -> None:
    """...and the call's coroutine is cancelled (its own clean-up runs, e.g. an HTTP response is released), not
    dropped with the loop."""
    runner = _runner()
    started = threading.Event()
    cancelled: list[bool] = []

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            for _ in range(3):  # a clean-up that awaits (as releasing an HTTP response does)
                await asyncio.sleep(0)
            cancelled.append(True)
            raise

    closer = threading.Thread(target=lambda: started.wait() and runner.close())
    closer.start()
    with pytest.raises(OracleLoopError, match="event loop stopped before the call finished"):
        runner.run_sync(forever())
    closer.join()
    assert runner.acloses == 1 and cancelled == [True]


@pytest.mark.timeout(60)
def test_closing_a_runner_whose_loop_thread_ended_closes_its_clients_without_waiting() -> None:
    runner = _runner()
    loop, thread, ended = runner._loop()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    assert ended.done()
    runner.close()
    assert runner.acloses == 1 and loop.is_closed()


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the loop thread's end
def test_a_systemexit_escaping_a_task_on_the_loop_raises_and_the_next_call_gets_a_new_loop() -> None:
    runner = _runner()
    try:
        loop, thread, _ = runner._loop()

        async def leave() -> None:
            raise SystemExit(3)

        with pytest.raises(OracleLoopError, match="raised SystemExit"):
            runner.run_sync(leave())
        thread.join()
        assert runner.run_sync(asyncio.sleep(0, result="ok")) == "ok"
        assert runner._loop()[0] is not loop
    finally:
        runner.close()


def test_a_loop_thread_that_never_started_raises_at_once() -> None:
    loop = asyncio.new_event_loop()
    try:
        coro = asyncio.sleep(0)
        with pytest.raises(OracleLoopError, match="not running"):
            _call(loop, threading.Thread(target=loop.run_forever), Future(), coro)
        assert inspect.getcoroutinestate(coro) == "CORO_CLOSED"  # not left un-awaited
    finally:
        loop.close()


def test_a_closed_runner_scores_again_on_a_new_loop() -> None:
    runner = _runner()
    batch = [Sample(response="no sections", oracle="codesec")]
    assert [s.reward for s in runner.score_batch_sync(batch)] == [0.0]
    runner.close()
    assert [s.reward for s in runner.score_batch_sync(batch)] == [0.0]
    runner.close()
    runner.close()  # closing twice is harmless
    assert runner.acloses == 2


def test_warmup_starts_the_analyzers_workers_and_close_stops_them() -> None:
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    with OracleRunner(OracleConfig(), analyzer="bandit", analyzer_opts={"workers": 2}) as runner:
        runner.warmup()
        started = [p for p in me.children(recursive=True) if p.pid not in before]
        # (multiprocessing's resource tracker, started with the first spawned process, outlives pools)
        workers = [p for p in started if "resource_tracker" not in " ".join(p.cmdline())]
        assert len(workers) == 2
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive
