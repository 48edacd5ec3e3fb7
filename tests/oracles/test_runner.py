"""Dispatch, the TRL reward-function adapter (unit and inside a real GRPOTrainer step), rejection-sampling API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from purpcode.analyzers import get_analyzer
from purpcode.oracles import (
    OracleConfig,
    OracleRunner,
    Sample,
    make_trl_reward_func,
    score_for_rejection,
)
from purpcode.oracles.runner import samples_from_columns

ANALYSIS = "The request is for a helper function; I will keep it free of injection flaws."
SAFE = f"## Analysis\n{ANALYSIS}\n## Answer\n```python\ndef add(a, b):\n    return a + b\n```"
VULN = f"## Analysis\n{ANALYSIS}\n## Answer\n```python\nimport os\n\ndef run(c):\n    os.system(c)\n```"
PROSE = f"## Analysis\n{ANALYSIS}\n## Answer\nUse parameterised queries rather than string formatting."


@pytest.fixture
def runner() -> Any:
    r = OracleRunner(OracleConfig(), analyzer=get_analyzer("bandit", workers=0))
    yield r
    r.close()


def test_trl_reward_func_plain_and_conversational(runner: OracleRunner) -> None:
    func = make_trl_reward_func(runner)
    logged: dict[str, float] = {}
    extra: dict[str, list[Any]] = {}
    rewards = func(
        prompts=[[{"role": "user", "content": "write add"}]] * 3 + ["plain prompt"],
        completions=[
            [{"role": "assistant", "content": SAFE}],  # conversational
            [{"role": "assistant", "content": VULN}],
            PROSE,  # plain text
            "garbage without sections",
        ],
        completion_ids=[[1], [2], [3], [4]],
        oracle=["codesec"] * 4,
        ground_truth=[json.dumps({"cwe": ["CWE-78"]}), {"cwe": []}, None, ""],
        task_id=["a", "b", "c", "d"],
        trainer_state=object(),
        log_metric=lambda name, value: logged.__setitem__(name, value),
        log_extra=lambda col, values: extra.__setitem__(col, values),
    )
    assert rewards == [1.0, 0.0, 0.8, 0.0]
    assert func.__name__ == "purpcode_reward"
    assert [s.task_id for s in func.last_scores] == ["a", "b", "c", "d"]  # type: ignore[attr-defined]
    assert logged["reward/codesec"] == pytest.approx(1.8 / 4)
    assert logged["format_pass_rate"] == 0.75


def test_trl_reward_func_needs_the_oracle_column(runner: OracleRunner) -> None:
    func = make_trl_reward_func(runner)
    with pytest.raises(ValueError, match="'oracle' column"):
        func(prompts=["p"], completions=["c"])
    with pytest.raises(ValueError, match=r"oracle\[0\]='security'"):
        func(prompts=["p"], completions=["c"], oracle=["security"])


def test_rejection_scores_in_order(runner: OracleRunner) -> None:
    samples = [
        Sample(response=r, oracle="codesec", task_id=str(i)) for i, r in enumerate([VULN, SAFE, PROSE])
    ]
    scores = score_for_rejection(runner, samples)
    assert [s.reward for s in scores] == [0.0, 1.0, 0.8]
    assert [s.passed for s in scores] == [False, True, False]


def test_samples_accept_rows_and_dicts() -> None:
    from purpcode.data.schema import TaskRow

    row = TaskRow(task_id="t1", messages=[{"role": "user", "content": "hi"}], oracle="codesec")  # type: ignore[list-item]
    s = Sample.from_row(row, SAFE)
    assert s.task_id == "t1" and s.messages() == [{"role": "user", "content": "hi"}]
    (from_cols,) = samples_from_columns(["p"], ["c"], ["noreject"], ['{"k": 1}'], ["id"])
    assert from_cols.ground_truth == {"k": 1} and from_cols.prompt == "p"
    with pytest.raises(ValueError, match="not JSON"):
        samples_from_columns(["p"], ["c"], ["noreject"], ["{bad"])


async def test_async_score_batch_in_callers_loop(runner: OracleRunner) -> None:
    scores = await runner.score_batch(
        [{"response": SAFE, "oracle": "codesec"}, {"response": PROSE, "oracle": "codesec"}]
    )
    assert [s.reward for s in scores] == [1.0, 0.8]


def test_inside_a_real_grpo_step(tiny_model_dir: Path, tmp_path: Path, runner: OracleRunner) -> None:
    """TRL calls the adapter with its own arguments and the dataset's oracle/ground_truth/task_id columns."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    data = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": f"Write a helper number {i}."}],
                "oracle": "codesec",
                "ground_truth": json.dumps({"cwe": ["CWE-78"]}),
                "task_id": f"t{i}",
            }
            for i in range(4)
        ]
    )
    func = make_trl_reward_func(runner)
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        num_generations=2,
        per_device_train_batch_size=2,
        max_completion_length=8,
        max_steps=1,
        use_cpu=True,
        bf16=False,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(model=str(tiny_model_dir), reward_funcs=[func], args=args, train_dataset=data)
    trainer.train()
    scores = func.last_scores  # type: ignore[attr-defined]
    assert len(scores) == 2 and {s.task_id for s in scores} <= {f"t{i}" for i in range(4)}
    assert all(s.oracle == "codesec" and not s.format_ok and s.reward == 0.0 for s in scores)  # random model
