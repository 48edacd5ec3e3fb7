"""Fixtures for the sandbox tests: a module-scoped real service whose process tree the tests can inspect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sandbox_util import SECRET, Sandbox
from support.sandbox_fixture import sandbox_service


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    env = {
        "PURPCODE_TEST_SECRET": SECRET,
        "PURPCODE_SANDBOX_MAX_PROCESSES": "32",
        "PURPCODE_SANDBOX_TMPFS_MB": "16",
        "PURPCODE_SANDBOX_MAX_FILE_SIZE_MB": "8",
        "PURPCODE_SANDBOX_DEFAULT_MEMORY_MB": "256",
    }
    with sandbox_service(env=env) as service:
        box = Sandbox(service)
        try:
            yield box
        finally:
            box.client.close()
