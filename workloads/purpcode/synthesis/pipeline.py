"""The synthesis stage end to end: rules -> Rule2Code -> Vul2Prompt -> malicious events -> over-refusal probes ->
security Q&A -> utility tasks (or imports of the released sets) -> dedup -> train / held-out split -> manifest.

Every step is checkpointed (see `store.py`); the final sets, the manifest and `_SUCCESS` are written atomically, in
that order, so a reader that sees `_SUCCESS` sees complete sets.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from purpcode.data.rules import Rule, load_rules
from purpcode.data.schema import SET_ORACLES, TaskRow, write_json_atomic, write_jsonl_atomic
from purpcode.data.splits import split_by_template
from purpcode.synthesis.store import StepStore, fingerprint
from purpcode.synthesis.text import Draft, digest, slug
from purpcode.synthesis.writer import Writer
from purpcode_operator.api import SynthesisSpec
from purpcode_operator.layout import SUCCESS_MARKER
from purpcode_operator.plan import StageConfig

LOG = logging.getLogger(__name__)
MANIFEST = "manifest.json"
SETS: tuple[str, ...] = tuple(SET_ORACLES)
# Near-duplicate removal applies to prompt sets. Utility tasks are deduplicated exactly only: two tasks that read
# alike but have different tests (e.g. parametric variants) are different tasks.
NEAR_DEDUP_SETS = frozenset({"codesec", "malicious", "overrefusal", "secqa"})


def set_files(out: str | Path, name: str) -> dict[str, Path]:
    """Where a set's splits live under the synthesis output folder."""
    base = Path(out)
    return {"train": base / f"{name}.train.jsonl", "heldout": base / f"{name}.heldout.jsonl"}


@dataclass
class Item:
    """A row on its way out, with the draft it came from (None for imported rows)."""

    set: str
    row: TaskRow
    draft: Draft | None = None

    def exact(self) -> Any:
        return [self.set, [m.model_dump() for m in self.row.messages]]

    def text(self) -> str:
        return self.draft.dedup_text() if self.draft else self.row.prompt_text()

    def group(self) -> str:
        return self.draft.dedup_group() if self.draft else f"{self.set}|{self.row.source}|{self.row.strategy}"


def draft_row(d: Draft) -> TaskRow:
    messages = d.messages()
    label = d.cwe or d.ground_truth.get("category") or d.template
    return TaskRow(
        task_id=f"{d.set}/{slug(label)}/{d.strategy}/{digest(messages)}",
        messages=messages,  # type: ignore[arg-type]
        oracle=SET_ORACLES[d.set],  # type: ignore[arg-type]
        ground_truth=d.ground_truth,
        source=d.source(),
        strategy=d.strategy,
        cwe=d.cwe,
    )


def held_out_count(n: int, per_set: int, fraction: float) -> int:
    """min(heldOutPerSet, floor(heldOutFraction * n))."""
    return max(0, min(per_set, math.floor(fraction * n)))


def split_rows(
    rows: list[TaskRow],
    *,
    per_set: int,
    fraction: float,
    seed: int,
    name: str,
    families: list[str] | None = None,
) -> tuple[list[TaskRow], list[TaskRow]]:
    """Seeded split, independent of input order, that never puts two rows of one family on both sides.

    `families` names each row's family (rows the dedup measure calls near-duplicates of each other; default: every
    row alone). Families are ordered by their smallest task_id, shuffled, and taken whole into the held-out set
    while they fit in its size, min(heldOutPerSet, floor(heldOutFraction * n)); a family too big to fit stays in
    train, so the held-out set can come out smaller than that size, never larger.
    """
    if families is None:
        families = [r.task_id for r in rows]
    if len(families) != len(rows):
        raise ValueError("split_rows: families must name one family per row")
    members: dict[str, list[TaskRow]] = {}
    for fam, row in zip(families, rows, strict=True):
        members.setdefault(fam, []).append(row)
    ordered = sorted(
        (sorted(group, key=lambda r: r.task_id) for group in members.values()), key=lambda g: g[0].task_id
    )
    random.Random(f"{seed}:{name}").shuffle(ordered)
    k = held_out_count(len(rows), per_set, fraction)
    train: list[TaskRow] = []
    held: list[TaskRow] = []
    for group in ordered:
        (held if len(held) + len(group) <= k else train).extend(group)
    return train, held


