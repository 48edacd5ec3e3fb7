"""Loss on the last assistant turn only, asserted on the labels TRL builds from our SFT config, with and without
`{% generation %}` markers in the chat template, and after packing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from purpcode.rule_learning.sft import (
    build_dataset,
    build_trainer,
    fit_to_length,
    has_generation_markers,
    load_tokenizer,
    sft_config,
)
from purpcode_operator.api import SFTSpec

ANSWERS = [f"## Analysis\nfine reasoning {i}\n## Answer\nthe final answer {i}" for i in range(4)]


def records() -> list[dict[str, Any]]:
    out = []
    for i, answer in enumerate(ANSWERS):
        out.append(
            {
                "messages": [
                    {"role": "system", "content": "SYS"},
                    {"role": "user", "content": f"first question {i}"},
                    {"role": "assistant", "content": f"EARLIER ANSWER {i}"},
                    {"role": "user", "content": f"follow up {i}"},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return out


def labelled_spans(labels: list[int]) -> list[list[int]]:
    """Contiguous runs of trained token ids."""
    spans: list[list[int]] = []
    current: list[int] = []
    for tok in labels:
        if tok != -100:
            current.append(tok)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    return spans


def prepared(tokenizer: Any, model_dir: Path, tmp_path: Path, *, packing: bool) -> Any:
    """The train dataset exactly as our SFT config makes TRL prepare it (tokenised, labelled, maybe packed)."""
    spec = SFTSpec(
        max_steps=1, max_seq_length=2048, packing=packing, bf16=False, gradient_checkpointing=False
    )
    cfg = sft_config(
        spec,
        output_dir=tmp_path / "ckpt",
        seed=666,
        deepspeed=None,
        assistant_masks=has_generation_markers(tokenizer),
        gpu=False,
    )
    return build_trainer(model_dir, tokenizer, build_dataset(records()), cfg).train_dataset


@pytest.fixture
def tokenizer(tiny_model_dir: Path) -> Any:
    return load_tokenizer(tiny_model_dir)


def test_markers_only_the_last_answer_and_its_end_token_are_trained(
    tokenizer: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    assert has_generation_markers(tokenizer)
    ds = prepared(tokenizer, tiny_model_dir, tmp_path, packing=False)
    assert len(ds) == len(ANSWERS)
    for row, answer in zip(ds, ANSWERS, strict=True):
        spans = labelled_spans(row["labels"])
        assert len(spans) == 1, "exactly one trained span per example"
        assert tokenizer.decode(spans[0]) == answer + "<|im_end|>"
        # the span is the tail of the sequence up to the template's trailing newline
        ids = row["input_ids"]
        assert spans[0] == ids[len(ids) - len(spans[0]) - 1 : len(ids) - 1]
        assert "EARLIER" not in tokenizer.decode(spans[0])


def test_without_markers_completion_masking_still_trains_the_last_turn_only(
    tokenizer: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    tokenizer.chat_template = re.sub(r"{%-?\s*(end)?generation\s*-?%}", "", tokenizer.chat_template)
    assert not has_generation_markers(tokenizer)
    ds = prepared(tokenizer, tiny_model_dir, tmp_path, packing=False)
    for row, answer in zip(ds, ANSWERS, strict=True):
        spans = labelled_spans(row["labels"])
        assert len(spans) == 1
        text = tokenizer.decode(spans[0])
        assert text.startswith(answer + "<|im_end|>") and text.strip().endswith("<|im_end|>")
        assert "EARLIER" not in text and "follow up" not in text


def test_masks_survive_packing(tokenizer: Any, tiny_model_dir: Path, tmp_path: Path) -> None:
    ds = prepared(tokenizer, tiny_model_dir, tmp_path, packing=True)
    assert len(ds) < len(ANSWERS), "packing should merge examples into fewer rows"
    assert "seq_lengths" in ds.column_names
    trained = [tokenizer.decode(span) for row in ds for span in labelled_spans(row["labels"])]
    assert sorted(trained) == sorted(a + "<|im_end|>" for a in ANSWERS)
    total = sum(len(r["input_ids"]) for r in ds)
    assert total == sum(sum(r["seq_lengths"]) for r in ds)


def test_too_long_examples_are_dropped_and_all_too_long_is_an_error(tokenizer: Any) -> None:
    recs = records()
    recs.append(
        {"messages": [{"role": "user", "content": "x " * 600}, {"role": "assistant", "content": "y"}]}
    )
    keep, dropped = fit_to_length(recs, tokenizer, 256)
    assert dropped == 1 and len(keep) == len(ANSWERS)
    with pytest.raises(ValueError, match="maxSeqLength"):
        fit_to_length(recs, tokenizer, 8)


def test_an_empty_sft_set_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="kept no sample"):
        build_dataset([])
