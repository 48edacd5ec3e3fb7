"""The analyzer contract shared by codesec (rewards) and synthesis (Rule2Code confirmation).

Why a protocol with batches: the RL step scores hundreds of answers at once, and the expensive parts (a bandit parse,
a semgrep or CodeQL process start) amortise over a batch; identical code (GRPO groups often repeat answers) is
scanned once thanks to the hash-keyed cache.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["LOW", "MEDIUM", "HIGH"]
SEVERITY_RANK: dict[str, int] = {"UNDEFINED": -1, "LOW": 0, "MEDIUM": 1, "HIGH": 2}


class AnalyzerError(RuntimeError):
    """An analyzer could not run (binary missing, crashed, unreadable output)."""


class AnalyzerUnavailable(AnalyzerError):
    """The analyzer asked for is not installed here."""


class Finding(BaseModel):
    """One issue an analyzer reports in one piece of code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector_id: str = Field(
        description="Analyzer-specific rule id, e.g. bandit 'B602' or a semgrep rule id."
    )
    name: str = Field(
        default="", description="Human name of the detector, e.g. 'subprocess_popen_with_shell_equals_true'."
    )
    cwe: str | None = Field(default=None, description="'CWE-78' style id, None when the detector names none.")
    severity: Severity
    confidence: Severity = "MEDIUM"
    line: int = Field(default=0, ge=0, description="1-based line in the scanned code (0: unknown).")
    message: str = ""
    analyzer: str = "bandit"

    def at_least(self, min_severity: str) -> bool:
        """True when this finding's severity is `min_severity` or above."""
        return SEVERITY_RANK[self.severity] >= SEVERITY_RANK[min_severity.upper()]


class AnalysisResult(BaseModel):
    """Findings for one snippet plus why the analyzer could not read it, if it could not (e.g. a syntax error).

    Why the error matters: code the analyzer cannot parse has no findings, which must not read as "secure".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    findings: tuple[Finding, ...] = ()
    error: str | None = None


class DetectorInfo(BaseModel):
    """What an analyzer can detect: the catalogue synthesis draws Rule2Code seeds from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector_id: str
    name: str
    cwe: str | None = None
    severity: Severity | None = Field(default=None, description="Default severity when the detector has one.")
    description: str = ""
    analyzer: str = "bandit"


@runtime_checkable
class Analyzer(Protocol):
    """Static analysis of Python source, many snippets per call."""

    name: str

    def analyze_batch(self, codes: list[str]) -> list[list[Finding]]:
        """Findings for each code, in input order (all severities at or above the analyzer's `min_severity`)."""
        ...


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()


def filter_severity(findings: Sequence[Finding], min_severity: str) -> list[Finding]:
    """The findings at `min_severity` or above."""
    return [f for f in findings if f.at_least(min_severity)]


def cwe_label(value: int | str | None) -> str | None:
    """Normalise 78, '78', 'cwe-78', 'CWE-78' to 'CWE-78'; 0/None/'' to None."""
    if value is None or value == "" or value == 0:
        return None
    text = str(value).strip().upper()
    if text.startswith("CWE-"):
        text = text[4:]
    digits = "".join(ch for ch in text if ch.isdigit())
    return f"CWE-{int(digits)}" if digits and int(digits) else None


class FindingCache:
    """A thread-safe LRU of findings keyed by code hash (bounded so a long RL run cannot grow it without end)."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, AnalysisResult] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> AnalysisResult | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: str, result: AnalysisResult) -> None:
        with self._lock:
            self._data[key] = result
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class CachedBatchAnalyzer:
    """Base for analyzers: dedup by hash, serve cached results, scan only the misses via `_scan_uncached`."""

    name = "base"

    def __init__(self, *, min_severity: str = "LOW", cache_size: int = 200_000) -> None:
        if min_severity.upper() not in ("LOW", "MEDIUM", "HIGH"):
            raise ValueError(f"min_severity={min_severity!r}: use one of LOW, MEDIUM, HIGH")
        self.min_severity = min_severity.upper()
        self.cache = FindingCache(cache_size)

    def analyze_batch(self, codes: list[str]) -> list[list[Finding]]:
        return [list(r.findings) for r in self.analyze_batch_detailed(codes)]

    def analyze_batch_detailed(self, codes: list[str]) -> list[AnalysisResult]:
        """Like `analyze_batch`, keeping each snippet's parse/scan error."""
        keys = [code_hash(c) for c in codes]
        todo: dict[str, str] = {}
        results: dict[str, AnalysisResult] = {}
        for key, code in zip(keys, codes, strict=True):
            if key in results or key in todo:
                continue
            cached = self.cache.get(key)
            if cached is None:
                todo[key] = code
            else:
                results[key] = cached
        if todo:
            scanned = self._scan_uncached(list(todo.values()))
            for key, raw in zip(todo, scanned, strict=True):
                kept = AnalysisResult(
                    findings=tuple(filter_severity(raw.findings, self.min_severity)), error=raw.error
                )
                self.cache.put(key, kept)
                results[key] = kept
        return [results[k] for k in keys]

    def analyze(self, code: str) -> list[Finding]:
        """One snippet (convenience over `analyze_batch`)."""
        return self.analyze_batch([code])[0]

    def _scan_uncached(self, codes: list[str]) -> list[AnalysisResult]:  # pragma: no cover - abstract
        raise NotImplementedError

    def warmup(self) -> None:
        """Start whatever the analyzer needs (worker processes) before the first timed batch."""

    def close(self) -> None:
        """Release worker processes; the analyzer stays usable (a new pool starts on demand)."""
