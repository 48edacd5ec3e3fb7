"""`purpcode validate` logic: every malformed spec fails with a line naming the field and what is allowed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from purpcode_operator.validate import SpecError, validate_run

BASE: dict[str, Any] = {
    "apiVersion": "purpcode.dev/v1alpha1",
    "kind": "PurpCodeRun",
    "metadata": {"name": "ok-run"},
    "spec": {"model": {"name": "Qwen/Qwen2.5-14B-Instruct"}},
}


def with_(path: str, value: Any) -> dict[str, Any]:
    """BASE with one value set at a dotted path (creating mappings on the way)."""
    doc = copy.deepcopy(BASE)
    node = doc
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return doc


# (case id, document, expected field path, a phrase the message must contain)
MALFORMED: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "negative-lr",
        with_("spec.stages.rl.learningRate", -1),
        "spec.stages.rl.learningRate",
        "must be > 0, got -1",
    ),
    (
        "zero-sft-lr",
        with_("spec.stages.ruleLearning.sft.learningRate", 0),
        "spec.stages.ruleLearning.sft.learningRate",
        "must be > 0",
    ),
    (
        "lr-as-string",
        with_("spec.stages.rl.learningRate", "fast"),
        "spec.stages.rl.learningRate",
        "must be a number",
    ),
    ("unknown-top", with_("spec.colour", "red"), "spec.colour", "unknown field; allowed here:"),
    (
        "unknown-stage",
        with_("spec.stages.finetune", {}),
        "spec.stages.finetune",
        "allowed here: evaluation, rl,",
    ),
    (
        "moved-stage-node-selector",
        with_("spec.stages.rl.nodeSelector", {"gpu": "h100"}),
        "spec.stages.rl.nodeSelector",
        "moved to spec.stages.rl.scheduling.nodeSelector (spec.scheduling",
    ),
    (
        "moved-judge-tolerations",
        with_("spec.services.judge.deploy.tolerations", []),
        "spec.services.judge.deploy.tolerations",
        "moved to spec.services.judge.deploy.scheduling.tolerations",
    ),
    (
        "moved-top-priority-class",
        with_("spec.priorityClassName", "high"),
        "spec.priorityClassName",
        "moved to spec.scheduling.priorityClassName",
    ),
    (
        "typo-in-rl",
        with_("spec.stages.rl.learning_rate", 1e-6),
        "spec.stages.rl.learning_rate",
        "learningRate",
    ),
    ("missing-model", {**BASE, "spec": {}}, "spec.model", "required field is missing"),
    ("missing-model-name", with_("spec.model", {"revision": "main"}), "spec.model.name", "required"),
    ("bad-model-name", with_("spec.model.name", "not a model!"), "spec.model.name", "Hugging Face id"),
    ("absolute-model-path", with_("spec.model.path", "/etc/passwd"), "spec.model.path", "relative"),
    ("bad-run-name", with_("metadata.name", "My_Run"), "metadata.name", "DNS label"),
    ("long-run-name", with_("metadata.name", "a" * 41), "metadata.name", "at most 40"),
    ("run-name-starts-with-digit", with_("metadata.name", "1run"), "metadata.name", "starting with a letter"),
    ("wrong-kind", with_("kind", "Job"), "kind", "must be one of"),
    ("wrong-api-version", with_("apiVersion", "purpcode.dev/v1"), "apiVersion", "must be one of"),
    (
        "negative-gpus",
        with_("spec.stages.rl.resources.gpusPerNode", -2),
        "spec.stages.rl.resources.gpusPerNode",
        "must be >= 0, got -2",
    ),
    (
        "zero-nodes",
        with_("spec.stages.rl.resources.nodes", 0),
        "spec.stages.rl.resources.nodes",
        "must be >= 1",
    ),
    (
        "bad-memory",
        with_("spec.stages.synthesis.resources.memory", "lots"),
        "spec.stages.synthesis.resources.memory",
        "Kubernetes quantity",
    ),
    ("negative-storage", with_("spec.storage.size", "-5Gi"), "spec.storage.size", "Kubernetes quantity"),
    (
        "judge-both",
        with_("spec.services.judge", {"url": "http://judge:8000/v1", "deploy": {}}),
        "spec.services.judge",
        "exactly one of deploy or url",
    ),
    (
        "judge-neither",
        with_("spec.services.judge", {"maxTokens": 16}),
        "spec.services.judge",
        "exactly one of deploy or url",
    ),
    (
        "judge-url-scheme",
        with_("spec.services.judge", {"url": "judge:8000"}),
        "spec.services.judge.url",
        "must match",
    ),
    (
        "no-stage-enabled",
        with_(
            "spec.stages", {s: {"enabled": False} for s in ("synthesis", "ruleLearning", "rl", "evaluation")}
        ),
        "spec.stages",
        "at least one stage must be enabled",
    ),
    (
        "multi-node-no-gpu",
        with_("spec.stages.rl.resources", {"nodes": 2}),
        "spec.stages.rl.resources",
        "multi-node stages need gpusPerNode > 0",
    ),
    (
        "multi-node-rwo",
        with_("spec.stages.rl.resources", {"nodes": 2, "gpusPerNode": 8}),
        "spec",
        "ReadWriteMany",
    ),
    (
        "threshold-above-one",
        with_("spec.stages.ruleLearning.rejectionThreshold", 1.5),
        "spec.stages.ruleLearning.rejectionThreshold",
        "must be <= 1",
    ),
    (
        "one-generation",
        with_("spec.stages.rl.numGenerations", 1),
        "spec.stages.rl.numGenerations",
        "must be >= 2",
    ),
    (
        "bad-dynamic-sampling",
        with_("spec.stages.rl.dynamicSampling", "dapo"),
        "spec.stages.rl.dynamicSampling",
        "'single-step', 'refill' or 'none'",
    ),
    (
        "bad-zero-stage",
        with_("spec.stages.ruleLearning.deepspeed.zeroStage", 4),
        "spec.stages.ruleLearning.deepspeed.zeroStage",
        "must be one of",
    ),
    (
        "bad-strategy",
        with_("spec.stages.synthesis.strategies", ["general", "evil"]),
        "spec.stages.synthesis.strategies[1]",
        "must be one of",
    ),
    (
        "empty-strategies",
        with_("spec.stages.synthesis.strategies", []),
        "spec.stages.synthesis.strategies",
        "at least 1 items",
    ),
    ("bad-cwe", with_("spec.stages.synthesis.cwes", ["78"]), "spec.stages.synthesis.cwes", "CWE-78"),
    (
        "import-without-sets",
        with_("spec.stages.synthesis.source", "import"),
        "spec.stages.synthesis",
        "importDatasets",
    ),
    (
        "unknown-import-set",
        with_("spec.stages.synthesis.importDatasets", ["rl-codesec-1k"]),
        "spec.stages.synthesis.importDatasets[0]",
        "must be one of",
    ),
    (
        "claim-and-class",
        with_("spec.storage", {"existingClaim": "data", "storageClassName": "fast"}),
        "spec.storage",
        "existingClaim",
    ),
    (
        "bad-access-mode",
        with_("spec.storage.accessMode", "ReadWriteAll"),
        "spec.storage.accessMode",
        "must be one of",
    ),
    ("vllm-without-gpu", with_("spec.stages.rl.useVllm", True), "spec.stages.rl", "gpusPerNode > 0"),
    (
        "openai-without-url",
        with_("spec.stages.synthesis.generation.backend", "openai"),
        "spec.stages.synthesis.generation",
        "needs url",
    ),
    (
        "negative-ttl",
        with_("spec.ttlSecondsAfterFinished", -1),
        "spec.ttlSecondsAfterFinished",
        "must be >= 0",
    ),
    ("short-pending-timeout", with_("spec.pendingTimeoutSeconds", 5), "spec.pendingTimeoutSeconds", ">= 30"),
    ("suspend-not-bool", with_("spec.suspend", "maybe"), "spec.suspend", "true or false"),
    # Strict like the API server (documents reach the operator without a file: the models themselves refuse).
    ("suspend-string-true", with_("spec.suspend", "true"), "spec.suspend", "true or false"),
    (
        "max-steps-bool",
        with_("spec.stages.rl.maxSteps", True),
        "spec.stages.rl.maxSteps",
        "must be an integer",
    ),
    (
        "max-steps-string",
        with_("spec.stages.rl.maxSteps", "3"),
        "spec.stages.rl.maxSteps",
        "must be an integer",
    ),
    ("max-steps-huge", with_("spec.stages.rl.maxSteps", 10**30), "spec.stages.rl.maxSteps", "64-bit integer"),
    ("seed-huge", with_("spec.seed", 2**32), "spec.seed", "must be <= 4294967295"),
    ("lr-nan", with_("spec.stages.rl.learningRate", float("nan")), "spec.stages.rl.learningRate", "not NaN"),
    ("lr-inf", with_("spec.stages.rl.learningRate", float("inf")), "spec.stages.rl.learningRate", "finite"),
    (
        "tolerations-not-list",
        with_("spec.stages.rl.scheduling.tolerations", {"key": "gpu"}),
        "spec.stages.rl.scheduling.tolerations",
        "must be a list",
    ),
    (
        "bad-toleration-effect",
        with_("spec.stages.rl.scheduling.tolerations", [{"key": "gpu", "effect": "Sometimes"}]),
        "spec.stages.rl.scheduling.tolerations[0].effect",
        "must be one of",
    ),
    ("stage-not-mapping", with_("spec.stages.rl", "yes"), "spec.stages.rl", "must be a mapping"),
    (
        "sandbox-memory-tiny",
        with_("spec.services.sandbox.limits.memoryLimitMB", 1),
        "spec.services.sandbox.limits.memoryLimitMB",
        "must be >= 16",
    ),
]


@pytest.mark.parametrize(("doc", "path", "phrase"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_spec_names_the_field(doc: dict[str, Any], path: str, phrase: str) -> None:
    with pytest.raises(SpecError) as info:
        validate_run(doc)
    lines = [str(p) for p in info.value.problems]
    matching = [line for line in lines if line.startswith(f"{path}: ")]
    assert matching, f"no problem names {path}: {lines}"
    assert any(phrase in line for line in matching), lines


def test_at_least_thirty_cases() -> None:
    assert len({c[0] for c in MALFORMED}) >= 30


def test_valid_base() -> None:
    run = validate_run(BASE)
    assert run.metadata.name == "ok-run"


def test_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="expected a PurpCodeRun mapping"):
        validate_run(["a", "list"])
