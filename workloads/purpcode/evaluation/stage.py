"""The evaluation stage: generate (temperature 0) for each suite with the base and the trained model, score with
the oracles, write `results.json` and per-sample records, then `_SUCCESS`.

Resumable: each model's generations and scores are written (atomically) as soon as they exist and reused when the
stage restarts with the same model and prompts, so a restart after the judge went away does not regenerate.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any

from purpcode.data.schema import TaskRow, iter_jsonl, write_json_atomic, write_jsonl_atomic
from purpcode.evaluation.benchmarks import BENCHMARK_ORACLES, load_benchmark
from purpcode.evaluation.metrics import METRICS, SampleRecord, delta, summarize
from purpcode.evaluation.scoring import Item, check_runner, score_items
from purpcode.evaluation.suites import Suite, load_held_out
from purpcode.evaluation.table import paper_table
from purpcode.prompts import model_conversation
from purpcode_operator.api import BenchmarkSpec, EvaluationSpec
from purpcode_operator.layout import SUCCESS_MARKER
from purpcode_operator.plan import StageConfig

LOG = logging.getLogger("purpcode.evaluation")
RESULTS_FILE = "results.json"
PAPER_TABLE_FILE = "paper_table.md"  # base and trained side by side, per suite, in the paper's layout


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m purpcode.evaluation", description=__doc__)
    p.add_argument("--config", required=True, help="Stage config JSON (StageConfig).")
    p.add_argument("--out", default=None, help="Output directory (default: the config's paths.out).")
    p.add_argument(
        "--data", default=None, help="Synthesis output with <set>.heldout.jsonl (default: paths.data)."
    )
    p.add_argument("--model", default=None, help="The trained model (default: paths.model).")
    p.add_argument("--base-model", default=None, help="The base model (default: paths.base_model).")
    return p.parse_args(argv)


def _benchmark_path(b: BenchmarkSpec, artifacts: str) -> Path:
    p = Path(b.path)
    return p if p.is_absolute() else Path(artifacts) / p


def load_suites(cfg: StageConfig, spec: EvaluationSpec, data_dir: str) -> list[Suite]:
    """The held-out suites the spec names, then the benchmarks, each capped at maxPerSuite (or its own limit)."""
    suites = [load_held_out(data_dir, name, spec.max_per_suite) for name in spec.suites]
    for b in spec.benchmarks:
        rows = load_benchmark(b.kind, _benchmark_path(b, cfg.paths.artifacts))
        limit = b.limit or spec.max_per_suite
        oracle = rows[0].oracle if rows else BENCHMARK_ORACLES[b.kind]
        suites.append(
            Suite(
                name=b.kind,
                label=b.kind,
                source=f"benchmark:{b.kind}",
                metric=METRICS[oracle],
                rows=rows[:limit],
                note="" if rows else f"{b.path}: no usable rows",
            )
        )
    return suites


def models_to_evaluate(trained: str, base: str, compare_base: bool) -> list[tuple[str, str]]:
    """(label, path) pairs: base then trained; one entry when no stage trained a model."""
    if os.path.normpath(trained) == os.path.normpath(base):
        return [("base", base)]
    return [("base", base), ("trained", trained)] if compare_base else [("trained", trained)]


def oracle_runner(cfg: StageConfig) -> Any:
    """The oracles configured from the stage config (the same reward definition RL uses)."""
    from purpcode.oracles.from_stage import build_runner

    return build_runner(cfg)


def _key(suite: str, task_id: str) -> str:
    return f"{suite}\t{task_id}"


def _cached(path: Path, model_path: str, keys: set[str]) -> dict[str, dict[str, Any]] | None:
    """Records of an earlier attempt when they cover exactly these prompts for this model."""
    if not path.is_file():
        return None
    recs = {_key(r["suite"], r["task_id"]): r for r in iter_jsonl(path)}
    if set(recs) != keys or any(r.get("model_path") != model_path for r in recs.values()):
        return None
    return recs


def eval_conversation(row: TaskRow) -> list[dict[str, str]]:
    """What the model answers at evaluation: built as SFT and RL build it (`purpcode.prompts.model_conversation`)."""
    return model_conversation([m.model_dump() for m in row.messages])


def generate(
    cfg: StageConfig,
    spec: EvaluationSpec,
    label: str,
    model_path: str,
    suites: list[Suite],
    out: Path,
    metrics: Any,
) -> dict[str, str]:
    """Responses keyed by (suite, task): from the cache, else generated with the spec's backend and cached."""
    from purpcode.generation import get_backend

    path = out / "generations" / f"{label}.jsonl"
    keys = {_key(s.name, r.task_id) for s in suites for r in s.rows}
    cached = _cached(path, model_path, keys)
    if cached is not None:
        LOG.info("%s: reusing %d cached generations", label, len(cached))
        return {k: str(v["response"]) for k, v in cached.items()}
    gen = spec.generation
    backend = get_backend(gen, model_path, seed=cfg.seed, gpus=cfg.gpus_per_node)
    responses: dict[str, str] = {}
    todo = [(s.name, r) for s in suites for r in s.rows]
    total = len(todo)
    started = time.perf_counter()
    try:
        # All suites in one stream of batches: a batch is one `generate` call however the suites split it.
        for lo in range(0, total, gen.batch_size):
            chunk = todo[lo : lo + gen.batch_size]
            convs = [eval_conversation(r) for _, r in chunk]
            outs = backend.generate(
                convs, n=1, temperature=gen.temperature, max_new_tokens=gen.max_new_tokens
            )
            for (suite_name, row), texts in zip(chunk, outs, strict=True):
                responses[_key(suite_name, row.task_id)] = texts[0]
            metrics.log(len(responses), phase="generate", model=label, done=len(responses), total=total)
            LOG.info("%s: generated %d/%d", label, len(responses), total)
    finally:
        backend.close()
    write_jsonl_atomic(
        path,
        (
            {"suite": k.split("\t")[0], "task_id": k.split("\t")[1], "model_path": model_path, "response": v}
            for k, v in responses.items()
        ),
    )
    LOG.info("%s: %d generations in %.1fs", label, total, time.perf_counter() - started)
    return responses


