"""Fixtures for the synthesis tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from synthesis.stage_configs import stage_config

from purpcode_operator.plan import StageConfig


@pytest.fixture
def make_config(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(stage: str = "synthesis", **kw: Any) -> StageConfig:
        return stage_config(tmp_path / "artifacts", stage, **kw)

    return make
