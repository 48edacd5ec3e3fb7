"""Read the MITRE CWE catalogue (cwec_v4.x.xml) with the standard library, namespace-agnostic.

Only weaknesses that apply to Python (a Python language entry, or a language-independent class) and are not
deprecated are kept; their Python demonstrative examples become the rule's vulnerable/safe examples.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET  # noqa: S405 - the catalogue is a local file the user chose, not request data
from pathlib import Path

from purpcode.data.rules import Rule

_LANG_INDEPENDENT = {"not language-specific", "language-independent"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    for c in elem:
        if _local(c.tag) == name:
            return c
    return None


def _text(elem: ET.Element | None) -> str:
    """All text under an element (XHTML paragraphs included), whitespace collapsed."""
    if elem is None:
        return ""
    return re.sub(r"\s+", " ", "".join(elem.itertext())).strip()


def _code(elem: ET.Element) -> str:
    """Example code keeps its lines: XHTML <br/> ends a line (a raw newline right after it is layout, not code),
    and each nested <div> (MITRE's margin-left blocks) indents its lines one level."""
    done: list[str] = []
    cur_text = ""
    cur_level = 0

    def newline() -> None:
        nonlocal cur_text
        done.append("    " * cur_level + cur_text if cur_text.strip() else "")
        cur_text = ""

    def emit(text: str, level: int) -> None:
        nonlocal cur_text, cur_level
        for i, chunk in enumerate(text.split("\n")):
            if i:
                newline()
            if not cur_text:
                cur_level = level
            cur_text += chunk

    def walk(e: ET.Element, level: int, nested: bool) -> None:
        if e.text:
            emit(e.text, level)
        for c in e:
            tag = _local(c.tag)
            if tag == "br":
                newline()
                tail = c.tail or ""
                emit(tail[1:] if tail.startswith("\n") else tail, level)
                continue
            if tag == "div" and nested:
                if cur_text.strip():
                    newline()
                walk(c, level + 1, True)
                if cur_text.strip():
                    newline()
            else:
                walk(c, level, nested or tag == "div")
            if c.tail:
                emit(c.tail, level)

    walk(elem, 0, False)
    newline()
    out = [ln.rstrip() for ln in done]
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def _applies_to_python(weakness: ET.Element) -> bool:
    platforms = _child(weakness, "Applicable_Platforms")
    if platforms is None:
        return False
    for lang in platforms:
        if _local(lang.tag) != "Language":
            continue
        if lang.get("Name", "").lower() == "python" or lang.get("Class", "").lower() in _LANG_INDEPENDENT:
            return True
    return False


def _python_examples(weakness: ET.Element) -> tuple[str, str]:
    bad = good = ""
    examples = _child(weakness, "Demonstrative_Examples")
    if examples is None:
        return bad, good
    for code in examples.iter():
        if _local(code.tag) != "Example_Code" or code.get("Language", "").lower() != "python":
            continue
        nature = code.get("Nature", "").lower()
        if nature == "bad" and not bad:
            bad = _code(code)
        elif nature in ("good", "mitigation") and not good:
            good = _code(code)
    return bad, good


def load_mitre_catalog(path: str | os.PathLike[str], *, python_only: bool = True) -> list[Rule]:
    """CWE rules from a MITRE catalogue XML file; a clear error when the file is missing or is not one."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"cweCatalogPath: {p} does not exist (download cwec_latest.xml.zip from MITRE)"
        )
    try:
        root = ET.parse(p).getroot()  # noqa: S314 - local catalogue, see module import note
    except ET.ParseError as err:
        raise ValueError(f"cweCatalogPath: {p} is not valid XML ({err})") from err
    if _local(root.tag) != "Weakness_Catalog":
        raise ValueError(f"cweCatalogPath: {p} is not a MITRE CWE catalogue (root <{_local(root.tag)}>)")
    rules: list[Rule] = []
    for elem in root.iter():
        if _local(elem.tag) != "Weakness":
            continue
        if elem.get("Status", "").lower() == "deprecated":
            continue
        if python_only and not _applies_to_python(elem):
            continue
        wid = elem.get("ID")
        if not wid or not wid.isdigit():
            continue
        bad, good = _python_examples(elem)
        rules.append(
            Rule(
                id=f"CWE-{int(wid)}",
                kind="cwe",
                source="mitre",
                name=elem.get("Name", f"CWE-{wid}"),
                description=_text(_child(elem, "Description")) or elem.get("Name", ""),
                cwe=f"CWE-{int(wid)}",
                vulnerable=bad,
                safe=good,
                extra=_text(_child(elem, "Extended_Description"))[:800],
            )
        )
    return rules
