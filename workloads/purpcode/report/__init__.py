"""The run report: what a run produced and achieved, as `report.json`, `report.md` and PNG plots.

    python -m purpcode.report --config CONFIG --out DIR     # the plan's last step (a Job, or the local runner)
    purpcode report DIR                                      # re-render from an artifacts dir (or a run workdir)

It reads what the stages left in the artifacts (synthesis sets and manifest, rule-learning summary and loss, RL
rewards per oracle and dropped groups, evaluation results) and reports a stage that did not run as "not run".
Import-light: matplotlib loads only when plots are drawn.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m purpcode.report --config C --out D`."""
    from purpcode.report.commands import stage_main

    return stage_main(argv)


def cli(argv: list[str] | None = None) -> int:
    """Entry point of `purpcode report DIR [--out DIR]`."""
    from purpcode.report.commands import rerender_main

    return rerender_main(argv)


__all__ = ["cli", "main"]
