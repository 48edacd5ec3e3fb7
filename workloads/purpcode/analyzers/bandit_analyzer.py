"""Bandit through its Python API: the default analyzer (offline, free, no process per sample).

Each worker process builds bandit's config and plugin set once and then scans in-memory snippets with a fresh
`BanditManager` per snippet (bandit keeps per-run state on the manager). `# nosec` comments are ignored: a policy
must not be able to silence the analyzer that rewards it.
"""

from __future__ import annotations

import ast
import concurrent.futures
import functools
import io
import logging
import multiprocessing
import os
import threading
import warnings
from typing import Any

from purpcode.analyzers.base import AnalysisResult, CachedBatchAnalyzer, DetectorInfo, Finding, cwe_label

LOG = logging.getLogger(__name__)
_FNAME = "<answer>"
_worker_config: Any = None


def _quiet_bandit() -> None:
    # Bandit warns once per snippet about module names ("Unable to find qualified name"): noise, not signal.
    logging.getLogger("bandit").setLevel(logging.ERROR)
    # Loading bandit's plugins trips a stevedore deprecation warning (bandit's, not ours): load them quietly once.
    # Bandit also registers a SARIF report formatter whose optional dependency (sarif_om) is not installed: stevedore
    # logs an ERROR for a formatter we never use. Only that load is quieted; the level comes back after.
    stevedore_log = logging.getLogger("stevedore.extension")
    level = stevedore_log.level
    stevedore_log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*verify_requirements.*")
            import bandit.core.extension_loader  # noqa: F401
    finally:
        stevedore_log.setLevel(level)


def _bandit_config() -> Any:
    global _worker_config
    if _worker_config is None:
        _quiet_bandit()
        from bandit.core import config as b_config

        _worker_config = b_config.BanditConfig()
    return _worker_config


def _severity(value: str) -> str:
    value = str(value).upper()
    return value if value in ("LOW", "MEDIUM", "HIGH") else "LOW"


def scan_one(code: str) -> AnalysisResult:
    """Scan one snippet with bandit in this process."""
    conf = _bandit_config()  # first: it imports bandit quietly
    from bandit.core import manager as b_manager

    mgr = b_manager.BanditManager(conf, "file", quiet=True, ignore_nosec=True)
    data = code.encode("utf-8", "surrogatepass")
    mgr._parse_file(_FNAME, io.BytesIO(data), [_FNAME])  # in-memory scan: bandit's own per-file entry point
    if mgr.skipped:
        reason = str(mgr.skipped[0][1])
        try:
            ast.parse(code)
        except (SyntaxError, ValueError) as err:
            reason = f"syntax error: {err.msg if isinstance(err, SyntaxError) else err}"
        return AnalysisResult(error=reason)
    findings = tuple(
        Finding(
            detector_id=str(issue.test_id),
            name=str(issue.test or ""),
            cwe=cwe_label(getattr(issue.cwe, "id", None)),
            severity=_severity(issue.severity),  # type: ignore[arg-type]
            confidence=_severity(issue.confidence),  # type: ignore[arg-type]
            line=int(issue.lineno or 0),
            message=str(issue.text),
            analyzer="bandit",
        )
        for issue in mgr.results
    )
    return AnalysisResult(findings=findings)


def scan_chunk(codes: list[str]) -> list[AnalysisResult]:
    """Worker entry point: scan a chunk of snippets."""
    return [scan_one(c) for c in codes]


