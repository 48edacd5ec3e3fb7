"""Utility coding tasks with tests (oracle correctness): the shipped set, plus model-written tasks when more are
asked for than the project ships. Reference solutions are run in the sandbox; tasks whose reference fails are
dropped. Model-written tasks are kept only when validated (their tests are otherwise unknown)."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections import Counter
from typing import Any

from purpcode.data.utility_tasks import FAMILIES, TASKS, UtilityTask
from purpcode.synthesis import templates
from purpcode.synthesis.text import Draft, extract_code, parses
from purpcode.synthesis.writer import Writer

LOG = logging.getLogger(__name__)


def shipped_tasks(count: int, seed: int) -> list[UtilityTask]:
    """Fixed tasks first (seeded order), then family instances round-robin across families."""
    fixed = list(TASKS)
    random.Random(seed).shuffle(fixed)
    fams = [[f.instantiate(k) for k in f.params] for f in FAMILIES]
    out = fixed[:count]
    i = 0
    while len(out) < count and any(fams):
        fam = fams[i % len(fams)]
        if fam:
            out.append(fam.pop(0))
        i += 1
    return out


def task_test_spec(task: UtilityTask) -> dict[str, Any]:
    """The sandbox TestSpec dump a correctness row carries as ground_truth."""
    from purpcode.sandbox.harness import TestSpec

    return TestSpec(kind="functional", test=task.test, entry_point=task.entry_point).model_dump()


_SECTION = re.compile(
    r"###\s*(Task|Solution|Tests)\s*\n(.*?)(?=\n###\s*(?:Task|Solution|Tests)\b|\Z)", re.S | re.I
)


def parse_written_task(text: str, index: int) -> UtilityTask | None:
    """A model-written exercise in the requested format, or None when any part is missing or not Python."""
    parts = {m.group(1).lower(): m.group(2).strip() for m in _SECTION.finditer(text)}
    if not {"task", "solution", "tests"} <= parts.keys():
        return None
    solution = extract_code(parts["solution"])
    tests = extract_code(parts["tests"])
    if not solution or not tests or "def check(" not in tests or not parses(solution):
        return None
    m = re.search(r"^def\s+([A-Za-z_]\w*)\s*\(", solution, re.M)
    if not m or len(parts["task"]) < 20:
        return None
    return UtilityTask(f"model-{index:05d}", parts["task"], m.group(1), solution, tests)


def write_tasks(writer: Writer, count: int, seed: int) -> list[UtilityTask]:
    """Ask the generator for `count` new exercises (parsed; still unvalidated)."""
    rng = random.Random(seed)
    convs = [
        [
            {"role": "system", "content": templates.UTILITY_WRITE_SYSTEM},
            {
                "role": "user",
                "content": templates.UTILITY_WRITE_REQUEST.format(topic=rng.choice(templates.UTILITY_TOPICS)),
            },
        ]
        for _ in range(count)
    ]
    out = []
    for i, texts in enumerate(writer.generate(convs, n=1)):
        task = parse_written_task(texts[0], i)
        if task is not None:
            out.append(task)
    return out


def validate(
    tasks: list[UtilityTask], sandbox_url: str, timeout_s: float, concurrency: int = 8
) -> list[bool]:
    """Run every reference solution against its tests in the sandbox; True where it passes."""
    from purpcode.sandbox.client import AsyncSandboxClient
    from purpcode.sandbox.harness import TestSpec, run_tests

    async def run_all() -> list[bool]:
        sem = asyncio.Semaphore(concurrency)
        async with AsyncSandboxClient(sandbox_url) as client:

            async def one(t: UtilityTask) -> bool:
                spec = TestSpec(kind="functional", test=t.test, entry_point=t.entry_point)
                async with sem:
                    outcome = await run_tests(client, t.solution, spec, timeout_s=timeout_s)
                if not outcome.passed:
                    LOG.warning("utility task %s: reference solution failed (%s)", t.id, outcome.status)
                return bool(outcome.passed)

            return list(await asyncio.gather(*(one(t) for t in tasks)))

    return asyncio.run(run_all()) if tasks else []


def task_draft(task: UtilityTask, origin: str) -> Draft:
    return Draft(
        "utility",
        "coding",
        "shipped" if origin == "template" else "model-written",
        templates.UTILITY_PROMPT.format(prompt=task.prompt, entry_point=task.entry_point),
        ground_truth={**task_test_spec(task)},
        origin=origin,
        rewrite=False,
        payload=task.prompt,
    )


def run_utility(
    count: int, seed: int, writer: Writer, sandbox_url: str | None, timeout_s: float
) -> tuple[list[Draft], dict[str, Any]]:
    shipped = shipped_tasks(count, seed)
    written: list[UtilityTask] = []
    stats: dict[str, Any] = {"requested": count, "shipped_selected": len(shipped)}
    missing = count - len(shipped)
    if missing > 0:
        if writer.enabled and sandbox_url:
            written = write_tasks(writer, missing, seed)
            stats["model_written_parsed"] = len(written)
        else:
            stats["shortfall_reason"] = (
                "more tasks requested than shipped; model-written tasks need a generator and a sandbox to validate"
            )
    if sandbox_url:
        verdicts = validate(shipped + written, sandbox_url, timeout_s)
        ok = Counter(v for v in verdicts)
        stats["validation"] = {"passed": ok[True], "failed": ok[False]}
        n_shipped = len(shipped)
        shipped = [t for t, v in zip(shipped, verdicts[:n_shipped], strict=True) if v]
        written = [t for t, v in zip(written, verdicts[n_shipped:], strict=True) if v]
    else:
        LOG.warning(
            "utility: no sandbox URL in the stage config; reference solutions NOT validated in a sandbox"
        )
        stats["validation"] = "skipped: no sandbox URL"
    drafts = [task_draft(t, "template") for t in shipped] + [task_draft(t, "model") for t in written]
    stats["kept"] = len(drafts)
    return drafts, stats
