"""The alert rules: promtool's own checks and unit tests (real Prometheus rule evaluation), one case per alert."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from tools_check import require_tool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "helm" / "purpcode" / "rules" / "alerts.yaml"
TESTS = Path(__file__).resolve().parent / "promtool" / "alerts_test.yaml"
REQUIRED = {
    "PurpCodeRunFailed",
    "PurpCodeStagePendingTooLong",
    "PurpCodeSandboxErrorRate",
    "PurpCodeOperatorReconcileErrors",
    "PurpCodeOperatorDown",
}
APT = "apt-get install prometheus"


def _alerts() -> dict[str, dict]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool", APT)
    out = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in out.stdout


def test_promtool_unit_tests_pass() -> None:
    promtool = require_tool("promtool", APT)
    out = subprocess.run([promtool, "test", "rules", str(TESTS)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The unit tests really evaluate the rules: an alert with a changed threshold breaks them."""
    promtool = require_tool("promtool", APT)
    broken = RULES.read_text(encoding="utf-8").replace("> 900", "> 99999")
    (tmp_path / "alerts.yaml").write_text(broken, encoding="utf-8")
    cases = yaml.safe_load(TESTS.read_text(encoding="utf-8"))
    cases["rule_files"] = [str(tmp_path / "alerts.yaml")]
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(cases), encoding="utf-8")
    out = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "t.yaml")], capture_output=True, text=True
    )
    assert out.returncode != 0 and "PurpCodeStagePendingTooLong" in out.stdout + out.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    alerts = _alerts()
    assert REQUIRED <= set(alerts)
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(TESTS.read_text(encoding="utf-8"))["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert set(alerts) <= firing, f"alerts without a firing case: {set(alerts) - firing}"
    assert set(alerts) <= quiet, f"alerts without a quiet case: {set(alerts) - quiet}"
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
