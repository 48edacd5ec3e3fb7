"""RL data: sets, easy ids, validation cap, multi-turn prompts kept (and trimmed when too long), the stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from purpcode.data.schema import TaskRow, write_jsonl_atomic
from purpcode.prompts import SYSTEM_PROMPT
from purpcode.rl.data import PromptStream, fit_prompt, load_easy_ids, load_rl_data


def _row(set_name: str, oracle: str, i: int, turns: int = 1) -> TaskRow:
    messages: list[dict[str, str]] = []
    for t in range(turns - 1):
        messages += [
            {"role": "user", "content": f"{set_name} turn {t} of {i}"},
            {"role": "assistant", "content": f"reply {t}"},
        ]
    messages.append({"role": "user", "content": f"{set_name} prompt {i}"})
    return TaskRow(task_id=f"{set_name}/{i}", messages=messages, oracle=oracle)  # type: ignore[arg-type]


def _write_sets(root: Path, n_train: int = 6, n_held: int = 5) -> None:
    for name, oracle in (
        ("utility", "correctness"),
        ("codesec", "codesec"),
        ("secqa", "noreject"),
        ("malicious", "general-safety"),
        ("overrefusal", "noreject"),
    ):
        train = [
            _row(name, oracle, i, turns=3 if (name == "malicious" and i == 0) else 1) for i in range(n_train)
        ]
        held = [_row(name, oracle, 100 + i) for i in range(n_held)]
        write_jsonl_atomic(root / f"{name}.train.jsonl", train)
        write_jsonl_atomic(root / f"{name}.heldout.jsonl", held)


def test_load_removes_easy_ids_caps_validation_and_keeps_multi_turn(tmp_path: Path) -> None:
    _write_sets(tmp_path)
    data = load_rl_data(
        tmp_path, easy_ids={"codesec/1", "utility/2", "secqa/100"}, held_out_per_set=3, seed=666
    )
    ids = [e.task_id for e in data.train]
    assert len(ids) == 4 * 6 - 2  # the RL sets only (no overrefusal), two easy ids gone
    assert "codesec/1" not in ids and "utility/2" not in ids
    assert not any(i.startswith("overrefusal/") for i in ids)
    assert data.summary.easy_removed == {"codesec": 1, "utility": 1}
    assert data.summary.validation == {"utility": 3, "codesec": 3, "secqa": 3, "malicious": 3}
    assert [e.task_id for e in data.validation if e.set_name == "utility"] == [
        "utility/100",
        "utility/101",
        "utility/102",
    ]
    # Multi-turn prompt kept whole, led by the short system prompt.
    multi = next(e for e in data.train if e.task_id == "malicious/0")
    assert [m["role"] for m in multi.prompt] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert multi.prompt[0]["content"] == SYSTEM_PROMPT
    assert data.summary.multi_turn == {"malicious": 1}
    assert multi.oracle == "general-safety"
    # Shuffled with the seed: same seed same order, another seed another order.
    assert [
        e.task_id for e in load_rl_data(tmp_path, easy_ids={"codesec/1", "utility/2"}, seed=666).train
    ] == ids
    assert [
        e.task_id for e in load_rl_data(tmp_path, easy_ids={"codesec/1", "utility/2"}, seed=1).train
    ] != ids


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no RL training prompts.*utility\.train\.jsonl"):
        load_rl_data(tmp_path)
    with pytest.raises(FileNotFoundError, match="--data"):
        load_rl_data(tmp_path / "nope")


def test_easy_ids_formats(tmp_path: Path) -> None:
    p = tmp_path / "easy.json"
    p.write_text(json.dumps(["a", "b"]))
    assert load_easy_ids(p) == {"a", "b"}
    p.write_text(json.dumps({"easy": {"a": 0.9}, "threshold": 0.7}))
    assert load_easy_ids(p) == {"a"}
    p.write_text(json.dumps({"easy_ids": [{"task_id": "c"}]}))
    assert load_easy_ids(p) == {"c"}
    assert load_easy_ids(None) == set()
    p.write_text(json.dumps({"other": []}))
    with pytest.raises(ValueError, match="'easy'"):
        load_easy_ids(p)
    with pytest.raises(FileNotFoundError, match="rule learning"):
        load_easy_ids(tmp_path / "missing.json")


def test_fit_prompt_drops_oldest_exchanges_first() -> None:
    msgs = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u1" * 10},
        {"role": "assistant", "content": "a1" * 10},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "u3"},
    ]

    def count(m: list[dict[str, str]]) -> int:
        return sum(len(x["content"]) for x in m)

    fitted, dropped = fit_prompt(msgs, count, 100)
    assert fitted == msgs and dropped == 0
    fitted, dropped = fit_prompt(msgs, count, 10)
    assert fitted is not None and [m["content"] for m in fitted] == ["s", "u2", "a2", "u3"] and dropped == 2
    fitted, _ = fit_prompt(msgs, count, 3)
    assert fitted is not None and [m["content"] for m in fitted] == ["s", "u3"]
    assert fit_prompt(msgs, count, 2)[0] is None


def test_too_long_prompts_are_trimmed_or_left_out(tmp_path: Path) -> None:
    _write_sets(tmp_path)

    def count(m: list[dict[str, str]]) -> int:
        return sum(len(x["content"]) for x in m if x["role"] != "system")

    data = load_rl_data(tmp_path, count_tokens=count, max_prompt_length=len("malicious prompt 0") + 1)
    multi = next(e for e in data.train if e.task_id == "malicious/0")
    assert [m["role"] for m in multi.prompt] == ["system", "user"]
    assert data.summary.turns_trimmed == {"malicious": 1}
    data = load_rl_data(tmp_path, count_tokens=count, max_prompt_length=15)
    assert data.summary.too_long["codesec"] == 6  # "codesec prompt N" is 16 characters


def test_prompt_stream_resumes_and_reshuffles_epochs() -> None:
    s = PromptStream(5, seed=3, budget=12)
    first = s.take(3)
    assert first == [0, 1, 2]
    state = s.state_dict()
    rest = s.take(20)
    assert len(rest) == 9 and s.exhausted
    assert sorted(rest[2:7]) == [0, 1, 2, 3, 4] and rest[2:7] != [0, 1, 2, 3, 4]  # epoch 1 reshuffled
    again = PromptStream(5, seed=3, budget=12)
    again.load_state_dict(state)
    assert again.take(20) == rest
    with pytest.raises(ValueError, match="data changed"):
        PromptStream(6, seed=3).load_state_dict(state)


def test_easy_ids_are_removed_only_from_the_named_sets(tmp_path: Path) -> None:
    _write_sets(tmp_path)
    easy = {"codesec/1", "utility/2"}
    data = load_rl_data(tmp_path, easy_ids=easy, easy_sets=["codesec"], seed=666)
    ids = {e.task_id for e in data.train}
    assert "codesec/1" not in ids and "utility/2" in ids
    assert data.summary.easy_removed == {"codesec": 1}
