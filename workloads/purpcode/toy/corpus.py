"""The toy corpus: prompts of every set, made by the synthesis stage's own template functions from the project's
rules corpus and shipped utility tasks, each answered several times in a seeded mixture of behaviours.

Why the synthesis functions: the run's synthesis stage writes its prompts the same way, so the toy model has seen
prompts like the ones it is trained and evaluated on (as a real base model has seen code and security text), while
the answers' mixture decides how good the base model is at each thing the recipe trains. Every conversation is led
by `purpcode.prompts.with_system_prompt`, so a change of the project's system prompt flows into the corpus.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from purpcode.data.rules import Rule
from purpcode.toy import answers


@dataclass(frozen=True)
class Example:
    """One training conversation: the prompt turns (system turn included) and the assistant reply."""

    set: str
    mode: str
    prompt: list[dict[str, str]]
    reply: str
    meta: dict[str, Any] = field(default_factory=dict)

    def messages(self) -> list[dict[str, str]]:
        return [*self.prompt, {"role": "assistant", "content": self.reply}]


@dataclass(frozen=True)
class PromptItem:
    """A prompt of one set with what its answers need (rule, confirmed vulnerable code, task, category)."""

    set: str
    messages: list[dict[str, str]]
    raw: list[dict[str, str]] = field(default_factory=list)  # the prompt turns without the system prompt
    teacher: list[dict[str, str]] = field(
        default_factory=list
    )  # the turns under rule learning's teacher prompt
    rule: Rule | None = None
    vulnerable: str = ""
    entry_point: str = ""
    solution: str = ""
    category: str = ""


def _rules(cwes: list[str] | None) -> list[Rule]:
    from purpcode.data.rules import load_rules

    return [r for r in load_rules(cwes=cwes or None, detectors=False) if r.kind == "cwe"]


def confirmed_seeds(rules: list[Rule]) -> tuple[list[dict[str, Any]], set[str]]:
    """The corpus's vulnerable examples the analyzer (bandit) confirms, and the rules whose safe code it passes.

    Runs the synthesis stage's own Rule2Code confirmation (no generator: corpus seeds only).
    """
    from purpcode.analyzers import SEVERITY_RANK, get_analyzer
    from purpcode.synthesis.rule2code import run_rule2code
    from purpcode.synthesis.writer import Writer

    analyzer = get_analyzer("bandit", min_severity="LOW", workers=0)
    seeds, _ = run_rule2code(rules, Writer(None, label="toy"), analyzer, seeds_per_rule=0)
    with_safe = [r for r in rules if r.safe.strip()]
    results = analyzer.analyze_batch_detailed([r.safe for r in with_safe]) if with_safe else []
    medium = SEVERITY_RANK["MEDIUM"]
    clean = {
        r.id
        for r, res in zip(with_safe, results, strict=True)
        if not res.error and not any(SEVERITY_RANK[f.severity] >= medium for f in res.findings)
    }
    return seeds, clean


def prompt_items(
    cwes: list[str] | None,
    *,
    seed: int,
    utility_tasks: int = 108,
    malicious: int = 200,
    per_cwe: int = 3,
    teacher: bool = True,
) -> list[PromptItem]:
    """Prompts of every set, written by the synthesis templates (codesec: only CWEs with confirmed seeds and a
    safe example the analyzer passes, so the 'vulnerable' and 'secure' answers are what their names say)."""
    from purpcode.prompts import with_system_prompt
    from purpcode.rule_learning.stage import default_rule_source
    from purpcode.rule_learning.teacher import teacher_conversation
    from purpcode.synthesis.malicious import malicious_drafts
    from purpcode.synthesis.overrefusal import overrefusal_drafts
    from purpcode.synthesis.secqa import secqa_drafts
    from purpcode.synthesis.utility import shipped_tasks, task_draft
    from purpcode.synthesis.vul2prompt import run_vul2prompt

    source = default_rule_source()

    def teach(d: Any) -> list[dict[str, str]]:
        if not teacher:
            return []
        return teacher_conversation(d.messages(), cwe=d.cwe, ground_truth=d.ground_truth, rule_source=source)

    rules = _rules(cwes)
    by_id = {r.id: r for r in rules}
    seeds, clean = confirmed_seeds(rules)
    seeds = [s for s in seeds if s["rule_id"] in clean]
    usable = [by_id[i] for i in sorted({s["rule_id"] for s in seeds})]
    strategies = ["general", "benign2vul", "vul2vul", "jailbreak", "multi-turn"]
    items: list[PromptItem] = []
    code_of = {s["rule_id"]: s["code"] for s in seeds}
    for d in run_vul2prompt(seeds, by_id, strategies, 1):
        rule = by_id[d.ground_truth["rule"]]
        items.append(
            PromptItem(
                "codesec",
                with_system_prompt(d.messages()),
                d.messages(),
                teach(d),
                rule=rule,
                vulnerable=code_of[rule.id],
            )
        )
    for d in malicious_drafts(malicious, seed):
        items.append(
            PromptItem(
                "malicious",
                with_system_prompt(d.messages()),
                d.messages(),
                teach(d),
                category=str(d.ground_truth.get("category", "")),
            )
        )
    for d in overrefusal_drafts(usable, per_cwe, seed):
        items.append(
            PromptItem(
                "overrefusal",
                with_system_prompt(d.messages()),
                d.messages(),
                teach(d),
                rule=by_id[d.cwe or ""],
            )
        )
    for d in secqa_drafts(usable, 5 * len(usable), seed):
        items.append(
            PromptItem(
                "secqa", with_system_prompt(d.messages()), d.messages(), teach(d), rule=by_id[d.cwe or ""]
            )
        )
    for t in shipped_tasks(utility_tasks, seed):
        d = task_draft(t, "template")
        items.append(
            PromptItem(
                "utility",
                with_system_prompt(d.messages()),
                d.messages(),
                teach(d),
                entry_point=t.entry_point,
                solution=t.solution,
            )
        )
    return items


def reply_for(item: PromptItem, mode: str) -> str:
    if item.set == "codesec":
        assert item.rule is not None
        return answers.codesec_answer(mode, item.rule, item.vulnerable)
    if item.set == "utility":
        return answers.utility_answer(mode, item.entry_point, item.solution)
    if item.set == "malicious":
        return answers.malicious_answer(mode, item.category.replace("-", " ") or "an attack")
    assert item.rule is not None
    return answers.benign_answer(mode, item.rule)


def policy_examples(
    items: list[PromptItem], *, seed: int, answers_per_prompt: int = 3, teacher_answers: int = 1
) -> list[Example]:
    """Per prompt, `answers_per_prompt` replies under the short system prompt and `teacher_answers` under the
    teacher prompt, modes drawn from the set's mixture (answers.MIXTURES / TEACHER_MIXTURES), seeded."""
    rng = random.Random(f"toy-policy:{seed}")
    out: list[Example] = []
    for item in items:
        for mix, prompt, k, meta in (
            # Utility solutions are the longest distinct texts to learn (a task's code is the only thing that
            # scores there): three times the answers.
            (
                answers.MIXTURES[item.set],
                item.messages,
                answers_per_prompt * (3 if item.set == "utility" else 1),
                {},
            ),
            # Utility: twice the teacher answers, so that rule learning's samples under the teacher prompt keep
            # right solutions in the format (what its SFT then distils into the plain prompt).
            (
                answers.TEACHER_MIXTURES[item.set],
                item.teacher,
                teacher_answers * (2 if item.set == "utility" else 1),
                {"teacher": True},
            ),
        ):
            if not prompt:
                continue
            for mode in rng.choices(list(mix), weights=list(mix.values()), k=k):
                out.append(Example(item.set, mode, prompt, reply_for(item, mode), dict(meta)))
    return out
