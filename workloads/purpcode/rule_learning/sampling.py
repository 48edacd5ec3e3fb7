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
from purpcode.rule_learning import multiturn
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


def record_key(r: dict[str, Any]) -> tuple[str, int, int]:
    """(task id, sample index, user turn): one record per sample, per turn for multi-turn chains."""
    return (r["task_id"], int(r["index"]), int(r.get("turn", 1)))


def done_task_ids(records: Sequence[dict[str, Any]], n: int) -> set[str]:
    """Task ids with all n sample indices present (at the last turn, for multi-turn chains)."""
    seen: dict[str, set[int]] = {}
    for r in records:
        if int(r.get("turn", 1)) == int(r.get("turns", 1)):
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
    turn_by_turn: bool = True,
) -> dict[str, Any]:
    """Generate n samples per prompt, score them and write `samples.jsonl` + the marker. Returns the marker.

    `generate(conversations, n)` returns n texts per conversation; `score(samples)` returns one Score per
    `purpcode.oracles.Sample`. `on_chunk` sees each chunk's records once they are written (metrics).
    With `turn_by_turn`, a conversation of user turns only is distilled turn by turn (`multiturn`): one record per
    sample and user turn, each scored on its own prefix.
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

    def scored_records(
        chunk: Sequence[tuple[str, TaskRow]], texts: list[list[str]], chains: dict[str, Any]
    ) -> list[dict[str, Any]]:
        samples: list[Any] = []
        meta: list[tuple[str, TaskRow, int, str, str, tuple[int, int, list[str]] | None]] = []
        single = [(set_name, row) for set_name, row in chunk if row.task_id not in chains]
        for (set_name, row), outs in zip(single, texts, strict=True):
            for i, text in enumerate(outs):
                norm = normalize_teacher_response(text)
                samples.append(Sample.from_row(row, norm))
                meta.append((set_name, row, i, text, norm, None))
        for set_name, row in chunk:
            if row.task_id not in chains:
                continue
            users, row_chains = chains[row.task_id]
            for i, chain in enumerate(row_chains):
                for k, (text, norm) in enumerate(chain):
                    context = [c for _, c in chain[:k]]
                    samples.append(Sample.from_row(multiturn.prefix_row(row, users, context), norm))
                    meta.append((set_name, row, i, text, norm, (k + 1, len(users), context)))
        scores = score(samples)
        records = []
        for (set_name, row, i, text, norm, turn), sc in zip(meta, scores, strict=True):
            record = {
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
            if turn is not None:
                record.update(turn=turn[0], turns=turn[1], context=turn[2])
            records.append(record)
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

                def teacher_for(row: TaskRow) -> Callable[[list[dict[str, str]]], list[dict[str, str]]]:
                    return lambda msgs: teacher_conversation(
                        msgs, cwe=row.cwe, ground_truth=row.ground_truth, rule_source=rule_source
                    )

                users_of = (
                    {row.task_id: multiturn.user_turns(row) for _, row in chunk} if turn_by_turn else {}
                )
                multi = [row for _, row in chunk if users_of.get(row.task_id)]
                single = [row for _, row in chunk if not users_of.get(row.task_id)]
                convs = [teacher_for(row)([m.model_dump() for m in row.messages]) for row in single]
                # overlaps with the previous chunk's scoring
                texts = generate(convs, n) if convs else []
                chains: dict[str, Any] = {}
                for row in multi:
                    users = users_of[row.task_id] or []
                    chains[row.task_id] = (
                        users,
                        multiturn.sample_chains(
                            [users], n, generate, teacher_for(row), normalize_teacher_response
                        )[0],
                    )
                while pending:
                    finish(pending.pop())
                pending.append(pool.submit(scored_records, chunk, texts, chains))
        finally:
            # Keep the chunk already generated and scored even when generating the next one failed.
            while pending:
                finish(pending.pop())

    # Final file: one record per (task, index), in prompt order, whatever order chunks were appended in; a chunk
    # generated again after a kill supersedes what its torn first write left.
    by_key = {record_key(r): r for r in read_records(partial)}
    turns = {t: int(r.get("turns", 1)) for (t, _, _), r in by_key.items()}
    ordered = [
        by_key[(row.task_id, i, k)]
        for _, row in rows
        for i in range(n)
        for k in range(1, turns.get(row.task_id, 1) + 1)
        if (row.task_id, i, k) in by_key
    ]
    missing = sum(n * turns.get(row.task_id, 1) for _, row in rows) - len(ordered)
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
