"""Utility coding tasks: the shipped set (each reference solution passes its own tests), selection, TestSpec
ground truth, model-written task parsing, and the no-sandbox path."""

from __future__ import annotations

import pytest

from purpcode.data.utility_tasks import TASKS, UtilityTask, all_tasks
from purpcode.sandbox.harness import TestSpec
from purpcode.synthesis.utility import (
    parse_written_task,
    run_utility,
    shipped_tasks,
    task_draft,
    task_test_spec,
)
from purpcode.synthesis.writer import Writer


@pytest.mark.parametrize("task", all_tasks(), ids=lambda t: t.id)
def test_reference_solution_passes_its_tests(task: UtilityTask) -> None:
    # Our own shipped code, run in process; generated tasks are validated in the sandbox instead.
    ns: dict[str, object] = {}
    exec(compile(task.solution, f"<{task.id}-solution>", "exec"), ns)  # noqa: S102 - trusted project data
    exec(compile(task.test, f"<{task.id}-test>", "exec"), ns)  # noqa: S102
    ns["check"](ns[task.entry_point])  # type: ignore[operator]


def test_broken_solution_fails_its_tests() -> None:
    task = TASKS[0]
    ns: dict[str, object] = {}
    exec("def reverse_words(s):\n    return s\n", ns)  # noqa: S102
    exec(task.test, ns)  # noqa: S102
    with pytest.raises(AssertionError):
        ns["check"](ns["reverse_words"])  # type: ignore[operator]


def test_selection_is_seeded_and_fills_from_families() -> None:
    a, b = shipped_tasks(16, seed=666), shipped_tasks(16, seed=666)
    assert [t.id for t in a] == [t.id for t in b]
    assert {t.id for t in a} <= {t.id for t in TASKS}
    many = shipped_tasks(80, seed=1)
    assert len(many) == 80 and len({t.id for t in many}) == 80
    families = {t.id.rsplit("-", 1)[0] for t in many if t.id not in {x.id for x in TASKS}}
    assert len(families) >= 4  # round-robin across families, not one family first
    assert len(shipped_tasks(10_000, seed=1)) == len(all_tasks())


def test_ground_truth_is_a_sandbox_test_spec() -> None:
    task = TASKS[3]
    gt = task_test_spec(task)
    spec = TestSpec.model_validate(gt)
    assert (
        spec.kind == "functional"
        and spec.entry_point == task.entry_point
        and "def check" in (spec.test or "")
    )
    d = task_draft(task, "template")
    assert d.set == "utility" and task.entry_point in d.instruction and d.rewrite is False


WRITTEN = """### Task
Write `double(xs: list[int]) -> list[int]` returning every element multiplied by two.

### Solution
```python
def double(xs):
    return [2 * x for x in xs]
```

### Tests
```python
def check(candidate):
    assert candidate([1, 2]) == [2, 4]
```
"""


def test_parse_model_written_task() -> None:
    t = parse_written_task(WRITTEN, 3)
    assert t is not None and t.entry_point == "double" and t.id == "model-00003"
    assert parse_written_task(WRITTEN.replace("### Tests", "### Nope"), 0) is None
    assert parse_written_task("random noise", 0) is None


def test_without_sandbox_validation_is_skipped_and_said() -> None:
    drafts, stats = run_utility(200, 666, Writer(None, label="none"), None, 15.0)
    assert len(drafts) == len(all_tasks())
    assert stats["validation"] == "skipped: no sandbox URL"
    assert "model-written tasks need a generator and a sandbox" in stats["shortfall_reason"]


def test_sandbox_validation_keeps_passing_references_only(sandbox_url: str) -> None:
    from purpcode.synthesis.utility import validate

    good = TASKS[0]
    broken = UtilityTask(
        "broken", good.prompt, good.entry_point, "def reverse_words(s):\n    return s\n", good.test
    )
    assert validate([good, broken, TASKS[1]], sandbox_url, timeout_s=15.0) == [True, False, True]


def test_run_utility_validates_in_the_sandbox(sandbox_url: str) -> None:
    drafts, stats = run_utility(6, 666, Writer(None, label="none"), sandbox_url, 15.0)
    assert stats["validation"] == {"passed": 6, "failed": 0}
    assert len(drafts) == 6 and all(TestSpec.model_validate(d.ground_truth) for d in drafts)
