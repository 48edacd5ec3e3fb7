"""Stage 4, evaluation: safety and utility of the base and the trained model, side by side.

    python -m purpcode.evaluation --config CONFIG --out DIR --data DIR --model DIR --base-model DIR

On the held-out prompt sets of the synthesis stage (and public benchmark files the user supplies) it measures the
vulnerable-code rate (analyzer) on codesec prompts, the malicious-assistance rate (judge) on malicious-event prompts,
the over-refusal rate (judge) on benign trigger-word prompts and security Q&A, and pass@1 (sandbox) on coding tasks,
with generation at temperature 0. Outputs: `results.json`, per-sample records under `samples/`, `_SUCCESS` last.
Import-light: torch and the oracles load when the stage runs.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m purpcode.evaluation`."""
    from purpcode.evaluation.stage import main as _main

    return _main(argv)


__all__ = ["main"]
