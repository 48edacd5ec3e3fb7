"""The RL reward: the oracles library, configured from the stage config (the recipe's {0, 0.8, 1} values).

Why a mapping here: the stage config carries the run spec's `OracleSpec` and service endpoints; the oracles take
their own `OracleConfig`/`JudgeConfig` (they must not import the operator package). The hard-codesec ablation is
applied both by the plan (codesecNoCodeReward 0) and here, so a hand-written config cannot miss it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from purpcode.oracles.config import JudgeConfig, OracleConfig

if TYPE_CHECKING:
    from purpcode.oracles.runner import OracleRunner
    from purpcode_operator.api import RLSpec
    from purpcode_operator.plan import StageConfig

JUDGE_ORACLES = ("general-safety", "noreject")


def oracle_config(cfg: StageConfig, spec: RLSpec) -> OracleConfig:
    """The reward definition for this RL stage."""
    fmt = cfg.oracles.format
    no_code = 0.0 if spec.hard_codesec_reward else cfg.oracles.codesec_no_code_reward
    return OracleConfig(
        analysis_min_chars=fmt.analysis_min_chars,
        answer_min_chars=fmt.answer_min_chars,
        repeat_substring_length=fmt.repeat_substring_length,
        repeat_max_count=fmt.repeat_max_count,
        codesec_no_code_reward=no_code,
        codesec_min_severity=cfg.services.analyzer.min_severity,
        correctness_timeout_s=cfg.oracles.correctness_timeout_seconds,
        judge_max_tokens=cfg.services.judge_max_tokens,
        judge_concurrency=cfg.services.judge_concurrency,
    )


def judge_config(cfg: StageConfig) -> JudgeConfig | None:
    """The judge endpoint (the API key is read from the env var the config names; never logged)."""
    svc = cfg.services
    if not svc.judge_url:
        return None
    return JudgeConfig.from_env(
        svc.judge_url,
        model=svc.judge_model,
        api_key_env=svc.judge_api_key_env,
        max_tokens=svc.judge_max_tokens,
        concurrency=svc.judge_concurrency,
    )


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
    from purpcode.oracles.runner import OracleRunner

    analyzer_opts: dict[str, Any] = {}
    if cfg.services.analyzer.kind == "semgrep" and cfg.services.analyzer.semgrep_rules:
        analyzer_opts["rules"] = cfg.services.analyzer.semgrep_rules
    return OracleRunner(
        oracle_config(cfg, spec),
        sandbox_url=cfg.services.sandbox_url,
        judge=judge_config(cfg),
        analyzer=cfg.services.analyzer.kind,
        analyzer_opts=analyzer_opts,
    )


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