def split_families(items: list[Item], *, ngram: int, num_perm: int, threshold: float, seed: int) -> list[str]:
    """Each item's family for the split: its near-duplicate cluster across every dedup group of the set, named by
    the cluster's smallest task_id (so the name does not depend on the order of the items)."""
    from purpcode.synthesis.dedup import near_clusters

    roots = near_clusters(
        [it.text() for it in items], ngram=ngram, num_perm=num_perm, threshold=threshold, seed=seed
    )
    names: dict[int, str] = {}
    for root, it in zip(roots, items, strict=True):
        tid = it.row.task_id
        names[root] = min(names.get(root, tid), tid)
    return [names[r] for r in roots]


def unique_ids(items: list[Item]) -> None:
    """Task ids must be unique within a run: suffix collisions (rare: same prompt in two sets)."""
    seen: Counter[str] = Counter()
    for it in items:
        tid = it.row.task_id
        seen[tid] += 1
        if seen[tid] > 1:
            it.row = it.row.model_copy(update={"task_id": f"{tid}~{seen[tid]}"})


class Synthesis:
    """One synthesis run over a StageConfig."""

    def __init__(
        self,
        config: StageConfig,
        out: str | Path,
        *,
        metrics: Any = None,
        backend_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.config = config
        self.spec: SynthesisSpec = config.synthesis()
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.store = StepStore(self.out)
        self.metrics = metrics
        self.manifest_steps: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self._analyzer: Any = None
        self._step_index = 0
        self.generator_stats: dict[str, Any] | None = None
        gen = self.spec.generation
        self.generating = self.spec.source == "generate"
        model_label = gen.model or (config.model.name if gen.backend == "openai" else config.paths.base_model)
        factory = backend_factory or (self._default_factory if self.generating else None)
        self.writer = Writer(
            factory,
            label=f"{gen.backend}:{model_label}",
            rewrite_max_new_tokens=min(gen.max_new_tokens, 512),
        )
        self.base_fp = fingerprint(
            config.seed,
            self.spec.source,
            config.model.model_dump(mode="json"),
            gen.model_dump(mode="json") if self.generating else None,
            config.services.analyzer.model_dump(mode="json"),
        )

    # ------------------------------------------------------------------ services

    def _default_factory(self) -> Any:
        from purpcode.generation import get_backend

        gen = self.spec.generation
        path = (
            (gen.model or self.config.model.name) if gen.backend == "openai" else self.config.paths.base_model
        )
        backend = get_backend(gen, path, seed=self.config.seed, gpus=self.config.gpus_per_node)
        if self.metrics is not None:  # progress inside a step's generation (the runner shows done/total)
            from purpcode.generation.base import throttled

            def on_generated(done: int, total: int) -> None:
                assert self.metrics is not None
                self.metrics.log(self._step_index, phase="generate", done=done, total=total)

            backend.on_progress = throttled(on_generated)
        return backend

    @property
    def analyzer(self) -> Any:
        if self._analyzer is None:
            from purpcode.analyzers import get_analyzer

            spec = self.config.services.analyzer
            opts: dict[str, Any] = {"min_severity": "LOW"}
            if spec.kind == "bandit":
                opts["workers"] = 0 if self.config.gpus_per_node == 0 else None
            elif spec.kind == "semgrep" and spec.semgrep_rules:
                opts["rules"] = spec.semgrep_rules
            self._analyzer = get_analyzer(spec.kind, **opts)
        return self._analyzer

    # ------------------------------------------------------------------ steps

    def step(
        self,
        name: str,
        fp: str,
        oracle: str | None,
        fn: Callable[[], tuple[list[dict[str, Any]], dict[str, Any]]],
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Run `fn` unless a checkpoint with the same fingerprint exists; record stats, timing and metrics."""
        self._step_index += 1
        if self.store.is_done(name, fp):
            records, stats = self.store.load(name)
            LOG.info("step %s: resumed from checkpoint (%d records)", name, len(records))
            self.manifest_steps[name] = {**stats, "resumed": True}
            self.timings[name] = self.store.seconds(name)
            return records, stats
        LOG.info("step %s: running", name)
        t0 = time.perf_counter()
        records, stats = fn()
        seconds = time.perf_counter() - t0
        self.store.save(name, fp, records, stats, seconds)
        self.manifest_steps[name] = {**stats, "resumed": False}
        self.timings[name] = round(seconds, 3)
        if self.metrics is not None:
            generated = int(stats.get("generated", len(records)))
            if oracle:
                self.metrics.count(oracle, "generated", generated)
                self.metrics.count(oracle, "kept", len(records))
                if generated > len(records):
                    self.metrics.count(oracle, "rejected", generated - len(records))
            self.metrics.log(
                self._step_index,
                step_name=name,
                generated=generated,
                kept=len(records),
                step_seconds=round(seconds, 3),
            )
        return records, stats

    def _drafts_step(
        self, name: str, fp: str, oracle: str, make: Callable[[], tuple[list[Draft], dict[str, Any]]]
    ) -> list[Draft]:
        def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            drafts, stats = make()
            if drafts:
                self.writer.rewrite(drafts)
            origins = Counter(d.origin for d in drafts)
            stats = {
                **stats,
                "generated": stats.get("generated", len(drafts)),
                "rows": len(drafts),
                "by_path": {"model": origins["model"], "template": origins["template"]},
                "by_strategy": dict(Counter(d.strategy for d in drafts)),
            }
            return [d.to_record() for d in drafts], stats

        records, _ = self.step(name, fp, oracle, run)
        return [Draft.from_record(r) for r in records]

    def rules_step(self) -> list[Rule]:
        spec = self.spec
        catalog = (
            str(Path(self.config.paths.artifacts) / spec.cwe_catalog_path) if spec.cwe_catalog_path else None
        )
        with_detectors = self.config.services.analyzer.kind == "bandit"
        fp = fingerprint("rules", spec.cwes, spec.cwe_catalog_path, with_detectors, self._bandit_version())

        def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            rules = load_rules(cwes=spec.cwes, catalog_path=catalog, detectors=with_detectors)
            stats = {
                "generated": len(rules),
                "by_kind": dict(Counter(r.kind for r in rules)),
                "by_source": dict(Counter(r.source for r in rules)),
                "cwes": sorted({r.cwe for r in rules if r.cwe}),
            }
            return [r.model_dump(mode="json") for r in rules], stats

        records, _ = self.step("rules", fp, None, run)
        self.rules_fp = fp
        return [Rule.model_validate(r) for r in records]

    @staticmethod
    def _bandit_version() -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("bandit")
        except PackageNotFoundError:
            return "none"

    def rule2code_step(self, rules: list[Rule]) -> list[dict[str, Any]]:
        from purpcode.synthesis.rule2code import run_rule2code

        fp = fingerprint(
            "rule2code", self.base_fp, self.rules_fp, self.spec.seeds_per_rule, self.writer.enabled
        )
        self.rule2code_fp = fp

        def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            seeds, stats = run_rule2code(
                rules,
                self.writer,
                self.analyzer,
                seeds_per_rule=self.spec.seeds_per_rule if self.writer.enabled else 0,
            )
            return seeds, {**stats, "generated": sum(stats["candidates"].values())}

        seeds, _ = self.step("rule2code", fp, "codesec", run)
        return seeds

    def vul2prompt_step(self, seeds: list[dict[str, Any]], rules: list[Rule]) -> list[Draft]:
        from purpcode.synthesis.vul2prompt import run_vul2prompt

        fp = fingerprint(
            "vul2prompt",
            self.rule2code_fp,
            self.spec.strategies,
            self.spec.prompts_per_seed,
            self.writer.enabled,
        )
        by_id = {r.id: r for r in rules}
        return self._drafts_step(
            "vul2prompt",
            fp,
            "codesec",
            lambda: (
                run_vul2prompt(seeds, by_id, list(self.spec.strategies), self.spec.prompts_per_seed),
                {},
            ),
        )

    def malicious_step(self) -> list[Draft]:
        from purpcode.synthesis.malicious import malicious_drafts

        fp = fingerprint("malicious", self.base_fp, self.spec.malicious_prompts, self.writer.enabled)
        return self._drafts_step(
            "malicious",
            fp,
            "general-safety",
            lambda: (malicious_drafts(self.spec.malicious_prompts, self.config.seed), {}),
        )

    def overrefusal_step(self, rules: list[Rule]) -> list[Draft]:
        from purpcode.synthesis.overrefusal import judge_filter, overrefusal_drafts

        svc = self.config.services
        use_judge = self.spec.judge_filter and bool(svc.judge_url)
        fp = fingerprint(
            "overrefusal",
            self.base_fp,
            self.rules_fp,
            self.spec.over_refusal_per_cwe,
            use_judge,
            svc.judge_url,
            svc.judge_model,
            self.writer.enabled,
        )

        def make() -> tuple[list[Draft], dict[str, Any]]:
            drafts = overrefusal_drafts(rules, self.spec.over_refusal_per_cwe, self.config.seed)
            stats: dict[str, Any] = {"generated": len(drafts)}
            if not self.spec.judge_filter:
                stats["judge_filter"] = "off (judgeFilter: false)"
                return drafts, stats
            if not svc.judge_url:
                LOG.warning("over-refusal: no judge URL in the stage config; probes are NOT judge-filtered")
                stats["judge_filter"] = "skipped: no judge URL"
                return drafts, stats
            # Rewrite first so the judge screens the final wording.
            paths = self.writer.rewrite(drafts)
            for d in drafts:
                d.rewrite = False
            kept, jstats = judge_filter(drafts, self._judge())
            stats["judge_filter"] = jstats
            stats["rewrite_before_judge"] = paths
            return kept, stats

        return self._drafts_step("overrefusal", fp, "noreject", make)

    def _judge(self) -> Any:
        from purpcode.oracles import JudgeConfig
        from purpcode.oracles.judge import JudgeClient

        svc = self.config.services
        assert svc.judge_url
        cfg = JudgeConfig.from_env(
            svc.judge_url,
            model=svc.judge_model,
            api_key_env=svc.judge_api_key_env,
            max_tokens=svc.judge_max_tokens,
            concurrency=svc.judge_concurrency,
        )
        return JudgeClient(cfg)

    def secqa_step(self, rules: list[Rule]) -> list[Draft]:
        from purpcode.synthesis.secqa import secqa_drafts

        fp = fingerprint("secqa", self.base_fp, self.rules_fp, self.spec.secqa_prompts, self.writer.enabled)
        return self._drafts_step(
            "secqa",
            fp,
            "noreject",
            lambda: (secqa_drafts(rules, self.spec.secqa_prompts, self.config.seed), {}),
        )

    def utility_step(self) -> list[Draft]:
        from purpcode.synthesis.utility import run_utility

        svc = self.config.services
        timeout = self.config.oracles.correctness_timeout_seconds
        fp = fingerprint(
            "utility",
            self.base_fp,
            self.spec.utility_tasks,
            bool(svc.sandbox_url),
            timeout,
            self.writer.enabled,
        )
        return self._drafts_step(
            "utility",
            fp,
            "correctness",
            lambda: run_utility(
                self.spec.utility_tasks, self.config.seed, self.writer, svc.sandbox_url, timeout
            ),
        )

    def import_step(self, name: str) -> list[TaskRow]:
        from purpcode.data.released import (
            fetch_released_set,
            is_fetched,
            load_released_set,
            released_dir,
        )

        folder = released_dir(self.config.paths.artifacts, name)
        fetched = is_fetched(folder, self.spec.import_org, name)
        fp = fingerprint("import", name, self.spec.import_org, fetched)

        def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            if not fetched:
                import os

                fetch_released_set(
                    self.spec.import_org, name, folder, token=os.environ.get("HF_TOKEN") or None
                )
            rows = load_released_set(name, folder)
            stats = {"generated": len(rows), "by_strategy": dict(Counter(r.strategy for r in rows))}
            return [r.model_dump(mode="json") for r in rows], stats

        records, _ = self.step(f"import-{name}", fp, None, run)
        return [TaskRow.model_validate(r) for r in records]

    # ------------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        spec = self.spec
        items: list[Item] = []
        drafts: list[Draft] = []
        covered: set[str] = set()
        if spec.source == "import":
            from purpcode.data.released import RELEASED_SETS

            for name in spec.import_datasets:
                rows = self.import_step(name)
                covered.add(RELEASED_SETS[name][0])
                items.extend(Item(RELEASED_SETS[name][0], r) for r in rows)
        rules = self.rules_step()
        if "codesec" not in covered:
            seeds = self.rule2code_step(rules)
            drafts += self.vul2prompt_step(seeds, rules)
        if "malicious" not in covered:
            drafts += self.malicious_step()
        if "overrefusal" not in covered:
            drafts += self.overrefusal_step(rules)
        if "secqa" not in covered:
            drafts += self.secqa_step(rules)
        if "utility" not in covered:
            drafts += self.utility_step()
        items.extend(Item(d.set, draft_row(d), d) for d in drafts)
        self.generator_stats = self.writer.stats() if self.generating else None
        self.writer.close()
        if self._analyzer is not None:
            self._analyzer.close()
        manifest = self.finish(items, covered)
        manifest["timings"]["total"] = round(time.perf_counter() - t0, 3)
        write_json_atomic(self.out / MANIFEST, manifest)
        write_json_atomic(
            self.out / SUCCESS_MARKER, {"fingerprint": self.run_fingerprint(), "finished_at": time.time()}
        )
        return manifest

    def run_fingerprint(self) -> str:
        return fingerprint(
            self.base_fp, self.spec.model_dump(mode="json"), self.config.services.model_dump(mode="json")
        )

    def finish(self, items: list[Item], covered: set[str]) -> dict[str, Any]:
        """Dedup per set, split, write the sets, and build the manifest."""
        from purpcode.synthesis.dedup import dedup

        t0 = time.perf_counter()
        d = self.spec.dedup
        sets: dict[str, Any] = {}
        dedup_stats: dict[str, Any] = {}
        for name in SETS:
            mine = [it for it in items if it.set == name]
            kept, dstats = dedup(
                mine,
                exact=Item.exact,
                text=Item.text,
                group=Item.group,
                ngram=d.ngram,
                num_perm=d.num_perm,
                threshold=d.threshold,
                seed=self.config.seed,
                near=name in NEAR_DEDUP_SETS,
            )
            dedup_stats[name] = dstats
            unique_ids(kept)
            rows = [it.row for it in kept]
            families = (
                split_families(
                    kept, ngram=d.ngram, num_perm=d.num_perm, threshold=d.threshold, seed=self.config.seed
                )
                if name in NEAR_DEDUP_SETS
                else None
            )
            templates = [
                str(it.row.ground_truth.get("template") or (it.draft.template if it.draft else ""))
                for it in kept
            ]
            template_dropped = 0
            if name == "overrefusal" and rows and all(templates):
                # Held-out probes share no template with training ones (purpcode.data.splits).
                train, held, template_dropped = split_by_template(
                    rows,
                    templates,
                    per_set=self.spec.held_out_per_set,
                    fraction=self.spec.held_out_fraction,
                    seed=self.config.seed,
                    name=name,
                    families=families,
                )
            else:
                train, held = split_rows(
                    rows,
                    per_set=self.spec.held_out_per_set,
                    fraction=self.spec.held_out_fraction,
                    seed=self.config.seed,
                    name=name,
                    families=families,
                )
            files = set_files(self.out, name)
            write_jsonl_atomic(files["train"], train)
            write_jsonl_atomic(files["heldout"], held)
            sets[name] = {
                "oracle": SET_ORACLES[name],
                "origin": "import" if name in covered else "synthesis",
                "train": len(train),
                "heldout": len(held),
                "template_split_dropped": template_dropped,
                "split_families": len(set(families)) if families is not None else len(rows),
                "files": {k: str(v.name) for k, v in files.items()},
                "by_strategy": dict(Counter(r.strategy for r in rows)),
                "by_cwe": dict(Counter(r.cwe or "none" for r in rows)),
                "by_source": dict(Counter(r.source for r in rows)),
            }
        self.timings["dedup_split_write"] = round(time.perf_counter() - t0, 3)
        self.manifest_steps["dedup"] = {"params": d.model_dump(), "per_set": dedup_stats}
        total = {k: sum(s[k] for s in sets.values()) for k in ("train", "heldout")}
        return {
            "run": self.config.run,
            "stage": "synthesis",
            "source": self.spec.source,
            "seed": self.config.seed,
            "generator": self.generator_stats,
            "analyzer": self.config.services.analyzer.model_dump(mode="json"),
            "held_out": {"per_set": self.spec.held_out_per_set, "fraction": self.spec.held_out_fraction},
            "sets": sets,
            "totals": total,
            "steps": self.manifest_steps,
            "resumed_steps": list(self.store.resumed),
            "timings": dict(self.timings),
            "fingerprint": self.run_fingerprint(),
        }


def run_synthesis(config: StageConfig, out: str | Path, **kw: Any) -> dict[str, Any]:
    """Run (or resume) the synthesis stage; returns the manifest. A finished run with the same settings is a no-op."""
    import json

    out = Path(out)
    synth = Synthesis(config, out, **kw)
    marker = out / SUCCESS_MARKER
    if marker.is_file() and (out / MANIFEST).is_file():
        try:
            done = json.loads(marker.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            done = {}
        if done.get("fingerprint") == synth.run_fingerprint():
            LOG.info("synthesis already complete in %s (same settings): nothing to do", out)
            manifest: dict[str, Any] = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
            return manifest
    marker.unlink(missing_ok=True)
    return synth.run()
