"""The format gate pinned to the recipe's rule, answer extraction and fenced-code extraction."""

from __future__ import annotations

import pytest

from purpcode.oracles import (
    OracleConfig,
    check_format,
    code_to_run,
    extract_answer,
    extract_code_blocks,
    has_repetition,
    python_blocks,
)

A16 = "a" * 15 + "b"  # exactly 16 chars, no 32-char repetition
ANS8 = "answer!!"  # exactly 8 chars


def resp(analysis: str, answer: str) -> str:
    return f"## Analysis\n{analysis}\n## Answer\n{answer}"


@pytest.mark.parametrize(
    ("response", "ok"),
    [
        (resp(A16, ANS8), True),  # both at the minimum
        (resp(A16[:-1], ANS8), False),  # analysis 15 chars
        (resp(A16, ANS8[:-1]), False),  # answer 7 chars
        (resp(A16, ""), False),  # empty answer
        (resp(A16, "   \n  "), False),  # whitespace-only answer
        (f"{A16}\n## Answer\n{ANS8}", True),  # analysis header prefilled by the prompt
        (f"## Answer\n{ANS8}", False),  # no analysis at all
        (f"## Analysis\n{A16}\n{ANS8}", False),  # no answer header
        (f"## Answer\n{ANS8}\n## Analysis\n{A16}", False),  # wrong order
        (f"## Analysis\n{A16}\n### Answer\n{ANS8}", False),  # wrong header level
        (f"## Analysis\n{A16}\n## Answer: {ANS8}", False),  # header must be its own line
        ("", False),
        ("\r\n".join(["## Analysis", A16, "## Answer", ANS8]), True),  # CRLF line ends
    ],
)
def test_gate_sections_and_minimums(response: str, ok: bool) -> None:
    assert check_format(response).ok is ok


def test_analysis_header_required_when_not_prefilled() -> None:
    cfg = OracleConfig(analysis_prefilled=False)
    assert not check_format(f"{A16}\n## Answer\n{ANS8}", cfg).ok
    assert check_format(resp(A16, ANS8), cfg).ok


def test_repetition_rule_32_chars_8_times() -> None:
    unit = "".join(chr(ord("A") + i) for i in range(26)) + "012345"  # 32 distinct chars
    assert len(unit) == 32
    assert check_format(resp(A16, unit * 7)).ok  # 7 occurrences: allowed
    bad = check_format(resp(A16, unit * 8))
    assert not bad.ok and "repetition" in bad.reason
    # overlapping occurrences count: 39 equal chars hold 8 windows of 32
    assert has_repetition("x" * 39) == "x" * 32
    assert has_repetition("x" * 38) is None
    # the loop can sit in the analysis too: the rule covers the whole response
    assert not check_format(resp(unit * 8, ANS8)).ok


def test_repetition_is_exact_not_hash_based() -> None:
    # many distinct windows (no repetition) in a long text: must pass
    import random

    rng = random.Random(7)
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz \n") for _ in range(20_000))
    assert has_repetition(text) is None
    # a loop hidden in the middle of a long text is found
    loop = "for i in range(10): print(i) #!"  # 31 chars + separator
    assert has_repetition(text[:9000] + (loop + "\n") * 8 + text[9000:]) is not None


def test_config_numbers_apply() -> None:
    cfg = OracleConfig(
        analysis_min_chars=4, answer_min_chars=2, repeat_substring_length=4, repeat_max_count=3
    )
    assert check_format(resp("abcd", "ok"), cfg).ok
    assert not check_format(resp("abc", "ok"), cfg).ok
    assert not check_format(resp("abcd", "wxyz wxyz wxyz"), cfg).ok


def test_answer_is_what_follows_the_first_answer_header() -> None:
    r = resp("I will mention ## Answer inline but not as a header.", "The real answer.\n## Answer\nmore")
    gate = check_format(r)
    assert gate.ok and gate.answer.startswith("The real answer.")
    assert extract_answer(r) == gate.answer
    assert extract_answer("no headers here") == "no headers here"


def test_code_blocks_python_first_all_kinds() -> None:
    text = (
        "Intro\n```bash\npip install x\n```\n"
        "```python title=x.py\ndef f():\n    return 1\n```\n"
        "~~~py\nprint(2)\n~~~\n"
        "````\n```\nnested fence text\n```\n````\n"
        "```\nx = 3\n```\n"
    )
    blocks = extract_code_blocks(text)
    assert [b.lang for b in blocks] == ["python", "py", "", "bash", ""]
    assert blocks[0].code == "def f():\n    return 1"
    assert "nested fence text" in blocks[4].code  # the 4-backtick block keeps its inner fences
    assert [b.code for b in python_blocks(text)] == ["def f():\n    return 1", "print(2)"]  # tagged win
    assert code_to_run(text) == "def f():\n    return 1\n\nprint(2)"


def test_untagged_blocks_count_when_no_tagged_python() -> None:
    text = "```\nimport os\nprint(os.getcwd())\n```\n```\nthis is not python at all\n```"
    assert [b.code for b in python_blocks(text)] == ["import os\nprint(os.getcwd())"]


def test_unclosed_block_is_kept() -> None:
    blocks = extract_code_blocks("```python\nimport os\nos.system(cmd)")
    assert len(blocks) == 1 and not blocks[0].closed and "os.system" in blocks[0].code


def test_indented_fence_is_dedented() -> None:
    (block,) = extract_code_blocks("1. step\n   ```python\n   x = 1\n   y = 2\n   ```\n")
    assert block.code == "x = 1\ny = 2"


def test_no_blocks_runs_nothing() -> None:
    assert extract_code_blocks("just prose") == []
    assert code_to_run("just prose") == ""


def test_fast_repetition_check_matches_the_plain_definition() -> None:
    """The numpy rolling-hash path agrees with the literal rule (count every 32-char window) on random texts."""
    import random

    from purpcode.oracles.format import _has_repetition_py

    rng = random.Random(3)
    for trial in range(200):
        n = rng.randint(0, 2500)
        alphabet = "ab" if trial % 3 == 0 else "abcdefgh \n"
        text = "".join(rng.choice(alphabet) for _ in range(n))
        if trial % 5 == 0:
            text = text[: n // 2] + "xyz" * rng.randint(5, 120) + text[n // 2 :]
        fast, plain = has_repetition(text), _has_repetition_py(text, 32, 8)
        assert (fast is None) == (plain is None), (trial, fast, plain)
        if fast is not None:
            assert text.count(fast) >= 1 and sum(text.startswith(fast, i) for i in range(len(text))) >= 8


@pytest.mark.parametrize("prefilled", [True, False])
@pytest.mark.parametrize(
    "header", ["## Analysis of the request", "## Analysis:", "## Analysiss", "## Analysis\t"]
)
def test_a_longer_header_is_not_the_analysis_header(header: str, prefilled: bool) -> None:
    """`## Analysis of X` is another header: the gate must not read ' of X' as the start of our analysis.

    Prefilled or not, a response opening with a different level-2 header does not have the required layout
    (a mutation that accepted any header starting with '## Analysis' survived the older tests)."""
    cfg = OracleConfig(analysis_prefilled=prefilled)
    result = check_format(f"{header}\n{A16}\n## Answer\n{ANS8}", cfg)
    assert not result.ok and "missing sections" in result.reason
    assert check_format(f"## Analysis\n{A16}\n## Answer\n{ANS8}", cfg).ok  # the exact header still passes
