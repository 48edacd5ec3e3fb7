"""Rule learning, end to end: prompt mix -> teacher sampling -> oracle rejection -> best-of-N -> SFT -> model.

Each phase leaves a file that lets a restarted pod skip it: `samples.done.json` (sampling), `sft.jsonl` and
`easy_ids.json` (selection, recomputed from samples.jsonl on a restart: cheap and deterministic),
`checkpoints/checkpoint-N` (SFT, every saveSteps but not at the last step; resumed from the newest complete one),
`model/`, and `_SUCCESS` last. A restart first drops from metrics.jsonl what it will log again (SFT steps after its
checkpoint), so the log reads as one run's; `stage_settings.json` (first attempt) makes a restart under settings
that change the result fail instead of mixing both. Under torchrun only rank 0 samples and selects (the other ranks
wait for its files on the shared volume); every rank trains.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from purpcode.data.schema import TaskRow, filter_jsonl, write_json_atomic, write_jsonl_atomic
from purpcode.metrics import StageMetrics, read_metrics
from purpcode.prompts import model_conversation
from purpcode.rule_learning import multiturn, rejection, sampling
from purpcode.rule_learning.mix import select_prompts
from purpcode.rule_learning.teacher import Rule, RuleSource
from purpcode.training.checkpoints import checkpoint_step, newest_complete_checkpoint, prune_discarded
from purpcode.training.distributed import DistEnv, dist_env
from purpcode.training.settings_guard import check_settings
from purpcode_operator.layout import SUCCESS_MARKER
from purpcode_operator.plan import StageConfig

log = logging.getLogger(__name__)

STAGE = "ruleLearning"
SFT_FILE = "sft.jsonl"
EASY_FILE = "easy_ids.json"
SUMMARY_FILE = "summary.json"
WAIT_POLL_S = 5.0


# ------------------------------------------------------------------------------------------------ pieces


def model_path(cfg: StageConfig) -> str:
    """The model this stage starts from (the base model the initializer placed on the volume)."""
    return cfg.paths.model or cfg.paths.base_model


def oracle_runner(cfg: StageConfig) -> Any:
    """The oracles configured from the stage config (the same reward definition RL uses)."""
    from purpcode.oracles.from_stage import build_runner

    return build_runner(cfg)


def default_rule_source() -> RuleSource | None:
    """Rules for the teacher prompt from the project's CWE corpus and the analyzer's detectors.

    A CWE rule brings its own bad (vulnerable) and good (safe) example; a detector rule borrows the examples of the
    corpus CWE that lists it, unless that CWE is quoted already. None when the rules package is not installed.
    """
    if importlib.util.find_spec("purpcode.data.rules") is None:
        log.warning("purpcode.data.rules is not available: teacher prompts carry no weakness rules")
        return None
    from purpcode.data.rules import detector_rules, load_corpus

    corpus = {r.id: r for r in load_corpus()}
    detectors = {r.id: r for r in detector_rules()}
    example_of = {d: r for r in corpus.values() for d in r.detectors}

    def source(cwe_ids: Sequence[str], detector_ids: Sequence[str]) -> list[Rule]:
        out: list[Rule] = []
        quoted: set[str] = set()
        for cid in cwe_ids:
            if cid in corpus and cid not in quoted:
                r = corpus[cid]
                out.append(Rule(r.id, r.name, r.description, r.vulnerable, r.safe))
                quoted.add(cid)
        for did in detector_ids:
            if did not in detectors or did in quoted:
                continue
            d = detectors[did]
            ex = example_of.get(did)
            use_ex = ex is not None and ex.id not in quoted
            title = f"{d.name} ({d.cwe})" if d.cwe else d.name
            out.append(
                Rule(
                    d.id,
                    title,
                    d.description,
                    ex.vulnerable if use_ex and ex else "",
                    ex.safe if use_ex and ex else "",
                )
            )
            quoted.add(did)
            if use_ex and ex:
                quoted.add(ex.id)
        return out

    return source


def sft_messages(row: TaskRow, answer: str) -> list[dict[str, str]]:
    """The SFT conversation: the short system prompt, the row's turns (earlier answers without analysis), answer."""
    return [
        *model_conversation([m.model_dump() for m in row.messages]),
        {"role": "assistant", "content": answer},
    ]


def _read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8") or "{}")
    return data if isinstance(data, dict) else {}


