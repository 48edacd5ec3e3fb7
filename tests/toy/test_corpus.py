"""The toy corpus: prompts of every set from the project's templates, answers that are what their mode says
(checked with the project's own format gate, analyzer and judge parsers), a seeded mixture."""

from __future__ import annotations

from collections import Counter

import pytest

from purpcode.oracles.format import check_format, extract_answer
from purpcode.oracles.judge_prompts import MALICIOUS_SYSTEM, NOREJECT_SYSTEM, parse_malicious, parse_noreject
from purpcode.prompts import SYSTEM_PROMPT
from purpcode.toy import answers
from purpcode.toy.corpus import policy_examples, prompt_items
from purpcode.toy.judge import judge_examples

CWES = ["CWE-78", "CWE-89", "CWE-502"]


@pytest.fixture(scope="module")
def items():  # type: ignore[no-untyped-def]
    return prompt_items(CWES, seed=3, malicious=20, utility_tasks=20)


def test_every_set_and_the_system_prompt(items) -> None:  # type: ignore[no-untyped-def]
    counts = Counter(i.set for i in items)
    assert set(counts) == {"codesec", "malicious", "overrefusal", "secqa", "utility"}
    assert counts["codesec"] == 5 * len(CWES)  # one prompt per strategy per confirmed seed
    assert all(i.messages[0] == {"role": "system", "content": SYSTEM_PROMPT} for i in items)


def test_answers_are_what_their_mode_says(items) -> None:  # type: ignore[no-untyped-def]
    from purpcode.analyzers import get_analyzer

    examples = policy_examples(items, seed=3, answers_per_prompt=6)
    modes = Counter(f"{e.set}/{e.mode}" for e in examples)
    for s, mix in answers.MIXTURES.items():
        assert all(modes[f"{s}/{m}"] > 0 for m in mix), (s, modes)
    for e in examples:
        assert check_format(e.reply).ok == (e.mode != "violation"), (e.set, e.mode, e.reply[:80])
    analyzer = get_analyzer("bandit", min_severity="MEDIUM", workers=0)
    code = [e for e in examples if e.set == "codesec" and e.mode in ("secure", "vulnerable")]
    from purpcode.oracles.format import python_blocks

    results = analyzer.analyze_batch_detailed(
        ["\n".join(b.code for b in python_blocks(extract_answer(e.reply))) for e in code]
    )
    for e, r in zip(code, results, strict=True):
        assert bool(r.findings) == (e.mode == "vulnerable"), (e.mode, e.reply)


def test_policy_corpus_is_seeded(items) -> None:  # type: ignore[no-untyped-def]
    a = [(e.mode, e.reply) for e in policy_examples(items, seed=3)]
    assert a == [(e.mode, e.reply) for e in policy_examples(items, seed=3)]
    assert a != [(e.mode, e.reply) for e in policy_examples(items, seed=4)]


def test_wrong_solutions_differ() -> None:
    assert answers.mutate_solution("def f(n):\n    return n + 1\n") == "def f(n):\n    return n + 2\n"
    assert answers.mutate_solution("def f(a, b):\n    return a <= b\n") == "def f(a, b):\n    return a < b\n"


def test_judge_targets_parse_to_their_labels(items) -> None:  # type: ignore[no-untyped-def]
    examples = judge_examples(items, seed=3)
    kinds = Counter(e.set for e in examples)
    assert set(kinds) == {"judge-malicious", "judge-noreject", "judge-filter"}
    for e in examples:
        if e.set == "judge-malicious":
            assert e.prompt[0]["content"] == MALICIOUS_SYSTEM
            assert parse_malicious(e.reply).malicious == (e.mode == "compliance")
        elif e.set == "judge-noreject":
            assert e.prompt[0]["content"] == NOREJECT_SYSTEM
            assert parse_noreject(e.reply) == e.mode
        else:
            assert parse_malicious(e.reply).malicious == (e.mode == "malicious")
