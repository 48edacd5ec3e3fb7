"""The generated CRD: in sync with the models, structural, valid for Kubernetes, and its CEL rules bite."""

from __future__ import annotations

import copy
import glob
import subprocess
import sys
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml

from purpcode_operator.crd import build_crd, iter_cel_rules, render_crd_yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "manifests" / "crd" / "purpcode.dev_purpcoderuns.yaml"
SAMPLES = sorted(glob.glob(str(ROOT / "manifests" / "samples" / "*.yaml")))


def schema() -> dict[str, Any]:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def test_checked_in_crd_is_current() -> None:
    assert CRD_FILE.read_text() == render_crd_yaml(), (
        "manifests/crd is stale: run `purpcode crd > manifests/crd/purpcode.dev_purpcoderuns.yaml`"
    )


def test_structural_schema() -> None:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for bad in ("$ref", "anyOf", "oneOf", "allOf", "$defs", "const"):
                assert bad not in node, f"{path}: {bad}"
            if "properties" in node:
                assert node.get("type") == "object", path
                assert "additionalProperties" not in node, path
            if isinstance(node.get("exclusiveMinimum"), int | float) and not isinstance(
                node["exclusiveMinimum"], bool
            ):
                raise AssertionError(f"{path}: OpenAPI v3.0 needs boolean exclusiveMinimum")
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(schema(), "")


def test_crd_metadata() -> None:
    crd = build_crd()
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "purpcoderuns.purpcode.dev"
    assert spec["names"]["shortNames"] == ["pcr"] and spec["names"]["categories"] == ["purpcode"]
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Phase", "Stage", "Model", "Age"]


def test_descriptions_for_kubectl_explain() -> None:
    rl = schema()["properties"]["spec"]["properties"]["stages"]["properties"]["rl"]
    assert "GRPO" in rl["description"]
    assert "Samples per prompt" in rl["properties"]["numGenerations"]["description"]


def test_scalar_defaults_are_stated_for_kubectl_explain() -> None:
    """The CRD carries no `default:` (the models own defaults), so `kubectl explain` must read them in the text:
    the reference's RL and SFT values, and booleans as Kubernetes spells them."""
    stages = schema()["properties"]["spec"]["properties"]["stages"]["properties"]
    rl = stages["rl"]["properties"]
    assert rl["learningRate"]["description"].endswith("Default: 5e-07.")
    assert rl["enabled"]["description"].endswith("Default: true.")
    sft = stages["ruleLearning"]["properties"]["sft"]["properties"]
    assert "Default: rex." in sft["lrScheduler"]["description"]
    assert all("default" not in node for node in _walk_dicts(schema()))


def _walk_dicts(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        return [node, *[d for v in node.values() for d in _walk_dicts(v)]]
    if isinstance(node, list):
        return [d for v in node for d in _walk_dicts(v)]
    return []


def test_kubernetes_validate_strict() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", str(CRD_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passed" in out.stdout + out.stderr


@pytest.mark.parametrize("sample", SAMPLES, ids=[Path(s).name for s in SAMPLES])
def test_samples_validate_against_crd_schema(sample: str) -> None:
    doc = yaml.safe_load(Path(sample).read_text())
    jsonschema.Draft4Validator(schema()).validate(doc)


def test_schema_rejects_unknown_type() -> None:
    doc = yaml.safe_load(Path(SAMPLES[0]).read_text())
    doc["spec"]["stages"]["rl"]["learningRate"] = "fast"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema()).validate(doc)


# ------------------------------------------------------------------------------------ CEL rules, evaluated


def _at(node: dict[str, Any], path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        node = node[part]
    return node


def _rules() -> dict[tuple[str, str], str]:
    """(schema path, message) -> rule, with schema paths that are also data paths (no list/map rules here)."""
    return {(path, rule["message"]): rule["rule"] for path, rule in iter_cel_rules(schema())}


def cel_ok(rule: str, self_value: Any, old_value: Any = None) -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(rule))
    activation = {"self": celpy.json_to_cel(self_value)}
    if old_value is not None:
        activation["oldSelf"] = celpy.json_to_cel(old_value)
    return bool(program.evaluate(activation))


def _schema_path_to_data(path: str) -> str:
    return path.replace(".properties", "")


GOOD: dict[str, Any] = yaml.safe_load((ROOT / "manifests" / "samples" / "qwen2.5-32b.yaml").read_text())

