"""Semgrep and CodeQL adapters behind the same `Analyzer` interface, used when their binaries are installed.

Both scan a whole batch in one process run (a temp folder with one file per snippet) because their start-up cost
(seconds for semgrep, tens of seconds for a CodeQL database) dwarfs the per-file work.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from purpcode.analyzers.base import (
    AnalysisResult,
    AnalyzerError,
    AnalyzerUnavailable,
    CachedBatchAnalyzer,
    Finding,
    cwe_label,
)

DEFAULT_SEMGREP_RULES = "semgrep-python.yml"
DEFAULT_CODEQL_SUITE = "codeql/python-queries:codeql-suites/python-security-extended.qls"


def find_binary(name: str, explicit: str | None, env_var: str) -> str:
    """Locate an analyzer binary (explicit path, then $ENV_VAR, then PATH) or say how to get one."""
    candidate = explicit or os.environ.get(env_var)
    if candidate:
        if Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
        raise AnalyzerUnavailable(
            f"{name}: '{candidate}' (from {'binary=' if explicit else env_var}) is not an executable file"
        )
    found = shutil.which(name)
    if found is None:
        hint = (
            "pip install semgrep"
            if name == "semgrep"
            else "download the CodeQL CLI bundle and put `codeql` on PATH"
        )
        raise AnalyzerUnavailable(
            f"analyzer '{name}' was requested but no `{name}` binary is installed: {hint}, set {env_var}, "
            "or use analyzer 'bandit' (the default)"
        )
    return found


def syntax_error(code: str) -> str | None:
    """Why Python cannot parse `code`, or None. Semgrep and CodeQL recover from syntax errors silently, and a
    snippet they could only half read must not pass as clean."""
    try:
        ast.parse(code)
    except SyntaxError as err:
        return f"syntax error: {err.msg} (line {err.lineno})"
    except (ValueError, MemoryError, RecursionError) as err:
        return f"unparseable: {type(err).__name__}"
    return None


def _with_syntax_errors(results: list[AnalysisResult], codes: list[str]) -> list[AnalysisResult]:
    out = []
    for res, code in zip(results, codes, strict=True):
        err = res.error or syntax_error(code)
        out.append(res if err == res.error else AnalysisResult(findings=res.findings, error=err))
    return out


def _write_batch(root: Path, codes: list[str]) -> list[Path]:
    paths = []
    for i, code in enumerate(codes):
        path = root / f"s{i:06d}.py"
        path.write_text(code, encoding="utf-8", errors="surrogatepass")
        paths.append(path)
    return paths


def _index_of(path: str, n: int) -> int | None:
    stem = Path(path).stem
    if stem.startswith("s") and stem[1:].isdigit():
        i = int(stem[1:])
        return i if i < n else None
    return None


_SEMGREP_SEVERITY = {
    "ERROR": "HIGH",
    "WARNING": "MEDIUM",
    "INFO": "LOW",
    "CRITICAL": "HIGH",
    "HIGH": "HIGH",
    "MEDIUM": "MEDIUM",
    "LOW": "LOW",
}


def parse_semgrep_json(
    report: dict[str, Any], n: int, rule_ids: frozenset[str] = frozenset()
) -> list[AnalysisResult]:
    """Turn `semgrep --json` output for files s000000.py.. into per-snippet results.

    Semgrep prefixes a local rule's id with its file's path ('home.x.rules.purpcode.eval-exec'); ids are mapped
    back to the rule file's own (`rule_ids`) so findings name the same detector wherever the file lives.
    """
    findings: list[list[Finding]] = [[] for _ in range(n)]
    errors: list[str | None] = [None] * n
    for res in report.get("results", []):
        i = _index_of(str(res.get("path", "")), n)
        if i is None:
            continue
        extra = res.get("extra", {}) or {}
        meta = extra.get("metadata", {}) or {}
        cwes = meta.get("cwe") or []
        if isinstance(cwes, str):
            cwes = [cwes]
        cwe = cwe_label(str(cwes[0]).split(":")[0]) if cwes else None
        check_id = str(res.get("check_id", ""))
        if rule_ids and check_id not in rule_ids:
            check_id = next((r for r in rule_ids if check_id.endswith("." + r)), check_id)
        findings[i].append(
            Finding(
                detector_id=check_id,
                name=check_id.rsplit(".", 1)[-1],
                cwe=cwe,
                severity=_SEMGREP_SEVERITY.get(str(extra.get("severity", "INFO")).upper(), "LOW"),  # type: ignore[arg-type]
                confidence=_SEMGREP_SEVERITY.get(str(meta.get("confidence", "MEDIUM")).upper(), "MEDIUM"),  # type: ignore[arg-type]
                line=int((res.get("start") or {}).get("line", 0) or 0),
                message=str(extra.get("message", "")).strip(),
                analyzer="semgrep",
            )
        )
    for err in report.get("errors", []):
        i = _index_of(str(err.get("path", "")), n)
        if i is not None and "Syntax" in str(err.get("type", "")) + str(err.get("message", "")):
            errors[i] = f"syntax error: {str(err.get('message', '')).strip()[:200]}"
    return [AnalysisResult(findings=tuple(f), error=e) for f, e in zip(findings, errors, strict=True)]


def _rule_ids(path: Path) -> frozenset[str]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise AnalyzerError(f"semgrep rules={path}: unreadable ({err})") from err
    return frozenset(str(r.get("id")) for r in doc.get("rules", []) if isinstance(r, dict) and r.get("id"))


class SemgrepAnalyzer(CachedBatchAnalyzer):
    """Semgrep with the project's own Python rules (offline: local rule files only, metrics off, nosem ignored)."""

    name = "semgrep"

    def __init__(
        self,
        *,
        rules: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        min_severity: str = "LOW",
        timeout_s: float = 600.0,
        cache_size: int = 200_000,
    ) -> None:
        super().__init__(min_severity=min_severity, cache_size=cache_size)
        self.binary = find_binary("semgrep", binary, "PURPCODE_SEMGREP")
        self.rules = (
            Path(rules)
            if rules
            else Path(str(resources.files("purpcode.analyzers") / "rules" / DEFAULT_SEMGREP_RULES))
        )
        if not self.rules.exists():
            raise AnalyzerError(f"semgrep rules={self.rules}: no such file")
        self.rule_ids = _rule_ids(self.rules)
        self.timeout_s = timeout_s

    def _scan_uncached(self, codes: list[str]) -> list[AnalysisResult]:
        with tempfile.TemporaryDirectory(prefix="purpcode-semgrep-") as tmp:
            root = Path(tmp) / "src"
            root.mkdir()
            _write_batch(root, codes)
            cmd = [
                self.binary,
                "scan",
                "--config",
                str(self.rules),
                "--json",
                "--metrics=off",
                "--disable-nosem",
                "--quiet",
                "--no-git-ignore",
                str(root),
            ]
            env = {**os.environ, "SEMGREP_SEND_METRICS": "off", "SEMGREP_ENABLE_VERSION_CHECK": "0"}
            try:
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=self.timeout_s, env=env, check=False
                )
            except subprocess.TimeoutExpired as err:
                raise AnalyzerError(
                    f"semgrep timed out after {self.timeout_s}s on {len(codes)} snippets"
                ) from err
            try:
                report = json.loads(proc.stdout or "{}")
            except json.JSONDecodeError as err:
                raise AnalyzerError(
                    f"semgrep exited {proc.returncode} without JSON: {proc.stderr.strip()[-400:]}"
                ) from err
            if proc.returncode not in (0, 1) and not report.get("results"):
                raise AnalyzerError(f"semgrep exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
            return _with_syntax_errors(parse_semgrep_json(report, len(codes), self.rule_ids), codes)


def _sarif_severity(rule: dict[str, Any], result: dict[str, Any]) -> str:
    props = rule.get("properties", {}) or {}
    sec = props.get("security-severity")
    if sec is not None:
        try:
            score = float(sec)
        except (TypeError, ValueError):
            score = -1.0
        if score >= 7.0:
            return "HIGH"
        if score >= 4.0:
            return "MEDIUM"
        if score >= 0.0:
            return "LOW"
    level = result.get("level") or (rule.get("defaultConfiguration", {}) or {}).get("level", "warning")
    return {"error": "HIGH", "warning": "MEDIUM"}.get(str(level), "LOW")


def parse_sarif(report: dict[str, Any], n: int, analyzer: str = "codeql") -> list[AnalysisResult]:
    """Turn a SARIF report over files s000000.py.. into per-snippet results (CWE from `external/cwe/cwe-NNN` tags)."""
    findings: list[list[Finding]] = [[] for _ in range(n)]
    for run in report.get("runs", []):
        tool = run.get("tool", {}) or {}
        rules: dict[str, dict[str, Any]] = {}
        for comp in [tool.get("driver", {}) or {}, *(tool.get("extensions", []) or [])]:
            for rule in comp.get("rules", []) or []:
                rules[str(rule.get("id", ""))] = rule
        for res in run.get("results", []) or []:
            rule_id = str(res.get("ruleId", "") or (res.get("rule", {}) or {}).get("id", ""))
            rule = rules.get(rule_id, {})
            locs = res.get("locations") or [{}]
            phys = (locs[0] or {}).get("physicalLocation", {}) or {}
            i = _index_of(str((phys.get("artifactLocation", {}) or {}).get("uri", "")), n)
            if i is None:
                continue
            tags = (rule.get("properties", {}) or {}).get("tags", []) or []
            cwe = next((cwe_label(t.rsplit("-", 1)[-1]) for t in tags if "external/cwe/cwe-" in str(t)), None)
            precision = str((rule.get("properties", {}) or {}).get("precision", "medium")).upper()
            findings[i].append(
                Finding(
                    detector_id=rule_id,
                    name=str(rule.get("name", rule_id)),
                    cwe=cwe,
                    severity=_sarif_severity(rule, res),  # type: ignore[arg-type]
                    confidence="HIGH"
                    if precision in ("HIGH", "VERY-HIGH")
                    else ("LOW" if precision == "LOW" else "MEDIUM"),
                    line=int((phys.get("region", {}) or {}).get("startLine", 0) or 0),
                    message=str((res.get("message", {}) or {}).get("text", "")),
                    analyzer=analyzer,
                )
            )
    return [AnalysisResult(findings=tuple(f)) for f in findings]


class CodeQLAnalyzer(CachedBatchAnalyzer):
    """CodeQL's Python security suite: one database per batch, SARIF parsed per snippet file."""

    name = "codeql"

    def __init__(
        self,
        *,
        suite: str = DEFAULT_CODEQL_SUITE,
        binary: str | None = None,
        min_severity: str = "LOW",
        threads: int = 0,
        timeout_s: float = 1800.0,
        cache_size: int = 200_000,
    ) -> None:
        super().__init__(min_severity=min_severity, cache_size=cache_size)
        self.binary = find_binary("codeql", binary, "PURPCODE_CODEQL")
        self.suite = suite
        self.threads = threads
        self.timeout_s = timeout_s

    def _run(self, args: list[str]) -> None:
        try:
            proc = subprocess.run(
                [self.binary, *args], capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        except subprocess.TimeoutExpired as err:
            raise AnalyzerError(f"codeql {args[0]} {args[1]} timed out after {self.timeout_s}s") from err
        if proc.returncode != 0:
            raise AnalyzerError(
                f"codeql {args[0]} {args[1]} exited {proc.returncode}: {proc.stderr.strip()[-400:]}"
            )

    def _scan_uncached(self, codes: list[str]) -> list[AnalysisResult]:
        with tempfile.TemporaryDirectory(prefix="purpcode-codeql-") as tmp:
            root = Path(tmp) / "src"
            root.mkdir()
            _write_batch(root, codes)
            db = Path(tmp) / "db"
            sarif = Path(tmp) / "out.sarif"
            threads = f"--threads={self.threads}"
            self._run(
                [
                    "database",
                    "create",
                    str(db),
                    "--language=python",
                    f"--source-root={root}",
                    threads,
                    "--overwrite",
                ]
            )
            self._run(
                [
                    "database",
                    "analyze",
                    str(db),
                    self.suite,
                    "--format=sarif-latest",
                    f"--output={sarif}",
                    threads,
                ]
            )
            return _with_syntax_errors(
                parse_sarif(json.loads(sarif.read_text(encoding="utf-8")), len(codes)), codes
            )
