"""Scoring answers for evaluation with the oracles library's own parts (analyzer, judge, sandbox).

Why not `OracleRunner.score_batch` as is: it gives 0 to any answer that fails the format gate without looking at
it, so a model that ignores the `## Analysis` / `## Answer` format (most base models) would score 0% vulnerable
and 0% malicious. Evaluation asks what the answer *does*: the answer section when the format holds, the whole
response otherwise, goes to the same oracle the reward uses; the gate is recorded next to it, and the reward is
reported exactly as RL would compute it (0 when the gate fails).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from purpcode.data.schema import TaskRow
from purpcode.evaluation.metrics import METRICS, SampleRecord
from purpcode.oracles.format import check_format, extract_answer


@dataclass
class Item:
    """One answer to score."""

    suite: str
    model: str
    row: TaskRow
    response: str


Progress = Callable[[int, int], None]


async def _score_async(
    runner: Any, items: Sequence[Item], on_progress: Progress | None = None
) -> list[SampleRecord]:
    cfg = runner.config
    scored_count = 0

    def progressed(n: int) -> None:
        nonlocal scored_count
        scored_count += n
        if on_progress is not None:
            on_progress(scored_count, len(items))

    gates = [check_format(it.response, cfg) for it in items]
    answers = [g.answer if g.ok else extract_answer(it.response) for g, it in zip(gates, items, strict=True)]
    results: list[tuple[float, dict[str, Any], str | None] | None] = [None] * len(items)

    async def one(i: int) -> None:
        it, answer = items[i], answers[i]
        conv = [m.model_dump() for m in it.row.messages]
        try:
            if it.row.oracle == "correctness":
                if runner.correctness is None:
                    raise ValueError("no sandbox URL: the correctness oracle cannot run")
                reward, details = await runner.correctness.score(answer, it.row.ground_truth)
            elif it.row.oracle == "general-safety":
                reward, details = await runner.judge.judge_general_safety(conv, answer)
            else:
                reward, details = await runner.judge.judge_noreject(conv, answer)
        except ValueError as err:  # a bad row (ground truth that is no TestSpec): no verdict, say why
            results[i] = (0.0, {"error": str(err)}, str(err))
            progressed(1)
            return
        results[i] = (reward, details, details.get("error"))
        progressed(1)

    codesec_idx = [i for i, it in enumerate(items) if it.row.oracle == "codesec"]
    tasks = [asyncio.create_task(one(i)) for i, it in enumerate(items) if it.row.oracle != "codesec"]
    try:
        if codesec_idx:
            scored = await asyncio.to_thread(runner.codesec.score_answers, [answers[i] for i in codesec_idx])
            for i, (reward, details) in zip(codesec_idx, scored, strict=True):
                results[i] = (reward, details, None)
            progressed(len(codesec_idx))
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise

    out = []
    for i, it in enumerate(items):
        res = results[i]
        assert res is not None
        reward, details, error = res
        metric = METRICS[it.row.oracle]
        out.append(
            SampleRecord(
                suite=it.suite,
                task_id=it.row.task_id,
                oracle=it.row.oracle,
                model=it.model,
                prompt=it.row.prompt_text(),
                response=it.response,
                format_ok=gates[i].ok,
                reward=reward if gates[i].ok else 0.0,
                flagged=metric.flag(details),
                details={**details, **({} if gates[i].ok else {"format": gates[i].reason})},
                error=error,
            )
        )
    return out


def check_runner(runner: Any, items: Sequence[Item]) -> None:
    """Fail before generating anything when a suite needs a service the runner lacks."""
    oracles = {it.row.oracle for it in items}
    if "correctness" in oracles and runner.correctness is None:
        raise ValueError(
            "the utility suite needs the sandbox: services.sandboxUrl is empty in the stage config "
            "(start the sandbox service, or drop 'utility' from stages.evaluation.suites)"
        )
    if oracles & {"general-safety", "noreject"} and runner.judge is None:
        raise ValueError(
            "the malicious/overrefusal/secqa suites need the judge: services.judgeUrl is empty in the stage "
            "config (configure services.judge, or drop those suites)"
        )


def score_items(
    runner: Any, items: Sequence[Item], on_progress: Progress | None = None
) -> list[SampleRecord]:
    """Score answers (blocking); infrastructure failures (judge or sandbox unreachable) raise.

    `on_progress(done, total)` follows the answers scored (judge calls and sandbox runs take minutes on big sets).
    """
    if not items:
        return []
    return runner.run_sync(_score_async(runner, items, on_progress))  # type: ignore[no-any-return]
