"""Fixtures for the sandbox tests: a module-scoped real service whose process tree the tests can inspect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sandbox_util import MODES, SECRET, Sandbox, sandbox_in_mode


@pytest.fixture(scope="module", params=MODES)
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """The real service in each isolation mode (the hostile and reward-hack suites run against both)."""
    env = {
        "PURPCODE_TEST_SECRET": SECRET,
        "PURPCODE_SANDBOX_MAX_PROCESSES": "32",
        "PURPCODE_SANDBOX_TMPFS_MB": "16",
        "PURPCODE_SANDBOX_MAX_FILE_SIZE_MB": "8",
        "PURPCODE_SANDBOX_DEFAULT_MEMORY_MB": "256",
        "PURPCODE_SANDBOX_MAX_CONCURRENCY": "4",
    }
    with sandbox_in_mode(request.param, env) as box:
        yield box
