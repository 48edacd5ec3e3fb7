"""Cheap quality check, code extraction, context windows, and MinHash dedup on near-duplicate fixtures."""

from __future__ import annotations

from purpcode.synthesis.dedup import dedup, shingles
from purpcode.synthesis.text import (
    Draft,
    blank_lines,
    clean_rewrite,
    context_window,
    extract_code,
    quality_problem,
)


def test_quality_check_accepts_requests_and_rejects_noise() -> None:
    assert (
        quality_problem("Can you write a Python function that pings a host and returns the output?") is None
    )
    assert quality_problem(" picklets&ox%!?@ques\x1bddddere ju```") is not None
    assert quality_problem("[]\x11 WHEREaz=+-*/%!?:; (HER&|^\x1d;o%!?:;nct\x0cp") is not None
    assert quality_problem("short") == "too_short"
    assert quality_problem("I'm sorry, but I can't help with writing that code for you.") == "refusal"
    assert quality_problem("please write code " * 20) == "repetition"
    assert (
        quality_problem("Here is code:\n```python\nx = 1\n```\nuse it in your program please") == "has_code"
    )
    assert quality_problem("zebra quantum flux modulator hyperdrive engine") == "not_language"


def test_clean_rewrite_strips_chat_wrapping() -> None:
    assert clean_rewrite('Sure! Here is the rewritten request: "Write a tool that pings hosts."') == (
        "Write a tool that pings hosts."
    )


def test_extract_code_prefers_python_blocks() -> None:
    text = "Intro\n```bash\nls\n```\n```python\nimport os\nos.system('ls')\n```"
    assert extract_code(text) == "import os\nos.system('ls')\n"
    assert extract_code("import subprocess\nsubprocess.call('x', shell=True)") is not None
    assert extract_code("just words, no code here at all") is None


def test_context_window_and_blanking() -> None:
    code = "\n".join(f"line{i}" for i in range(1, 41)) + "\n"
    start, end, window = context_window(code, [20])
    assert (start, end) == (10, 30)
    assert window.splitlines()[0] == "line10" and window.splitlines()[-1] == "line30"
    blanked = blank_lines(window, [20, 21], start, "TODO")
    assert "line20" not in blanked and "line21" not in blanked and blanked.count("# TODO") == 1
    assert context_window(code, [2])[0] == 1


LONG = (
    "Write a Python function that reads a YAML configuration file uploaded by a user, validates the keys "
    "against an allow list, merges it with the defaults and returns the resulting dictionary to the caller."
)


def _draft(text: str, template: str = "t", payload: str = "") -> Draft:
    return Draft("codesec", "general", template, text, payload=payload)


def test_dedup_exact_then_near_duplicates() -> None:
    items = [
        _draft(LONG),
        _draft(LONG),  # exact duplicate
        _draft(LONG.replace("returns", "gives back")),  # near duplicate
        _draft("Implement binary search over a sorted list of integers and return the index or minus one."),
    ]
    kept, stats = dedup(
        items,
        exact=lambda d: d.messages(),
        text=lambda d: d.dedup_text(),
        group=lambda d: d.dedup_group(),
        num_perm=250,
        threshold=0.4,
    )
    assert [d.instruction for d in kept] == [items[0].instruction, items[3].instruction]
    assert stats == {"before": 4, "exact_removed": 1, "near_removed": 1, "after": 2}


def test_dedup_compares_only_within_a_group_and_uses_payload() -> None:
    a = _draft(LONG, template="a")
    b = _draft(LONG.replace("returns", "gives back"), template="b")  # other template: not compared
    # Same template wording, different slot values: the payloads decide (they differ).
    c = _draft(
        "What is SQL injection (CWE-89) and how do I prevent it in Python code?", "q", "CWE-89 SQL injection"
    )
    d = _draft(
        "What is OS command injection (CWE-78) and how do I prevent it in Python code?",
        "q",
        "CWE-78 OS command injection",
    )
    kept, stats = dedup(
        [a, b, c, d],
        exact=lambda x: x.messages(),
        text=lambda x: x.dedup_text(),
        group=lambda x: x.dedup_group(),
    )
    assert len(kept) == 4 and stats["near_removed"] == 0
    kept, _ = dedup([a, b], exact=lambda x: x.messages(), text=lambda x: x.dedup_text(), group=lambda x: "")
    assert len(kept) == 1


def test_dedup_exact_only_mode_and_shingles() -> None:
    items = [_draft(LONG), _draft(LONG.replace("returns", "gives back"))]
    kept, stats = dedup(items, exact=lambda x: x.messages(), text=lambda x: x.dedup_text(), near=False)
    assert len(kept) == 2 and stats["near_removed"] == 0
    assert shingles("a b", 3) == {"a b"}
    assert "a b c" in shingles("A b c d", 3)
