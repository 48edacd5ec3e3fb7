"""RL data cases written to kill the mutants `make mutants` found surviving tests/rl/test_data.py: what one
removed row (easy, held-out overlap) or one missing file does to the rows and sets after it, and the counters."""

from __future__ import annotations

import inspect
from pathlib import Path

from purpcode.data.schema import TaskRow, write_jsonl_atomic
from purpcode.rl.data import load_rl_data


def _row(set_name: str, oracle: str, i: int, turns: int = 1) -> TaskRow:
    messages: list[dict[str, str]] = []
    for t in range(turns - 1):
        messages += [{"role": "user", "content": f"turn {t}"}, {"role": "assistant", "content": "ok"}]
    messages.append({"role": "user", "content": f"{set_name} prompt {i}"})
    return TaskRow(task_id=f"{set_name}/{i}", messages=messages, oracle=oracle, ground_truth={"i": i})  # type: ignore[arg-type]


def test_removed_rows_and_missing_sets_do_not_stop_the_rest(tmp_path: Path) -> None:
    # utility.train is missing: the sets after it still load. codesec: two easy rows and one that is also
    # held out come first; the rows after them are kept. malicious: two multi-turn prompts.
    write_jsonl_atomic(
        tmp_path / "codesec.train.jsonl", [_row("codesec", "codesec", i) for i in (1, 2, 100, 3, 4)]
    )
    write_jsonl_atomic(tmp_path / "codesec.heldout.jsonl", [_row("codesec", "codesec", 100)])
    write_jsonl_atomic(
        tmp_path / "malicious.train.jsonl",
        [_row("malicious", "general-safety", i, turns=3 if i < 2 else 1) for i in range(3)],
    )
    write_jsonl_atomic(tmp_path / "secqa.train.jsonl", [_row("secqa", "noreject", 0)])
    data = load_rl_data(tmp_path, easy_ids={"codesec/1", "codesec/2"}, held_out_per_set=0)
    ids = sorted(e.task_id for e in data.train)
    assert ids == ["codesec/3", "codesec/4", "malicious/0", "malicious/1", "malicious/2", "secqa/0"]
    s = data.summary
    assert s.missing_files == ["utility.train.jsonl"]
    assert s.easy_removed == {"codesec": 2} and s.overlap_removed == {"codesec": 1}
    assert s.train == {"codesec": 2, "malicious": 3, "secqa": 1}
    assert s.multi_turn == {"malicious": 2}
    assert data.validation == [] and s.validation == {"codesec": 0}  # held_out_per_set=0: none
    ex = next(e for e in data.train if e.task_id == "codesec/3")
    assert (ex.set_name, ex.ground_truth) == ("codesec", {"i": 3})
    one = load_rl_data(tmp_path, held_out_per_set=1)
    assert [(e.task_id, e.set_name) for e in one.validation] == [("codesec/100", "codesec")]


def test_trimmed_turn_counts_per_set(tmp_path: Path) -> None:
    write_jsonl_atomic(
        tmp_path / "malicious.train.jsonl",
        [_row("malicious", "general-safety", i, turns=3) for i in range(2)],
    )

    def words(msgs: list[dict[str, str]]) -> int:
        return sum(len(m["content"].split()) for m in msgs)

    full = max(words(e.prompt) for e in load_rl_data(tmp_path).train)
    data = load_rl_data(tmp_path, count_tokens=words, max_prompt_length=full - 1)
    assert data.summary.turns_trimmed == {"malicious": 2}
    assert load_rl_data(tmp_path, count_tokens=words).summary.turns_trimmed == {}  # no limit: nothing trimmed


def test_recipe_defaults() -> None:
    params = inspect.signature(load_rl_data).parameters
    assert params["held_out_per_set"].default == 800  # the reference holds out the first 800 of each set
    assert params["seed"].default == 666


def _conversation(set_name: str, i: int, users: int) -> TaskRow:
    messages = [{"role": "user", "content": f"{set_name} {i} turn {t}"} for t in range(users)]
    return TaskRow(task_id=f"{set_name}/{i}", messages=messages, oracle="general-safety", ground_truth={})  # type: ignore[arg-type]


