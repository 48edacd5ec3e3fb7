"""Values the API server would refuse in what the operator renders are refused at the spec (issue 16, defect 5):
Kubernetes' quantity grammar on every quantity field, queueName as a label value, the scheduling block's names.
Checked both ways a spec is validated: the pydantic models (`purpcode validate`, the operator) and the CRD's schema
(what the API server enforces on `kubectl apply`)."""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema
import pytest
from support.run_specs import tiny_run

from purpcode_operator import crd
from purpcode_operator.validate import SpecError, validate_run

QUANTITY_FIELDS = [
    ("stages", "rl", "resources", "cpu"),
    ("stages", "synthesis", "resources", "memory"),
    ("services", "sandbox", "cpu"),
    ("services", "sandbox", "memory"),
    ("services", "sandbox", "scratchSize"),
    ("services", "judge", "deploy", "cpu"),
    ("services", "judge", "deploy", "memory"),
    ("storage", "size"),
]
BAD_QUANTITIES = ["1.2.3", "2Gii", "5e", "1KiB", "-1", "Gi", "1 Gi", "1.5.", "1Mi2", "e3"]
GOOD_QUANTITIES = ["1", "500m", "1.5", ".5", "16Gi", "2e9", "1E-2", "+3", "100k", "1Ti"]


def _crd_schema() -> dict[str, Any]:
    root = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return {k: v for k, v in root.items() if k != "x-kubernetes-validations"}


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node = doc["spec"]
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return doc


def _crd_accepts(doc: dict[str, Any]) -> bool:
    # OpenAPI v3.0 schemas use draft 4's boolean exclusive bounds; `nullable` is ignored (no value here is null).
    try:
        jsonschema.Draft4Validator(_crd_schema()).validate(doc)
    except jsonschema.ValidationError:
        return False
    return True


def _base() -> dict[str, Any]:
    doc = tiny_run("q")
    doc["spec"]["services"]["judge"] = {"deploy": {"model": "tiny-random", "gpus": 0}}
    return doc


@pytest.mark.parametrize("path", QUANTITY_FIELDS, ids=lambda p: ".".join(p))
@pytest.mark.parametrize("value", BAD_QUANTITIES)
def test_a_malformed_quantity_is_refused_naming_the_field(path: tuple[str, ...], value: str) -> None:
    doc = _set(_base(), path, value)
    with pytest.raises(SpecError) as info:
        validate_run(doc)
    (problem,) = info.value.problems
    assert problem.path == "spec." + ".".join(path)
    assert "Kubernetes quantity" in problem.message and repr(value) in problem.message
    assert not _crd_accepts(doc)


@pytest.mark.parametrize("value", GOOD_QUANTITIES)
def test_well_formed_quantities_pass(value: str) -> None:
    for path in QUANTITY_FIELDS:
        doc = _set(_base(), path, value)
        validate_run(doc)
        assert _crd_accepts(doc)


@pytest.mark.parametrize(
    "name",
    ["q" * 64, "team a", "-team", "team-", "team/a", "tëam"],
    ids=["64-chars", "space", "lead", "trail", "slash", "utf8"],
)
def test_queue_name_must_be_a_label_value(name: str) -> None:
    doc = _set(_base(), ("queueName",), name)
    with pytest.raises(SpecError) as info:
        validate_run(doc)
    (problem,) = info.value.problems
    assert problem.path == "spec.queueName"
    assert "63" in problem.message
    assert not _crd_accepts(doc)


def test_a_63_character_queue_name_with_dots_and_underscores_is_fine() -> None:
    name = "a" + "b._-c" * 12 + "z" * 2
    assert len(name) == 63 and re.fullmatch(r"[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]", name)
    doc = _set(_base(), ("queueName",), name)
    assert validate_run(doc).spec.queue_name == name and _crd_accepts(doc)


@pytest.mark.parametrize(
    ("path", "value", "phrase"),
    [
        (("scheduling", "priorityClassName"), "Training_High", "must match"),
        (("scheduling", "runtimeClassName"), "gVisor", "must match"),
        (("scheduling", "nodeSelector"), {"pool": "a b"}, "not a label value"),
        (("scheduling", "nodeSelector"), {"bad key!": "x"}, "not a label key"),
        (("stages", "rl", "scheduling", "affinity"), {"nodeAfinity": {}}, "unknown field"),
        (
            ("services", "judge", "deploy", "scheduling", "tolerations"),
            [{"effect": "Never"}],
            "must be one of",
        ),
    ],
)
def test_scheduling_names_are_checked(path: tuple[str, ...], value: Any, phrase: str) -> None:
    doc = _set(_base(), path, value)
    with pytest.raises(SpecError) as info:
        validate_run(doc)
    assert any(phrase in p.message for p in info.value.problems), info.value.problems


def test_the_crd_declares_conditions_a_map_keyed_by_type() -> None:
    status = _crd_schema()["properties"]["status"]["properties"]
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]  # a map key must be required (or defaulted)
