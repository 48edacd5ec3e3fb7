"""The model card written next to a trained model."""

from __future__ import annotations

from pathlib import Path

import yaml

from purpcode.training.model_card import write_model_card


def test_card_has_front_matter_counts_and_settings(tmp_path: Path) -> None:
    path = write_model_card(
        tmp_path,
        title="run: rule learning",
        base_model="Qwen/Qwen2.5-14B-Instruct",
        stage="rule learning",
        data_counts={"sft/codesec": 12, "easy": 3},
        settings={"sft": {"learningRate": 5e-6}, "seed": 666},
    )
    text = path.read_text()
    assert path == tmp_path / "README.md"
    front = yaml.safe_load(text.split("---")[1])
    assert front["base_model"] == "Qwen/Qwen2.5-14B-Instruct" and "purpcode" in front["tags"]
    assert "| sft/codesec | 12 |" in text and "| easy | 3 |" in text
    assert '"learningRate": 5e-06' in text and '"seed": 666' in text
    assert not list(tmp_path.glob(".*tmp"))