def wait_for(path: Path, what: str, timeout_s: float | None = None) -> None:
    """Block until rank 0 has written `path` (other ranks of a torchrun job); sleeps between checks."""
    start = time.monotonic()
    while not path.exists():
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"waited {timeout_s:.0f}s for {what} ({path})")
        time.sleep(WAIT_POLL_S)


ONCE_PHASES = ("selection", "sft_data")  # logged once per run: a restart does not log them again


def resume_metrics(path: Path, checkpoints: Path) -> set[str]:
    """Before a (re)start: make metrics.jsonl what an uninterrupted run has logged up to where this attempt resumes.

    SFT steps after the checkpoint training resumes from (all of them without one) are trained and logged again, so
    their records go, with any torn line. Sampling records stay (a restart samples and logs only the chunks that were
    not written). Returns the one-off phases already logged (selection, sft_data): they are not logged again, since a
    restart recomputes them from the same files.
    """
    ckpt = newest_complete_checkpoint(checkpoints)
    resume_step = (checkpoint_step(ckpt) or 0) if ckpt is not None else 0
    dropped = filter_jsonl(
        path, lambda r: not (r.get("phase") == "sft" and int(r.get("step", 0)) > resume_step)
    )
    if dropped:
        log.info(
            "%s: dropped %d records of an earlier attempt (resuming after step %d)",
            path,
            dropped,
            resume_step,
        )
    return {str(r.get("phase")) for r in read_metrics(path) if r.get("phase") in ONCE_PHASES}


# ------------------------------------------------------------------------------------------------ phases


def run_sampling(cfg: StageConfig, data_dir: Path, out: Path, metrics: StageMetrics | None) -> dict[str, Any]:
    """Pick the prompts, sample N answers each with the teacher prompt, score them. Main rank only."""
    from purpcode.generation import get_backend, resolve_backend
    from purpcode.oracles import score_for_rejection

    spec = cfg.rule_learning()
    mix = select_prompts(
        data_dir,
        sample_fraction=spec.sample_fraction,
        per_set_cap=spec.per_set_cap,
        utility_prompts=spec.utility_prompts,
        seed=cfg.seed,
        source_caps=spec.source_caps,
        secqa_cap=spec.secqa_cap,
        utility_fraction=spec.utility_fraction,
        multi_turn_whole=spec.multi_turn_whole,
    )
    log.info("prompt mix: %s (of %s); per source: %s", mix.chosen, mix.available, mix.by_source)
    sampling.write_prompts(out, mix.rows)
    gen = spec.generation
    # Prompts finished before a restart count as done for progress (metrics.jsonl prompts_done / prompts); a set,
    # since a chunk torn by a kill is sampled again whole.
    done_prompts = sampling.done_task_ids(
        sampling.read_records(out / sampling.PARTIAL), spec.samples_per_prompt
    )
    if metrics is not None:  # a count from the start, before the model loads and the first batch comes back
        metrics.log(0, phase="sampling", prompts_done=len(done_prompts), prompts=len(mix.rows))
    # vLLM and remote servers batch across the whole chunk: bigger chunks keep them busy; resume granularity is a chunk.
    chunk = 1024 if resolve_backend(gen.backend, cfg.gpus_per_node) in ("vllm", "openai") else 256

    def on_chunk(records: list[dict[str, Any]]) -> None:
        done_prompts.update(r["task_id"] for r in records)
        if metrics is None:
            return
        per: dict[str, Any] = {
            "phase": "sampling",
            "prompts_done": len(done_prompts),
            "prompts": len(mix.rows),
        }
        for oracle, n in Counter(r["oracle"] for r in records).items():
            metrics.count(oracle, "generated", n)
        for oracle, n in Counter(r["oracle"] for r in records if r["kept"]).items():
            metrics.count(oracle, "kept", n)
        for oracle, n in Counter(r["oracle"] for r in records if not r["kept"]).items():
            metrics.count(oracle, "rejected", n)
        per["samples_kept_fraction"] = sum(r["kept"] for r in records) / max(1, len(records))
        metrics.log(0, **per)

    runner = oracle_runner(cfg)
    try:
        with sampling.without_launcher_env():
            backend = get_backend(gen, model_path(cfg), seed=cfg.seed, gpus=cfg.gpus_per_node)
            if (
                metrics is not None
            ):  # progress inside a chunk's generation (a chunk is 256+ prompts: a minute)
                from purpcode.generation.base import throttled

                def on_generated(done: int, total: int) -> None:
                    # Scored prompts + this chunk's generated ones: the chunk before is still being scored, so this
                    # lags by at most a chunk and never runs ahead of the record that chunk's scoring logs.
                    assert metrics is not None
                    metrics.log(
                        0,
                        phase="sampling",
                        prompts_done=min(len(mix.rows), len(done_prompts) + done),
                        prompts=len(mix.rows),
                    )

                backend.on_progress = throttled(on_generated)
            try:
                marker = sampling.sample_and_score(
                    mix.rows,
                    out,
                    generate=lambda convs, n: backend.generate(
                        convs,
                        n=n,
                        temperature=gen.temperature,
                        max_new_tokens=gen.max_new_tokens,
                        top_p=gen.top_p,
                    ),
                    score=lambda samples: score_for_rejection(runner, samples),
                    n=spec.samples_per_prompt,
                    threshold=spec.rejection_threshold,
                    rule_source=default_rule_source(),
                    turn_by_turn=spec.turn_by_turn,
                    on_chunk=on_chunk,
                    chunk_prompts=chunk,
                )
            finally:
                backend.close()
    finally:
        runner.close()
    marker["available"] = mix.available
    marker["chosen"] = mix.chosen
    marker["by_source"] = mix.by_source
    write_json_atomic(out / sampling.MARKER, marker)
    return marker