def chunk_by_lines(codes: list[str], n_chunks: int) -> list[list[int]]:
    """Split indices into about `n_chunks` groups of similar total line count (bandit's cost follows lines)."""
    if not codes:
        return []
    weights = [c.count("\n") + 1 for c in codes]
    target = max(1, sum(weights) // max(1, n_chunks))
    chunks: list[list[int]] = [[]]
    acc = 0
    for i, w in enumerate(weights):
        if acc >= target and chunks[-1]:
            chunks.append([])
            acc = 0
        chunks[-1].append(i)
        acc += w
    return chunks


class BanditAnalyzer(CachedBatchAnalyzer):
    """Bandit over batches, a process pool for large batches, results cached by code hash.

    `workers=0` scans in the calling process (no pool); the default is the CPU count. Batches smaller than
    `inline_below` lines are scanned in process too, where a pool round-trip would cost more than it saves.
    """

    name = "bandit"

    def __init__(
        self,
        *,
        min_severity: str = "LOW",
        workers: int | None = None,
        inline_below: int = 400,
        cache_size: int = 200_000,
    ) -> None:
        super().__init__(min_severity=min_severity, cache_size=cache_size)
        self.workers = os.cpu_count() or 1 if workers is None else workers
        self.inline_below = inline_below
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _get_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                # spawn, not fork: callers run event loops and HTTP threads that a fork would copy mid-flight.
                ctx = multiprocessing.get_context("spawn")
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=ctx, initializer=_bandit_config
                )
            return self._pool

    def _scan_uncached(self, codes: list[str]) -> list[AnalysisResult]:
        total_lines = sum(c.count("\n") + 1 for c in codes)
        if self.workers <= 1 or total_lines < self.inline_below or len(codes) < 2:
            return scan_chunk(codes)
        chunks = chunk_by_lines(codes, self.workers * 4)
        out: list[AnalysisResult | None] = [None] * len(codes)
        try:
            pool = self._get_pool()
            futures = [pool.submit(scan_chunk, [codes[i] for i in idx]) for idx in chunks]
            for idx, fut in zip(chunks, futures, strict=True):
                for i, res in zip(idx, fut.result(), strict=True):
                    out[i] = res
        except concurrent.futures.process.BrokenProcessPool as err:
            # A worker died (OOM kill, or a __main__ that spawn cannot re-import): finish in process, slower but right.
            LOG.warning("bandit worker pool broke (%s); scanning the rest of this batch in process", err)
            self.close()
            self.workers = 0
        return [r if r is not None else scan_one(codes[i]) for i, r in enumerate(out)]

    def warmup(self) -> None:
        """Start the worker processes now (each imports bandit once) so the first real batch pays no start-up."""
        if self.workers <= 1:
            _bandit_config()
            return
        pool = self._get_pool()
        for fut in [pool.submit(scan_chunk, [f"x = {i}\n"]) for i in range(self.workers * 2)]:
            fut.result()

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _plugin_metadata(func: Any) -> tuple[set[int], set[str]]:
    """CWE ids and severities a bandit plugin passes to `bandit.Issue(...)`, read from its source at run time."""
    import inspect

    from bandit.core import issue as b_issue

    cwes: set[int] = set()
    severities: set[str] = set()
    try:
        source = inspect.getsource(inspect.getmodule(func) or func)
    except (OSError, TypeError):
        return cwes, severities
    names = {k: v for k, v in vars(b_issue.Cwe).items() if k.isupper() and isinstance(v, int)}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return cwes, severities
    target = getattr(func, "__name__", "")
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == target:
            scope: ast.AST = node
            break
    else:
        scope = tree
    for node in ast.walk(scope):
        if isinstance(node, ast.keyword) and node.arg == "cwe" and isinstance(node.value, ast.Attribute):
            if node.value.attr in names:
                cwes.add(names[node.value.attr])
        if isinstance(node, ast.keyword) and node.arg == "severity" and isinstance(node.value, ast.Attribute):
            if node.value.attr in ("LOW", "MEDIUM", "HIGH"):
                severities.add(node.value.attr)
    return cwes, severities


@functools.lru_cache(maxsize=1)
def _bandit_detectors() -> tuple[DetectorInfo, ...]:
    _quiet_bandit()
    from bandit.core import extension_loader

    mgr = extension_loader.MANAGER
    out: dict[str, DetectorInfo] = {}
    for plugin in mgr.plugins:
        func = plugin.plugin
        test_id = str(func._test_id)
        cwes, sevs = _plugin_metadata(func)
        doc = (func.__doc__ or "").strip().splitlines()
        description = next((ln.strip().strip("=").strip() for ln in doc if ln.strip().strip("=")), "")
        # A plugin whose severity depends on the call (e.g. B602 HIGH/LOW) reports its highest one.
        severity = max(sevs, key=lambda s: ("LOW", "MEDIUM", "HIGH").index(s)) if sevs else None
        out[test_id] = DetectorInfo(
            detector_id=test_id,
            name=plugin.name,
            cwe=cwe_label(min(cwes)) if cwes else None,
            severity=severity,  # type: ignore[arg-type]
            description=description,
            analyzer="bandit",
        )
    for entry in mgr.blacklist_by_id.values():
        out[str(entry["id"])] = DetectorInfo(
            detector_id=str(entry["id"]),
            name=str(entry["name"]),
            cwe=cwe_label(entry.get("cwe")),
            severity=_severity(entry.get("level", "MEDIUM")),  # type: ignore[arg-type]
            description=str(entry.get("message", "")).replace(
                "{name}", ", ".join(entry.get("qualnames", [])[:4])
            ),
            analyzer="bandit",
        )
    return tuple(sorted(out.values(), key=lambda d: d.detector_id))


def bandit_detectors() -> list[DetectorInfo]:
    """Every detector of the installed bandit (plugins and blacklist entries): id, name, CWE, default severity."""
    return list(_bandit_detectors())


def bandit_version() -> str:
    from importlib.metadata import version

    return version("bandit")
