"""Launcher variables: read what torchrun sets; fill a one-process world only when nothing set one."""

from __future__ import annotations

import pytest

from purpcode.training.distributed import LAUNCHER_VARS, dist_env, ensure_launcher_env


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in (*LAUNCHER_VARS, "LOCAL_WORLD_SIZE"):
        monkeypatch.setenv(var, "x")  # recorded, so teardown restores the original (usually: unset)
        monkeypatch.delenv(var)
    return monkeypatch


def test_plain_process_is_rank_zero_of_one(clean_env: pytest.MonkeyPatch) -> None:
    env = dist_env()
    assert (env.rank, env.local_rank, env.world_size) == (0, 0, 1)
    assert env.is_main and env.is_local_main and not env.distributed


def test_torchrun_variables(clean_env: pytest.MonkeyPatch) -> None:
    for k, v in {"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4"}.items():
        clean_env.setenv(k, v)
    env = dist_env()
    assert (
        env.rank == 5 and env.local_rank == 1 and env.node_rank == 1 and env.distributed and not env.is_main
    )
    assert ensure_launcher_env() == {}  # a launcher is there: nothing changes


def test_bad_variable_is_named(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("WORLD_SIZE", "eight")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        dist_env()


def test_one_process_world_is_filled_in(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MASTER_ADDR", "10.0.0.1")
    set_now = ensure_launcher_env()
    assert set_now["RANK"] == "0" and set_now["WORLD_SIZE"] == "1" and int(set_now["MASTER_PORT"]) > 0
    assert "MASTER_ADDR" not in set_now  # an existing value is kept
    import os

    assert os.environ["MASTER_ADDR"] == "10.0.0.1" and os.environ["LOCAL_RANK"] == "0"
