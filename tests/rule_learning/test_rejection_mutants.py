"""Rejection cases written to kill the mutants `make mutants` found surviving test_rejection.py."""

from __future__ import annotations

import json
from pathlib import Path

from purpcode.rule_learning.rejection import pass_rate, read_easy_ids, write_easy_ids


def test_pass_rate_of_no_samples_is_zero() -> None:
    assert pass_rate([], 0.5) == 0.0


def test_easy_id_file_records_how_it_was_decided(tmp_path: Path) -> None:
    path = tmp_path / "easy.json"
    write_easy_ids(path, ["b", "é"], threshold=0.5, easy_threshold=0.7, samples_per_prompt=8, prompts=3)
    expected = {
        "task_ids": ["b", "é"],
        "rejection_threshold": 0.5,
        "easy_threshold": 0.7,
        "samples_per_prompt": 8,
        "prompts_sampled": 3,
    }
    written = json.loads(path.read_text(encoding="utf-8"))
    assert {k: written.get(k) for k in expected} == expected  # (other fields may be recorded too)
    assert read_easy_ids(path) == {"b", "é"}
