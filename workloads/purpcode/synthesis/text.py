"""Text helpers shared by the synthesis steps: prompt drafts, the cheap quality check, code extraction, ids.

Why drafts: every prompt starts from a template the project wrote (so a weak or random generator still yields every
strategy) and may be rewritten by the generator model; a draft keeps the parts apart (instruction, code, wrapper,
earlier turns) so the model only rewrites the instruction and the dedup compares what actually varies.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

REQUEST_SLOT = "{request}"


@dataclass
class Draft:
    """One prompt before it becomes a TaskRow."""

    set: str
    strategy: str
    template: str
    instruction: str
    code: str = ""
    wrapper: str = REQUEST_SLOT
    history: list[dict[str, str]] = field(default_factory=list)
    cwe: str | None = None
    ground_truth: dict[str, Any] = field(default_factory=dict)
    origin: str = "template"  # who wrote the instruction: template or model
    seed_origin: str = ""  # codesec: corpus or model seed
    rewrite: bool = True  # may the generator rewrite the instruction
    payload: str = ""  # what the template was filled with (dedup compares this for templated drafts)

    def request_text(self) -> str:
        if not self.code:
            return self.instruction
        return f"{self.instruction}\n\n```python\n{self.code.rstrip()}\n```"

    def messages(self) -> list[dict[str, str]]:
        last = self.wrapper.replace(REQUEST_SLOT, self.request_text())
        return [*self.history, {"role": "user", "content": last}]

    def dedup_group(self) -> str:
        """Near-duplicates are only looked for among drafts written the same way (same set, strategy, template)."""
        return f"{self.set}|{self.strategy}|{self.template}"

    def dedup_text(self) -> str:
        """What varies between drafts of one group: for a templated draft the values the template was filled with
        (plus code), for a model-written one its whole request (never the wrapper's fixed words)."""
        if self.origin == "model" or not self.payload:
            return self.request_text()
        return f"{self.payload}\n{self.code}" if self.code else self.payload

    def source(self) -> str:
        parts = ["synthesis"]
        if self.seed_origin:
            parts.append(f"{self.seed_origin}-seed")
        parts.append(self.origin)
        return ":".join(parts)

    def to_record(self) -> dict[str, Any]:
        return {
            "set": self.set,
            "strategy": self.strategy,
            "template": self.template,
            "instruction": self.instruction,
            "code": self.code,
            "wrapper": self.wrapper,
            "history": self.history,
            "cwe": self.cwe,
            "ground_truth": self.ground_truth,
            "origin": self.origin,
            "seed_origin": self.seed_origin,
            "rewrite": self.rewrite,
            "payload": self.payload,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Draft:
        return cls(**rec)


# ------------------------------------------------------------------------------------------------ quality check

_COMMON = frozenset(
    "a an the to of and or in on for with is are be it this that you your my me i we can could would should "
    "please how what why when which write create make build function code python script program file data user "
    "use using from into as by if not do does need want help".split()
)
_REFUSAL = re.compile(
    r"\b(i can(?:no|')t|i cannot|i won'?t|i'm sorry|i am sorry|as an ai|i'm unable|i am unable|not able to help)\b",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(
    r"^\s*(?:sure[,!.]?\s*)?(?:here(?:'s| is) (?:the |a |your )?(?:rewritten|rephrased|new|revised)[^:\n]*:\s*)",
    re.IGNORECASE,
)


def clean_rewrite(text: str) -> str:
    """Strip the wrapping a chat model tends to add around a rewritten request (preamble, quotes, fences)."""
    t = _PREAMBLE.sub("", text.strip())
    t = t.strip().strip('"').strip("'").strip()
    if t.lower().startswith("request:"):
        t = t[len("request:") :].strip()
    return t


def quality_problem(
    text: str, *, min_chars: int = 15, max_chars: int = 4000, allow_code: bool = False
) -> str | None:
    """Why `text` is not a usable natural-language request, or None when it is.

    Cheap on purpose (it runs on every generated sample): length bounds, mostly letters, real words, no
    degenerate repetition, no refusal, no code fences unless allowed.
    """
    t = text.strip()
    if len(t) < min_chars:
        return "too_short"
    if len(t) > max_chars:
        return "too_long"
    if not allow_code and "```" in t:
        return "has_code"
    visible = [c for c in t if not c.isspace()]
    if sum(c.isalpha() for c in visible) < 0.6 * len(visible):
        return "not_text"
    if any(ord(c) < 32 and c not in "\n\t" for c in t) or "\ufffd" in t:
        return "control_chars"
    words = re.findall(r"[A-Za-z]{2,}", t)
    if len(words) < 4 or len({w.lower() for w in words} & _COMMON) < 3:
        return "not_language"
    if has_loop(t):
        return "repetition"
    if _REFUSAL.search(t):
        return "refusal"
    return None


def has_loop(text: str, length: int = 16, times: int = 4) -> bool:
    """True when some `length`-character substring occurs `times` or more times (a degenerate loop)."""
    if len(text) < length * times:
        return False
    counts: dict[str, int] = {}
    for i in range(0, len(text) - length + 1):
        s = text[i : i + length]
        counts[s] = counts.get(s, 0) + 1
        if counts[s] >= times:
            return True
    return False


# ------------------------------------------------------------------------------------------------ code

_FENCE = re.compile(r"```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str | None:
    """The Python code in a model answer: the first ```python block, else the first fenced block that parses,
    else the whole text when it parses as a non-trivial module."""
    blocks = _FENCE.findall(text)
    ordered = [b for lang, b in blocks if lang.lower() in ("python", "py", "python3")]
    ordered += [b for lang, b in blocks if lang.lower() not in ("python", "py", "python3")]
    for body in ordered:
        if body.strip() and parses(body):
            return body.strip("\n") + "\n"
    if ordered:
        return ordered[0].strip("\n") + "\n" if ordered[0].strip() else None
    stripped = text.strip()
    if stripped and parses(stripped):
        tree = ast.parse(stripped)
        if any(
            isinstance(n, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.ClassDef) for n in tree.body
        ):
            return stripped + "\n"
    return None


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def context_window(code: str, lines: list[int], radius: int = 10) -> tuple[int, int, str]:
    """The flagged lines +- `radius` lines of `code`: (first line, last line, text), 1-based inclusive."""
    all_lines = code.splitlines()
    if not all_lines:
        return 1, 0, ""
    flagged = [ln for ln in lines if 1 <= ln <= len(all_lines)] or [1]
    start = max(1, min(flagged) - radius)
    end = min(len(all_lines), max(flagged) + radius)
    return start, end, "\n".join(all_lines[start - 1 : end]) + "\n"


def blank_lines(code: str, lines: list[int], start: int, marker: str) -> str:
    """`code` (a window starting at line `start`) with the given absolute lines replaced by one `marker` comment."""
    out: list[str] = []
    placed = False
    targets = set(lines)
    for i, line in enumerate(code.splitlines(), start):
        if i in targets:
            if not placed:
                indent = line[: len(line) - len(line.lstrip())]
                out.append(f"{indent}# {marker}")
                placed = True
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def signatures(code: str) -> list[str]:
    """`def name(args)` lines of a module, for describing what a seed does."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = ", ".join(a.arg for a in node.args.args)
            out.append(f"{node.name}({args})")
    return out


# ------------------------------------------------------------------------------------------------ ids


def digest(obj: Any, n: int = 12) -> str:
    data = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:n]


def slug(text: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text or "none").strip("-") or "none"
