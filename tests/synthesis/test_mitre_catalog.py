"""The MITRE CWE catalogue reader on a small fixture shaped like cwec_v4.x.xml (namespaced, XHTML text)."""

from __future__ import annotations

from pathlib import Path

import pytest

from purpcode.data.rules import load_corpus, load_rules, merge_catalog
from purpcode.data.rules.mitre import load_mitre_catalog

CATALOG = """<?xml version="1.0" encoding="UTF-8"?>
<Weakness_Catalog xmlns="http://cwe.mitre.org/cwe-7" xmlns:xhtml="http://www.w3.org/1999/xhtml"
    Name="CWE" Version="4.14" Date="2024-02-29">
  <Weaknesses>
    <Weakness ID="78" Name="Improper Neutralization of Special Elements used in an OS Command" Abstraction="Base"
        Structure="Simple" Status="Stable">
      <Description>The product constructs all or part of an OS command using externally-influenced input.</Description>
      <Extended_Description><xhtml:p>This could allow attackers to execute unexpected commands.</xhtml:p>
      </Extended_Description>
      <Applicable_Platforms>
        <Language Class="Not Language-Specific" Prevalence="Undetermined"/>
      </Applicable_Platforms>
    </Weakness>
    <Weakness ID="1336" Name="Improper Neutralization of Special Elements Used in a Template Engine"
        Abstraction="Base" Structure="Simple" Status="Incomplete">
      <Description>The product uses a template engine to insert or process externally-influenced input.</Description>
      <Applicable_Platforms><Language Name="Python" Prevalence="Undetermined"/></Applicable_Platforms>
      <Demonstrative_Examples>
        <Demonstrative_Example>
          <Intro_Text>Rendering a user string as a template:</Intro_Text>
          <Example_Code Nature="Bad" Language="Python"><xhtml:div>from jinja2 import Template<xhtml:br/>
def page(s):<xhtml:br/>    return Template(s).render()</xhtml:div></Example_Code>
          <Example_Code Nature="Good" Language="Python"><xhtml:div>def page(s):<xhtml:br/>    return s</xhtml:div>
          </Example_Code>
        </Demonstrative_Example>
      </Demonstrative_Examples>
    </Weakness>
    <Weakness ID="120" Name="Buffer Copy without Checking Size of Input" Abstraction="Base" Structure="Simple"
        Status="Incomplete">
      <Description>Classic buffer overflow.</Description>
      <Applicable_Platforms><Language Name="C" Prevalence="Often"/></Applicable_Platforms>
    </Weakness>
    <Weakness ID="999" Name="Old" Abstraction="Base" Structure="Simple" Status="Deprecated">
      <Description>Deprecated entry.</Description>
      <Applicable_Platforms><Language Class="Not Language-Specific"/></Applicable_Platforms>
    </Weakness>
  </Weaknesses>
  <Categories><Category ID="2000" Name="A category" Status="Draft"><Summary>x</Summary></Category></Categories>
</Weakness_Catalog>
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    p = tmp_path / "cwec_v4.14.xml"
    p.write_text(CATALOG)
    return p


def test_reads_python_relevant_weaknesses(catalog: Path) -> None:
    rules = {r.id: r for r in load_mitre_catalog(catalog)}
    assert set(rules) == {"CWE-78", "CWE-1336"}  # C-only and deprecated entries are skipped
    r78 = rules["CWE-78"]
    assert r78.source == "mitre" and r78.cwe == "CWE-78"
    assert r78.description.startswith("The product constructs")
    assert "unexpected commands" in r78.extra
    ssti = rules["CWE-1336"]
    assert ssti.vulnerable.splitlines() == [
        "from jinja2 import Template",
        "def page(s):",
        "    return Template(s).render()",
    ]
    assert "return s" in ssti.safe


def test_merge_adds_text_and_new_cwes(catalog: Path) -> None:
    merged = {r.id: r for r in merge_catalog(load_corpus(), load_mitre_catalog(catalog))}
    assert merged["CWE-78"].source == "corpus" and "unexpected commands" in merged["CWE-78"].extra
    assert merged["CWE-1336"].source == "mitre"
    rules = load_rules(cwes=["CWE-1336"], catalog_path=catalog, detectors=False)
    assert [r.id for r in rules] == ["CWE-1336"]


def test_bad_catalogue_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cweCatalogPath"):
        load_mitre_catalog(tmp_path / "missing.xml")
    (tmp_path / "bad.xml").write_text("<not-closed>")
    with pytest.raises(ValueError, match="not valid XML"):
        load_mitre_catalog(tmp_path / "bad.xml")
    (tmp_path / "other.xml").write_text("<Other/>")
    with pytest.raises(ValueError, match="not a MITRE CWE catalogue"):
        load_mitre_catalog(tmp_path / "other.xml")


def test_nested_divs_indent_example_code() -> None:
    import xml.etree.ElementTree as ET

    from purpcode.data.rules.mitre import _code

    x = (
        '<d xmlns:xhtml="http://www.w3.org/1999/xhtml"><xhtml:div>def f(a):<xhtml:br/>'
        '<xhtml:div style="margin-left:1em;">if a:<xhtml:br/><xhtml:div style="margin-left:1em;">return 1'
        "</xhtml:div>return 2</xhtml:div>x = f(1)</xhtml:div></d>"
    )
    assert _code(ET.fromstring(x)) == "def f(a):\n    if a:\n        return 1\n    return 2\nx = f(1)\n"
