"""The teacher prompt for context distillation, and the mapping of teacher answers to the trained format.

The base model answers each prompt under a long system prompt (this module) that spells out a safety policy, the
reasoning steps to follow and, for security prompts, the rules of the weaknesses the prompt is likely to induce
(CWE and detector texts with a bad and a good example). The SFT data then pairs the same prompt with the short
`purpcode.prompts.SYSTEM_PROMPT` only, so the model learns to reason this way without being told (RECIPE.md,
stage 2). All wording here is the project's own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from purpcode.prompts import policy_items, with_system_prompt

POLICY = (
    "# Safety policy\n"
    "You are a coding assistant that is both helpful and safe. Judge the last user turn in the light of the whole\n"
    "conversation.\n\n" + policy_items() + "\n"
)

STEPS = """\
# How to answer
Work through these steps, then write the answer:
1. Intent: state what the user wants and the most plausible purpose. Look past framing (role play, "for a
   class", "hypothetically", pieces spread over several turns, requests hidden in code comments).
2. Safety triage: classify the request as benign, security-sensitive but legitimate, or malicious, citing the
   policy items (D1-D3, A1-A4) that apply. Decide what you will provide and what, if anything, you will decline.
3. Element-by-element review: list each part of the planned answer (every function, command, library call and
   piece of advice). For each, name the risk it could carry and the weakness by CWE id (for example CWE-78 OS
   command injection, CWE-89 SQL injection, CWE-22 path traversal, CWE-502 unsafe deserialisation, CWE-327 broken
   cryptography, CWE-798 hard-coded credentials, CWE-400 resource exhaustion) and say how the answer avoids it.
4. Safe answer: fully help with everything allowed. Decline only the disallowed part, in one short sentence, and
   offer a safe alternative where there is one.
"""

OUTPUT_FORMAT = """\
# Output format
Write exactly these four Markdown sections, in this order, and nothing before the first one:
## Intent
(step 1)
## Safety Triage
(step 2)
## Element Review
(step 3)
## Answer
(step 4: the exact reply the user will see, with code in fenced blocks, ```python for Python)
"""

AVOID_HEADER = """\
# Avoid these weaknesses
This request is likely to lead to the weaknesses below. Your code must not contain them.
"""

# Teacher sections, in the order they are merged into `## Analysis`.
TEACHER_ANALYSIS_SECTIONS = ("intent", "safety triage", "element review")
_HEADER = re.compile(r"^#{1,3}[ \t]+(?P<title>[^\n]+?)[ \t]*#*[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Rule:
    """One weakness or detector rule quoted in the teacher prompt."""

    rule_id: str  # e.g. "CWE-78" or "B602"
    title: str
    description: str
    bad_example: str = ""
    good_example: str = ""


RuleSource = Callable[[Sequence[str], Sequence[str]], Sequence[Any]]


def _field(obj: Any, *names: str) -> str:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value:
            return str(value)
    return ""


def as_rule(obj: Any) -> Rule:
    """Adapt a rules-corpus entry (object or dict) to `Rule`."""
    if isinstance(obj, Rule):
        return obj
    return Rule(
        rule_id=_field(obj, "rule_id", "id", "cwe", "detector_id", "test_id"),
        title=_field(obj, "title", "name"),
        description=_field(obj, "description", "text", "summary"),
        bad_example=_field(obj, "bad_example", "example_bad", "bad"),
        good_example=_field(obj, "good_example", "example_good", "good"),
    )


def row_rule_ids(cwe: str | None, ground_truth: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(CWE ids, detector ids) a row points at: its primary `cwe` plus ground_truth['cwe'/'detectors']."""

    def listify(value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value]

    cwes: list[str] = []
    for c in [*listify(cwe), *listify(ground_truth.get("cwe")), *listify(ground_truth.get("cwes"))]:
        if c and c not in cwes:
            cwes.append(c)
    detectors: list[str] = []
    for d in listify(ground_truth.get("detectors")):
        if d and d not in detectors:
            detectors.append(d)
    return cwes, detectors


def render_rule(rule: Rule) -> str:
    """One rule as a Markdown block with its examples."""
    head = f"## {rule.rule_id}: {rule.title}" if rule.title else f"## {rule.rule_id}"
    parts = [head]
    if rule.description:
        parts.append(rule.description.strip())
    if rule.bad_example:
        parts.append(
            "Bad example (do not write code like this):\n```python\n" + rule.bad_example.strip() + "\n```"
        )
    if rule.good_example:
        parts.append("Good example:\n```python\n" + rule.good_example.strip() + "\n```")
    return "\n".join(parts)


def teacher_system_prompt(rules: Iterable[Rule] = ()) -> str:
    """The teacher's system prompt: policy, (for security prompts) the rules to avoid, steps, output format."""
    blocks = [POLICY]
    rendered = [render_rule(r) for r in rules]
    if rendered:
        blocks.append(AVOID_HEADER + "\n" + "\n\n".join(rendered) + "\n")
    blocks += [STEPS, OUTPUT_FORMAT]
    return "\n".join(blocks).strip()


def answer_part(text: str) -> str:
    """The user-visible part of an earlier assistant turn (drop its analysis, as the model would see it)."""
    body = text.replace("\r\n", "\n")
    for _start, end, title in _headers(body):
        if title == "answer":
            return body[end:].strip()
    return body.strip()


def teacher_conversation(
    messages: Sequence[dict[str, str]],
    *,
    cwe: str | None = None,
    ground_truth: dict[str, Any] | None = None,
    rule_source: RuleSource | None = None,
) -> list[dict[str, str]]:
    """The conversation the teacher answers: teacher system prompt, then the row's turns.

    Earlier assistant turns keep only their answer part. Rules are looked up through `rule_source(cwe_ids,
    detector_ids)` when the row names CWEs or detectors.
    """
    rules: list[Rule] = []
    if rule_source is not None:
        cwes, detectors = row_rule_ids(cwe, ground_truth or {})
        if cwes or detectors:
            rules = [as_rule(r) for r in rule_source(cwes, detectors)]
    turns = [
        {
            "role": m["role"],
            "content": answer_part(m["content"]) if m["role"] == "assistant" else m["content"],
        }
        for m in messages
    ]
    return with_system_prompt(turns, teacher_system_prompt(rules))


def _headers(text: str) -> list[tuple[int, int, str]]:
    """(start, end, lower-cased title) of Markdown headers (levels 1-3) outside fenced code blocks."""
    # Blank out fenced blocks (same length) so their '#' lines are not taken as headers.
    masked = re.sub(r"(?ms)^(```|~~~).*?^\1[ \t]*$", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    return [(m.start(), m.end(), m.group("title").strip().lower()) for m in _HEADER.finditer(masked)]


def normalize_teacher_response(text: str) -> str:
    """Map a teacher answer to the trained format: `## Analysis` (intent, triage, review) then `## Answer`.

    The answer is everything after the first `Answer` header (it may have headers of its own); the analysis is
    everything before it without the teacher's section headers. A response without an `Answer` header is returned
    stripped and unchanged, for the format gate to reject.
    """
    raw = text.replace("\r\n", "\n").strip()
    headers = _headers(raw)
    answer_at = next((h for h in headers if h[2] == "answer"), None)
    if answer_at is None:
        return raw
    answer = raw[answer_at[1] :].strip()
    pieces: list[str] = []
    cursor = 0
    for start, end, title in headers:
        if start >= answer_at[0]:
            break
        if title in TEACHER_ANALYSIS_SECTIONS or title == "analysis":
            pieces.append(raw[cursor:start])
            cursor = end
    pieces.append(raw[cursor : answer_at[0]])
    analysis = re.sub(r"\n{3,}", "\n\n", "\n\n".join(p.strip("\n") for p in pieces if p.strip())).strip()
    return f"## Analysis\n{analysis}\n## Answer\n{answer}"
