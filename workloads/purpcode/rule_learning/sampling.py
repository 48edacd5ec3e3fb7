"""Self-distillation sampling: N teacher-prompted answers per prompt, normalised and scored by the oracles.

Resumable at chunk granularity: each chunk of prompts is generated, scored and appended (one write, fsync) to
`samples.partial.jsonl`; a restarted stage skips the chunks whose prompts all have their N samples there. Chunks are
fixed slices of the prompt list and a chunk is regenerated whole, so each generation call (whose seed comes from its
batch's content) sees the same batch as in an uninterrupted run, and a chunk torn by a kill comes out the same. A
torn last line is cut off before appending (else the next record would be glued to it and lost). When every prompt
is done the records are written in prompt order to `samples.jsonl` and `samples.done.json` (the marker, with
counts) is written.
Generation of the next chunk overlaps with scoring of the previous one (sandbox runs and judge calls are I/O the
GPU need not wait for).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from purpcode.data.schema import TaskRow, write_json_atomic
from purpcode.rule_learning.teacher import RuleSource, normalize_teacher_response, teacher_conversation

log = logging.getLogger(__name__)

PARTIAL = "samples.partial.jsonl"
SAMPLES = "samples.jsonl"
MARKER = "samples.done.json"
PROMPTS = "prompts.jsonl"
CHUNK_PROMPTS = 256
# torchrun's variables: hidden from a generation engine started inside one rank (vLLM reads some of them).
_LAUNCHER_ENV = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
    "NODE_RANK",
)

GenerateFn = Callable[[list[list[dict[str, str]]], int], list[list[str]]]
ScoreFn = Callable[[list[Any]], list[Any]]


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """JSONL records, skipping a torn last line left by a crash."""
    out: list[dict[str, Any]] = []
    p = Path(path)
    if not p.is_file():
        return out
    for line in p.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s: skipping a torn line", p)
    return out


def repair_tail(path: Path) -> int:
    """Cut a torn last line (no newline: the write was cut by a kill or a full disk); returns the bytes cut.

    Appending after a torn line would glue the next record onto it, and that record would be lost as well.
    """
    if not path.is_file():
        return 0
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        keep, block = 0, 1 << 16
        pos = size
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    log.warning("%s: cut a torn last line (%d bytes)", path, size - keep)
    return size - keep


def _append(path: Path, records: Sequence[dict[str, Any]]) -> None:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@contextmanager
def without_launcher_env() -> Iterator[None]:
    """Hide torchrun's variables while a generation engine starts and runs on the main rank, then restore them."""
    saved = {k: os.environ.pop(k) for k in _LAUNCHER_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def done_task_ids(records: Sequence[dict[str, Any]], n: int) -> set[str]:
    """Task ids with all n sample indices present."""
    seen: dict[str, set[int]] = {}
    for r in records:
        seen.setdefault(r["task_id"], set()).add(int(r["index"]))
    return {t for t, idx in seen.items() if idx >= set(range(n))}


def write_prompts(out: Path, rows: Sequence[tuple[str, TaskRow]]) -> None:
    """The prompt mix (set name + row) the samples answer; selection reads it back."""
    from purpcode.data.schema import write_jsonl_atomic

    write_jsonl_atomic(out / PROMPTS, ({"set": s, **r.model_dump(mode="json")} for s, r in rows))


def read_prompts(out: Path) -> list[tuple[str, TaskRow]]:
    return [(rec.pop("set"), TaskRow.model_validate(rec)) for rec in read_records(out / PROMPTS)]


def sample_and_score(
    rows: Sequence[tuple[str, TaskRow]],
    out: Path,
    *,
    generate: GenerateFn,
    score: ScoreFn,
    n: int,
    threshold: float,
    rule_source: RuleSource | None = None,
    chunk_prompts: int = CHUNK_PROMPTS,
    on_chunk: Callable[[list[dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    """Generate n samples per prompt, score them and write `samples.jsonl` + the marker. Returns the marker.

    `generate(conversations, n)` returns n texts per conversation; `score(samples)` returns one Score per
    `purpcode.oracles.Sample`. `on_chunk` sees each chunk's records once they are written (metrics).
    """
    from purpcode.oracles import Sample

    out.mkdir(parents=True, exist_ok=True)
    partial = out / PARTIAL
    repair_tail(partial)
    done = done_task_ids(read_records(partial), n)
    size = max(1, chunk_prompts)
    # Fixed slices of `rows`: a chunk is skipped only when all of its prompts are done, else generated again whole.
    chunks = [rows[lo : lo + size] for lo in range(0, len(rows), size)]
    todo = [c for c in chunks if any(r.task_id not in done for _, r in c)]
    if len(todo) < len(chunks):
        log.info("resuming sampling: %d of %d chunks already sampled", len(chunks) - len(todo), len(chunks))

    def scored_records(chunk: Sequence[tuple[str, TaskRow]], texts: list[list[str]]) -> list[dict[str, Any]]:
        samples, meta = [], []
        for (set_name, row), outs in zip(chunk, texts, strict=True):
            for i, text in enumerate(outs):
                norm = normalize_teacher_response(text)
                samples.append(Sample.from_row(row, norm))
                meta.append((set_name, row, i, text, norm))
        scores = score(samples)
        records = []
        for (set_name, row, i, text, norm), sc in zip(meta, scores, strict=True):
            records.append(
                {
                    "task_id": row.task_id,
                    "set": set_name,
                    "oracle": row.oracle,
                    "index": i,
                    "reward": float(sc.reward),
                    "kept": float(sc.reward) >= threshold,
                    "format_ok": bool(sc.format_ok),
                    "response": norm,
                    "raw": text if text != norm else None,
                    "details": sc.details,
                }
            )
        return records

    def finish(fut: Future[list[dict[str, Any]]]) -> None:
        records = fut.result()
        _append(partial, records)
        if on_chunk is not None:
            on_chunk(records)

    pending: list[Future[list[dict[str, Any]]]] = []  # at most one chunk being scored
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rl-score") as pool:
        try:
            for chunk in todo:
                convs = [
                    teacher_conversation(
                        [m.model_dump() for m in row.messages],
                        cwe=row.cwe,
                        ground_truth=row.ground_truth,
                        rule_source=rule_source,
                    )
                    for _, row in chunk
                ]
                texts = generate(convs, n)  # overlaps with the previous chunk's scoring
                while pending:
                    finish(pending.pop())
                pending.append(pool.submit(scored_records, chunk, texts))
        finally:
            # Keep the chunk already generated and scored even when generating the next one failed.
            while pending:
                finish(pending.pop())

    # Final file: one record per (task, index), in prompt order, whatever order chunks were appended in; a chunk
    # generated again after a kill supersedes what its torn first write left.
    by_key = {(r["task_id"], int(r["index"])): r for r in read_records(partial)}
    ordered = [by_key[(row.task_id, i)] for _, row in rows for i in range(n) if (row.task_id, i) in by_key]
    missing = len(rows) * n - len(ordered)
    if missing:
        raise RuntimeError(f"sampling left {missing} samples missing: rerun the stage to resume")
    from purpcode.data.schema import write_jsonl_atomic

    write_jsonl_atomic(out / SAMPLES, ordered)
    generated = Counter(r["oracle"] for r in ordered)
    kept = Counter(r["oracle"] for r in ordered if r["kept"])
    marker = {
        "prompts": len(rows),
        "samples_per_prompt": n,
        "samples": len(ordered),
        "generated": dict(generated),
        "kept": dict(kept),
        "threshold": threshold,
    }
    write_json_atomic(out / MARKER, marker)
    partial.unlink(missing_ok=True)
    return marker


def samples_complete(out: Path) -> bool:
    return (out / MARKER).is_file() and (out / SAMPLES).is_file() and (out / PROMPTS).is_file()
