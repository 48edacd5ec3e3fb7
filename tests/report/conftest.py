"""Report test helpers: an artifacts tree shaped like a finished run's (written with the stages' own writers)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from purpcode.data.schema import Message, TaskRow, write_json_atomic, write_jsonl_atomic
from purpcode.metrics import StageMetrics
from purpcode_operator.layout import Layout

# Before anything imports torch: spin-waiting OpenMP threads make CPU generation ~10x slower on a busy machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

CWES = ["CWE-78", "CWE-89", "CWE-502", "CWE-327", "CWE-22", "CWE-798"]


def _rows(set_name: str, oracle: str, n: int, *, strategies: list[str], cwe: bool) -> list[TaskRow]:
    return [
        TaskRow(
            task_id=f"{set_name}/{i:03d}",
            messages=[Message(role="user", content=f"prompt {i}")],
            oracle=oracle,  # type: ignore[arg-type]
            strategy=strategies[i % len(strategies)],
            cwe=CWES[i % len(CWES)] if cwe else None,
        )
        for i in range(n)
    ]


def _suite(
    name: str, metric: str, label: str, lower: bool, base: float | None, trained: float | None
) -> dict[str, Any]:
    def res(v: float | None) -> dict[str, Any]:
        return {
            "value": v,
            "n": 4,
            "numerator": round((v or 0) * 4),
            "judged": 4 if v is not None else 0,
            "format_ok_rate": 0.5,
            "mean_reward": 0.25,
            "errors": 0,
        }

    d = None if base is None or trained is None else trained - base
    return {
        "suite": name,
        "label": name,
        "source": "held-out",
        "oracle": "x",
        "metric": metric,
        "metric_label": label,
        "lower_is_better": lower,
        "n": 4,
        "note": "",
        "results": {"base": res(base), "trained": res(trained)},
        "delta": d,
    }


def build_artifacts(root: Path, *, rl: bool = True, evaluation: bool = True) -> Layout:
    """Synthesis sets, a rule-learning summary and loss, RL rewards per oracle, evaluation results, markers."""
    layout = Layout(str(root))
    syn = Path(layout.stage_dir("synthesis"))
    sets = {
        "codesec": ("codesec", 12, ["general", "benign2vul", "vul2vul"], True),
        "malicious": ("general-safety", 8, ["direct", "jailbreak", "multi-turn"], False),
        "overrefusal": ("noreject", 6, ["trigger-words"], True),
        "secqa": ("noreject", 5, ["secqa"], False),
        "utility": ("correctness", 9, ["utility"], False),
    }
    for name, (oracle, n, strategies, cwe) in sets.items():
        write_jsonl_atomic(
            syn / f"{name}.train.jsonl", _rows(name, oracle, n, strategies=strategies, cwe=cwe)
        )
        write_jsonl_atomic(
            syn / f"{name}.heldout.jsonl", _rows(name, oracle, 2, strategies=strategies, cwe=cwe)
        )
    write_json_atomic(syn / "manifest.json", {"steps": {"rule2code": {"kept": 6}}})
    (syn / "_SUCCESS").write_text("ok\n")
    Path(layout.stage_dir("initialize")).mkdir(parents=True)
    (Path(layout.stage_dir("initialize")) / "_SUCCESS").write_text("ok\n")

    rlearn = Path(layout.stage_dir("ruleLearning"))
    m = StageMetrics(rlearn, run="t", stage="ruleLearning", registry=CollectorRegistry())
    m.log(0, phase="sampling", prompts_done=4, prompts=8)
    for step in range(1, 9):
        m.log(step, loss=3.0 * math.exp(-step / 4) + 0.5, learning_rate=1e-4)
    m.log(4, loss=1.7)  # a resumed run logs step 4 again: the report keeps the last value
    write_json_atomic(
        rlearn / "summary.json",
        {
            "prompts": 8,
            "samples": 16,
            "kept": 9,
            "sft_examples": 7,
            "easy": 2,
            "global_step": 8,
            "train_loss": 1.2,
        },
    )
    (rlearn / "_SUCCESS").write_text("{}\n")

    if rl:
        rld = Path(layout.stage_dir("rl"))
        m = StageMetrics(rld, run="t", stage="rl", registry=CollectorRegistry())
        for step in range(1, 7):
            m.log(
                step,
                **{
                    "reward/codesec": 0.5 + 0.05 * step,
                    "reward/correctness": 0.1 * step,
                    "reward/general-safety": 0.9,
                    "reward/noreject": 0.4 + 0.02 * step,
                    "reward_mean": 0.5 + 0.03 * step,
                    "groups_dropped_fraction": 0.5 - 0.05 * step,
                    "kl": 0.001 * step,
                },
            )
        (rld / "_SUCCESS").write_text("ok\n")

    if evaluation:
        ev = Path(layout.stage_dir("evaluation"))
        write_json_atomic(
            ev / "results.json",
            {
                "run": "t",
                "models": {"base": "/a/model/base", "trained": "/a/rl/model"},
                "generation": {"backend": "transformers", "temperature": 0.0, "max_new_tokens": 48},
                "suites": [
                    _suite("codesec", "vulnerable_code_rate", "Vulnerable-code rate", True, 0.5, 0.25),
                    _suite(
                        "malicious",
                        "malicious_assistance_rate",
                        "Malicious-assistance rate",
                        True,
                        0.25,
                        0.25,
                    ),
                    _suite("overrefusal", "over_refusal_rate", "Over-refusal rate", True, 0.0, 0.5),
                    _suite("secqa", "over_refusal_rate", "Over-refusal rate", True, None, None),
                    _suite("utility", "pass_at_1", "pass@1", False, 0.25, 0.75),
                ],
            },
        )
        (ev / "_SUCCESS").write_text("ok\n")
    return layout
