"""The Kubernetes 'restricted' Pod Security Standard as a pure check (what the admission plugin enforces).

Used on every pod template the chart and the plain manifests render, so a template change that would be refused by a
`pod-security.kubernetes.io/enforce: restricted` namespace fails a test here first.
"""

from __future__ import annotations

from typing import Any

_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
_OK_SECCOMP = {"RuntimeDefault", "Localhost"}


def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    """Every way `pod_spec` breaks the restricted profile (empty list: it passes)."""
    problems: list[str] = []
    psc = pod_spec.get("securityContext", {}) or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            problems.append(f"{field} is set")
    for vol in pod_spec.get("volumes", []) or []:
        kinds = set(vol) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            problems.append(f"volume {vol['name']} uses {sorted(kinds - _RESTRICTED_VOLUMES)}")
    if psc.get("runAsUser") == 0:
        problems.append("pod runAsUser is 0")
    containers = [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]
    for c in containers:
        sc = c.get("securityContext", {}) or {}
        name = c.get("name", "?")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        if not (
            sc.get("runAsNonRoot") is True or (psc.get("runAsNonRoot") is True and "runAsNonRoot" not in sc)
        ):
            problems.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in _OK_SECCOMP:
            problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost, got {seccomp}")
        caps = sc.get("capabilities", {}) or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities must drop ALL")
        extra = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if extra:
            problems.append(f"{name}: adds capabilities {sorted(extra)}")
        for port in c.get("ports", []) or []:
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort {port['hostPort']}")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{name}: procMount {sc['procMount']}")
    return problems
