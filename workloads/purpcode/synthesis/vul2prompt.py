"""Vul2Prompt: each confirmed seed (flagged lines +-10 lines, rule text) becomes prompts that tend to make a model
write that weakness, by strategy: general, benign2vul, vul2vul, jailbreak, multi-turn."""

from __future__ import annotations

from typing import Any

from purpcode.data.rules import Rule
from purpcode.synthesis import templates
from purpcode.synthesis.rule2code import rule_task
from purpcode.synthesis.text import Draft, blank_lines, context_window


def _pick(options: tuple[Any, ...], k: int, salt: int) -> Any:
    return options[(k + salt) % len(options)]


def seed_drafts(
    seed: dict[str, Any], rule: Rule, strategies: list[str], prompts_per_seed: int
) -> list[Draft]:
    """Templated drafts for one seed: `prompts_per_seed` per strategy, each from a different template."""
    code = seed["code"]
    lines = list(seed.get("lines") or [])
    start, _end, window = context_window(code, lines)
    task = rule_task(rule, code)
    detectors = sorted({f["detector_id"] for f in seed.get("findings", [])})
    truth = {
        "cwe": [rule.cwe] if rule.cwe else [],
        "detectors": detectors,
        "seed_id": seed["seed_id"],
        "rule": rule.id,
    }
    salt = sum(map(ord, seed["seed_id"]))
    out: list[Draft] = []

    def draft(strategy: str, template: str, instruction: str, **kw: Any) -> Draft:
        kw.setdefault("payload", task if strategy in ("general", "jailbreak", "benign2vul") else "")
        return Draft(
            set="codesec",
            strategy=strategy,
            template=template,
            instruction=instruction,
            cwe=rule.cwe,
            ground_truth=dict(truth),
            seed_origin=seed["origin"],
            **kw,
        )

    for k in range(prompts_per_seed):
        for strategy in strategies:
            if strategy == "general":
                tid, text = _pick(templates.GENERAL, k, salt)
                out.append(draft("general", tid, text.format(task=task)))
            elif strategy == "benign2vul":
                tid, text = _pick(templates.BENIGN2VUL, k, salt)
                benign = blank_lines(window, lines, start, templates.TODO_MARKER)
                out.append(draft("benign2vul", tid, text.format(task=task), code=benign))
            elif strategy == "vul2vul":
                tid, text = _pick(templates.VUL2VUL, k, salt)
                out.append(draft("vul2vul", tid, text, code=window))
            elif strategy == "jailbreak":
                gid, gtext = _pick(templates.GENERAL, k, salt)
                wid, wrapper = _pick(templates.CODE_JAILBREAKS, k, salt // 7)
                out.append(draft("jailbreak", f"{wid}/{gid}", gtext.format(task=task), wrapper=wrapper))
            elif strategy == "multi-turn":
                mid, opener, reply = _pick(templates.MULTI_TURN, k, salt)
                vid, vtext = _pick(templates.VUL2VUL, k, salt // 3)
                history = [{"role": "user", "content": opener}, {"role": "assistant", "content": reply}]
                out.append(draft("multi-turn", f"{mid}/{vid}", vtext, code=window, history=history))
            else:
                raise ValueError(f"strategies: unknown strategy {strategy!r}")
    return out


def run_vul2prompt(
    seeds: list[dict[str, Any]], rules: dict[str, Rule], strategies: list[str], prompts_per_seed: int
) -> list[Draft]:
    drafts: list[Draft] = []
    for seed in seeds:
        rule = rules.get(seed["rule_id"])
        if rule is None:
            raise KeyError(
                f"seed {seed['seed_id']} names rule {seed['rule_id']}, which this run does not have"
            )
        drafts.extend(seed_drafts(seed, rule, strategies, prompts_per_seed))
    return drafts