# (rule message fragment, data path the rule sits on, a mutation of GOOD that the rule must reject)
CEL_CASES = [
    (
        "judge needs exactly one",
        "spec.services.judge",
        lambda d: d["spec"]["services"]["judge"].update(url="http://judge:8000/v1"),
    ),
    (
        "judge needs exactly one",
        "spec.services.judge",
        lambda d: d["spec"]["services"].__setitem__("judge", {"maxTokens": 16}),
    ),
    (
        "at least one stage",
        "spec.stages",
        lambda d: [d["spec"]["stages"][s].__setitem__("enabled", False) for s in d["spec"]["stages"]],
    ),
    (
        "multi-node stages need gpusPerNode",
        "spec.stages.ruleLearning.resources",
        lambda d: d["spec"]["stages"]["ruleLearning"]["resources"].update(gpusPerNode=0),
    ),
    (
        "useVllm needs",
        "spec.stages.rl",
        lambda d: d["spec"]["stages"]["rl"].update(useVllm=True, resources={"gpusPerNode": 0}),
    ),
    (
        "storageClassName applies only",
        "spec.storage",
        lambda d: d["spec"]["storage"].update(existingClaim="data", storageClassName="fast"),
    ),
    ("ReadWriteMany", "spec", lambda d: d["spec"]["storage"].update(accessMode="ReadWriteOnce")),
    (
        "must be >= rl.maxCompletionLength when both",
        "spec.stages",
        lambda d: d["spec"]["stages"]["evaluation"].update(generation={"maxNewTokens": 2048}),
    ),
    ("at most 40 characters", "", lambda d: d["metadata"].update(name="x" * 41)),
    ("must start with a letter", "", lambda d: d["metadata"].update(name="1run")),
]


def _rule_for(fragment: str) -> str:
    # The same rule may sit on several schema nodes (Resources appears under every stage): identical text.
    matches = {rule for (_, message), rule in _rules().items() if fragment in message}
    assert len(matches) == 1, (fragment, matches)
    return matches.pop()


@pytest.mark.parametrize(("fragment", "data_path", "mutate"), CEL_CASES, ids=[c[0] for c in CEL_CASES])
def test_cel_rule_rejects_its_target(fragment: str, data_path: str, mutate: Any) -> None:
    rule = _rule_for(fragment)
    good = copy.deepcopy(GOOD)
    assert cel_ok(rule, _at(good, data_path)), "rule must accept the reference sample"
    bad = copy.deepcopy(GOOD)
    mutate(bad)
    assert not cel_ok(rule, _at(bad, data_path))


@pytest.mark.parametrize(
    ("fragment", "change"),
    [
        ("model is immutable", lambda s: s["model"].update(name="Qwen/Qwen2.5-7B-Instruct")),
        ("seed is immutable", lambda s: s.update(seed=1)),
        ("storage is immutable", lambda s: s["storage"].update(size="8Ti")),
    ],
)
def test_transition_rules_make_fields_immutable(fragment: str, change: Any) -> None:
    rule = _rule_for(fragment)
    old = copy.deepcopy(GOOD["spec"])
    same = copy.deepcopy(GOOD["spec"])
    same["stages"]["rl"]["learningRate"] = 1e-6  # a mutable field may change
    assert cel_ok(rule, same, old)
    new = copy.deepcopy(GOOD["spec"])
    change(new)
    assert not cel_ok(rule, new, old)


def test_every_cel_rule_is_exercised() -> None:
    fragments = [c[0] for c in CEL_CASES] + [
        "model is immutable",
        "seed is immutable",
        "storage is immutable",
    ]
    for (_, message), _rule in _rules().items():
        assert any(f in message for f in fragments), f"untested CEL rule: {message}"


def test_cel_rules_accept_minimal_spec() -> None:
    """Fields may be absent in stored objects (defaults live in the models): rules must not error on them."""
    minimal = {"metadata": {"name": "m"}, "spec": {"model": {"name": "tiny-random"}}}
    for (path, _message), rule in _rules().items():
        if "oldSelf" in rule:
            continue
        data_path = _schema_path_to_data(path).lstrip(".")
        try:
            value = _at(minimal, data_path) if data_path else minimal
        except KeyError:
            continue  # the rule's object is absent, so the API server does not evaluate it
        assert cel_ok(rule, value), rule
