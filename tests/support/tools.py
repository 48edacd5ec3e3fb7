"""External tools the tests run (prometheus, promtool, hadolint, semgrep, ...), found or explained.

Outside CI a missing tool skips its test with how to get it. Under CI (`CI` set to a true value, as `.ci/run`
does) it fails: CI installs every tool, so a missing one is a broken CI image, not a reason to pass silently.
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_tool(name: str, how: str, *, env: str | None = None) -> str:
    """Path of `name` (or of the file the `env` variable names); skip, or under CI fail, when it is missing."""
    path = os.environ.get(env) if env else None
    if path and not os.access(path, os.X_OK):
        pytest.fail(f"{env}={path}: not an executable file; unset it or point it at `{name}`")
    path = path or shutil.which(name)
    if path:
        return path
    message = f"`{name}` is not installed ({how})"
    if in_ci():
        pytest.fail(f"{message}; CI must install it (.ci/run)")
    pytest.skip(message)
