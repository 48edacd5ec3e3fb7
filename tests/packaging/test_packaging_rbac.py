"""The chart and manifests/install.yaml grant exactly the API calls the operator makes: no missing verb, no extra.

The list of calls is purpcode_operator.permissions (tests/operator/test_rbac_calls.py checks it against what the
real operator process requests of the fake API). Here every rendered Role/ClusterRole bound to the operator's
service account is flattened to (group, resource, verb) per scope and compared with that list, for an install that
watches every namespace (the default and install.yaml) and one that watches a list of namespaces.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

import pytest
import yaml

from purpcode_operator.permissions import Call, required

WATCHED = ["team-a", "team-b"]


def flatten(rules: Iterable[dict[str, Any]]) -> set[Call]:
    """(group, resource, verb) for every combination a rule list grants (names-restricted rules are not used)."""
    out: set[Call] = set()
    for rule in rules:
        assert not rule.get("resourceNames") and not rule.get("nonResourceURLs"), rule
        for group in rule.get("apiGroups", []):
            for res in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    out.add((group, res, verb))
    return out


def grants(objs: list[dict[str, Any]], sa: str) -> dict[str, set[Call]]:
    """What the service account `sa` is granted: "cluster" (ClusterRoles via ClusterRoleBindings) and, per
    namespace, through RoleBindings (to a Role or a ClusterRole)."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs}
    out: dict[str, set[Call]] = {}
    for b in objs:
        if b["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == sa for s in b["subjects"]):
            continue
        ref = b["roleRef"]
        ns = b["metadata"].get("namespace") if b["kind"] == "RoleBinding" else None
        role = roles[(ref["kind"], ns if ref["kind"] == "Role" else None, ref["name"])]
        scope = "cluster" if b["kind"] == "ClusterRoleBinding" else f"ns/{ns}"
        out.setdefault(scope, set()).update(flatten(role.get("rules", [])))
    return out


def _sa(objs: list[dict[str, Any]]) -> str:
    (sa,) = [o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount"]
    return sa


def _diff(what: str, granted: set[Call], needed: frozenset[Call]) -> str:
    return f"{what}: missing {sorted(needed - granted)}; granted but never used {sorted(granted - needed)}"


def test_all_namespaces_install_grants_exactly_the_calls(gen: ModuleType) -> None:
    objs = gen.render_chart({}, release="pc", namespace="ml-system")
    got = grants(objs, _sa(objs))
    need = required(all_namespaces=True)
    assert set(got) == {"cluster"}, got.keys()
    assert got["cluster"] == need["cluster"] | need["runs"], _diff(
        "cluster", got["cluster"], need["cluster"] | need["runs"]
    )


def test_namespaced_install_grants_exactly_the_calls(gen: ModuleType) -> None:
    objs = gen.render_chart({"watchNamespaces": WATCHED}, release="pc", namespace="ml-system")
    got = grants(objs, _sa(objs))
    need = required(all_namespaces=False)
    assert set(got) == {"cluster", *(f"ns/{ns}" for ns in WATCHED)}, got.keys()
    assert got["cluster"] == need["cluster"], _diff("cluster", got["cluster"], need["cluster"])
    for ns in WATCHED:
        assert got[f"ns/{ns}"] == need["runs"], _diff(ns, got[f"ns/{ns}"], need["runs"])


def test_install_yaml_grants_exactly_the_calls() -> None:
    from tool_loader import ROOT

    objs = [d for d in yaml.safe_load_all((ROOT / "manifests" / "install.yaml").read_text()) if d]
    got = grants(objs, _sa(objs))
    need = required(all_namespaces=True)
    assert set(got) == {"cluster"}
    assert got["cluster"] == need["cluster"] | need["runs"], _diff(
        "install.yaml", got["cluster"], need["runs"]
    )


@pytest.mark.parametrize(
    ("rules", "expect"),
    [
        (
            [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "delete"]}],
            {("batch", "jobs", "get"), ("batch", "jobs", "delete")},
        ),
        (
            [{"apiGroups": ["", "apps"], "resources": ["x"], "verbs": ["list"]}],
            {("", "x", "list"), ("apps", "x", "list")},
        ),
    ],
)
def test_flatten_expands_every_combination(rules: list[dict[str, Any]], expect: set[Call]) -> None:
    assert flatten(rules) == expect
