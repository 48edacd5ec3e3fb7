"""The shipped CWE corpus, the analyzer's detector catalogue, and the analyzer-confirmation filter on real code."""

from __future__ import annotations

import pytest

from purpcode.analyzers import get_analyzer
from purpcode.data.rules import Rule, detector_rules, load_corpus, load_rules, select_rules
from purpcode.synthesis.rule2code import confirm
from purpcode.synthesis.text import parses


@pytest.fixture(scope="module")
def bandit():  # type: ignore[no-untyped-def]
    return get_analyzer("bandit", min_severity="LOW", workers=0)


def test_corpus_has_40_python_cwes_with_every_field() -> None:
    rules = load_corpus()
    assert len(rules) >= 40
    assert len({r.id for r in rules}) == len(rules)
    for r in rules:
        assert r.id.startswith("CWE-") and r.cwe == r.id
        assert r.name and len(r.description) > 30 and r.task and r.triggers
        assert parses(r.vulnerable), r.id
        assert parses(r.safe), r.id
    ids = {r.id for r in rules}
    # the families the issue names: injection, traversal, deserialisation, weak crypto, secrets, temp files, XML,
    # SSRF, resource leaks
    assert {
        "CWE-78",
        "CWE-89",
        "CWE-22",
        "CWE-502",
        "CWE-327",
        "CWE-798",
        "CWE-377",
        "CWE-611",
        "CWE-918",
        "CWE-772",
    } <= ids


def test_vulnerable_patterns_are_confirmed_and_safe_patterns_are_not(bandit) -> None:  # type: ignore[no-untyped-def]
    rules = [r for r in load_corpus() if r.detectors]
    assert len(rules) >= 35
    vuln = bandit.analyze_batch_detailed([r.vulnerable for r in rules])
    safe = bandit.analyze_batch_detailed([r.safe for r in rules])
    for rule, v, s in zip(rules, vuln, safe, strict=True):
        relevant, reason = confirm(rule, v)
        assert reason is None and relevant, f"{rule.id}: vulnerable pattern not confirmed"
        # The safe version never trips the codesec oracle (MEDIUM and above).
        assert not [f for f in s.findings if f.at_least("MEDIUM")], f"{rule.id}: safe pattern flagged"


def test_confirmation_rejects_with_reasons(bandit) -> None:  # type: ignore[no-untyped-def]
    sqli = next(r for r in load_corpus() if r.id == "CWE-89")
    clean = "def add(a, b):\n    return a + b\n"
    unrelated = "import hashlib\n\ndef h(x):\n    return hashlib.md5(x).hexdigest()\n"
    broken = "def f(:\n"
    results = bandit.analyze_batch_detailed([clean, unrelated, broken])
    assert [confirm(sqli, r)[1] for r in results] == ["no_findings", "unrelated_findings", "unparseable"]


def test_detector_rules_come_from_installed_bandit() -> None:
    rules = {r.id: r for r in detector_rules()}
    assert len(rules) >= 40
    b602 = rules["B602"]
    assert b602.kind == "detector" and b602.source == "analyzer" and b602.cwe == "CWE-78"
    assert b602.severity in ("LOW", "MEDIUM", "HIGH")
    assert b602.matches(type("F", (), {"detector_id": "B602", "cwe": "CWE-78"})())
    assert not b602.matches(type("F", (), {"detector_id": "B605", "cwe": "CWE-78"})())


def test_select_rules_restricts_cwes_and_their_detectors() -> None:
    rules = load_rules(cwes=["CWE-89"])
    cwe_ids = {r.id for r in rules if r.kind == "cwe"}
    assert cwe_ids == {"CWE-89"}
    detectors = {r.id for r in rules if r.kind == "detector"}
    assert "B608" in detectors and "B602" not in detectors
    with pytest.raises(ValueError, match="cweCatalogPath"):
        select_rules(load_corpus(), ["CWE-99999"])


def test_rule_text_and_matching() -> None:
    r = Rule(id="CWE-1", name="x", description="d", cwe="CWE-1", detectors=("B1",))
    assert r.text().startswith("CWE-1 (x): d")
    f = type("F", (), {"detector_id": "B9", "cwe": "CWE-1"})()
    assert r.matches(f)
