"""External tools the packaging tests run (CI installs them; see .ci/run): tests/support/tools.py, under the name
the packaging tests import."""

from __future__ import annotations

from support.tools import in_ci, require_tool

__all__ = ["in_ci", "require_tool"]
