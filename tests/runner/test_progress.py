"""Progress parsing: incremental metrics tail, progress fractions and figures, step caps from the spec."""

from __future__ import annotations

import io
from pathlib import Path

import yaml

from purpcode.runner.local import max_steps_of
from purpcode.runner.progress import MetricsTail, PlainDisplay, StageView, fmt_seconds, infer_progress
from purpcode_operator.api import PurpCodeRun
from purpcode_operator.plan import build_plan

from .conftest import SAMPLE


def test_metrics_tail_reads_incrementally_and_waits_for_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.poll() is None  # no file yet
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    assert tail.poll() == {"step": 1, "loss": 2.0}
    with path.open("a") as fh:
        fh.write('ss": 1.5}\nnot json\n{"step": 3}\n')
    assert tail.poll() == {"step": 3}
    assert tail.count == 3
    assert tail.poll() == {"step": 3}  # nothing new


def test_infer_progress() -> None:
    assert infer_progress(None, None) == (None, "")
    frac, detail = infer_progress({"step": 8, "phase": "generate", "done": 8, "total": 32}, None)
    assert frac == 0.25 and "generate" in detail and "8/32" in detail
    frac, detail = infer_progress({"step": 0, "phase": "sampling", "prompts_done": 3, "prompts": 4}, 4)
    assert frac == 0.75 and detail.startswith("sampling")
    frac, detail = infer_progress({"step": 2, "loss": 1.23456, "reward_mean": 0.5}, 4)
    assert frac == 0.5 and "step 2/4" in detail and "loss 1.23" in detail and "reward_mean 0.5" in detail
    assert infer_progress({"step": 2, "loss": 1.0}, None)[0] is None


def test_max_steps_from_the_plan() -> None:
    run = PurpCodeRun.model_validate(yaml.safe_load(SAMPLE.read_text()))
    plan = build_plan(run, artifacts_root="/tmp/x")
    assert max_steps_of(plan.stage("rl")) == 3
    assert max_steps_of(plan.stage("ruleLearning")) == 4
    assert max_steps_of(plan.stage("synthesis")) is None


def test_plain_display_lines() -> None:
    out = io.StringIO()
    d = PlainDisplay(every_s=0, stream=out)
    v = StageView("synthesis")
    d.start([v], "title")
    v.status, v.started = "running", 0.0
    d.event(v)
    d.refresh("summary line")
    v.status, v.ended = "done", 75.0
    d.event(v)
    lines = out.getvalue().splitlines()
    assert lines == ["title", "▶ synthesis: running", "  … summary line", "✓ synthesis: done in 1m15s"]
    assert fmt_seconds(3725) == "1h02m"


def test_generation_reports_progress_inside_a_call(tiny_model_dir: Path) -> None:
    """The transformers backend reports after every batch, so a long call shows a count, not a silent bar."""
    from purpcode.generation.base import throttled
    from purpcode.generation.hf import TransformersBackend

    backend = TransformersBackend(
        str(tiny_model_dir), seed=1, temperature=0.0, top_p=1.0, max_new_tokens=2, batch_size=2, device="cpu"
    )
    seen: list[tuple[int, int]] = []
    backend.on_progress = lambda d, t: seen.append((d, t))
    convs = [[{"role": "user", "content": f"hi {i}"}] for i in range(5)]
    assert len(backend.generate(convs)) == 5
    assert seen == [(2, 5), (4, 5), (5, 5)]
    frac, _ = infer_progress({"phase": "sampling", "prompts_done": 4, "prompts": 5}, None)
    assert frac == 0.8

    calls: list[tuple[int, int]] = []
    limited = throttled(lambda d, t: calls.append((d, t)), every_s=3600)
    for d in range(1, 6):
        limited(d, 5)
    assert calls == [(1, 5), (5, 5)]  # the first, then only the last within the interval
