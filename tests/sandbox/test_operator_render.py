"""The operator renders the sandbox pod per isolation mode: `restricted` and `auto` pass the restricted Pod Security
Standard (the checker the other pods are held to); `namespaces` keeps the jail's fields and is labelled as needing
`privileged`. The mode reaches the service as PURPCODE_SANDBOX_ISOLATION, the default memory limit as
PURPCODE_SANDBOX_MEMORY_LIMIT_MB."""

from __future__ import annotations

from typing import Any

import pytest
from support.run_specs import load_sample

from purpcode.sandbox.settings import SandboxSettings
from purpcode_operator import pss, render
from purpcode_operator.decide import Settings, prepare


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """purpcode_operator.pss, the restricted-PSS checker every other pod template is held to."""
    return [str(v) for v in pss.check_pod(pod, level="restricted")]


def sandbox_deployment(isolation: str | None) -> dict[str, Any]:
    doc = load_sample("tiny-cpu")
    doc["metadata"].update(namespace="ml", uid="u-1", generation=1)
    sandbox = doc["spec"].setdefault("services", {}).setdefault("sandbox", {})
    if isolation is not None:
        sandbox["isolation"] = isolation
    sandbox.setdefault("limits", {})["memoryLimitMB"] = 768
    run, plan = prepare(doc, Settings())
    return render.build_sandbox_deployment(run, plan, 1)


@pytest.mark.parametrize("isolation", [None, "auto", "restricted"])
def test_restricted_and_auto_pass_restricted_pod_security(isolation: str | None) -> None:
    dep = sandbox_deployment(isolation)
    pod = dep["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    (c,) = pod["containers"]
    assert "hostUsers" not in pod and "procMount" not in c["securityContext"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert dep["spec"]["template"]["metadata"]["annotations"][render.POD_SECURITY_ANNOTATION] == "restricted"
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    settings = SandboxSettings.from_env(env)  # what the service makes of the rendered environment
    assert settings.isolation == (isolation or "auto")
    assert (settings.default_memory_mb, settings.max_memory_mb) == (768, 768)


def test_namespaces_keeps_the_jail_fields_and_needs_privileged() -> None:
    dep = sandbox_deployment("namespaces")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["hostUsers"] is False and c["securityContext"]["procMount"] == "Unmasked"
    assert pod["securityContext"]["seccompProfile"] == {"type": "Unconfined"}
    assert dep["metadata"]["annotations"][render.POD_SECURITY_ANNOTATION] == "privileged"
    problems = restricted_violations(pod)
    assert any("seccompProfile" in p for p in problems), problems
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    assert SandboxSettings.from_env(env).isolation == "namespaces"
