"""Generate the PurpCodeRun CustomResourceDefinition from the pydantic models.

Why generated: the models are the single source of truth; a hand-edited CRD drifts. The pydantic JSON schema is
turned into a Kubernetes *structural* schema: `$ref`s inlined, `Optional[X]` as `nullable`, no untyped `anyOf`,
OpenAPI v3.0 exclusive bounds, no `additionalProperties` beside `properties`, field descriptions kept for
`kubectl explain`, CEL rules (`x-kubernetes-validations`) carried from the models.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from . import api

_DROP_KEYS = {"title", "examples"}


def _resolve(node: Any, defs: dict[str, Any], stack: tuple[str, ...] = ()) -> Any:
    """Inline every $ref (the models have no recursion; a cycle is a bug worth failing on)."""
    if isinstance(node, list):
        return [_resolve(n, defs, stack) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in stack:
            raise ValueError(f"recursive model {name} cannot be expressed in a structural schema")
        target = copy.deepcopy(defs[name])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        resolved = _resolve(target, defs, (*stack, name))
        # A field's own description wins over the model's docstring.
        resolved.update(_resolve(extra, defs, stack))
        return resolved
    return {k: _resolve(v, defs, stack) for k, v in node.items() if k != "$defs"}


def _structural(node: Any) -> Any:
    """Rewrite a resolved JSON schema node into Kubernetes' structural OpenAPI v3 subset."""
    if isinstance(node, list):
        return [_structural(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: v for k, v in node.items() if k not in _DROP_KEYS}
    # Optional[X] -> X + nullable
    if "anyOf" in node:
        options = node.pop("anyOf")
        non_null = [o for o in options if o.get("type") != "null"]
        if len(non_null) != 1:
            raise ValueError(
                f"cannot express anyOf with {len(non_null)} non-null branches structurally: {options}"
            )
        merged = {**non_null[0], **node}
        merged["nullable"] = True
        node = merged
    # Defaults live in the pydantic models (one place); the API server should not freeze them into objects. A
    # scalar default is still stated in the description, so `kubectl explain` shows what an unset field means.
    default = node.pop("default", None)
    if isinstance(default, str | int | float) and "default" not in node.get("description", "").lower():
        shown = "true" if default is True else "false" if default is False else default
        node["description"] = f"{node.get('description', '').rstrip()} Default: {shown}.".lstrip()
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            node[flag] = node.pop(bound)
            node[bound] = True
    if "enum" in node and "type" not in node:
        values = node["enum"]
        if all(isinstance(v, str) for v in values):
            node["type"] = "string"
        elif all(isinstance(v, int) for v in values):
            node["type"] = "integer"
    if "properties" in node:
        node["properties"] = {k: _structural(v) for k, v in node["properties"].items()}
        node.pop("additionalProperties", None)
        node["type"] = "object"
    elif node.get("additionalProperties") is True:
        # A pass-through object (dict[str, Any], e.g. a Kubernetes affinity): kept as written.
        node.pop("additionalProperties")
        node["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _structural(node["additionalProperties"])
    elif node.get("type") == "object" and "additionalProperties" not in node:
        node["x-kubernetes-preserve-unknown-fields"] = True
    if "items" in node:
        node["items"] = _structural(node["items"])
    return node


def model_schema(model: type[api.ApiModel]) -> dict[str, Any]:
    """The structural OpenAPI schema of one API model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    return _structural(_resolve(raw, defs))  # type: ignore[no-any-return]


def _check_structural(node: Any, path: str = "") -> None:
    """Fail loudly on anything the API server would reject as non-structural."""
    if isinstance(node, dict):
        if "$ref" in node or "anyOf" in node or "oneOf" in node or "allOf" in node:
            raise ValueError(f"{path}: not structural (composition or $ref left)")
        if "properties" in node or "items" in node or "additionalProperties" in node:
            if "type" not in node:
                raise ValueError(f"{path}: missing type")
        for key, value in node.items():
            if key == "properties":
                for name, sub in value.items():
                    _check_structural(sub, f"{path}.{name}")
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                _check_structural(value, f"{path}[]")


def build_crd() -> dict[str, Any]:
    """The full CRD object, ready for `kubectl apply`."""
    spec_schema = model_schema(api.PurpCodeRunSpec)
    status_schema = model_schema(api.PurpCodeRunStatus)
    root: dict[str, Any] = {
        "type": "object",
        "description": "PurpCodeRun: one PurpCode safety post-training run (synthesis, rule learning, RL, "
        "evaluation) of a code LLM.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "x-kubernetes-validations": [
            {
                "rule": f"size(self.metadata.name) <= {api.MAX_RUN_NAME}",
                "message": f"metadata.name must be at most {api.MAX_RUN_NAME} characters (child objects add suffixes)",
            },
            {
                "rule": "self.metadata.name.matches('^[a-z]')",
                "message": "metadata.name must start with a letter (the run's Services are named after it)",
            },
        ],
    }
    _check_structural(root)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{api.PLURAL}.{api.GROUP}",
            "labels": {"app.kubernetes.io/name": "purpcode", "app.kubernetes.io/part-of": "purpcode-k8s"},
        },
        "spec": {
            "group": api.GROUP,
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": list(api.SHORT_NAMES),
                "categories": list(api.CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {"name": "Stage", "type": "string", "jsonPath": ".status.currentStage"},
                        {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


CRD_HEADER = (
    "# Generated by `purpcode crd` from operator/purpcode_operator/api.py. Do not edit: change the models and\n"
    "# regenerate (`purpcode crd > manifests/crd/purpcode.dev_purpcoderuns.yaml`); a test fails when this is stale.\n"
)


def render_crd_yaml() -> str:
    """The checked-in CRD file's exact text."""
    return CRD_HEADER + yaml.safe_dump(build_crd(), sort_keys=False, width=120)


def iter_cel_rules(node: Any, path: str = "") -> list[tuple[str, dict[str, str]]]:
    """Every (schema path, rule) in a schema, for tests and docs."""
    found: list[tuple[str, dict[str, str]]] = []
    if isinstance(node, dict):
        for rule in node.get("x-kubernetes-validations", []):
            found.append((path or ".", rule))
        for name, sub in node.get("properties", {}).items():
            found.extend(iter_cel_rules(sub, f"{path}.{name}"))
        if isinstance(node.get("items"), dict):
            found.extend(iter_cel_rules(node["items"], f"{path}[]"))
        if isinstance(node.get("additionalProperties"), dict):
            found.extend(iter_cel_rules(node["additionalProperties"], f"{path}{{}}"))
    return found
