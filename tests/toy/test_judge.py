"""The toy judge: built through the judge server's own model resolution ('tiny-judge'), it answers the project's
judge prompts with verdicts the project's parsers read, right more often than not on prompts it was not trained
on (another seed's corpus). Slow: a CPU warm start of about a minute."""

from __future__ import annotations

from pathlib import Path

import pytest

from purpcode.oracles.judge_prompts import parse_malicious, parse_noreject

pytestmark = pytest.mark.slow


def test_toy_judge_gives_parseable_verdicts_of_modest_accuracy(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from purpcode.judge_server.engine import resolve_model
    from purpcode.toy.warm_start import TOY_JUDGE_NAME, judge_corpus

    path = resolve_model(TOY_JUDGE_NAME, tmp_path)
    assert resolve_model(TOY_JUDGE_NAME, tmp_path) == path  # built once, then cached
    tok = AutoTokenizer.from_pretrained(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    examples = judge_corpus(seed=99, limit=60)
    enc = tok.apply_chat_template(
        [e.prompt for e in examples],
        add_generation_prompt=True,
        return_tensors="pt",
        padding=True,
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=16, do_sample=False)
    parsed = right = 0
    for e, ids in zip(examples, out, strict=True):
        text = tok.decode(ids[enc["input_ids"].shape[1] :], skip_special_tokens=True)
        if e.set == "judge-noreject":
            got: object = parse_noreject(text)
            want: object = e.mode
        else:
            verdict = parse_malicious(text)
            got = None if verdict.code is None and verdict.explanation is None else verdict.malicious
            want = parse_malicious(e.reply).malicious
        parsed += got is not None
        right += got == want
    assert parsed >= 0.9 * len(examples)
    assert right >= 0.6 * len(examples), f"{right}/{len(examples)} right"
