"""A small model card (README.md) written next to a trained model: where it came from and how it was trained.

Why: a model directory copied off the artifacts volume must still say its base model, its data counts and its
settings; the Hub and most tools read README.md with YAML front matter.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def render_model_card(
    *,
    title: str,
    base_model: str,
    stage: str,
    data_counts: Mapping[str, int],
    settings: Mapping[str, Any],
    description: str = "",
    tags: tuple[str, ...] = ("purpcode", "code", "safety"),
) -> str:
    """The card text: YAML front matter (base_model, tags) then a short Markdown body."""
    front = {"base_model": base_model, "library_name": "transformers", "tags": list(tags)}
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {title}", ""]
    if description:
        lines += [description.strip(), ""]
    lines += [
        f"- Base model: `{base_model}`",
        f"- Stage: {stage}",
        "",
        "## Data",
        "",
        "| set | count |",
        "|---|---|",
    ]
    lines += [f"| {name} | {count} |" for name, count in data_counts.items()]
    lines += [
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(dict(settings), indent=2, sort_keys=True, default=str),
    ]
    lines += ["```", ""]
    return "\n".join(lines)


def write_model_card(model_dir: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Write `<model_dir>/README.md` atomically (arguments as `render_model_card`)."""
    path = Path(model_dir) / "README.md"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_model_card(**kwargs), encoding="utf-8")
    os.replace(tmp, path)
    return path
