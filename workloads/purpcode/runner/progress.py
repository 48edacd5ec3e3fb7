"""Progress of a local run: one bar per stage and a live one-line summary (rich on a terminal, plain lines in CI).

A stage's progress comes from its own `metrics.jsonl` (the same log the report and Prometheus read): records with
`done`/`total` (evaluation, synthesis) or `prompts_done`/`prompts` (rule-learning sampling) give a fraction, a
training step gives one when the spec caps the steps; otherwise the bar is indeterminate and shows the latest figures.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

SHOWN_KEYS = ("phase", "step", "loss", "reward_mean", "groups_dropped_fraction", "samples_kept_fraction")


class MetricsTail:
    """The newest record of a growing metrics.jsonl, read incrementally (no re-reading the whole file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.last: dict[str, Any] | None = None
        self.count = 0

    def poll(self) -> dict[str, Any] | None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except OSError:
            return self.last
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for the rest
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                self.last = rec
                self.count += 1
        return self.last


def infer_progress(record: dict[str, Any] | None, max_steps: int | None) -> tuple[float | None, str]:
    """(fraction done or None, a short detail text) from a stage's latest metrics record."""
    if not record:
        return None, ""
    frac: float | None = None
    for done_key, total_key in (("done", "total"), ("prompts_done", "prompts")):
        done, total = record.get(done_key), record.get(total_key)
        if isinstance(done, int | float) and isinstance(total, int | float) and total > 0:
            frac = min(1.0, float(done) / float(total))
            break
    step = record.get("step")
    if frac is None and max_steps and isinstance(step, int) and step > 0:
        frac = min(1.0, step / max_steps)
    parts = []
    training = "loss" in record or "reward_mean" in record
    for key in SHOWN_KEYS:
        v = record.get(key)
        if v is None or (key == "step" and (not v or not (training or max_steps))):
            continue
        if key == "step" and max_steps:
            parts.append(f"step {v}/{max_steps}")
        elif isinstance(v, float):
            parts.append(f"{key} {v:.3g}")
        else:
            parts.append(f"{key} {v}" if key != "phase" else str(v))
    if isinstance(record.get("done"), int) and isinstance(record.get("total"), int):
        parts.append(f"{record['done']}/{record['total']}")
    return frac, " · ".join(parts)


def fmt_seconds(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


@dataclass
class StageView:
    """What the display shows about one stage."""

    name: str
    status: str = "pending"  # pending, skipped, running, done, failed, interrupted
    started: float | None = None
    ended: float | None = None
    fraction: float | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.monotonic()) - self.started


class Display(Protocol):
    def start(self, views: list[StageView], title: str) -> None: ...
    def refresh(self, summary: str) -> None: ...
    def event(self, view: StageView) -> None: ...
    def message(self, text: str) -> None: ...
    def stop(self) -> None: ...


_GLYPH = {"pending": "·", "skipped": "↷", "running": "▶", "done": "✓", "failed": "✗", "interrupted": "■"}


class PlainDisplay:
    """Line-oriented output for logs and CI: one line per stage event, a summary line every `every_s` seconds."""

    def __init__(self, every_s: float = 30.0, stream: Any = None) -> None:
        self.every_s = every_s
        self.stream = stream or sys.stdout
        self._last = 0.0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, views: list[StageView], title: str) -> None:
        self._print(title)

    def refresh(self, summary: str) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._print(f"  … {summary}")

    def event(self, view: StageView) -> None:
        took = f" in {fmt_seconds(view.seconds)}" if view.status in ("done", "failed", "interrupted") else ""
        self._print(f"{_GLYPH[view.status]} {view.name}: {view.status}{took}")
        self._last = time.monotonic()

    def message(self, text: str) -> None:
        self._print(text)

    def stop(self) -> None:
        pass


class RichDisplay:
    """rich: a progress row per stage (status, bar, figures, elapsed) and the live summary line under them."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._views: list[StageView] = []
        self._summary = ""

    def start(self, views: list[StageView], title: str) -> None:
        from rich.progress import BarColumn, Progress, TextColumn
        from rich.text import Text

        display = self

        class _Progress(Progress):  # type: ignore[misc]
            def get_renderables(self) -> Any:
                yield self.make_tasks_table(self.tasks)
                yield Text(display._summary, style="bold")

        self.console.print(f"[bold]{title}[/bold]")
        self._views = views
        self._progress = _Progress(
            TextColumn("{task.fields[glyph]} {task.description:<14}"),
            BarColumn(bar_width=28),
            TextColumn("{task.fields[elapsed]:>7}"),
            TextColumn("[dim]{task.fields[detail]}"),
            console=self.console,
            refresh_per_second=4,
        )
        for v in views:
            self._tasks[v.name] = self._progress.add_task(
                v.name, total=1.0, glyph=_GLYPH[v.status], elapsed="", detail="", start=False
            )
        self._progress.start()
        for v in views:
            self._update(v)

    def _update(self, v: StageView) -> None:
        task = self._tasks[v.name]
        running = v.status == "running"
        if running and not self._progress.tasks[task].started:
            self._progress.start_task(task)
        if v.status in ("done", "skipped"):
            completed: float | None = 1.0
        elif running and v.fraction is not None:
            completed = v.fraction
        else:
            completed = 0.0
        total = None if running and v.fraction is None else 1.0
        detail = v.detail if running else ("finished earlier" if v.status == "skipped" else v.detail)
        self._progress.update(
            task,
            total=total,
            completed=completed,
            glyph=_GLYPH[v.status],
            elapsed=fmt_seconds(v.seconds) if v.started else "",
            detail=detail[:70],
        )

    def refresh(self, summary: str) -> None:
        self._summary = summary
        for v in self._views:
            if v.status == "running":
                self._update(v)

    def event(self, view: StageView) -> None:
        self._update(view)

    def message(self, text: str) -> None:
        self.console.print(text)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def make_display(plain: bool | None = None) -> Display:
    """Rich on a terminal, plain lines otherwise (or when asked)."""
    if plain is None:
        plain = not sys.stdout.isatty()
    return PlainDisplay() if plain else RichDisplay()
