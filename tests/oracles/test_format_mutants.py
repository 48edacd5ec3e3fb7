"""Format gate cases written to kill the mutants `make mutants` found surviving tests/oracles/test_format.py
(docs/testing.md lists them); each asserts behaviour the oracles rely on, not the mutant itself."""

from __future__ import annotations

import pytest

from purpcode.oracles import check_format, code_to_run, extract_answer, extract_code_blocks, has_repetition
from purpcode.oracles.format import _has_repetition_py, split_sections

A16 = "a" * 15 + "b"
ANS8 = "answer!!"


def test_split_sections_returns_the_exact_parts() -> None:
    assert split_sections(f"## Analysis\n{A16}\n## Answer\n{ANS8}") == (A16, ANS8)
    assert split_sections(f"## Analysis\n\n## Answer\n{ANS8}") == ("", ANS8)  # empty analysis: header at 0
    assert split_sections(f"## Answer\n{ANS8}") == ("", ANS8)  # prefilled analysis header, no analysis
    assert split_sections(f"## Answer\n{ANS8}", prefilled=False) is None


def test_failure_reasons_name_the_rule() -> None:
    short = check_format(f"## Analysis\n{A16[:-1]}\n## Answer\n{ANS8}")
    assert short.ok is False and short.reason == "analysis too short (15 < 16 chars)"
    brief = check_format(f"## Analysis\n{A16}\n## Answer\n{ANS8[:-1]}")
    assert brief.ok is False and brief.reason == "answer too short (7 < 8 chars)"
    unit = "".join(chr(ord("A") + i) for i in range(26)) + "012345"
    loop = check_format(f"## Analysis\n{A16}\n## Answer\n{unit * 8}")
    assert loop.ok is False and loop.reason.startswith("degenerate repetition: ") and loop.answer == ""
    good = check_format(f"## Analysis\n{A16}\n## Answer\n{ANS8}")
    assert (good.ok, good.reason, good.analysis, good.answer) == (True, "", A16, ANS8)


@pytest.mark.parametrize("n", [0, 5, 31, 32, 38])
def test_too_short_for_a_loop_is_never_one(n: int) -> None:
    """Fewer than 8 windows of 32 chars cannot hold 8 occurrences (the early exit, and no numpy shape errors)."""
    assert has_repetition("x" * n) is None


def test_lone_surrogates_are_checked_not_rejected() -> None:
    assert has_repetition("\ud800" * 40) == "\ud800" * 32
    assert has_repetition("\ud800" * 38) is None


@pytest.mark.parametrize(
    "text",
    ["x" * 39, "x" * 38, "ab" * 40, "abc" * 20 + "zzz", "".join(chr(65 + i % 26) for i in range(300)), ""],
)
def test_plain_fallback_matches_the_fast_check(text: str) -> None:
    plain, fast = _has_repetition_py(text, 32, 8), has_repetition(text)
    assert (plain is None) == (fast is None)
    for found in (plain, fast):  # either may name another qualifying substring; each really occurs 8+ times
        if found is not None:
            assert len(found) == 32 and sum(text.startswith(found, i) for i in range(len(text))) >= 8
    assert _has_repetition_py("y" * 39, 32, 8) == "y" * 32  # exactly 8 windows: 8 occurrences
    assert _has_repetition_py("y" * 38, 32, 8) is None  # 7 occurrences


def test_extract_answer_variants() -> None:
    assert extract_answer(f"\n## Answer\n{ANS8}") == ANS8  # header right after the first newline
    assert extract_answer(f"{A16}\r\n## Answer\r\n{ANS8}") == ANS8  # CRLF
    assert extract_answer(f"## Answer\n{ANS8}") == ANS8  # starts with the header


def test_code_block_fields() -> None:
    text = "intro\r\n```{python} title=x\r\nprint(1)\r\n```\r\n```bash\r\nls\r\n"
    closed, still_open = sorted(extract_code_blocks(text), key=lambda b: b.index)
    assert (closed.lang, closed.code, closed.closed, closed.index, closed.tags) == (
        "python",
        "print(1)",
        True,
        0,
        ("{python}", "title=x"),
    )
    assert (still_open.lang, still_open.closed, still_open.index) == ("bash", False, 1)


def test_indented_block_with_an_empty_line() -> None:
    (block,) = extract_code_blocks("  ```python\n  a = 1\n\n  b = 2\n  ```")
    assert block.code == "a = 1\n\nb = 2" and block.closed is True


def test_code_to_run_trims_only_newlines_around_each_block() -> None:
    """Only newlines are trimmed from a block's ends: code that starts or ends with another character (here `X`)
    keeps it (a mutated strip set, `"XX\\nXX"`, cut the first name of `X = 1`)."""
    assert (
        code_to_run("```python\nX = 1\nprint(X)\n```\n```python\n\nY = X\n```") == "X = 1\nprint(X)\n\nY = X"
    )


def test_code_to_run_keeps_inner_indentation_and_order() -> None:
    answer = "```python\nif True:\n```\n```python\n    y = 1\n```"
    assert code_to_run(answer) == "if True:\n\n    y = 1"
    # no Python block at all: every block joined, in the answer's order
    assert code_to_run("```bash\nls\n```\n```js\nx()\n```") == "ls\n\nx()"


def test_the_missing_sections_and_repetition_reasons_in_full() -> None:
    """The reasons a user reads in the scores (and the rollout logs) when the gate fails, word for word."""
    missing = check_format("no sections at all, just prose")
    assert missing.reason == (
        "missing sections: expected '## Analysis' (>= 16 chars) then '## Answer' (>= 8 chars), "
        "no 32-char substring repeated 8+ times"
    )
    unit = "".join(chr(ord("A") + i) for i in range(26)) + "012345"
    loop = check_format(f"## Analysis\n{A16}\n## Answer\n{unit * 8}")
    assert loop.reason == f"degenerate repetition: {unit!r} occurs 8+ times"
