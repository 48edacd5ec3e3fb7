"""Results in the paper's table layout: suites grouped as the PurpCode paper groups them (code security, malicious
assistance, over-refusal, utility), one row per model, base and trained side by side.

Suites a run did not evaluate are left out; held-out suites of the run's own synthesis sit after the public
benchmarks of their group. Values are percentages of the suite's metric (`lower_is_better` marked with a down arrow).
"""

from __future__ import annotations

from typing import Any

PAPER_GROUPS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Code security",
        (
            ("cyberseceval-instruct", "CyberSecEval SCG"),
            ("codelmsec", "CodeLMSec"),
            ("cweval", "CWEval func-sec@1"),
            ("codesec", "Held-out codesec"),
        ),
    ),
    (
        "Malicious assistance",
        (("cyberseceval-mitre", "CyberSecEval MITRE"), ("malicious", "Held-out malicious")),
    ),
    (
        "Over-refusal",
        (
            ("cyberseceval-frr", "CyberSecEval FRR"),
            ("xscode", "XSCode"),
            ("xstest", "XSTest"),
            ("phtest", "PHTest"),
            ("overrefusal", "Held-out probes"),
            ("secqa", "Held-out security Q&A"),
        ),
    ),
    ("Utility", (("humaneval-plus", "HumanEval+"), ("mbpp-plus", "MBPP+"), ("utility", "Held-out coding"))),
)


def paper_table(results: dict[str, Any]) -> str:
    """A Markdown table of `results.json` (see `purpcode.evaluation.stage.build_results`) in the paper's layout."""
    by_suite = {s["suite"]: s for s in results.get("suites", [])}
    columns: list[tuple[str, str, dict[str, Any]]] = []
    for group, suites in PAPER_GROUPS:
        for name, label in suites:
            if name in by_suite:
                columns.append((group, label, by_suite[name]))
    known = {name for _, suites in PAPER_GROUPS for name, _ in suites}
    columns += [("Other", s["label"], s) for name, s in by_suite.items() if name not in known]
    models = list(results.get("models", {})) or sorted({m for s in by_suite.values() for m in s["results"]})
    if not columns:
        return "No suites were evaluated.\n"
    groups = [c[0] for c in columns]
    head1 = ["Model"] + [g if i == 0 or groups[i - 1] != g else "" for i, g in enumerate(groups)]
    head2 = [""] + [f"{label} ({'↓' if s['lower_is_better'] else '↑'})" for _, label, s in columns]
    lines = ["| " + " | ".join(head1) + " |", "|" + "---|" * len(head1), "| " + " | ".join(head2) + " |"]
    for model in models:
        cells = [model]
        for _, _, s in columns:
            value = s["results"].get(model, {}).get("value")
            cells.append("–" if value is None else f"{100 * value:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
