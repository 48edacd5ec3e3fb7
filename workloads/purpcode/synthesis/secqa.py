"""Security Q&A prompts (oracle noreject): questions about weaknesses a helpful assistant must answer."""

from __future__ import annotations

import random

from purpcode.data.rules import Rule
from purpcode.synthesis import templates
from purpcode.synthesis.text import Draft


def secqa_drafts(rules: list[Rule], count: int, seed: int) -> list[Draft]:
    """Up to `count` questions spread round-robin over the CWE rules, in a seeded order."""
    per_rule: list[list[Draft]] = []
    for rule in rules:
        if rule.kind != "cwe":
            continue
        drafts = []
        for tid, text in templates.SECQA:
            need = templates.SECQA_NEEDS_CODE.get(tid)
            if need and not rule.vulnerable.strip():
                continue
            if need == "both" and not rule.safe.strip():
                continue
            code = ""
            if need == "vulnerable":
                code = rule.vulnerable
            elif need == "both":
                code = f"# Version A\n{rule.vulnerable.rstrip()}\n\n# Version B\n{rule.safe.rstrip()}\n"
            drafts.append(
                Draft(
                    "secqa",
                    "secqa",
                    tid,
                    text.format(name=rule.name, cwe=rule.id),
                    code=code,
                    cwe=rule.cwe,
                    ground_truth={"cwe": rule.cwe},
                    payload=f"{rule.id} {rule.name}",
                )
            )
        random.Random(f"{seed}:{rule.id}").shuffle(drafts)
        per_rule.append(drafts)
    out: list[Draft] = []
    while len(out) < count and any(per_rule):
        for pool in per_rule:
            if pool and len(out) < count:
                out.append(pool.pop())
    return out
