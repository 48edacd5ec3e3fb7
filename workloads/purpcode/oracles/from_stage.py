"""The oracles as a stage configures them: one mapping from a `StageConfig` for every stage that scores answers.

Why one place: rule learning keeps answers that score >= 0.5, RL rewards with the same oracles and evaluation
reports with them; the recipe needs all three to mean the same thing by "a good answer". The stage config carries
the run spec's `OracleSpec` and service endpoints; the oracles take their own `OracleConfig`/`JudgeConfig` (this
package never imports the operator's at run time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from purpcode.oracles.config import JudgeConfig, OracleConfig

if TYPE_CHECKING:
    from purpcode.oracles.runner import OracleRunner
    from purpcode_operator.plan import StageConfig


def oracle_config(cfg: StageConfig, *, hard_codesec: bool = False) -> OracleConfig:
    """The reward definition; `hard_codesec` (the RL ablation) gives an answer without code 0 from codesec."""
    fmt, svc = cfg.oracles.format, cfg.services
    return OracleConfig(
        analysis_min_chars=fmt.analysis_min_chars,
        answer_min_chars=fmt.answer_min_chars,
        repeat_substring_length=fmt.repeat_substring_length,
        repeat_max_count=fmt.repeat_max_count,
        codesec_no_code_reward=0.0 if hard_codesec else cfg.oracles.codesec_no_code_reward,
        codesec_min_severity=svc.analyzer.min_severity,
        correctness_timeout_s=cfg.oracles.correctness_timeout_seconds,
        correctness_code_blocks=cfg.oracles.correctness_code_blocks,
        judge_max_tokens=svc.judge_max_tokens,
        judge_concurrency=svc.judge_concurrency,
    )


def judge_config(cfg: StageConfig) -> JudgeConfig | None:
    """The judge endpoint, None without one (the API key is read from the env var the config names; never
    logged)."""
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


def build_runner(cfg: StageConfig, *, hard_codesec: bool = False) -> OracleRunner:
    """An `OracleRunner` for a stage: analyzer, sandbox and judge from its config."""
    from purpcode.oracles.runner import OracleRunner

    analyzer = cfg.services.analyzer
    opts: dict[str, Any] = (
        {"rules": analyzer.semgrep_rules} if analyzer.kind == "semgrep" and analyzer.semgrep_rules else {}
    )
    return OracleRunner(
        oracle_config(cfg, hard_codesec=hard_codesec),
        sandbox_url=cfg.services.sandbox_url,
        judge=judge_config(cfg),
        analyzer=analyzer.kind,
        analyzer_opts=opts,
    )