def test_rule_learning_replies_go_between_the_user_turns_of_train_and_heldout_rows(tmp_path: Path) -> None:
    write_jsonl_atomic(
        tmp_path / "malicious.train.jsonl",
        [
            _conversation("malicious", 0, 3),
            _conversation("malicious", 1, 2),
            _conversation("malicious", 2, 1),
            _conversation("malicious", 3, 2),
        ],
    )
    write_jsonl_atomic(tmp_path / "malicious.heldout.jsonl", [_conversation("malicious", 9, 2)])
    contexts = {
        "malicious/0": ["reply a", "reply b"],  # 3 user turns, 2 replies: used
        "malicious/1": ["one", "two"],  # wrong count (2 user turns): the row stays as it is
        "malicious/2": [],  # a single turn is not a user-only conversation
        "malicious/9": ["held reply"],
        "malicious/3": ["second"],
    }
    data = load_rl_data(
        tmp_path, held_out_per_set=5, contexts=contexts, sets=("malicious",), system_prompt="SYS"
    )
    by_id = {
        e.task_id: [(m["role"], m["content"]) for m in e.prompt[1:]] for e in data.train + data.validation
    }
    assert by_id["malicious/0"] == [
        ("user", "malicious 0 turn 0"),
        ("assistant", "reply a"),
        ("user", "malicious 0 turn 1"),
        ("assistant", "reply b"),
        ("user", "malicious 0 turn 2"),
    ]
    assert [r for r, _ in by_id["malicious/1"]] == ["user", "user"]
    assert by_id["malicious/9"] == [
        ("user", "malicious 9 turn 0"),
        ("assistant", "held reply"),
        ("user", "malicious 9 turn 1"),
    ]
    assert data.summary.with_context == {"malicious": 2, "malicious.heldout": 1}
    assert data.summary.multi_turn == {"malicious": 3}
    assert all(e.prompt[0] == {"role": "system", "content": "SYS"} for e in data.train)


def test_the_recipe_defaults_take_800_held_out_rows_and_shuffle_with_seed_666(tmp_path: Path) -> None:
    write_jsonl_atomic(tmp_path / "codesec.train.jsonl", [_row("codesec", "codesec", i) for i in range(20)])
    write_jsonl_atomic(
        tmp_path / "codesec.heldout.jsonl", [_row("codesec", "codesec", 1000 + i) for i in range(801)]
    )
    data = load_rl_data(tmp_path, sets=("codesec",))
    assert len(data.validation) == 800
    order = [e.task_id for e in data.train]
    assert order == [e.task_id for e in load_rl_data(tmp_path, sets=("codesec",), seed=666).train]
    assert order != [e.task_id for e in load_rl_data(tmp_path, sets=("codesec",), seed=667).train]


def test_a_one_prompt_stream_and_a_take_of_nothing() -> None:
    from purpcode.rl.data import PromptStream

    s = PromptStream(1, seed=3)
    assert s.take(0) == [] and s.cursor == 0
    assert s.take(3) == [0, 0, 0]


def test_later_epochs_are_shuffled_with_seed_plus_epoch() -> None:
    import random

    from purpcode.rl.data import PromptStream

    s = PromptStream(6, seed=10)
    first, second = s.take(6), s.take(6)
    expected = list(range(6))
    random.Random(11).shuffle(expected)
    assert (first, second) == (list(range(6)), expected)


def test_fit_prompt_drops_whole_exchanges_counting_every_dropped_message() -> None:
    from purpcode.rl.data import fit_prompt

    msgs = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "u3"},
    ]
    fitted, dropped = fit_prompt(msgs, len, 2)  # system + one user turn
    assert fitted == [msgs[0], msgs[5]] and dropped == 4
    # No system message first: a second-position system-like turn is not treated as one.
    plain = [
        {"role": "user", "content": "u1"},
        {"role": "system", "content": "x"},
        {"role": "user", "content": "u2"},
    ]
    assert fit_prompt(plain, len, 1) == ([plain[2]], 2)
    users = [{"role": "system", "content": "s"}] + [{"role": "user", "content": f"u{i}"} for i in range(3)]
    assert fit_prompt(users, len, 3) == ([users[0], users[2], users[3]], 1)  # only the oldest turn goes


def test_every_held_out_overlap_is_counted(tmp_path: Path) -> None:
    """Two train rows also held out: both removed, and the counter says 2 (not capped at 1)."""
    write_jsonl_atomic(tmp_path / "codesec.train.jsonl", [_row("codesec", "codesec", i) for i in (1, 2, 3)])
    write_jsonl_atomic(tmp_path / "codesec.heldout.jsonl", [_row("codesec", "codesec", i) for i in (1, 3)])
    data = load_rl_data(tmp_path, held_out_per_set=1)
    assert [e.task_id for e in data.train] == ["codesec/2"]
    assert data.summary.overlap_removed == {"codesec": 2}


