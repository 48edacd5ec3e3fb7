"""The response format gate, answer extraction and fenced-code extraction (recipe: every stage).

A response is `## Analysis` (>= 16 chars) then `## Answer` (>= 8 chars); it fails when it does not match, when the
answer is empty, or when any 32-char substring occurs 8+ times (overlapping occurrences count: a degenerate loop).
Only the answer part goes to the oracles.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field

from purpcode.oracles.config import OracleConfig

ANALYSIS_HEADER = "## Analysis"
ANSWER_HEADER = "## Answer"
_PY_LANGS = frozenset({"python", "py", "python3", "py3", "python2", "pycon", "ipython", "sage"})
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*?)[ \t]*$")


@dataclass(frozen=True)
class FormatResult:
    """Outcome of the gate; `answer` is what the oracles judge (empty when the gate failed)."""

    ok: bool
    reason: str = ""
    analysis: str = ""
    answer: str = ""


def split_sections(response: str, *, prefilled: bool = True) -> tuple[str, str] | None:
    """(analysis, answer) when the response has the two sections in order, else None.

    The answer starts after the first `## Answer` header line; the analysis is what lies between the headers.
    """
    text = response.replace("\r\n", "\n").strip()
    if text.startswith(ANALYSIS_HEADER):
        head = text[len(ANALYSIS_HEADER) :]
        if not head.startswith("\n"):
            return None  # e.g. '## Analysis of X' is another header, not ours
        body = head[1:]
    elif prefilled:
        body = text  # the generation prompt ended with the header, so the response starts inside the analysis
    else:
        return None
    marker = "\n" + ANSWER_HEADER + "\n"
    idx = body.find(marker)
    if idx < 0:
        if body.startswith(ANSWER_HEADER + "\n"):
            return "", body[len(ANSWER_HEADER) + 1 :]
        return None
    return body[:idx], body[idx + len(marker) :]


def has_repetition(text: str, length: int = 32, max_count: int = 8) -> str | None:
    """The first `length`-char substring occurring `max_count`+ times (overlaps count), or None.

    Rolling hashes over all windows (numpy) find candidates in about a millisecond for a long response; candidates
    are confirmed on the exact strings, so hash collisions cannot fail a good response.
    """
    n = len(text)
    if n < length or n - length + 1 < max_count:
        return None
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy ships with every image that runs oracles
        return _has_repetition_py(text, length, max_count)
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    windows = n - length + 1
    h = np.zeros(windows, dtype=np.uint64)
    base = np.uint64(1_000_003)
    with np.errstate(over="ignore"):
        for j in range(length):
            h = h * base + codes[j : j + windows]
    ordered = np.sort(h)
    # a value seen max_count+ times spans max_count equal neighbours once sorted
    runs = np.nonzero(ordered[max_count - 1 :] == ordered[: windows - max_count + 1])[0]
    if runs.size == 0:
        return None
    for value in np.unique(ordered[runs]):
        positions = np.nonzero(h == value)[0]
        seen: dict[str, int] = {}
        for p in positions.tolist():
            sub = text[p : p + length]
            seen[sub] = seen.get(sub, 0) + 1
            if seen[sub] >= max_count:
                return sub
    return None


def _has_repetition_py(text: str, length: int, max_count: int) -> str | None:
    seen: dict[str, int] = {}
    for i in range(len(text) - length + 1):
        sub = text[i : i + length]
        count = seen.get(sub, 0) + 1
        if count >= max_count:
            return sub
        seen[sub] = count
    return None


def check_format(response: str, config: OracleConfig | None = None) -> FormatResult:
    """Apply the gate; on success `answer` holds the stripped answer section."""
    cfg = config or OracleConfig()
    sections = split_sections(response, prefilled=cfg.analysis_prefilled)
    if sections is None:
        return FormatResult(False, f"missing sections: expected {cfg.format_rule()}")
    analysis, answer = sections[0].strip(), sections[1].strip()
    if len(analysis) < cfg.analysis_min_chars:
        return FormatResult(False, f"analysis too short ({len(analysis)} < {cfg.analysis_min_chars} chars)")
    if not answer:
        return FormatResult(False, "empty answer")
    if len(answer) < cfg.answer_min_chars:
        return FormatResult(False, f"answer too short ({len(answer)} < {cfg.answer_min_chars} chars)")
    rep = has_repetition(response, cfg.repeat_substring_length, cfg.repeat_max_count)
    if rep is not None:
        return FormatResult(False, f"degenerate repetition: {rep!r} occurs {cfg.repeat_max_count}+ times")
    return FormatResult(True, "", analysis, answer)


def extract_answer(response: str) -> str:
    """The answer part (after the first `## Answer` header) without judging the format; whole text if absent."""
    text = response.replace("\r\n", "\n")
    idx = text.find("\n" + ANSWER_HEADER + "\n")
    if idx >= 0:
        return text[idx + len(ANSWER_HEADER) + 2 :].strip()
    if text.startswith(ANSWER_HEADER + "\n"):
        return text[len(ANSWER_HEADER) + 1 :].strip()
    return text.strip()


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block: its language tag (lower-case first word of the info string) and body."""

    lang: str
    code: str
    closed: bool = True
    index: int = 0
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def tagged_python(self) -> bool:
        return self.lang in _PY_LANGS

    @functools.cached_property
    def is_python(self) -> bool:
        """Tagged Python, or untagged and parses as Python."""
        if self.tagged_python:
            return True
        if self.lang:
            return False
        return parses(self.code)


def parses(code: str) -> bool:
    """True when the code is valid Python syntax."""
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def extract_code_blocks(text: str) -> list[CodeBlock]:
    """Every fenced block (``` or ~~~, any length, up to 3 spaces indent), Python blocks first, else in order.

    A block left open at the end (the model ran out of tokens) is kept with `closed=False`: the analyzer must see
    it, and a test run of it fails on its own.
    """
    blocks: list[CodeBlock] = []
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence = m.group("fence")
        indent = len(m.group("indent"))
        info = m.group("info").strip()
        lang = info.split()[0].lower().strip("{}.") if info else ""
        body: list[str] = []
        j = i + 1
        closed = False
        while j < len(lines):
            close = re.match(r"^ {0,3}(`{3,}|~{3,})[ \t]*$", lines[j])
            if close and close.group(1)[0] == fence[0] and len(close.group(1)) >= len(fence):
                closed = True
                break
            line = lines[j]
            # strip up to the opening fence's indentation, as CommonMark does
            k = 0
            while k < indent and k < len(line) and line[k] == " ":
                k += 1
            body.append(line[k:])
            j += 1
        blocks.append(
            CodeBlock(
                lang=lang, code="\n".join(body), closed=closed, index=len(blocks), tags=tuple(info.split())
            )
        )
        i = j + 1
    return sorted(blocks, key=lambda b: (not b.is_python, b.index))


def python_blocks(text: str) -> list[CodeBlock]:
    """The answer's Python blocks in order: the python-tagged ones, or when there are none, untagged ones that parse.

    Untagged blocks are ignored next to tagged ones because short shell lines ('ls', 'make test') parse as Python.
    """
    blocks = sorted(extract_code_blocks(text), key=lambda b: b.index)
    tagged = [b for b in blocks if b.tagged_python]
    return tagged or [b for b in blocks if b.is_python]


def code_to_run(answer: str) -> str:
    """What correctness executes: the Python blocks joined (all blocks joined when none is Python)."""
    chosen = python_blocks(answer) or sorted(extract_code_blocks(answer), key=lambda b: b.index)
    return "\n\n".join(b.code.strip("\n") for b in chosen).strip()