def score(
    runner: Any,
    label: str,
    model_path: str,
    suites: list[Suite],
    responses: dict[str, str],
    out: Path,
    metrics: Any = None,
) -> list[SampleRecord]:
    """Records for one model: from the cache, else scored with the oracles and cached."""
    path = out / "samples" / f"{label}.jsonl"
    keys = set(responses)
    cached = _cached(path, model_path, keys)
    if cached is not None and all(cached[k].get("response") == responses[k] for k in keys):
        return [
            SampleRecord.model_validate({k: v for k, v in r.items() if k != "model_path"})
            for r in cached.values()
        ]
    items = [
        Item(suite=s.name, model=label, row=r, response=responses[_key(s.name, r.task_id)])
        for s in suites
        for r in s.rows
    ]
    progress = None
    if metrics is not None:  # the runner's bar counts answers scored
        from purpcode.generation.base import throttled

        progress = throttled(
            lambda done, total: metrics.log(done, phase="score", model=label, done=done, total=total)
        )
    records = score_items(runner, items, progress)
    write_jsonl_atomic(path, ({**r.model_dump(mode="json"), "model_path": model_path} for r in records))
    return records


def build_results(
    cfg: StageConfig,
    spec: EvaluationSpec,
    suites: list[Suite],
    models: list[tuple[str, str]],
    records: dict[str, list[SampleRecord]],
) -> dict[str, Any]:
    """The results document: per suite, the metric for each model and the trained - base delta."""
    out_suites = []
    for s in suites:
        per_model = {
            label: summarize([r for r in records[label] if r.suite == s.name], s.metric)
            for label, _ in models
        }
        d = delta(per_model.get("base"), per_model.get("trained"))
        out_suites.append(
            {
                "suite": s.name,
                "label": s.label,
                "source": s.source,
                "oracle": s.metric.oracle,
                "metric": s.metric.name,
                "metric_label": s.metric.label,
                "lower_is_better": s.metric.lower_is_better,
                "n": len(s.rows),
                "note": s.note,
                "results": {label: r.model_dump() for label, r in per_model.items()},
                "delta": d,
            }
        )
    return {
        "run": cfg.run,
        "models": {label: path for label, path in models},
        "generation": {
            "backend": spec.generation.backend,
            "temperature": spec.generation.temperature,
            "max_new_tokens": spec.generation.max_new_tokens,
        },
        "suites": out_suites,
    }


def run(
    cfg: StageConfig, out: Path, data_dir: str, trained: str, base: str, *, registry: Any = None
) -> dict[str, Any]:
    """The whole stage; returns the results document (also written to `<out>/results.json`).

    `registry`: a prometheus CollectorRegistry (tests run the stage several times in one process).
    """
    from purpcode.metrics import StageMetrics

    spec = cfg.evaluation()
    out.mkdir(parents=True, exist_ok=True)
    (out / SUCCESS_MARKER).unlink(missing_ok=True)  # a re-run must not leave an old marker over new results
    suites = load_suites(cfg, spec, data_dir)
    models = models_to_evaluate(trained, base, spec.compare_base)
    LOG.info(
        "evaluating %s on %s",
        ", ".join(f"{label}={path}" for label, path in models),
        ", ".join(f"{s.name} ({len(s.rows)})" for s in suites),
    )
    metrics = StageMetrics(out, run=cfg.run, stage="evaluation", port=cfg.metrics_port, registry=registry)
    runner = oracle_runner(cfg)
    try:
        check_runner(runner, [Item(s.name, "", r, "") for s in suites for r in s.rows])
        records: dict[str, list[SampleRecord]] = {}
        for label, path in models:
            responses = generate(cfg, spec, label, path, suites, out, metrics)
            records[label] = score(runner, label, path, suites, responses, out, metrics)
            LOG.info("%s: scored %d answers", label, len(records[label]))
    finally:
        runner.close()
    results = build_results(cfg, spec, suites, models, records)
    final = {
        f"{s['metric']}/{s['suite']}/{label}": r["value"]
        for s in results["suites"]
        for label, r in s["results"].items()
        if r["value"] is not None
    }
    metrics.log(sum(len(v) for v in records.values()), phase="done", **final)
    write_json_atomic(out / RESULTS_FILE, results)
    atomic_write_text(out / PAPER_TABLE_FILE, paper_table(results))
    (out / SUCCESS_MARKER).write_text("ok\n", encoding="utf-8")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = StageConfig.load(args.config)
    out = Path(args.out or cfg.paths.out)
    base = args.base_model or cfg.paths.base_model
    trained = args.model or cfg.paths.model or base
    results = run(cfg, out, args.data or cfg.paths.data, trained, base)
    for s in results["suites"]:
        cells = ", ".join(
            f"{label} {r['value']:.3f}" if r["value"] is not None else f"{label} n/a"
            for label, r in s["results"].items()
        )
        LOG.info("%s %s: %s", s["suite"], s["metric"], cells)
    return 0
