"""External tools the packaging tests run, found or explained (CI installs them; see .ci/run)."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str, how: str) -> str:
    """Path of `name`; in CI a missing tool fails the test, elsewhere it skips with how to get it."""
    path = shutil.which(name)
    if path:
        return path
    message = f"`{name}` is not installed ({how})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
