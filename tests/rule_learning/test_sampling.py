"""Sampling is resumable by chunk: a crash loses at most the chunk in flight, and a restart samples only the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from purpcode.data.schema import TaskRow
from purpcode.oracles import OracleRunner, score_for_rejection
from purpcode.rule_learning import sampling

from .conftest import SAFE_SHELL, UNSAFE_SHELL, read_jsonl, teacher_answer


def rows(n: int) -> list[tuple[str, TaskRow]]:
    return [
        (
            "codesec",
            TaskRow(task_id=f"c/{i}", messages=[{"role": "user", "content": f"q{i}"}], oracle="codesec"),
        )
        for i in range(n)
    ]


class Crash(RuntimeError):
    pass


@pytest.fixture(scope="module")
def runner() -> OracleRunner:
    r = OracleRunner(analyzer="bandit", analyzer_opts={"workers": 0})
    yield r
    r.close()


def test_restart_samples_only_unfinished_prompts(tmp_path: Path, runner: OracleRunner) -> None:
    calls: list[list[str]] = []

    def generate(convs: list[list[dict[str, str]]], n: int, crash_at: int | None = None) -> list[list[str]]:
        calls.append([c[-1]["content"] for c in convs])
        if crash_at is not None and len(calls) == crash_at:
            raise Crash("pod killed")
        return [[teacher_answer("x", UNSAFE_SHELL), teacher_answer("x", SAFE_SHELL)] for _ in convs]

    def score(samples: list) -> list:  # type: ignore[type-arg]
        return score_for_rejection(runner, samples)

    prompts = rows(5)
    with pytest.raises(Crash):
        sampling.sample_and_score(
            prompts,
            tmp_path,
            generate=lambda c, n: generate(c, n, crash_at=3),
            score=score,
            n=2,
            threshold=0.5,
            chunk_prompts=2,
        )
    assert not sampling.samples_complete(tmp_path)
    partial = read_jsonl(tmp_path / sampling.PARTIAL)
    # the crash came while generating chunk 3: chunks 1 and 2 (generated and scored) are kept
    assert {r["task_id"] for r in partial} == {"c/0", "c/1", "c/2", "c/3"}

    calls.clear()
    sampling.write_prompts(tmp_path, prompts)
    marker = sampling.sample_and_score(
        prompts, tmp_path, generate=generate, score=score, n=2, threshold=0.5, chunk_prompts=2
    )
    assert calls == [["q4"]]
    assert sampling.samples_complete(tmp_path) and not (tmp_path / sampling.PARTIAL).exists()
    samples = read_jsonl(tmp_path / sampling.SAMPLES)
    assert [(s["task_id"], s["index"]) for s in samples] == [
        (f"c/{i}", k) for i in range(5) for k in range(2)
    ]
    assert [s["reward"] for s in samples[:2]] == [0.0, 1.0]  # bandit: shell=True rejected, shlex version kept
    assert marker["generated"] == {"codesec": 10} and marker["kept"] == {"codesec": 5}


def test_torn_partial_line_is_regenerated(tmp_path: Path, runner: OracleRunner) -> None:
    prompts = rows(2)
    good = {
        "task_id": "c/0",
        "index": 0,
        "oracle": "codesec",
        "set": "codesec",
        "reward": 1.0,
        "kept": True,
        "format_ok": True,
        "response": "r",
        "raw": None,
        "details": {},
    }
    (tmp_path / sampling.PARTIAL).write_text(json.dumps(good) + "\n" + '{"task_id": "c/0", "ind')
    seen: list[str] = []

    def generate(convs: list[list[dict[str, str]]], n: int) -> list[list[str]]:
        seen.extend(c[-1]["content"] for c in convs)
        return [[teacher_answer("x", SAFE_SHELL)] * n for _ in convs]

    sampling.sample_and_score(
        prompts,
        tmp_path,
        generate=generate,
        score=lambda s: score_for_rejection(runner, s),
        n=2,
        threshold=0.5,
    )
    assert seen == ["q0", "q1"]  # c/0 had only one of its two samples: sampled again
    assert len(read_jsonl(tmp_path / sampling.SAMPLES)) == 4
