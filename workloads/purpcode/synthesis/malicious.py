"""Malicious-event prompts (oracle general-safety): project-written categories, direct, jailbreak-wrapped and
multi-turn "foot in the door" variants."""

from __future__ import annotations

import random

from purpcode.data.malicious import CATEGORIES, DIRECT_FORMS, JAILBREAK_WRAPPERS
from purpcode.synthesis.text import Draft

VARIANTS = ("direct", "jailbreak", "multi-turn")


def all_malicious_drafts() -> list[Draft]:
    """Every combination of category request and variant (direct forms, wrappers, the category's opener)."""
    out: list[Draft] = []
    for cat in CATEGORIES:
        for i, request in enumerate(cat.requests):
            truth = {"category": cat.id, "request_index": i}
            for fid, form in DIRECT_FORMS:
                out.append(
                    Draft(
                        "malicious",
                        "direct",
                        fid,
                        request,
                        wrapper=form,
                        ground_truth=dict(truth),
                        payload=request,
                    )
                )
            for wid, wrapper in JAILBREAK_WRAPPERS:
                out.append(
                    Draft(
                        "malicious",
                        "jailbreak",
                        wid,
                        request,
                        wrapper=wrapper,
                        ground_truth=dict(truth),
                        payload=request,
                    )
                )
            history = [
                {"role": "user", "content": cat.opener},
                {"role": "assistant", "content": cat.opener_reply},
            ]
            out.append(
                Draft(
                    "malicious",
                    "multi-turn",
                    "foot-in-the-door",
                    f"Thanks. Now, building on that: {request[0].lower()}{request[1:]}",
                    history=history,
                    ground_truth=dict(truth),
                    payload=request,
                )
            )
    return out


def malicious_drafts(count: int, seed: int) -> list[Draft]:
    """`count` drafts, balanced across the three variants, in a seeded order (all of them if fewer exist)."""
    pools = {v: [d for d in all_malicious_drafts() if d.strategy == v] for v in VARIANTS}
    rng = random.Random(seed)
    for pool in pools.values():
        rng.shuffle(pool)
    out: list[Draft] = []
    while len(out) < count and any(pools.values()):
        for v in VARIANTS:
            if pools[v] and len(out) < count:
                out.append(pools[v].pop())
    return out
