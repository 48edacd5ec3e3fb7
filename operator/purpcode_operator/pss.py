"""The Kubernetes Pod Security Standards (baseline, restricted) as a pure check, with the API server's messages.

One checker for three users: `purpcode doctor` (will the run's pods be admitted in this namespace?), the test
suite's fake API server (Pod Security admission: Pods refused with 403, workload templates accepted with a
Warning), and the packaging tests (every pod the chart and the operator render).

It follows the checks of `k8s.io/pod-security-admission/policy` (the admission plugin every API server runs) check
by check: the same fields, the same allowed values, the same versioned changes, the same reason and detail strings,
aggregated in the same order (baseline checks, then restricted ones, each group by check id; a restricted check
replaces the baseline check it overrides). No maintained Python implementation exists (searched PyPI and the
public code indexes: Kyverno/OPA policies are Rego/YAML, the real one is Go only), hence this module. Where the
wording of a message could not be checked against a real server here (AppArmor's field form), the module follows
the Go source's structure; tests pin the messages that were checked against real server output.

Pods with `hostUsers: false` get the user-namespace relaxation (runAsNonRoot, runAsUser and procMount checks
skipped) only when `relax_user_namespaces=True`: the API server does that only with the
UserNamespacesPodSecurityStandards feature gate, which is off by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Level = Literal["privileged", "baseline", "restricted"]
LEVELS: tuple[Level, ...] = ("privileged", "baseline", "restricted")
Version = tuple[int, int] | None  # (1, 30); None = "latest"
Obj = Mapping[str, Any]

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
WARN_LABEL = "pod-security.kubernetes.io/warn"
AUDIT_LABEL = "pod-security.kubernetes.io/audit"
APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"

_BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
_RESTRICTED_VOLUME_SOURCES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_KNOWN_VOLUME_SOURCES = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "portworxVolume",
    "photonPersistentDisk",
    "scaleIO",
    "storageos",
)
# Safe sysctls by the policy version that allowed them.
_SYSCTLS: tuple[tuple[tuple[int, int], frozenset[str]], ...] = (
    (
        (1, 0),
        frozenset(
            {
                "kernel.shm_rmid_forced",
                "net.ipv4.ip_local_port_range",
                "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range",
                "net.ipv4.ip_unprivileged_port_start",
            }
        ),
    ),
    ((1, 27), frozenset({"net.ipv4.ip_local_reserved_ports"})),
    (
        (1, 29),
        frozenset(
            {
                "net.ipv4.tcp_keepalive_time",
                "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes",
            }
        ),
    ),
    ((1, 32), frozenset({"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"})),
)
_SELINUX_TYPES = ("", "container_t", "container_init_t", "container_kvm_t")
_SELINUX_TYPES_1_31 = (*_SELINUX_TYPES, "container_engine_t")


@dataclass(frozen=True)
class Violation:
    """One failed check: `reason (detail)` in the API server's message."""

    check: str  # the policy's check id, e.g. "runAsNonRoot"
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


# --------------------------------------------------------------------------------------------- helpers


def _q(value: str) -> str:
    """Go's %q for the plain strings these checks quote."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _join_quote(values: Sequence[str]) -> str:
    return ", ".join(_q(v) for v in values)


def _plural(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def _containers(spec: Obj) -> Iterator[Obj]:
    """init containers, containers, ephemeral containers: the order the admission plugin visits them."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def _sc(obj: Obj) -> Obj:
    return obj.get("securityContext") or {}


def _named(kind: str, names: Sequence[str]) -> str:
    return f"{_plural(kind, kind + 's', len(names))} {_join_quote(names)}"


def _at_least(version: Version, minimum: tuple[int, int]) -> bool:
    return version is None or version >= minimum


def _windows(spec: Obj) -> bool:
    return ((spec.get("os") or {}).get("name")) == "windows"


def _user_namespaced(spec: Obj, relax: bool) -> bool:
    return relax and spec.get("hostUsers") is False


# --------------------------------------------------------------------------------------------- baseline checks

CheckFn = Callable[[Obj, Obj, Version, bool], Violation | None]


