"""Stage configs for tests, built by the lead's plan from the tiny-cpu sample (as the operator and runner do)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from purpcode_operator.api import PurpCodeRun
from purpcode_operator.plan import ServiceEndpoints, StageConfig, build_plan

REPO = Path(__file__).resolve().parents[2]
TINY_SAMPLE = REPO / "manifests" / "samples" / "tiny-random-cpu.yaml"


def tiny_run(**synthesis: Any) -> PurpCodeRun:
    """The tiny-cpu sample, with synthesis fields overridden (camelCase keys, as in a spec file)."""
    doc = yaml.safe_load(TINY_SAMPLE.read_text())
    doc["spec"]["stages"]["synthesis"].update(synthesis)
    return PurpCodeRun.model_validate(doc)


def stage_config(
    artifacts: Path,
    stage: str = "synthesis",
    *,
    judge_url: str | None = None,
    sandbox_url: str | None = None,
    **synthesis: Any,
) -> StageConfig:
    plan = build_plan(
        tiny_run(**synthesis),
        artifacts_root=str(artifacts),
        endpoints=ServiceEndpoints(sandbox_url=sandbox_url, judge_url=judge_url, judge_model="fake-judge"),
    )
    return plan.stage(stage).config.model_copy(update={"metrics_port": None})
