"""Offline Kubernetes OpenAPI validation with kubernetes-validate's schemas, one cached validator per kind.

`kubernetes_validate.validate()` re-reads and re-resolves the schema on every call (~0.1 s); tests validate
hundreds of objects, so this keeps one jsonschema validator per (kind, apiVersion, Kubernetes version).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jsonschema
from kubernetes_validate.utils import all_versions, major_minor, schema_contents
from referencing import Registry, Resource


@functools.cache
def validator(kind: str, api_version: str, version: str) -> jsonschema.protocols.Validator:
    schema_version = [v for v in all_versions() if major_minor(v) <= major_minor(version)][-1]
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{schema_version}-local-strict"
    schema = schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    definitions = schema_contents(f"{folder}/_definitions.json", version)
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def validate(obj: dict[str, Any], version: str) -> None:
    """Raise jsonschema.ValidationError when `obj` is not a valid object (unknown fields included)."""
    validator(obj["kind"], obj["apiVersion"], version).validate(obj)
