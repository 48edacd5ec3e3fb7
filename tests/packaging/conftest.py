"""Fixtures for the packaging tests: the generator tools loaded by path (tools/ is not a package).

No __init__.py here on purpose: a package named `packaging` would shadow the real `packaging` library. Helper
modules here (tool_loader, tools_check, dashboard_queries) are imported by their plain names.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from tool_loader import load_tool


@pytest.fixture(scope="session")
def gen() -> ModuleType:
    return load_tool("gen_manifests")


@pytest.fixture(scope="session")
def lock() -> ModuleType:
    return load_tool("lock_images")
