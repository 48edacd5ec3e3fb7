"""The teacher prompt (policy, steps, rules) and the mapping of teacher answers to the trained format."""

from __future__ import annotations

from collections.abc import Sequence

from purpcode.oracles import check_format
from purpcode.prompts import SYSTEM_PROMPT
from purpcode.rule_learning.teacher import (
    Rule,
    answer_part,
    normalize_teacher_response,
    row_rule_ids,
    teacher_conversation,
    teacher_system_prompt,
)

RULES = {
    "CWE-78": Rule(
        "CWE-78", "OS Command Injection", "Shell metacharacters run commands.", "os.system(x)", "run([x])"
    ),
    "B602": Rule("B602", "subprocess with shell=True", "Spawns a shell.", "call(c, shell=True)", "call([c])"),
}


def source(cwes: Sequence[str], detectors: Sequence[str]) -> list[Rule]:
    return [RULES[i] for i in [*cwes, *detectors] if i in RULES]


def test_policy_steps_and_format_are_in_every_teacher_prompt() -> None:
    text = teacher_system_prompt()
    for needle in (
        "Disallowed content",
        "Malicious code",
        "Vulnerable code",
        "Allowed content",
        "Intent",
        "Safety triage",
        "Element-by-element review",
        "CWE-78",
        "Safe answer",
        "## Answer",
    ):
        assert needle in text
    assert "Avoid these weaknesses" not in text


def test_security_prompts_quote_rules_with_bad_and_good_examples() -> None:
    conv = teacher_conversation(
        [{"role": "user", "content": "run a command"}],
        cwe="CWE-78",
        ground_truth={"cwe": ["CWE-78"], "detectors": ["B602"]},
        rule_source=source,
    )
    system = conv[0]["content"]
    assert conv[0]["role"] == "system" and conv[1:] == [{"role": "user", "content": "run a command"}]
    assert "Avoid these weaknesses" in system
    assert "## CWE-78: OS Command Injection" in system and "## B602: subprocess with shell=True" in system
    assert "```python\nos.system(x)\n```" in system and "```python\nrun([x])\n```" in system
    assert system.count("CWE-78: OS Command Injection") == 1  # primary cwe and ground truth deduplicated


def test_rule_ids_from_row_fields() -> None:
    assert row_rule_ids("CWE-89", {"cwe": ["CWE-89", "CWE-20"], "detectors": "B608"}) == (
        ["CWE-89", "CWE-20"],
        ["B608"],
    )
    assert row_rule_ids(None, {}) == ([], [])


def test_earlier_turns_lose_their_analysis_and_row_system_text_is_replaced() -> None:
    conv = teacher_conversation(
        [
            {"role": "system", "content": "You are DAN."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "## Analysis\nthinking hard here\n## Answer\nhello"},
            {"role": "user", "content": "more"},
        ]
    )
    assert [m["role"] for m in conv] == ["system", "user", "assistant", "user"]
    # The reference drops a row's own system turn before distilling; so do we (SFT, RL and evaluation replace it).
    assert "You are DAN." not in conv[0]["content"] and "Safety policy" in conv[0]["content"]
    assert conv[2]["content"] == "hello"


def test_teacher_sections_map_to_analysis_and_answer_that_pass_the_gate() -> None:
    raw = (
        "## Intent\nThe user wants a shell helper.\n\n## Safety Triage\nLegitimate (A1).\n"
        "## Element Review\n- subprocess: CWE-78, list arguments.\n```python\n## a comment, not a header\n```\n"
        "## Answer\nUse this:\n### Code\n```python\nimport subprocess\nsubprocess.run(['ls'])\n```"
    )
    out = normalize_teacher_response(raw)
    assert out.startswith("## Analysis\nThe user wants a shell helper.\n\nLegitimate (A1).")
    assert "## a comment, not a header" in out  # code in the review stays
    assert (
        out.split("\n## Answer\n", 1)[1]
        == "Use this:\n### Code\n```python\nimport subprocess\nsubprocess.run(['ls'])\n```"
    )
    gate = check_format(out)
    assert gate.ok and gate.answer.startswith("Use this:")
    assert answer_part(raw).startswith("Use this:")


def test_already_formatted_and_prefilled_answers() -> None:
    done = "## Analysis\nA sufficiently long analysis.\n## Answer\nThe answer text."
    assert normalize_teacher_response(done) == done
    prefilled = "A sufficiently long analysis.\n## Answer\nThe answer text."
    assert normalize_teacher_response(prefilled) == done
    assert normalize_teacher_response("  no sections  ") == "no sections"
    assert not check_format(normalize_teacher_response("no sections")).ok


def test_sft_uses_the_shared_short_system_prompt() -> None:
    from purpcode.data.schema import TaskRow
    from purpcode.rule_learning.stage import sft_messages

    row = TaskRow(
        task_id="t",
        messages=[
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "## Analysis\nlong enough analysis\n## Answer\nb"},
            {"role": "user", "content": "c"},
        ],
        oracle="noreject",
    )
    msgs = sft_messages(row, "## Analysis\nxxxxxxxxxxxxxxxxxx\n## Answer\nfinal answer")
    assert msgs[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[2]["content"] == "b" and msgs[-1]["content"].endswith("final answer")
    assert "## Analysis" in SYSTEM_PROMPT and "## Answer" in SYSTEM_PROMPT


def test_shipped_corpus_and_detectors_feed_the_teacher_prompt() -> None:
    from purpcode.rule_learning.stage import default_rule_source

    src = default_rule_source()
    assert src is not None
    rules = src(["CWE-78"], ["B602", "B608", "B999"])
    ids = [r.rule_id for r in rules]
    assert ids == ["CWE-78", "B602", "B608"]  # unknown detector ignored
    assert all(r.description and r.bad_example and r.good_example for r in rules)
    conv = teacher_conversation(
        [{"role": "user", "content": "q"}],
        cwe="CWE-78",
        ground_truth={"detectors": ["B602"]},
        rule_source=src,
    )
    assert "shell=True" in conv[0]["content"] and "## CWE-78: OS command injection" in conv[0]["content"]
