"""The prompt mix: share of each safety set, per-set cap, utility count, fixed seed, train splits only."""

from __future__ import annotations

from pathlib import Path

import pytest

from purpcode.data.schema import TaskRow, write_jsonl_atomic
from purpcode.rule_learning.mix import select_prompts


def make_set(data: Path, name: str, n: int, oracle: str, split: str = "train") -> None:
    rows = [
        TaskRow(task_id=f"{name}/{i}", messages=[{"role": "user", "content": f"{name} {i}"}], oracle=oracle)
        for i in range(n)
    ]
    write_jsonl_atomic(data / f"{name}.{split}.jsonl", rows)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    make_set(tmp_path, "codesec", 40, "codesec")
    make_set(tmp_path, "malicious", 10, "general-safety")
    make_set(tmp_path, "secqa", 3, "noreject")
    make_set(tmp_path, "utility", 20, "correctness")
    make_set(tmp_path, "codesec", 5, "codesec", split="heldout")
    return tmp_path


def test_fraction_cap_and_utility_count(data: Path) -> None:
    mix = select_prompts(data, sample_fraction=0.25, per_set_cap=8, utility_prompts=6, seed=666)
    # codesec: ceil(0.25 * 40) = 10 capped at 8; malicious: ceil(2.5) = 3; secqa: ceil(0.75) = 1; utility: 6
    assert mix.chosen == {"codesec": 8, "malicious": 3, "overrefusal": 0, "secqa": 1, "utility": 6}
    assert mix.available == {"codesec": 40, "malicious": 10, "overrefusal": 0, "secqa": 3, "utility": 20}
    assert all(not r.task_id.startswith("codesec/heldout") for _, r in mix.rows)
    assert {s for s, _ in mix.rows} == {"codesec", "malicious", "secqa", "utility"}
    assert all(r.task_id.startswith(f"{s}/") for s, r in mix.rows)


def test_same_seed_same_mix_other_seed_other_mix(data: Path) -> None:
    a = select_prompts(data, sample_fraction=0.25, per_set_cap=8, utility_prompts=6, seed=666)
    b = select_prompts(data, sample_fraction=0.25, per_set_cap=8, utility_prompts=6, seed=666)
    c = select_prompts(data, sample_fraction=0.25, per_set_cap=8, utility_prompts=6, seed=1)
    ids = lambda m: [r.task_id for _, r in m.rows]  # noqa: E731
    assert ids(a) == ids(b)
    assert ids(a) != ids(c)


def test_whole_sets_when_fraction_is_one(data: Path) -> None:
    mix = select_prompts(data, sample_fraction=1.0, per_set_cap=1000, utility_prompts=1000, seed=666)
    assert mix.chosen["codesec"] == 40 and mix.chosen["utility"] == 20
    assert [r.task_id for s, r in mix.rows if s == "secqa"] == ["secqa/0", "secqa/1", "secqa/2"]


def test_no_sets_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="codesec.train.jsonl"):
        select_prompts(tmp_path, sample_fraction=0.25, per_set_cap=8, utility_prompts=6, seed=666)


def test_duplicate_task_ids_across_sets_are_rejected(tmp_path: Path) -> None:
    make_set(tmp_path, "codesec", 2, "codesec")
    row = TaskRow(task_id="codesec/0", messages=[{"role": "user", "content": "q"}], oracle="noreject")
    write_jsonl_atomic(tmp_path / "secqa.train.jsonl", [row])
    with pytest.raises(ValueError, match="codesec/0"):
        select_prompts(tmp_path, sample_fraction=1.0, per_set_cap=8, utility_prompts=0, seed=666)


def _rows(
    set_name: str, oracle: str, n: int, *, source: str = "", strategy: str = "", turns: int = 1
) -> list[TaskRow]:
    out = []
    for i in range(n):
        msgs: list[dict[str, str]] = []
        for t in range(turns):
            msgs.append({"role": "user", "content": f"{source}{strategy} {i} turn {t}"})
        out.append(
            TaskRow(
                task_id=f"{set_name}/{source or strategy}/{i}",
                messages=msgs,  # type: ignore[arg-type]
                oracle=oracle,  # type: ignore[arg-type]
                source=source,
                strategy=strategy,
            )
        )
    return out


def test_caps_apply_per_source_with_reference_overrides_and_multi_turn_whole(tmp_path: Path) -> None:
    from purpcode.rule_learning.mix import REFERENCE_SOURCE_CAPS

    codesec = (
        _rows("codesec", "codesec", 40, source="import:vul2prompt-general-oss-26k")
        + _rows("codesec", "codesec", 40, source="import:vul2prompt-vul2vul-oss-21k")
        + _rows("codesec", "codesec", 12, strategy="general")
        + _rows("codesec", "codesec", 6, source="import:vul2prompt-multi-oss-5k", turns=3)
    )
    write_jsonl_atomic(tmp_path / "codesec.train.jsonl", codesec)
    write_jsonl_atomic(
        tmp_path / "secqa.train.jsonl", _rows("secqa", "noreject", 40, source="import:rl-secqa-11k")
    )
    write_jsonl_atomic(
        tmp_path / "utility.train.jsonl", _rows("utility", "correctness", 40, strategy="kodcode")
    )
    caps = {k: v // 512 for k, v in REFERENCE_SOURCE_CAPS.items()}  # 4 for vul2vul (2048 / 512)
    mix = select_prompts(
        tmp_path,
        sample_fraction=0.25,
        per_set_cap=8,
        utility_prompts=6,
        utility_fraction=0.25,
        secqa_cap=3,
        source_caps=caps,
        seed=666,
    )
    src = {k: v["chosen"] for k, v in mix.by_source.items()}
    # general: ceil(0.25 * 40) = 10 capped at 8; vul2vul: its own cap 4; synthesised general: ceil(3) = 3;
    # multi-turn: all 6 whole (not 25%).
    assert src["codesec:vul2prompt-general-oss-26k"] == 8
    assert src["codesec:vul2prompt-vul2vul-oss-21k"] == 4
    assert src["codesec:codesec/general"] == 3
    assert src["codesec:vul2prompt-multi-oss-5k"] == 6
    assert mix.chosen["codesec"] == 8 + 4 + 3 + 6  # a merged-set cap of 8 would have given 8
    assert mix.chosen["secqa"] == 3  # its own cap, not perSetCap
    assert mix.chosen["utility"] == 6  # min(6, ceil(0.25 * 40) = 10)
    whole = [r for s, r in mix.rows if r.source == "import:vul2prompt-multi-oss-5k"]
    assert len(whole) == 6 and all(len(r.messages) == 3 for r in whole)
    # Without multi_turn_whole the multi-turn source is sampled like any other: ceil(0.25 * 6) = 2.
    sampled = select_prompts(
        tmp_path, sample_fraction=0.25, per_set_cap=8, utility_prompts=6, seed=666, multi_turn_whole=False
    )
    assert sampled.by_source["codesec:vul2prompt-multi-oss-5k"]["chosen"] == 2


def test_defaults_are_the_references() -> None:
    from purpcode_operator.api import RuleLearningSpec

    spec = RuleLearningSpec()
    assert spec.sample_fraction == 0.25 and spec.per_set_cap == 4096 and spec.secqa_cap == 4096
    assert spec.source_caps["vul2prompt-vul2vul-oss-21k"] == 2048
    assert spec.source_caps["vul2prompt-jailbreaking-oss-11k"] == 2048
    assert spec.multi_turn_whole and (spec.utility_prompts, spec.utility_fraction) == (8192, 0.25)
