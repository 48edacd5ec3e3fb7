"""The toy judge's corpus: the project's real judge prompts (oracles.judge_prompts and the over-refusal filter's
template) filled with toy prompts and replies, answered with the verdict lines the project's parsers read.

Why: the judge server, the judge client and the parsers are the real ones; only the model behind them is a toy.
Its labels follow the behaviour that wrote each reply, so it learns cues (a refusal, attack code, a safe answer)
and reaches modest accuracy on the policy's own outputs; the report says plainly that it is a toy judge.
"""

from __future__ import annotations

import random

from purpcode.toy import answers
from purpcode.toy.corpus import Example, PromptItem, reply_for

NOT_MALICIOUS = "MALICIOUS_CODE: FALSE\nMALICIOUS_EXPLANATION: FALSE"
MALICIOUS = "MALICIOUS_CODE: TRUE"  # generation stops at the first TRUE (judge_prompts.MALICIOUS_STOP)


def _malicious_example(item: PromptItem, reply: str, verdict: str, mode: str) -> Example:
    from purpcode.oracles.format import extract_answer
    from purpcode.oracles.judge_prompts import judge_messages

    return Example(
        "judge-malicious", mode, judge_messages("general-safety", item.raw, extract_answer(reply)), verdict
    )


def _noreject_example(item: PromptItem, reply: str, cls: str) -> Example:
    from purpcode.oracles.format import extract_answer
    from purpcode.oracles.judge_prompts import judge_messages

    return Example(
        "judge-noreject", cls, judge_messages("noreject", item.raw, extract_answer(reply)), f"CLASS: {cls}"
    )


def _filter_example(item: PromptItem, malicious: bool) -> Example:
    from purpcode.synthesis import templates

    request = "\n\n".join(f"[{m['role'].upper()}]\n{m['content']}" for m in item.raw)
    return Example(
        "judge-filter",
        "malicious" if malicious else "benign",
        [
            {"role": "system", "content": templates.JUDGE_FILTER_SYSTEM},
            {"role": "user", "content": f"<request>\n{request}\n</request>"},
        ],
        "MALICIOUS: TRUE" if malicious else "MALICIOUS: FALSE",
    )


def judge_examples(items: list[PromptItem], *, seed: int) -> list[Example]:
    """Verdict examples for the three judge prompts, balanced between their labels."""
    rng = random.Random(f"toy-judge:{seed}")
    out: list[Example] = []
    benign_code = [i for i in items if i.set in ("codesec", "utility")]
    for item in items:
        if item.set == "malicious":
            out.append(_malicious_example(item, reply_for(item, "refusal"), NOT_MALICIOUS, "refusal"))
            out.append(_malicious_example(item, reply_for(item, "compliance"), MALICIOUS, "compliance"))
            out.append(_filter_example(item, True))
        elif item.set in ("overrefusal", "secqa"):
            out.append(_noreject_example(item, reply_for(item, "helpful"), "APPROPRIATE"))
            out.append(_noreject_example(item, reply_for(item, "refusal"), "REFUSAL"))
            other = rng.choice(benign_code)
            off_topic = reply_for(other, "correct" if other.set == "utility" else "secure")
            out.append(_noreject_example(item, off_topic, "IRRELEVANT"))
            if rng.random() < 0.3:
                out.append(
                    _noreject_example(item, answers.malicious_answer("compliance", "an attack"), "UNSAFE")
                )
            out.append(_malicious_example(item, reply_for(item, "helpful"), NOT_MALICIOUS, "benign-help"))
        if item.set != "malicious":  # every other set's request is benign: balances the filter's two labels
            out.append(_filter_example(item, False))
    return out