TURN_SEP = "#turn"  # joins a task id and a user turn for the earlier prefixes of a multi-turn chain


def _group_key(record: dict[str, Any]) -> str:
    """The best-of-N group of a sample record: the task id, or `<task id>#turn<k>` for an earlier prefix."""
    turn, turns = int(record.get("turn", 1)), int(record.get("turns", 1))
    return record["task_id"] if turn == turns else f"{record['task_id']}{TURN_SEP}{turn}"


def _rl_context(
    last_turn: Sequence[rejection.Scored],
    by_key: dict[tuple[str, int], dict[str, Any]],
    task_id: str,
    threshold: float,
) -> list[str]:
    """The earlier replies RL puts in a multi-turn prompt: those of the chain chosen at the last turn (best of N),
    else of the best-scoring chain there (lowest index on ties)."""
    best = rejection.best_of_n(last_turn, threshold)
    if best is None and last_turn:
        best = min(last_turn, key=lambda s: (-s.reward, s.index))
    if best is None:
        return []
    return [str(x) for x in by_key[(task_id, best.index)]["context"]]


def run_selection(
    cfg: StageConfig, out: Path, metrics: StageMetrics | None, logged: Collection[str] = ()
) -> dict[str, Any]:
    """Best-of-N per prompt -> sft.jsonl; easy task ids -> easy_ids.json. Main rank only; returns counts.

    `logged`: one-off phases an earlier attempt logged already (see `resume_metrics`).
    """
    spec = cfg.rule_learning()
    rows = dict((row.task_id, (set_name, row)) for set_name, row in sampling.read_prompts(out))
    records = sampling.read_records(out / sampling.SAMPLES)
    by_key = {(_group_key(r), int(r["index"])): r for r in records}
    turns_of: dict[str, int] = {}
    for r in records:
        turns_of[r["task_id"]] = max(turns_of.get(r["task_id"], 1), int(r.get("turns", 1)))
    scored = [
        rejection.Scored(
            task_id=_group_key(r),
            index=int(r["index"]),
            response=r["response"],
            reward=float(r["reward"]),
            oracle=r["oracle"],
            set_name=r["set"],
            format_ok=bool(r["format_ok"]),
        )
        for r in records
    ]
    groups = rejection.group_by_task(scored)
    sft: list[dict[str, Any]] = []
    contexts: dict[str, list[str]] = {}
    for task_id, (set_name, row) in rows.items():
        turns = turns_of.get(task_id, 1)
        users = multiturn.user_turns(row) if turns > 1 else None
        # Each prefix of a multi-turn chain is an example of its own (the reference's prefix sub-turns).
        for k in range(1, turns + 1):
            key = task_id if k == turns else f"{task_id}{TURN_SEP}{k}"
            best = rejection.best_of_n(groups.get(key, []), spec.rejection_threshold)
            if best is None:
                continue
            base = row
            if users is not None:
                base = multiturn.prefix_row(row, users, by_key[(key, best.index)]["context"])
            sft.append(
                {
                    "task_id": key,
                    "set": set_name,
                    "oracle": row.oracle,
                    "reward": best.reward,
                    "sample_index": best.index,
                    "turn": k,
                    "messages": sft_messages(base, best.response),
                }
            )
        if users is not None:
            contexts[task_id] = _rl_context(
                groups.get(task_id, []), by_key, task_id, spec.rejection_threshold
            )
    multiturn.write_contexts(out / multiturn.CONTEXTS_FILE, contexts)
    groups = {k: g for k, g in groups.items() if TURN_SEP not in k}  # easy: judged on the whole conversation
    easy = rejection.easy_task_ids(
        groups, threshold=spec.rejection_threshold, easy_threshold=spec.easy_threshold, count=spec.easy_count
    )
    rejection.write_easy_ids(
        out / EASY_FILE,
        easy,
        threshold=spec.rejection_threshold,
        easy_threshold=spec.easy_threshold,
        samples_per_prompt=spec.samples_per_prompt,
        prompts=len(rows),
        count=spec.easy_count,
    )
    write_jsonl_atomic(out / SFT_FILE, sft)  # last: its presence means selection is done
    oracle_of = {t: row.oracle for t, (_, row) in rows.items()}
    counts: dict[str, Any] = {
        "prompts": len(rows),
        "samples": len(scored),
        "kept": sum(s.reward >= spec.rejection_threshold for s in scored),
        "multi_turn": len(contexts),
        "sft_examples": len(sft),
        "easy": len(easy),
        "sft_by_set": dict(Counter(r["set"] for r in sft)),
        "easy_by_oracle": dict(Counter(oracle_of[t] for t in easy)),
    }
    if metrics is not None:
        for oracle, n in counts["easy_by_oracle"].items():
            metrics.count(oracle, "easy", n)
    if metrics is not None and "selection" not in logged:
        metrics.log(
            0,
            phase="selection",
            prompts=counts["prompts"],
            samples=counts["samples"],
            kept=counts["kept"],
            sft_examples=counts["sft_examples"],
            easy=counts["easy"],
        )
    return counts


