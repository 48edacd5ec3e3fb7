"""The report as Markdown: a stage table, the data counts, training figures, and the evaluation table with deltas."""

from __future__ import annotations

from typing import Any

STAGE_TITLES = {
    "initialize": "initialize (base model)",
    "synthesis": "1. synthesis",
    "ruleLearning": "2. rule learning",
    "rl": "3. RL (GRPO)",
    "evaluation": "4. evaluation",
}


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.1f}%"


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _not_run(status: str) -> str:
    return (
        f"_Not run ({status})._"
        if status != "incomplete"
        else "_Incomplete: the stage started but did not finish._"
    )


def _delta(s: dict[str, Any]) -> str:
    d = s.get("delta")
    if d is None:
        return "-"
    if abs(d) < 1e-12:
        return "±0.0 pp"
    better = (d < 0) == bool(s["lower_is_better"])
    return f"{d * 100:+.1f} pp {'(better)' if better else '(worse)'}"


def _cell(r: dict[str, Any] | None) -> str:
    if not r:
        return "-"
    v = r.get("value")
    if v is None:
        return f"n/a (0 of {r.get('n', 0)} judged)"
    return f"{_pct(v)} ({r['numerator']}/{r['judged']})"


def _toy_lines(toy: dict[str, Any]) -> list[str]:
    """Plain warnings when the models are the toy world's: the figures show the recipe's mechanics only."""
    out = []
    if toy.get("policy_steps"):
        out.append(
            f"> **Toy policy.** The base model is a tiny model warm-started on CPU for {toy['policy_steps']} steps "
            "on a synthetic corpus (purpcode.toy); the figures show that the recipe moves it, not a real model's "
            "safety."
        )
    if toy.get("toy_judge"):
        out.append(
            "> **This is a toy judge** (`tiny-judge`: a tiny model pretrained on the judge prompts' formats). Its "
            "verdicts are parseable but of modest accuracy, so the malicious, over-refusal and security Q&A "
            "figures show that the judge path works, not how safe the model is."
        )
    return [line for pair in zip(out, [""] * len(out), strict=True) for line in pair]


def render_markdown(doc: dict[str, Any], plots: dict[str, str | None]) -> str:
    run = doc["run"]
    lines = [f"# PurpCode run report: {run['run']}", ""]
    facts = [
        f"model `{run['model']}`" if run.get("model") else "",
        f"seed {run['seed']}" if run.get("seed") else "",
    ]
    lines += [", ".join(f for f in facts if f) + f" · generated {doc['generated_at']}", ""]
    lines += _toy_lines(doc.get("toy") or {})

    lines += ["## Stages", ""]
    rows = []
    for stage, status in doc["stages"].items():
        rows.append([STAGE_TITLES.get(stage, stage), status])
    lines += _table(["stage", "status"], rows) + [""]

    data = doc["synthesis"]
    lines += ["## Data (synthesis)", ""]
    if data["total"]:
        set_rows = [
            [name, str(c["train"]), str(c["heldout"]), str(c["train"] + c["heldout"])]
            for name, c in sorted(data["sets"].items())
        ]
        lines += _table(["set", "train", "held-out", "total"], set_rows) + [""]
        lines += ["Rows per strategy: " + ", ".join(f"{k} {v}" for k, v in data["by_strategy"].items()), ""]
        cwes = [f"{k} {v}" for k, v in data["by_cwe"].items() if k != "(none)"]
        lines += ["Rows per CWE: " + (", ".join(cwes) if cwes else "none"), ""]
        if plots.get("data_counts"):
            lines += [f"![data counts]({plots['data_counts']})", ""]
    else:
        lines += [_not_run(data["status"]) if data["status"] != "succeeded" else "_No data rows found._", ""]

    rl_ = doc["ruleLearning"]
    lines += ["## Rule learning (rejection sampling + SFT)", ""]
    if rl_["status"] == "succeeded" or rl_["loss"] or rl_["summary"]:
        summ = rl_["summary"]
        if summ:
            keys = [
                k
                for k in ("prompts", "samples", "kept", "sft_examples", "easy", "global_step", "train_loss")
                if k in summ
            ]
            lines += _table(keys, [[_num(summ[k]) for k in keys]]) + [""]
        if rl_["loss"]:
            first, last = rl_["loss"][0][1], rl_["loss"][-1][1]
            lines += [f"SFT loss {first:.4g} → {last:.4g} over {len(rl_['loss'])} logged steps.", ""]
        if plots.get("sft_loss"):
            lines += [f"![SFT loss]({plots['sft_loss']})", ""]
    else:
        lines += [_not_run(rl_["status"]), ""]

    rl = doc["rl"]
    lines += ["## RL (GRPO)", ""]
    if rl["status"] == "succeeded" or rl["reward"] or rl["groups_dropped_fraction"]:
        final = rl["final"]
        lines += [
            f"{rl['steps']} steps. Last step: "
            + (", ".join(f"{k} {_num(v)}" for k, v in final.items()) if final else "no figures logged")
            + ".",
            "",
        ]
        rewards = [p[1] for series in rl["reward"].values() for p in series]
        if rewards and max(rewards) == 0:
            fmt = rl.get("format_pass_rate") or []
            gate = f" (best format-gate pass rate {max(p[1] for p in fmt) * 100:.0f}%)" if fmt else ""
            lines += [
                f"Every reward was 0{gate}: every group had zero reward variance.",
                "",
            ]
        if rl["groups_dropped_fraction"]:
            values = [p[1] for p in rl["groups_dropped_fraction"]]
            lines += [
                f"Groups dropped by dynamic sampling: mean {sum(values) / len(values) * 100:.1f}% per step.",
                "",
            ]
        if plots.get("rl_rewards"):
            lines += [f"![RL rewards]({plots['rl_rewards']})", ""]
    else:
        lines += [_not_run(rl["status"]), ""]

    ev = doc["evaluation"]
    lines += ["## Evaluation: base vs trained", ""]
    res = ev["results"]
    if res and res.get("suites"):
        models = res.get("models", {})
        gen = res.get("generation", {})
        lines += [
            "Models: "
            + ", ".join(f"{k} `{v}`" for k, v in models.items())
            + f". Generation: {gen.get('backend', '?')}, temperature {gen.get('temperature', '?')}, "
            f"at most {gen.get('max_new_tokens', '?')} new tokens.",
            "",
        ]
        rows = []
        for s in res["suites"]:
            metric = f"{s['metric_label']} ({'↓' if s['lower_is_better'] else '↑'})"
            note = f" — {s['note']}" if s.get("note") else ""
            rows.append(
                [
                    f"{s['suite']}{note}",
                    metric,
                    str(s["n"]),
                    _cell(s["results"].get("base")),
                    _cell(s["results"].get("trained")),
                    _delta(s),
                ]
            )
        lines += _table(["suite", "metric", "prompts", "base", "trained", "delta"], rows) + [""]
        lines += [
            "↓ lower is better, ↑ higher is better; (k/m) = answers flagged / answers that got a verdict. "
            "pp = percentage points.",
            "",
        ]
        if plots.get("evaluation"):
            lines += [f"![evaluation]({plots['evaluation']})", ""]
    else:
        lines += [_not_run(ev["status"]), ""]
    return "\n".join(lines).rstrip() + "\n"
