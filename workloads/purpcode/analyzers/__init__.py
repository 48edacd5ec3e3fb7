"""Static analyzers for Python code: bandit by default (Python API, offline), semgrep and CodeQL when installed.

Used by the codesec oracle (rewards) and by synthesis (Rule2Code keeps only seeds the analyzer really flags).
Import-light: bandit itself loads on first scan.
"""

from __future__ import annotations

from typing import Any

from purpcode.analyzers.base import (
    SEVERITY_RANK,
    AnalysisResult,
    Analyzer,
    AnalyzerError,
    AnalyzerUnavailable,
    CachedBatchAnalyzer,
    DetectorInfo,
    Finding,
    Severity,
    code_hash,
    cwe_label,
    filter_severity,
)

ANALYZERS: tuple[str, ...] = ("bandit", "semgrep", "codeql")


def get_analyzer(kind: str = "bandit", **opts: Any) -> CachedBatchAnalyzer:
    """Build an analyzer by name.

    Options: `min_severity` (LOW/MEDIUM/HIGH, default LOW = every finding), `cache_size`; bandit: `workers`
    (process pool size; 0 = in process), `inline_below`; semgrep: `rules`, `binary`; codeql: `suite`, `binary`.
    Raises `AnalyzerUnavailable` naming the fix when semgrep/codeql is asked for and its binary is missing.
    """
    name = kind.strip().lower()
    if name == "bandit":
        from purpcode.analyzers.bandit_analyzer import BanditAnalyzer

        return BanditAnalyzer(**opts)
    if name == "semgrep":
        from purpcode.analyzers.external import SemgrepAnalyzer

        return SemgrepAnalyzer(**opts)
    if name == "codeql":
        from purpcode.analyzers.external import CodeQLAnalyzer

        return CodeQLAnalyzer(**opts)
    raise ValueError(f"analyzer={kind!r}: use one of {', '.join(ANALYZERS)}")


def bandit_detectors() -> list[DetectorInfo]:
    """The installed bandit's detectors (test id, name, CWE, default severity), read at run time."""
    from purpcode.analyzers.bandit_analyzer import bandit_detectors as _detectors

    return _detectors()


__all__ = [
    "ANALYZERS",
    "SEVERITY_RANK",
    "AnalysisResult",
    "Analyzer",
    "AnalyzerError",
    "AnalyzerUnavailable",
    "CachedBatchAnalyzer",
    "DetectorInfo",
    "Finding",
    "Severity",
    "bandit_detectors",
    "code_hash",
    "cwe_label",
    "filter_severity",
    "get_analyzer",
]
