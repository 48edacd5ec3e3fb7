"""Rule2Code: vulnerable seed code per rule and per detector, kept only when the analyzer really flags it.

Candidates come from two places: the generator model (seedsPerRule samples per rule) and the corpus's own
vulnerable example for each CWE (a "corpus seed"). Both go through the same confirmation: the analyzer must report
a finding that belongs to the rule (same detector, or same CWE). Findings are attached to each confirmed seed.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from typing import Any

from purpcode.analyzers import SEVERITY_RANK
from purpcode.data.rules import Rule
from purpcode.synthesis import templates
from purpcode.synthesis.text import digest, extract_code, signatures
from purpcode.synthesis.writer import Writer

LOG = logging.getLogger(__name__)
# Confirmation counts every finding (LOW and up): "really flagged" is the recipe's bar; severities are kept on the
# seed so consumers can filter further.
CONFIRM_MIN_SEVERITY = "LOW"


def rule_task(rule: Rule, code: str = "") -> str:
    """A benign description of what the code for this rule does (detector rules describe the seed itself)."""
    if rule.kind == "cwe" and rule.task:
        return rule.task
    sigs = signatures(code)
    if sigs:
        return "implements " + ", ".join(f"`{s}`" for s in sigs[:3])
    return rule.task or f"performs a small task using the API the check '{rule.name}' is about"


def seed_conversation(rule: Rule) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": templates.SEED_SYSTEM},
        {"role": "user", "content": templates.seed_request(rule.text(), rule_task(rule), rule.vulnerable)},
    ]


def _finding_dict(f: Any) -> dict[str, Any]:
    return {
        "detector_id": f.detector_id,
        "name": f.name,
        "cwe": f.cwe,
        "severity": f.severity,
        "confidence": f.confidence,
        "line": f.line,
        "message": f.message,
        "analyzer": f.analyzer,
    }


def confirm(rule: Rule, result: Any) -> tuple[list[Any], str | None]:
    """The findings that belong to `rule`, or why the candidate is rejected."""
    if result.error:
        return [], "unparseable"
    if not result.findings:
        return [], "no_findings"
    relevant = [
        f
        for f in result.findings
        if rule.matches(f) and SEVERITY_RANK[f.severity] >= SEVERITY_RANK[CONFIRM_MIN_SEVERITY]
    ]
    if not relevant:
        return [], "unrelated_findings"
    return relevant, None


def run_rule2code(
    rules: list[Rule],
    writer: Writer,
    analyzer: Any,
    *,
    seeds_per_rule: int,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Generate and confirm seeds. Returns (seed records, stats for the manifest)."""
    candidates: list[tuple[Rule, str, str | None]] = []  # rule, origin, code (None: no code in the answer)
    for rule in rules:
        if rule.vulnerable.strip() and rule.source != "mitre":
            candidates.append((rule, "corpus", rule.vulnerable))
    if writer.enabled and seeds_per_rule > 0:
        convs = [seed_conversation(r) for r in rules]
        outputs = writer.generate(convs, n=seeds_per_rule)
        for rule, outs in zip(rules, outputs, strict=True):
            for text in outs:
                candidates.append((rule, "model", extract_code(text)))
    rejected: Counter[str] = Counter()
    with_code = [(r, o, c) for r, o, c in candidates if c]
    rejected["no_code"] = len(candidates) - len(with_code)
    results = analyzer.analyze_batch_detailed([c for _, _, c in with_code]) if with_code else []
    seeds: list[dict[str, Any]] = []
    seen: set[str] = set()
    per_rule: dict[str, Counter[str]] = defaultdict(Counter)
    for (rule, origin, code), result in zip(with_code, results, strict=True):
        assert code is not None
        per_rule[rule.id][f"{origin}_candidates"] += 1
        relevant, reason = confirm(rule, result)
        if reason:
            rejected[reason] += 1
            continue
        key = digest([rule.id, code])
        if key in seen:
            rejected["duplicate"] += 1
            continue
        seen.add(key)
        per_rule[rule.id][f"{origin}_confirmed"] += 1
        seeds.append(
            {
                "seed_id": f"{rule.id}/{origin}/{key}",
                "rule_id": rule.id,
                "rule_kind": rule.kind,
                "cwe": rule.cwe,
                "origin": origin,
                "code": code,
                "findings": [_finding_dict(f) for f in relevant],
                "lines": sorted({f.line for f in relevant if f.line}),
                "severity": max((f.severity for f in relevant), key=lambda s: SEVERITY_RANK[s]),
            }
        )
    origins = Counter(o for _, o, _ in candidates)
    confirmed = Counter(s["origin"] for s in seeds)
    stats = {
        "rules": len(rules),
        "candidates": dict(origins),
        "confirmed": dict(confirmed),
        "rejected": {k: v for k, v in rejected.items() if v},
        "per_rule": {k: dict(v) for k, v in sorted(per_rule.items())},
        "by_cwe": dict(Counter(s["cwe"] or "none" for s in seeds)),
        "by_severity": dict(Counter(s["severity"] for s in seeds)),
        "confirm_min_severity": CONFIRM_MIN_SEVERITY,
    }
    LOG.info("rule2code: %d candidates, %d confirmed seeds", len(candidates), len(seeds))
    return seeds, stats
