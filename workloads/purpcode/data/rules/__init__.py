"""The rules Rule2Code draws from: the project's CWE corpus, the installed analyzer's detectors, and optionally the
MITRE CWE catalogue a user supplies.

Why three sources: the corpus gives every CWE a vulnerable and a safe example in our own words (and a seed the
analyzer can confirm even when the generator model is weak); the detectors make sure every check the analyzer can
actually run gets seeds; the MITRE catalogue widens coverage to every CWE the user cares about.
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

RuleKind = Literal["cwe", "detector"]
RuleSource = Literal["corpus", "analyzer", "mitre"]


class Rule(BaseModel):
    """One weakness to write seeds for: a CWE (corpus or MITRE) or an analyzer detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="'CWE-78' for CWE rules, the detector id (e.g. 'B602') for detector rules.")
    kind: RuleKind = "cwe"
    source: RuleSource = "corpus"
    name: str
    description: str
    cwe: str | None = Field(default=None, description="The CWE this rule is about (its id for CWE rules).")
    task: str = Field(
        default="", description="Benign functional description of what the vulnerable code does."
    )
    vulnerable: str = Field(
        default="", description="Example code with the weakness (corpus: analyzer-flagged)."
    )
    safe: str = Field(default="", description="The same functionality without the weakness.")
    detectors: tuple[str, ...] = Field(default=(), description="Analyzer detector ids expected to fire.")
    triggers: tuple[str, ...] = Field(default=(), description="Security words for over-refusal probes.")
    severity: str | None = None
    extra: str = Field(default="", description="More text, e.g. the MITRE extended description.")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("rule id must not be empty")
        return v.strip()

    def text(self, max_chars: int = 1200) -> str:
        """The rule as prose for prompts: name, id and description (plus extra text, clipped)."""
        head = (
            f"{self.id} ({self.name})"
            if self.kind == "cwe"
            else f"{self.id} {self.name} ({self.cwe or 'no CWE'})"
        )
        body = self.description if not self.extra else f"{self.description} {self.extra}"
        return f"{head}: {body}"[:max_chars]

    def matches(self, finding: Any) -> bool:
        """True when an analyzer finding is evidence of this rule's weakness (same detector, or same CWE)."""
        detector = getattr(finding, "detector_id", None)
        cwe = getattr(finding, "cwe", None)
        if self.kind == "detector":
            return detector == self.id
        if not self.detectors and self.cwe is None:
            return True
        return detector in self.detectors or (cwe is not None and cwe == self.cwe)


@functools.lru_cache(maxsize=1)
def _corpus_raw() -> tuple[dict[str, Any], ...]:
    text = resources.files(__package__).joinpath("cwes.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return tuple(data["rules"])


def load_corpus() -> list[Rule]:
    """The shipped CWE corpus (at least 40 CWEs relevant to Python)."""
    out: list[Rule] = []
    for raw in _corpus_raw():
        out.append(
            Rule(
                id=raw["id"],
                kind="cwe",
                source="corpus",
                name=raw["name"],
                description=raw["description"],
                cwe=raw["id"],
                task=raw.get("task", ""),
                vulnerable=raw.get("vulnerable", ""),
                safe=raw.get("safe", ""),
                detectors=tuple(raw.get("detectors") or ()),
                triggers=tuple(raw.get("triggers") or ()),
            )
        )
    return out


def detector_rules(detectors: list[Any] | None = None) -> list[Rule]:
    """One rule per analyzer detector (default: the installed bandit's, read at run time)."""
    if detectors is None:
        from purpcode.analyzers import bandit_detectors

        detectors = list(bandit_detectors())
    out = []
    for d in detectors:
        name = str(d.name).replace("_", " ")
        out.append(
            Rule(
                id=str(d.detector_id),
                kind="detector",
                source="analyzer",
                name=name,
                description=str(d.description or name),
                cwe=d.cwe,
                task=f"does what code flagged by the check '{name}' typically does",
                detectors=(str(d.detector_id),),
                severity=d.severity,
            )
        )
    return out


def merge_catalog(corpus: list[Rule], catalog: list[Rule]) -> list[Rule]:
    """The corpus with MITRE text added to matching CWEs, plus the catalogue's CWEs the corpus lacks."""
    by_id = {r.id: r for r in catalog}
    merged = [
        r.model_copy(update={"extra": f"{by_id[r.id].description} {by_id[r.id].extra}".strip()})
        if r.id in by_id
        else r
        for r in corpus
    ]
    have = {r.id for r in corpus}
    merged.extend(r for r in catalog if r.id not in have)
    return merged


def select_rules(rules: list[Rule], cwes: list[str]) -> list[Rule]:
    """Restrict CWE rules to `cwes` and detector rules to those about one of them (empty `cwes` keeps all)."""
    if not cwes:
        return list(rules)
    wanted = set(cwes)
    corpus_detectors = {d for r in rules if r.kind == "cwe" and r.id in wanted for d in r.detectors}
    out = []
    for r in rules:
        if r.kind == "cwe" and r.id in wanted:
            out.append(r)
        elif r.kind == "detector" and (r.cwe in wanted or r.id in corpus_detectors):
            out.append(r)
    unknown = wanted - {r.id for r in rules if r.kind == "cwe"}
    if unknown and not out:
        raise ValueError(
            f"cwes: none of {sorted(unknown)} is in the corpus or catalogue; add cweCatalogPath or pick from the "
            "shipped corpus"
        )
    return out


def load_rules(
    *,
    cwes: list[str] | None = None,
    catalog_path: str | os.PathLike[str] | None = None,
    detectors: bool = True,
) -> list[Rule]:
    """Every rule a synthesis run uses: corpus (+ MITRE catalogue) + analyzer detectors, restricted to `cwes`."""
    rules = load_corpus()
    if catalog_path:
        from purpcode.data.rules.mitre import load_mitre_catalog

        rules = merge_catalog(rules, load_mitre_catalog(catalog_path))
    if detectors:
        rules = rules + detector_rules()
    return select_rules(rules, list(cwes or []))


__all__ = [
    "Rule",
    "RuleKind",
    "RuleSource",
    "detector_rules",
    "load_corpus",
    "load_rules",
    "merge_catalog",
    "select_rules",
]