def _app_armor(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    annotations = meta.get("annotations") or {}
    bad_annotations = sorted(
        f"{k}={_q(v)}"
        for k, v in annotations.items()
        if k.startswith(APPARMOR_ANNOTATION_PREFIX)
        and v != "runtime/default"
        and not v.startswith("localhost/")
    )
    if not _at_least(version, (1, 30)):
        if bad_annotations:
            reason = _plural(
                "forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad_annotations)
            )
            return Violation("appArmorProfile", reason, ", ".join(bad_annotations))
        return None
    setters: list[str] = []
    values: set[str] = set()
    ok_types = ("RuntimeDefault", "Localhost")
    pod_profile = _sc(spec).get("appArmorProfile")
    if pod_profile is not None and pod_profile.get("type") not in ok_types:
        setters.append("pod")
        values.add(str(pod_profile.get("type")))
    bad = []
    for c in _containers(spec):
        profile = _sc(c).get("appArmorProfile")
        if profile is not None and profile.get("type") not in ok_types:
            bad.append(str(c.get("name")))
            values.add(str(profile.get("type")))
    if bad:
        setters.append(_named("container", bad))
    if bad_annotations:
        setters.append(_plural("annotation", "annotations", len(bad_annotations)))
    if not setters:
        return None
    shown = [_q(v) for v in sorted(values)] + bad_annotations
    return Violation(
        "appArmorProfile",
        "forbidden AppArmor profile",
        f"{' and '.join(setters)} must not set AppArmor profile type to {', '.join(shown)}",
    )


def _capabilities_baseline(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    bad, caps = [], set()
    for c in _containers(spec):
        added = set((_sc(c).get("capabilities") or {}).get("add") or []) - _BASELINE_CAPABILITIES
        if added:
            bad.append(str(c.get("name")))
            caps |= added
    if not bad:
        return None
    return Violation(
        "capabilities_baseline",
        "non-default capabilities",
        f"{_named('container', bad)} must not include {_join_quote(sorted(caps))} in "
        "securityContext.capabilities.add",
    )


def _host_namespaces(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    used = [f"{f}=true" for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f)]
    return Violation("hostNamespaces", "host namespaces", ", ".join(used)) if used else None


def _host_path_volumes(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    names = [str(v.get("name")) for v in spec.get("volumes") or [] if v.get("hostPath") is not None]
    return Violation("hostPathVolumes", "hostPath volumes", _named("volume", names)) if names else None


def _host_ports(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    bad, ports = [], set()
    for c in _containers(spec):
        used = {str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")}
        if used:
            bad.append(str(c.get("name")))
            ports |= used
    if not bad:
        return None
    return Violation(
        "hostPorts",
        "hostPort",
        f"{_named('container', bad)} {_plural('uses', 'use', len(bad))} "
        f"{_plural('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}",
    )


def _privileged(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    bad = [str(c.get("name")) for c in _containers(spec) if _sc(c).get("privileged") is True]
    if not bad:
        return None
    return Violation(
        "privileged", "privileged", f"{_named('container', bad)} must not set securityContext.privileged=true"
    )


def _proc_mount(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    if _user_namespaced(spec, relax):
        return None
    bad, kinds = [], set()
    for c in _containers(spec):
        mount = _sc(c).get("procMount")
        if mount not in (None, "Default"):
            bad.append(str(c.get("name")))
            kinds.add(str(mount))
    if not bad:
        return None
    return Violation(
        "procMount",
        "procMount",
        f"{_named('container', bad)} must not set securityContext.procMount to {_join_quote(sorted(kinds))}",
    )


def _se_linux(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    allowed = _SELINUX_TYPES_1_31 if _at_least(version, (1, 31)) else _SELINUX_TYPES
    bad_types: set[str] = set()
    set_user = set_role = False

    def bad(opts: Obj | None) -> bool:
        nonlocal set_user, set_role
        if not opts:
            return False
        wrong = False
        if opts.get("type", "") not in allowed:
            bad_types.add(str(opts.get("type")))
            wrong = True
        if opts.get("user"):
            set_user = wrong = True
        if opts.get("role"):
            set_role = wrong = True
        return wrong

    setters = ["pod"] if bad(_sc(spec).get("seLinuxOptions")) else []
    containers = [str(c.get("name")) for c in _containers(spec) if bad(_sc(c).get("seLinuxOptions"))]
    if containers:
        setters.append(_named("container", containers))
    if not setters:
        return None
    data = []
    if bad_types:
        data.append(f"{_plural('type', 'types', len(bad_types))} {_join_quote(sorted(bad_types))}")
    if set_user:
        data.append("user may not be set")
    if set_role:
        data.append("role may not be set")
    return Violation(
        "seLinuxOptions",
        "seLinuxOptions",
        f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}",
    )


def _seccomp(spec: Obj, valid: Callable[[Any], bool], require: bool) -> Violation | None:
    setters: list[str] = []
    pod_set = False
    profile = _sc(spec).get("seccompProfile")
    if profile is not None:
        if not valid(profile.get("type")):
            setters.append(
                f"pod must not set securityContext.seccompProfile.type to {_q(str(profile.get('type')))}"
            )
        else:
            pod_set = True
    explicit, implicit, values = [], [], set()
    for c in _containers(spec):
        cp = _sc(c).get("seccompProfile")
        if cp is not None:
            if not valid(cp.get("type")):
                explicit.append(str(c.get("name")))
                values.add(str(cp.get("type")))
        elif require and not pod_set:
            implicit.append(str(c.get("name")))
    if explicit:
        setters.append(
            f"{_named('container', explicit)} must not set securityContext.seccompProfile.type to "
            f"{_join_quote(sorted(values))}"
        )
    if implicit:
        setters.append(
            f"pod or {_named('container', implicit)} must set securityContext.seccompProfile.type to "
            '"RuntimeDefault" or "Localhost"'
        )
    return Violation("seccompProfile", "seccompProfile", "; ".join(setters)) if setters else None


def _seccomp_baseline(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    return _seccomp(spec, lambda t: t != "Unconfined", require=False)


def _sysctls(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    allowed: set[str] = set()
    for since, names in _SYSCTLS:
        if _at_least(version, since):
            allowed |= names
    bad = [str(s.get("name")) for s in _sc(spec).get("sysctls") or [] if s.get("name") not in allowed]
    return Violation("sysctls", "forbidden sysctls", ", ".join(bad)) if bad else None


def _windows_host_process(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    def host(sc: Obj) -> bool:
        return (sc.get("windowsOptions") or {}).get("hostProcess") is True

    setters = ["pod"] if host(_sc(spec)) else []
    bad = [str(c.get("name")) for c in _containers(spec) if host(_sc(c))]
    if bad:
        setters.append(_named("container", bad))
    if not setters:
        return None
    return Violation(
        "windowsHostProcess",
        "hostProcess",
        f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true",
    )


# --------------------------------------------------------------------------------------------- restricted checks


def _allow_privilege_escalation(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    if _at_least(version, (1, 25)) and _windows(spec):
        return None
    bad = [
        str(c.get("name")) for c in _containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False
    ]
    if not bad:
        return None
    return Violation(
        "allowPrivilegeEscalation",
        "allowPrivilegeEscalation != false",
        f"{_named('container', bad)} must set securityContext.allowPrivilegeEscalation=false",
    )


def _capabilities_restricted(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    if _at_least(version, (1, 25)) and _windows(spec):
        return None
    missing_drop, adding, forbidden = [], [], set()
    for c in _containers(spec):
        caps = _sc(c).get("capabilities")
        if caps is None:
            missing_drop.append(str(c.get("name")))
            continue
        if "ALL" not in (caps.get("drop") or []):
            missing_drop.append(str(c.get("name")))
        extra = {cap for cap in caps.get("add") or [] if cap != "NET_BIND_SERVICE"}
        if extra:
            adding.append(str(c.get("name")))
            forbidden |= extra
    details = []
    if missing_drop:
        details.append(
            f'{_named("container", missing_drop)} must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{_named('container', adding)} must not include {_join_quote(sorted(forbidden))} in "
            "securityContext.capabilities.add"
        )
    return (
        Violation("capabilities_restricted", "unrestricted capabilities", "; ".join(details))
        if details
        else None
    )


def _restricted_volumes(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    bad, kinds = [], set()
    for vol in spec.get("volumes") or []:
        sources = set(vol) - {"name"}
        if sources & _RESTRICTED_VOLUME_SOURCES:
            continue
        bad.append(str(vol.get("name")))
        known = [k for k in _KNOWN_VOLUME_SOURCES if k in sources]
        kinds.add(known[0] if known else "unknown")
    if not bad:
        return None
    return Violation(
        "restrictedVolumes",
        "restricted volume types",
        f"{_named('volume', bad)} {_plural('uses', 'use', len(bad))} "
        f"{_plural('restricted volume type', 'restricted volume types', len(kinds))} {_join_quote(sorted(kinds))}",
    )


def _run_as_non_root(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    if _user_namespaced(spec, relax):
        return None
    setters: list[str] = []
    pod_value = _sc(spec).get("runAsNonRoot")
    if pod_value is False:
        setters.append("pod")
    explicit, implicit = [], []
    for c in _containers(spec):
        value = _sc(c).get("runAsNonRoot")
        if value is False:
            explicit.append(str(c.get("name")))
        elif value is None and pod_value is not True:
            implicit.append(str(c.get("name")))
    if explicit:
        setters.append(_named("container", explicit))
    if setters:
        return Violation(
            "runAsNonRoot",
            "runAsNonRoot != true",
            f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false",
        )
    if implicit:
        return Violation(
            "runAsNonRoot",
            "runAsNonRoot != true",
            f"pod or {_named('container', implicit)} must set securityContext.runAsNonRoot=true",
        )
    return None


def _run_as_user(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    if _user_namespaced(spec, relax):
        return None
    setters = ["pod"] if _sc(spec).get("runAsUser") == 0 else []
    bad = [str(c.get("name")) for c in _containers(spec) if _sc(c).get("runAsUser") == 0]
    if bad:
        setters.append(_named("container", bad))
    if not setters:
        return None
    return Violation("runAsUser", "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")


def _seccomp_restricted(meta: Obj, spec: Obj, version: Version, relax: bool) -> Violation | None:
    if _at_least(version, (1, 25)) and _windows(spec):
        return None
    return _seccomp(spec, lambda t: t in ("RuntimeDefault", "Localhost"), require=True)


@dataclass(frozen=True)
class _Check:
    id: str
    fn: CheckFn
    overrides: tuple[str, ...] = field(default=())


# Sorted by id within each level, as the admission plugin evaluates and reports them.
_BASELINE: tuple[_Check, ...] = (
    _Check("appArmorProfile", _app_armor),
    _Check("capabilities_baseline", _capabilities_baseline),
    _Check("hostNamespaces", _host_namespaces),
    _Check("hostPathVolumes", _host_path_volumes),
    _Check("hostPorts", _host_ports),
    _Check("privileged", _privileged),
    _Check("procMount", _proc_mount),
    _Check("seLinuxOptions", _se_linux),
    _Check("seccompProfile_baseline", _seccomp_baseline),
    _Check("sysctls", _sysctls),
    _Check("windowsHostProcess", _windows_host_process),
)
_RESTRICTED: tuple[_Check, ...] = (
    _Check("allowPrivilegeEscalation", _allow_privilege_escalation),
    _Check("capabilities_restricted", _capabilities_restricted, ("capabilities_baseline",)),
    _Check("restrictedVolumes", _restricted_volumes, ("hostPathVolumes",)),
    _Check("runAsNonRoot", _run_as_non_root),
    _Check("runAsUser", _run_as_user),
    _Check("seccompProfile_restricted", _seccomp_restricted, ("seccompProfile_baseline",)),
)


# --------------------------------------------------------------------------------------------- public API


def parse_level(value: str, *, what: str = "level") -> Level:
    if value not in LEVELS:
        raise ValueError(f"{what}: {value!r} is not a Pod Security level; use one of {', '.join(LEVELS)}")
    return value  # type: ignore[return-value]


def parse_version(value: str | None) -> Version:
    """'latest' or None -> None; 'v1.30' / '1.30' -> (1, 30)."""
    if value in (None, "", "latest"):
        return None
    text = value.removeprefix("v")
    try:
        major, minor = (int(p) for p in text.split(".")[:2])
    except ValueError:
        raise ValueError(f"{value!r} is not a Pod Security version; use 'latest' or 'v1.N'") from None
    return (major, minor)


def version_label(version: Version) -> str:
    return "latest" if version is None else f"v{version[0]}.{version[1]}"


def check_pod(
    spec: Obj,
    metadata: Obj | None = None,
    *,
    level: Level = "restricted",
    version: Version = None,
    relax_user_namespaces: bool = False,
) -> list[Violation]:
    """Every failed check of `level` for a pod spec (and its metadata: AppArmor annotations); [] = admitted."""
    if level == "privileged":
        return []
    checks = list(_BASELINE)
    if level == "restricted":
        overridden = {o for c in _RESTRICTED for o in c.overrides}
        checks = [c for c in checks if c.id not in overridden] + list(_RESTRICTED)
    out = []
    for check in checks:
        found = check.fn(metadata or {}, spec, version, relax_user_namespaces)
        if found is not None:
            out.append(found)
    return out


def describe(violations: Sequence[Violation]) -> str:
    return ", ".join(str(v) for v in violations)


def forbidden_message(
    plural: str, name: str, level: Level, version: Version, violations: Sequence[Violation]
) -> str:
    """The 403 message for a refused Pod."""
    return (
        f'{plural} "{name}" is forbidden: violates PodSecurity "{level}:{version_label(version)}": '
        f"{describe(violations)}"
    )


def warning_message(level: Level, version: Version, violations: Sequence[Violation]) -> str:
    """The Warning the API server adds for a workload whose pod template the namespace's policy would refuse."""
    return f'would violate PodSecurity "{level}:{version_label(version)}": {describe(violations)}'


def pod_template(obj: Obj) -> tuple[Obj, Obj] | None:
    """(metadata, spec) of the pod a Pod or workload object describes; None for other kinds."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return obj.get("metadata") or {}, spec
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        kind = "Job"
    if kind == "PodTemplate":
        template = obj.get("template") or {}
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"):
        template = spec.get("template") or {}
    else:
        return None
    return template.get("metadata") or {}, template.get("spec") or {}


@dataclass(frozen=True)
class NamespacePolicy:
    """What a namespace's `pod-security.kubernetes.io/*` labels ask for (unset modes: privileged)."""

    enforce: Level = "privileged"
    enforce_version: Version = None
    warn: Level = "privileged"
    warn_version: Version = None
    audit: Level = "privileged"
    audit_version: Version = None

    @classmethod
    def from_labels(cls, labels: Mapping[str, str] | None) -> NamespacePolicy:
        """Parse the labels; like the API server, warn defaults to the enforce level when only enforce is set."""
        labels = labels or {}

        def mode(name: str) -> tuple[Level, Version]:
            key = f"pod-security.kubernetes.io/{name}"
            level = parse_level(labels.get(key, "privileged"), what=key)
            return level, parse_version(labels.get(f"{key}-version"))

        enforce, enforce_v = mode("enforce")
        warn, warn_v = mode("warn")
        audit, audit_v = mode("audit")
        if WARN_LABEL not in labels and ENFORCE_LABEL in labels:
            warn, warn_v = enforce, enforce_v
        return cls(enforce, enforce_v, warn, warn_v, audit, audit_v)


def level_at_least(have: Level, want: Level) -> bool:
    """Whether a namespace at `have` is at least as strict as `want`."""
    return LEVELS.index(have) >= LEVELS.index(want)


def strictest_admitting(spec: Obj, metadata: Obj | None = None, *, version: Version = None) -> Level:
    """The strictest level that admits this pod (restricted, baseline or privileged)."""
    for level in ("restricted", "baseline"):
        if not check_pod(spec, metadata, level=level, version=version):  # type: ignore[arg-type]
            return level  # type: ignore[return-value]
    return "privileged"
