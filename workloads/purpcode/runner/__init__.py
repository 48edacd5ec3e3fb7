"""`purpcode run SPEC [--workdir DIR]`: the operator's plan, executed locally as subprocesses.

It starts the services the remaining stages need (the sandbox; the judge as vLLM when a GPU and vLLM are present,
else the project's transformers judge server, or the spec's external URL), then runs each stage's entry point with
the same StageConfig and artifact layout the Jobs use. A finished stage (its `_SUCCESS` marker) is skipped, so a
second call resumes; Ctrl-C stops children and services cleanly and leaves that resumable state.
Import-light: nothing heavy loads until a run starts.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of `purpcode run` and `python -m purpcode.runner`."""
    from purpcode.runner.local import main as _main

    return _main(argv)


__all__ = ["main"]
