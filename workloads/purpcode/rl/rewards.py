"""The RL reward: the oracles library, configured from the stage config (the recipe's {0, 0.8, 1} values).

The mapping is `purpcode.oracles.from_stage`, shared with rule learning and evaluation. The hard-codesec ablation
is applied both by the plan (codesecNoCodeReward 0) and here, so a hand-written config cannot miss it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from purpcode.oracles import from_stage

if TYPE_CHECKING:
    from purpcode.oracles.config import OracleConfig
    from purpcode.oracles.runner import OracleRunner
    from purpcode_operator.api import RLSpec
    from purpcode_operator.plan import StageConfig

JUDGE_ORACLES = ("general-safety", "noreject")


def oracle_config(cfg: StageConfig, spec: RLSpec) -> OracleConfig:
    """The reward definition for this RL stage."""
    return from_stage.oracle_config(cfg, hard_codesec=spec.hard_codesec_reward)


def check_services(cfg: StageConfig, oracles_used: Sequence[str]) -> None:
    """Fail before loading any model when the data needs a service the config does not give."""
    used = set(oracles_used)
    if "correctness" in used and not cfg.services.sandbox_url:
        raise ValueError(
            "RL data has correctness prompts but services.sandboxUrl is empty: start the sandbox service "
            "(the operator does) or remove the utility set"
        )
    judged = sorted(used & set(JUDGE_ORACLES))
    if judged and not cfg.services.judge_url:
        raise ValueError(
            f"RL data has {'/'.join(judged)} prompts but services.judgeUrl is empty: configure services.judge "
            "(deploy or url)"
        )


def build_runner(cfg: StageConfig, spec: RLSpec) -> OracleRunner:
    """An `OracleRunner` for this stage: analyzer, sandbox and judge from the stage config."""
    return from_stage.build_runner(cfg, hard_codesec=spec.hard_codesec_reward)


def reward_function(runner: OracleRunner, *, name: str = "purpcode_reward") -> Callable[..., list[float]]:
    """The oracles' TRL reward function, minus its own per-oracle logging: the RL trainer logs exact per-oracle
    means and pass rates over every generated sample (all ranks), so a second, per-rank estimate would collide."""
    from purpcode.oracles.runner import make_trl_reward_func

    inner = make_trl_reward_func(runner, name=name)

    def reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        kwargs.pop("log_metric", None)
        return inner(prompts, completions, **kwargs)

    reward.__name__ = reward.__qualname__ = name
    reward.inner = inner  # type: ignore[attr-defined]
    return reward


def last_scores(reward: Callable[..., Any]) -> list[Any]:
    """The `Score` objects of the latest call (format flag, details) when the function keeps them."""
    inner = getattr(reward, "inner", reward)
    return list(getattr(inner, "last_scores", []) or [])
