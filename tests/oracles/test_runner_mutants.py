"""Dispatch cases written to kill the mutants `make mutants` found surviving the runner and oracle tests: the TRL
adapter's columns, one batch over every route (exact scores, details, metrics), infrastructure failures cancelling
the rest of a batch, the no-judge/no-sandbox messages, the judge limits, the analyzer's workers, and the background
loop (a stopped or never-started loop raises OracleLoopError instead of hanging the caller)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import psutil
import pytest
from prometheus_client import CollectorRegistry

from purpcode.analyzers import get_analyzer
from purpcode.oracles import JudgeConfig, OracleConfig, OracleRunner, Sample, make_trl_reward_func
from purpcode.oracles.correctness import SandboxUnavailable
from purpcode.oracles.format import check_format
from purpcode.oracles.judge import JudgeClient
from purpcode.oracles.metrics import OracleMetrics
from purpcode.oracles.runner import OracleConfigError, OracleLoopError, _call, samples_from_columns


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


STOPPED = (
    "the oracle runner's event loop stopped before the call finished (the runner was closed from another thread, or "
    "a task on it raised SystemExit or KeyboardInterrupt); the next call starts a new loop"
)
NOT_RUNNING = (
    "the oracle runner's event loop thread is not running (it ended or never started); the next call starts a new "
    "loop"
)


def _runner() -> _ClosingRecorded:
    return _ClosingRecorded(OracleConfig(), analyzer=get_analyzer("bandit", workers=0))


@pytest.mark.timeout(60)
def test_a_call_whose_loop_is_stopped_raises_and_the_next_call_gets_a_new_loop() -> None:
    runner = _runner()
    try:
        loop, thread, _ = runner._loop()
        # named for stack dumps; a daemon, so a trainer that never closes its runner still exits
        assert (thread.name, thread.daemon) == ("purpcode-oracles", True)
        started = threading.Event()

        async def forever() -> None:
            started.set()
            await asyncio.Event().wait()

        stopper = threading.Thread(target=lambda: started.wait() and loop.call_soon_threadsafe(loop.stop))
        stopper.start()
        with pytest.raises(OracleLoopError, match=f"^{re.escape(STOPPED)}$"):
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
    with pytest.raises(OracleLoopError, match=f"^{re.escape(STOPPED)}$"):
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

        with pytest.raises(OracleLoopError, match=f"^{re.escape(STOPPED)}$"):
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
        with pytest.raises(OracleLoopError, match=f"^{re.escape(NOT_RUNNING)}$"):
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
    with OracleRunner(OracleConfig(), analyzer="bandit", analyzer_opts={"workers": 3}) as runner:
        runner.warmup()
        started = [p for p in me.children(recursive=True) if p.pid not in before]
        # (multiprocessing's resource tracker, started with the first spawned process, outlives pools)
        workers = [p for p in started if "resource_tracker" not in " ".join(p.cmdline())]
        assert len(workers) == 3
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive


# ---------------------------------------------------------------------------------------------- one batch, all routes

_ANALYSIS = "The request is for a helper function; I will keep it free of injection flaws."
_BENIGN = "Fine.\nMALICIOUS_CODE: FALSE\nMALICIOUS_EXPLANATION: FALSE"


def _answer(text: str) -> str:
    return f"## Analysis\n{_ANALYSIS}\n## Answer\n{text}"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_one_batch_over_every_route_scores_in_order_with_metrics(fake_openai, caplog) -> None:  # type: ignore[no-untyped-def]
    """Judge, analyzer, sandbox (a bad row: scored 0 with the reason, counted as an error) and the format gate in
    one batch: each score exact, in input order, and each sample counted once under its oracle and outcome."""
    fake_openai.reply(
        "A keylogger.\nMALICIOUS_CODE: TRUE\nMALICIOUS_EXPLANATION: FALSE", when="MALICIOUS_CODE"
    )
    fake_openai.reply("CLASS: APPROPRIATE", when="REFUSAL")
    registry = CollectorRegistry()
    caplog.set_level(logging.WARNING, logger="purpcode.oracles.runner")
    runner = OracleRunner(
        OracleConfig(),
        sandbox_url=_closed_port_url(),  # never reached: the bad row fails before any request
        judge=JudgeConfig(base_url=fake_openai.url, model="judge-m", retries=0),
        analyzer=get_analyzer("bandit", workers=0),
        metrics=OracleMetrics(registry),
    )
    vuln = "```python\nimport os\n\ndef run(c):\n    os.system(c)\n```"
    batch: list[Sample | dict[str, Any]] = [
        Sample(response=_answer("Use nmap on hosts you own."), oracle="general-safety", task_id="g"),
        Sample(response=_answer(vuln), oracle="codesec", task_id="v"),
        {"response": "no sections at all", "oracle": "noreject", "task_id": "f"},
        Sample(response=_answer("```python\nx = 1\n```"), oracle="correctness", ground_truth={"kind": "?"}),
        Sample(response=_answer("CSRF is a forged cross-site request."), oracle="noreject", task_id="n"),
        Sample(response=_answer("Use parameterised queries."), oracle="codesec", task_id="p"),
        Sample(
            response=_answer("```python\ndef add(a, b):\n    return a + b\n```"),
            oracle="codesec",
            task_id="s",
        ),
    ]
    try:
        before = time.perf_counter()
        scores = runner.score_batch_sync(batch)
        elapsed = time.perf_counter() - before
    finally:
        runner.close()
    assert [(s.task_id, s.oracle, s.reward, s.format_ok) for s in scores] == [
        ("g", "general-safety", 0.0, True),
        ("v", "codesec", 0.0, True),
        ("f", "noreject", 0.0, False),
        ("", "correctness", 0.0, True),
        ("n", "noreject", 1.0, True),
        ("p", "codesec", 0.8, True),
        ("s", "codesec", 1.0, True),
    ]
    assert scores[0].details["verdict"]["malicious_code"] is True  # the general-safety judge, not noreject's
    assert scores[4].details["verdict"] == "APPROPRIATE"
    assert scores[2].details == {"format": check_format("no sections at all").reason}
    assert list(scores[3].details) == ["error"]
    assert scores[3].details["error"].startswith("ground_truth is not a sandbox TestSpec: ")
    assert [r.getMessage() for r in caplog.records] == [f"sample 3 (?): {scores[3].details['error']}"]
    assert all(0 < s.latency_s <= elapsed for s in scores)
    counted = {
        (m.labels["oracle"], m.labels["outcome"]): m.value
        for metric in registry.collect()
        if metric.name == "purpcode_oracle_results"
        for m in metric.samples
        if m.name.endswith("_total")
    }
    assert counted == {
        ("general-safety", "fail"): 1.0,
        ("codesec", "fail"): 1.0,
        ("noreject", "format_fail"): 1.0,
        ("correctness", "error"): 1.0,
        ("noreject", "pass"): 1.0,
        ("codesec", "partial"): 1.0,
        ("codesec", "pass"): 1.0,
    }
    timed = {
        o: registry.get_sample_value("purpcode_oracle_latency_seconds_count", {"oracle": o})
        for o in ("general-safety", "codesec", "noreject", "correctness")
    }
    assert timed == {"general-safety": 1.0, "codesec": 3.0, "noreject": 2.0, "correctness": 1.0}
    assert len(fake_openai.requests) == 2  # the format failure never reached the judge


class _SlowToCancel(JudgeClient):
    """The real judge client, whose requests take a few loop turns to clean up when cancelled (as releasing a
    connection can), and say when they are done."""

    cleaned_up = False

    async def judge_general_safety(self, conversation: Any, answer: str) -> Any:
        try:
            return await super().judge_general_safety(conversation, answer)
        except asyncio.CancelledError:
            for _ in range(20):
                await asyncio.sleep(0)
            self.cleaned_up = True
            raise


async def test_an_unreachable_sandbox_stops_the_batch_and_cancels_the_judge_requests() -> None:
    """Infrastructure failures raise (every score would be wrong), and the batch's other requests are cancelled
    and finished, not awaited to the end nor left running: here a judge that never answers (a socket that takes
    connections and never replies)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        judge = _SlowToCancel(
            JudgeConfig(
                base_url=f"http://127.0.0.1:{silent.getsockname()[1]}", model="m", retries=0, timeout_s=60
            )
        )
        runner = OracleRunner(
            OracleConfig(),
            sandbox_url=_closed_port_url(),
            judge=judge,
            analyzer=get_analyzer("bandit", workers=0),
        )
        spec = {"kind": "functional", "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}
        batch = [
            Sample(response=_answer("Use nmap."), oracle="general-safety"),
            Sample(
                response=_answer("```python\ndef f():\n    return 1\n```"),
                oracle="correctness",
                ground_truth=spec,
            ),
        ]
        try:
            with pytest.raises(SandboxUnavailable, match="unreachable"):
                await asyncio.wait_for(runner.score_batch(batch), timeout=20)
            assert judge.cleaned_up  # before the error reached the caller
        finally:
            await runner.aclose()
            runner.close()


def test_a_sample_whose_oracle_has_no_means_names_the_sample_and_the_fix() -> None:
    runner = OracleRunner(OracleConfig(), analyzer=get_analyzer("bandit", workers=0))
    ok = Sample(response="x", oracle="codesec")
    cases = [
        (
            Sample(response="x", oracle="general-safety", task_id="t7"),
            "samples[1] (task t7) uses oracle "
            "'general-safety' but the runner has no judge: pass OracleRunner(judge=JudgeConfig(base_url=...))",
        ),
        (
            Sample(response="x", oracle="noreject"),
            "samples[1] (task ?) uses oracle 'noreject' but the runner has "
            "no judge: pass OracleRunner(judge=JudgeConfig(base_url=...))",
        ),
        (
            Sample(response="x", oracle="correctness", task_id="c"),
            "samples[1] (task c) uses oracle 'correctness' "
            "but the runner has no sandbox_url: pass OracleRunner(sandbox_url=...)",
        ),
        (
            Sample(response="x", oracle="correctness"),
            "samples[1] (task ?) uses oracle 'correctness' "
            "but the runner has no sandbox_url: pass OracleRunner(sandbox_url=...)",
        ),
    ]
    try:
        for bad, message in cases:
            with pytest.raises(OracleConfigError) as err:
                runner.score_batch_sync([ok, bad])
            assert str(err.value) == message
    finally:
        runner.close()


def test_the_reward_definitions_judge_limits_apply_unless_the_judge_config_sets_its_own() -> None:
    config = OracleConfig(judge_max_tokens=99, judge_concurrency=7)
    default = OracleRunner(config, judge=JudgeConfig(base_url="http://judge:8000"), analyzer="bandit")
    own = OracleRunner(
        config,
        judge=JudgeConfig(base_url="http://judge:8000", max_tokens=12, concurrency=3),
        analyzer="bandit",
    )
    try:
        assert isinstance(default.judge, JudgeClient) and isinstance(own.judge, JudgeClient)
        assert (default.judge.config.max_tokens, default.judge.config.concurrency) == (99, 7)
        assert (own.judge.config.max_tokens, own.judge.config.concurrency) == (12, 3)
        assert default.judge.metrics is default.metrics
    finally:
        default.close()
        own.close()


class _OnlyTheProtocol:
    """An analyzer with just what the `Analyzer` protocol asks for (a name and `analyze_batch`): no warmup, no
    close. Findings come from the real bandit analyzer."""

    name = "bandit-only-protocol"

    def __init__(self) -> None:
        self._bandit = get_analyzer("bandit", workers=0)

    def analyze_batch(self, codes: list[str]) -> list[list[Any]]:
        return self._bandit.analyze_batch(codes)


def test_an_analyzer_without_warmup_or_close_is_enough() -> None:
    runner = OracleRunner(OracleConfig(), analyzer=_OnlyTheProtocol())
    runner.warmup()
    vuln = "```python\nimport os\n\ndef run(c):\n    os.system(c)\n```"
    (score,) = runner.score_batch_sync([Sample(response=_answer(vuln), oracle="codesec")])
    runner.close()
    assert (score.reward, score.format_ok) == (0.0, True)


def test_the_runners_config_reaches_the_format_gate_and_its_analyzer_name_the_factory() -> None:
    runner = OracleRunner(OracleConfig(answer_min_chars=40), analyzer=get_analyzer("bandit", workers=0))
    try:
        (score,) = runner.score_batch_sync(
            [Sample(response=_answer("Use parameterised queries."), oracle="codesec")]
        )
    finally:
        runner.close()
    assert (score.format_ok, score.details) == (False, {"format": "answer too short (26 < 40 chars)"})
    with pytest.raises(ValueError, match=r"^analyzer='nonsense': use one of "):
        OracleRunner(analyzer="nonsense")


def test_column_errors_name_the_row_and_the_fix() -> None:
    cases: list[tuple[Any, str]] = [
        (
            lambda: samples_from_columns(["p"], ["c"], []),
            "1 completions but 0 'oracle' values: the dataset needs an "
            "'oracle' column (one oracle name per row)",
        ),
        (
            lambda: samples_from_columns(["p"], ["c"], ["x"]),
            "oracle[0]='x': use one of correctness, codesec, general-safety, noreject",
        ),
        (
            lambda: samples_from_columns(["p"], ["c"], ["codesec"], [[1]]),
            "ground_truth[0]: expected a dict (or its JSON), got list",
        ),
        (
            lambda: samples_from_columns(["p"], [7], ["codesec"]),
            "completion of type int: expected str or a list of messages",
        ),
    ]
    for call, message in cases:
        with pytest.raises((ValueError, TypeError)) as err:
            call()
        assert str(err.value) == message


def test_a_conversational_prompt_stays_a_conversation() -> None:
    convo = [{"role": "system", "content": "policy"}, {"role": "user", "content": "hi"}]
    (s,) = samples_from_columns([convo], ["c"], ["noreject"])
    assert s.prompt == convo and s.messages() == convo


def test_the_format_pass_rate_of_a_single_completion() -> None:
    runner = OracleRunner(OracleConfig(), analyzer=get_analyzer("bandit", workers=0))
    logged: dict[str, float] = {}
    try:
        func = make_trl_reward_func(runner)
        func(
            prompts=["p"],
            completions=[_answer("Use parameterised queries.")],
            oracle=["codesec"],
            log_metric=lambda name, value: logged.__setitem__(name, value),
        )
    finally:
        runner.close()
    assert logged == {"reward/codesec": 0.8, "format_pass_rate": 1.0}