def test_easy_ids_errors_in_full_and_the_task_ids_key(tmp_path: Path) -> None:
    """Users act on these messages (which stage to run, which file is wrong): pinned word for word."""
    import json
    import re

    import pytest

    from purpcode.rl.data import load_easy_ids

    missing = tmp_path / "easy.json"
    with pytest.raises(FileNotFoundError) as err:
        load_easy_ids(missing)
    assert str(err.value) == (
        f"easy ids file {missing} does not exist: rule learning writes it; run that stage first, or disable "
        "ruleLearning to train RL from the base model without it"
    )
    missing.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"easy ids file {missing}: not valid JSON (Expecting")):
        load_easy_ids(missing)
    missing.write_text(json.dumps({"task_ids": ["a", {"task_id": "b"}]}), encoding="utf-8")
    assert load_easy_ids(missing) == {"a", "b"}
    missing.write_text(json.dumps({"easy": 3}), encoding="utf-8")
    with pytest.raises(ValueError) as err:
        load_easy_ids(missing)
    assert str(err.value) == f"easy ids file {missing}: expected a list of task ids, got int"


def test_no_training_prompts_names_what_was_expected(tmp_path: Path) -> None:
    import re

    import pytest

    with pytest.raises(ValueError) as err:
        load_rl_data(tmp_path, held_out_per_set=0)
    message = str(err.value)
    expected = re.search(r"expected (.*) from the synthesis stage", message)
    assert expected is not None and expected.group(1).split(", ")[0].endswith(".train.jsonl")
    assert all(part.endswith(".train.jsonl") for part in expected.group(1).split(", "))
    assert "; missing: [" in message and "easy ids removed: 0; too long: 0)" in message


def test_a_prompt_stream_checkpoint_from_another_seed_or_size_is_refused() -> None:
    import pytest

    from purpcode.rl.data import PromptStream

    with pytest.raises(ValueError) as err:
        PromptStream(0, seed=1)
    assert str(err.value) == "PromptStream needs at least one prompt"
    state = PromptStream(5, seed=1).state_dict()
    assert set(state) == {"cursor", "size", "seed"}
    with pytest.raises(ValueError) as err:
        PromptStream(5, seed=2).load_state_dict(
            state
        )  # the seed is compared (a renamed key read the default)
    assert str(err.value) == (
        "checkpoint prompt stream was over 5 prompts with seed 1, this run has 5 with seed 2: the RL data changed "
        "since the checkpoint; clear the rl/checkpoints directory to start over"
    )
    with pytest.raises(ValueError, match="over 5 prompts with seed 1, this run has 6 with seed 1"):
        PromptStream(6, seed=1).load_state_dict(state)


def test_training_prompts_all_removed_say_nothing_was_missing(tmp_path: Path) -> None:
    """Every file there, every prompt removed as easy: the error says 'missing: none' and counts the removals."""
    import pytest

    from purpcode.rl.data import RL_SETS

    for name in RL_SETS:
        write_jsonl_atomic(tmp_path / f"{name}.train.jsonl", [_row(name, "correctness", 0)])
    easy = {f"{name}/0" for name in RL_SETS}
    with pytest.raises(ValueError) as err:
        load_rl_data(tmp_path, easy_ids=easy, held_out_per_set=0)
    assert f"missing: none; easy ids removed: {len(RL_SETS)}; too long: 0)" in str(err.value)


def test_the_reward_columns_and_the_chat_token_count() -> None:
    """What TRL hands the reward function per row, and prompt lengths as the trainer sees them (the chat
    template with the generation prompt, no special tokens added again), with the locally built tokenizer."""
    from purpcode.rl.data import RLExample, chat_token_counter
    from purpcode.tiny_model import build_tokenizer

    prompt = [{"role": "user", "content": "Write add(a, b)."}]
    ex = RLExample(
        task_id="t/1", set_name="utility", oracle="correctness", prompt=prompt, ground_truth={"tests": "x"}
    )
    assert ex.reward_row() == {
        "prompt": prompt,
        "oracle": "correctness",
        "ground_truth": {"tests": "x"},
        "task_id": "t/1",
    }
    tok = build_tokenizer()
    text = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    count = chat_token_counter(tok)
    assert count(prompt) == len(tok(text, add_special_tokens=False)["input_ids"]) > 0
    longer = [*prompt, {"role": "assistant", "content": "Sure."}, {"role": "user", "content": "Again."}]
    assert count(longer) > count(prompt)
