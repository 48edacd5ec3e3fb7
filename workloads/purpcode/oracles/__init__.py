"""The recipe's reward function: format gate, then one oracle per sample (correctness, codesec, general-safety,
noreject), scored in batches. Used by rule learning (rejection sampling), RL (rewards) and evaluation (scores).

Import-light: the runner, judge client and analyzers load on first use.
"""

from __future__ import annotations

from typing import Any

from purpcode.oracles.config import JudgeConfig, OracleConfig
from purpcode.oracles.format import (
    CodeBlock,
    FormatResult,
    check_format,
    code_to_run,
    extract_answer,
    extract_code_blocks,
    has_repetition,
    python_blocks,
)
from purpcode.oracles.models import ORACLE_NAMES, REWARD_VALUES, OracleName, Sample, Score

_LAZY = {
    "OracleRunner": "purpcode.oracles.runner",
    "OracleConfigError": "purpcode.oracles.runner",
    "make_trl_reward_func": "purpcode.oracles.runner",
    "score_for_rejection": "purpcode.oracles.runner",
    "samples_from_columns": "purpcode.oracles.runner",
    "JudgeClient": "purpcode.oracles.judge",
    "JudgeError": "purpcode.oracles.judge",
    "JudgeUnavailable": "purpcode.oracles.judge",
    "parse_malicious": "purpcode.oracles.judge_prompts",
    "parse_noreject": "purpcode.oracles.judge_prompts",
    "CodesecOracle": "purpcode.oracles.codesec",
    "CorrectnessOracle": "purpcode.oracles.correctness",
    "SandboxUnavailable": "purpcode.oracles.correctness",
    "OracleMetrics": "purpcode.oracles.metrics",
    "default_metrics": "purpcode.oracles.metrics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'purpcode.oracles' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "ORACLE_NAMES",
    "REWARD_VALUES",
    "CodeBlock",
    "FormatResult",
    "JudgeConfig",
    "OracleConfig",
    "OracleName",
    "Sample",
    "Score",
    "check_format",
    "code_to_run",
    "extract_answer",
    "extract_code_blocks",
    "has_repetition",
    "python_blocks",
    *_LAZY,
]
