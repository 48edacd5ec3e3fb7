"""PurpCodeRun documents for operator tests and the bench, built from the shipped samples."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "manifests" / "samples"


@functools.cache
def _sample(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((SAMPLES / f"{name}.yaml").read_text()))


def load_sample(name: str) -> dict[str, Any]:
    """A fresh copy of a shipped sample (parsed once per process)."""
    return copy.deepcopy(_sample(name))


def tiny_run(name: str = "tiny", **spec_overrides: Any) -> dict[str, Any]:
    """The tiny-cpu sample under another name, with top-level spec fields replaced."""
    doc = load_sample("tiny-cpu")
    doc["metadata"] = {"name": name}
    doc["spec"].update(spec_overrides)
    return doc