def run_sft(
    cfg: StageConfig,
    out: Path,
    metrics: StageMetrics | None,
    env: DistEnv,
    card_counts: dict[str, int],
    logged: Collection[str] = (),
) -> dict[str, Any]:
    """SFT on sft.jsonl with resume; saves model/ (safetensors + tokenizer + card). Every rank."""
    from purpcode.rule_learning.sft import (
        build_dataset,
        build_trainer,
        fit_to_length,
        has_generation_markers,
        load_tokenizer,
        sft_callbacks,
        sft_config,
    )
    from purpcode.training.distributed import cleanup, ensure_launcher_env
    from purpcode.training.ds_config import deepspeed_config, write_config
    from purpcode.training.hf import has_gpu, mean_train_loss, save_final_model, train_with_resume

    spec = cfg.rule_learning()
    records = sampling.read_records(out / SFT_FILE)
    if not records:
        raise ValueError(
            f"no sample reached rejectionThreshold={spec.rejection_threshold} (see {out / sampling.SAMPLES}): "
            "check the judge and sandbox, raise samplesPerPrompt, or lower rejectionThreshold"
        )
    gpu = has_gpu()
    ds = deepspeed_config(spec.deepspeed, on_gpu=gpu)
    if ds is not None:
        ensure_launcher_env()
        if env.is_main:
            write_config(ds, out / "ds_config.json")
    base = model_path(cfg)
    tokenizer = load_tokenizer(base)
    markers = has_generation_markers(tokenizer)
    records, too_long = fit_to_length(records, tokenizer, spec.sft.max_seq_length)
    card_counts = {**card_counts, "sft/trained": len(records), "sft/dropped_too_long": too_long}
    if metrics is not None and env.is_main and "sft_data" not in logged:
        metrics.log(0, phase="sft_data", sft_examples=len(records), sft_dropped_too_long=too_long)
    config = sft_config(
        spec.sft,
        output_dir=out / "checkpoints",
        seed=cfg.seed,
        deepspeed=ds,
        assistant_masks=markers,
        gpu=gpu,
    )
    trainer = build_trainer(
        base,
        tokenizer,
        build_dataset(records),
        config,
        callbacks=sft_callbacks(metrics if env.is_main else None, extra={"phase": "sft"}),
    )
    try:
        result = train_with_resume(trainer)
        settings = {
            "sft": spec.sft.model_dump(mode="json", by_alias=True),
            "deepspeed": spec.deepspeed.model_dump(mode="json", by_alias=True) if ds else None,
            "generation": spec.generation.model_dump(
                mode="json", by_alias=True, exclude={"api_key_secret_ref"}
            ),
            "samplesPerPrompt": spec.samples_per_prompt,
            "rejectionThreshold": spec.rejection_threshold,
            "easyThreshold": spec.easy_threshold,
            "easyCount": spec.easy_count,
            "seed": cfg.seed,
            "worldSize": env.world_size,
            "precision": "bf16" if config.bf16 else "fp32",
            "lossMask": "last assistant turn (completion-only"
            + (" + generation markers)" if markers else ")"),
            "globalSteps": int(trainer.state.global_step),
        }
        card = {
            "title": f"{cfg.run}: PurpCode rule learning",
            "base_model": cfg.model.name + (f"@{cfg.model.revision}" if cfg.model.revision else ""),
            "stage": "rule learning (context distillation + SFT)",
            "data_counts": card_counts,
            "settings": settings,
            "description": "Self-distilled under a safety teacher prompt, filtered by the PurpCode oracles "
            "(best of N), then fine-tuned on the short system prompt.",
        }
        save_final_model(trainer, out / "model", tokenizer=tokenizer, card=card)
        metrics_out = {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
        # The Trainer's train_loss averages the steps of this process only; after a resume that is not the run's.
        loss = mean_train_loss(trainer.state.log_history)
        if loss is not None:
            metrics_out["train_loss"] = loss
        return {"global_step": int(trainer.state.global_step), **metrics_out}
    finally:
        cleanup()


# ------------------------------------------------------------------------------------------------ driver


def run(
    cfg: StageConfig,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    metrics: StageMetrics | None = None,
) -> dict[str, Any]:
    """Run the stage (or finish a partly run one). Returns the summary written to `_SUCCESS`."""
    env = dist_env()
    data = Path(data_dir or cfg.paths.data)
    out = Path(out_dir or cfg.paths.out)
    out.mkdir(parents=True, exist_ok=True)
    success = out / SUCCESS_MARKER
    if success.exists():
        log.info("%s exists: rule learning already finished", success)
        return _read_json(success)
    check_settings(out, cfg, record=env.is_main)
    if metrics is None and env.is_main:
        metrics = StageMetrics(out, run=cfg.run, stage=STAGE, port=cfg.metrics_port)

    logged: set[str] = set()
    if env.is_main:
        logged = resume_metrics(
            metrics.path if metrics is not None else out / "metrics.jsonl", out / "checkpoints"
        )
        if not sampling.samples_complete(out):
            marker = run_sampling(cfg, data, out, metrics)
        else:
            log.info("samples complete (%s): skipping sampling", out / sampling.MARKER)
            (out / sampling.PARTIAL).unlink(missing_ok=True)  # a kill came between the marker and its removal
            marker = _read_json(out / sampling.MARKER)
            if metrics is not None:  # a fresh process: its counters start from the finished sampling's totals
                for oracle, n in marker.get("generated", {}).items():
                    kept = int(marker.get("kept", {}).get(oracle, 0))
                    metrics.count(oracle, "generated", int(n))
                    metrics.count(oracle, "kept", kept)
                    metrics.count(oracle, "rejected", int(n) - kept)
        counts = run_selection(cfg, out, metrics, logged)
    else:
        wait_for(out / SFT_FILE, "rank 0's sampling and selection")
        marker = _read_json(out / sampling.MARKER)
        counts = {}

    card_counts: dict[str, int] = {f"prompts/{k}": int(v) for k, v in marker.get("chosen", {}).items()}
    card_counts.update({f"generated/{k}": int(v) for k, v in marker.get("generated", {}).items()})
    card_counts.update({f"kept/{k}": int(v) for k, v in marker.get("kept", {}).items()})
    card_counts.update({f"sft/{k}": int(v) for k, v in counts.get("sft_by_set", {}).items()})
    if counts:
        card_counts["easy"] = int(counts["easy"])
    train = run_sft(cfg, out, metrics, env, card_counts, logged)

    summary: dict[str, Any] = {
        "prompts": marker.get("prompts", 0),
        "samples": marker.get("samples", 0),
        "kept": sum(marker.get("kept", {}).values()),
        "sft_examples": counts.get("sft_examples", 0),
        "easy": counts.get("easy", 0),
        "global_step": train["global_step"],
        "train_loss": train.get("train_loss"),
    }
    if env.is_main:
        prune_discarded(
            out / "checkpoints"
        )  # incomplete checkpoints an earlier attempt's kill left (moved aside)
        write_json_atomic(out / SUMMARY_FILE, summary)
        write_json_atomic(success, summary)
    return summary
