"""Over-refusal probes (oracle noreject): benign requests full of security trigger words, judge-filtered.

The judge screens each probe; probes it calls malicious are dropped (they would teach refusing to be wrong).
Without a judge URL the filter is skipped and the manifest says so.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from typing import Any

from purpcode.data.rules import Rule
from purpcode.synthesis import templates
from purpcode.synthesis.text import Draft

LOG = logging.getLogger(__name__)


def _triggers(rule: Rule) -> list[str]:
    if rule.triggers:
        return list(rule.triggers)
    return [rule.name.lower(), "attack", "exploit"]


def overrefusal_drafts(rules: list[Rule], per_cwe: int, seed: int) -> list[Draft]:
    """`per_cwe` probes for each CWE rule, each from a different template and trigger pair."""
    out: list[Draft] = []
    for rule in rules:
        if rule.kind != "cwe" or per_cwe <= 0:
            continue
        rng = random.Random(f"{seed}:{rule.id}")
        tpl = list(templates.OVERREFUSAL)
        rng.shuffle(tpl)
        words = _triggers(rule)
        task = rule.task or f"avoids {rule.name.lower()}"
        for k in range(min(per_cwe, len(tpl))):
            tid, text = tpl[k]
            t0, t1 = words[k % len(words)], words[(k + 1) % len(words)]
            out.append(
                Draft(
                    "overrefusal",
                    "trigger-words",
                    tid,
                    text.format(task=task, name=rule.name, cwe=rule.id, t0=t0, t1=t1),
                    cwe=rule.cwe,
                    ground_truth={"cwe": rule.cwe, "triggers": [t0, t1], "template": tid},
                    payload=f"{rule.id} {rule.name} {task} {t0} {t1}",
                )
            )
    return out


def judge_filter(drafts: list[Draft], judge: Any) -> tuple[list[Draft], dict[str, Any]]:
    """Keep the probes the judge does not call malicious. `judge` is a purpcode.oracles JudgeClient."""
    from purpcode.oracles import parse_malicious

    async def screen_all() -> list[bool | None]:
        async def screen(d: Draft) -> bool | None:
            request = "\n\n".join(f"[{m['role'].upper()}]\n{m['content']}" for m in d.messages())
            reply = await judge.chat(
                [
                    {"role": "system", "content": templates.JUDGE_FILTER_SYSTEM},
                    {"role": "user", "content": f"<request>\n{request}\n</request>"},
                ],
                stop=templates.JUDGE_FILTER_STOP,
            )
            verdict = parse_malicious(reply.text)
            if reply.stop_reason in templates.JUDGE_FILTER_STOP:
                return True
            if verdict.code is None and verdict.explanation is None:
                return None
            return verdict.malicious

        try:
            return list(await asyncio.gather(*(screen(d) for d in drafts)))
        finally:
            await judge.aclose()

    verdicts = asyncio.run(screen_all()) if drafts else []
    kept = [d for d, v in zip(drafts, verdicts, strict=True) if not v]
    counts = Counter("malicious" if v else ("unparsed" if v is None else "benign") for v in verdicts)
    stats = {"judged": len(drafts), "kept": len(kept), "verdicts": dict(counts)}
    LOG.info("over-refusal judge filter: kept %d of %d (%s)", len(kept), len(drafts), dict(counts))
    return kept, stats
