"""Stage 1, internal red-teaming data synthesis: `python -m purpcode.synthesis --config CONFIG --out DIR`.

Produces the five prompt sets (utility, codesec, malicious, overrefusal, secqa) as `<set>.train.jsonl` and
`<set>.heldout.jsonl`, a `manifest.json`, step checkpoints under `steps/`, and `_SUCCESS` last. Import-light.
"""

from __future__ import annotations

from typing import Any

SETS: tuple[str, ...] = ("utility", "codesec", "malicious", "overrefusal", "secqa")


def run_synthesis(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """See `purpcode.synthesis.pipeline.run_synthesis`."""
    from purpcode.synthesis.pipeline import run_synthesis as _run

    return _run(*args, **kwargs)


__all__ = ["SETS", "run_synthesis"]
