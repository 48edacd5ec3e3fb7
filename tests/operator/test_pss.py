"""The Pod Security checker, rule by rule, and its messages against ones real API servers printed."""

from __future__ import annotations

from typing import Any

import pytest

from purpcode_operator import pss

GOOD_SC = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pod(**spec: Any) -> dict[str, Any]:
    """A restricted-clean pod spec with `spec` fields replaced."""
    base: dict[str, Any] = {"containers": [{"name": "app", "image": "x", "securityContext": dict(GOOD_SC)}]}
    base.update(spec)
    return base


def container(name: str = "app", **sc: Any) -> dict[str, Any]:
    return {"name": name, "image": "x", "securityContext": {**GOOD_SC, **sc}}


def msgs(spec: dict[str, Any], level: pss.Level = "restricted", **kw: Any) -> list[str]:
    return [str(v) for v in pss.check_pod(spec, level=level, **kw)]


def test_clean_pod_passes_every_level() -> None:
    for level in pss.LEVELS:
        assert pss.check_pod(pod(), level=level) == []


def test_bare_pod_matches_a_real_servers_message() -> None:
    """`kubectl run` of a plain pod with privileged + hostPID in a restricted namespace (real output, 1.3x)."""
    spec = {
        "hostPID": True,
        "containers": [{"name": "escape-container", "securityContext": {"privileged": True}}],
    }
    got = pss.forbidden_message("pods", "malicious-breakout-pod", "restricted", None, pss.check_pod(spec))
    assert got == (
        'pods "malicious-breakout-pod" is forbidden: violates PodSecurity "restricted:latest": host namespaces '
        '(hostPID=true), privileged (container "escape-container" must not set securityContext.privileged=true), '
        'allowPrivilegeEscalation != false (container "escape-container" must set '
        'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "escape-container" '
        'must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container '
        '"escape-container" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container '
        '"escape-container" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    )


def test_hostport_and_host_network_warning_matches_a_real_server() -> None:
    spec = {
        "hostNetwork": True,
        "containers": [{"name": "operator", "ports": [{"containerPort": 9443, "hostPort": 9443}]}],
    }
    got = pss.warning_message("restricted", (1, 24), pss.check_pod(spec, version=(1, 24)))
    assert got == (
        'would violate PodSecurity "restricted:v1.24": host namespaces (hostNetwork=true), hostPort (container '
        '"operator" uses hostPort 9443), allowPrivilegeEscalation != false (container "operator" must set '
        'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "operator" must set '
        'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "operator" must set '
        'securityContext.runAsNonRoot=true), seccompProfile (pod or container "operator" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    )


def test_hostpath_volumes_and_root_user_match_a_real_server() -> None:
    vols = [{"name": n, "hostPath": {"path": "/" + n}} for n in ("plugins-registry", "plugins")]
    spec = {
        "volumes": vols,
        "containers": [{"name": "kubelet-plugin", "securityContext": {"privileged": True, "runAsUser": 0}}],
    }
    got = pss.describe(pss.check_pod(spec))
    assert (
        'restricted volume types (volumes "plugins-registry", "plugins" use restricted volume type "hostPath")'
        in got
    )
    assert 'runAsUser=0 (container "kubelet-plugin" must not set runAsUser=0)' in got
    assert "hostPath volumes" not in got  # the restricted volume check replaces the baseline one
    assert pss.describe(pss.check_pod(spec, level="baseline")) == (
        'hostPath volumes (volumes "plugins-registry", "plugins"), privileged (container "kubelet-plugin" must not '
        "set securityContext.privileged=true)"
    )


def test_host_namespaces_each() -> None:
    assert msgs(pod(hostNetwork=True, hostPID=True, hostIPC=True), "baseline") == [
        "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)"
    ]


def test_privileged_counts_init_and_ephemeral_containers() -> None:
    spec = pod(
        initContainers=[container("init", privileged=True)],
        ephemeralContainers=[container("debug", privileged=True)],
    )
    assert msgs(spec, "baseline") == [
        'privileged (containers "init", "debug" must not set securityContext.privileged=true)'
    ]


def test_baseline_capabilities() -> None:
    ok = pod(containers=[container(capabilities={"add": ["CHOWN", "NET_BIND_SERVICE"]})])
    assert msgs(ok, "baseline") == []
    bad = pod(containers=[container(capabilities={"add": ["SYS_ADMIN", "NET_RAW", "CHOWN"]})])
    assert msgs(bad, "baseline") == [
        'non-default capabilities (container "app" must not include "NET_RAW", "SYS_ADMIN" in '
        "securityContext.capabilities.add)"
    ]


def test_restricted_capabilities_drop_all_and_only_net_bind_service() -> None:
    assert (
        msgs(pod(containers=[container(capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})])) == []
    )
    bad = pod(containers=[container(capabilities={"drop": ["NET_RAW"], "add": ["CHOWN"]})])
    assert msgs(bad) == [
        'unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]; '
        'container "app" must not include "CHOWN" in securityContext.capabilities.add)'
    ]


def test_host_ports_plural() -> None:
    spec = pod(
        containers=[
            {**container("a"), "ports": [{"containerPort": 80, "hostPort": 80}]},
            {**container("b"), "ports": [{"containerPort": 8080, "hostPort": 8080}, {"containerPort": 1}]},
        ]
    )
    assert msgs(spec, "baseline") == ['hostPort (containers "a", "b" use hostPorts 80, 8080)']


def test_apparmor_field_and_annotation() -> None:
    assert msgs(pod(containers=[container(appArmorProfile={"type": "RuntimeDefault"})]), "baseline") == []
    field = pod(securityContext={"appArmorProfile": {"type": "Unconfined"}})
    assert msgs(field, "baseline") == [
        'forbidden AppArmor profile (pod must not set AppArmor profile type to "Unconfined")'
    ]
    meta = {"annotations": {pss.APPARMOR_ANNOTATION_PREFIX + "app": "unconfined"}}
    got = [str(v) for v in pss.check_pod(pod(), meta, level="baseline")]
    assert got == [
        "forbidden AppArmor profile (annotation must not set AppArmor profile type to "
        'container.apparmor.security.beta.kubernetes.io/app="unconfined")'
    ]
    old = [str(v) for v in pss.check_pod(pod(), meta, level="baseline", version=(1, 29))]
    assert old == [
        'forbidden AppArmor profile (container.apparmor.security.beta.kubernetes.io/app="unconfined")'
    ]
    ok_meta = {"annotations": {pss.APPARMOR_ANNOTATION_PREFIX + "app": "localhost/mine"}}
    assert pss.check_pod(pod(), ok_meta, level="baseline") == []


def test_selinux() -> None:
    assert (
        msgs(pod(securityContext={"seLinuxOptions": {"type": "container_t", "level": "s0:c1"}}), "baseline")
        == []
    )
    spec = pod(
        securityContext={"seLinuxOptions": {"type": "spc_t"}},
        containers=[container(seLinuxOptions={"user": "root", "role": "sysadm_r"})],
    )
    assert msgs(spec, "baseline") == [
        'seLinuxOptions (pod and container "app" set forbidden securityContext.seLinuxOptions: type "spc_t"; '
        "user may not be set; role may not be set)"
    ]
    engine = pod(securityContext={"seLinuxOptions": {"type": "container_engine_t"}})
    assert msgs(engine, "baseline") == [] and msgs(engine, "baseline", version=(1, 30)) != []


def test_proc_mount_and_the_user_namespace_relaxation() -> None:
    spec = pod(hostUsers=False, containers=[container(procMount="Unmasked")])
    assert msgs(spec, "baseline") == [
        'procMount (container "app" must not set securityContext.procMount to "Unmasked")'
    ]
    assert msgs(spec, "baseline", relax_user_namespaces=True) == []
    assert (
        msgs(pod(containers=[container(procMount="Unmasked")]), "baseline", relax_user_namespaces=True) != []
    )


def test_seccomp_baseline_and_restricted() -> None:
    unconfined = pod(
        securityContext={"seccompProfile": {"type": "Unconfined"}},
        containers=[container(seccompProfile=None)],
    )
    unconfined["containers"][0]["securityContext"].pop("seccompProfile")
    assert msgs(unconfined, "baseline") == [
        'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'
    ]
    assert msgs(unconfined) == [
        'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined"; pod or container '
        '"app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    ]
    by_pod = pod(securityContext={"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}})
    by_pod["containers"][0]["securityContext"].pop("seccompProfile")
    assert msgs(by_pod) == []


def test_sysctls_by_version() -> None:
    spec = pod(
        securityContext={
            "sysctls": [
                {"name": "net.ipv4.tcp_keepalive_time", "value": "1"},
                {"name": "kernel.msgmax", "value": "1"},
            ]
        }
    )
    assert msgs(spec, "baseline") == ["forbidden sysctls (kernel.msgmax)"]
    assert msgs(spec, "baseline", version=(1, 28)) == [
        "forbidden sysctls (net.ipv4.tcp_keepalive_time, kernel.msgmax)"
    ]


def test_restricted_volume_types() -> None:
    ok = pod(
        volumes=[
            {"name": n, k: {}}
            for n, k in (
                ("a", "emptyDir"),
                ("b", "configMap"),
                ("c", "persistentVolumeClaim"),
                ("d", "projected"),
                ("e", "csi"),
                ("f", "ephemeral"),
                ("g", "secret"),
                ("h", "downwardAPI"),
            )
        ]
    )
    assert msgs(ok) == []
    bad = pod(volumes=[{"name": "n", "nfs": {}}, {"name": "g", "gitRepo": {}}, {"name": "w", "weird": {}}])
    assert msgs(bad) == [
        'restricted volume types (volumes "n", "g", "w" use restricted volume types "gitRepo", "nfs", "unknown")'
    ]
    assert msgs(bad, "baseline") == []


def test_allow_privilege_escalation_must_be_false_explicitly() -> None:
    spec = pod(containers=[container(allowPrivilegeEscalation=None)])
    spec["containers"][0]["securityContext"].pop("allowPrivilegeEscalation")
    assert msgs(spec) == [
        'allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false)'
    ]
    assert msgs(spec, "baseline") == []


def test_run_as_non_root_pod_level_and_explicit_false() -> None:
    inherit = pod(securityContext={"runAsNonRoot": True})
    inherit["containers"][0]["securityContext"].pop("runAsNonRoot")
    assert msgs(inherit) == []
    no_pod = pod()
    no_pod["containers"][0]["securityContext"].pop("runAsNonRoot")
    assert msgs(no_pod) == [
        'runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)'
    ]
    explicit = pod(securityContext={"runAsNonRoot": False}, containers=[container(runAsNonRoot=False)])
    assert msgs(explicit) == [
        'runAsNonRoot != true (pod and container "app" must not set securityContext.runAsNonRoot=false)'
    ]
    # a non-zero runAsUser is not enough: the standard asks for runAsNonRoot itself
    uid_only = pod(securityContext={"runAsUser": 1000})
    uid_only["containers"][0]["securityContext"].pop("runAsNonRoot")
    assert any(m.startswith("runAsNonRoot") for m in msgs(uid_only))
    relaxed = pod(hostUsers=False)
    relaxed["containers"][0]["securityContext"].pop("runAsNonRoot")
    assert msgs(relaxed, relax_user_namespaces=True) == [] and msgs(relaxed) != []


def test_run_as_user_zero() -> None:
    spec = pod(securityContext={"runAsUser": 0}, containers=[container(runAsUser=0)])
    assert msgs(spec) == ['runAsUser=0 (pod and container "app" must not set runAsUser=0)']
    assert msgs(spec, "baseline") == []


def test_windows_host_process() -> None:
    spec = pod(securityContext={"windowsOptions": {"hostProcess": True}})
    assert msgs(spec, "baseline") == [
        "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)"
    ]


def test_templates_and_namespace_policy() -> None:
    dep = {
        "kind": "Deployment",
        "spec": {"template": {"metadata": {"annotations": {"a": "b"}}, "spec": pod()}},
    }
    assert pss.pod_template(dep) == ({"annotations": {"a": "b"}}, pod())
    cron = {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": pod()}}}}}
    assert pss.pod_template(cron) == ({}, pod())
    assert pss.pod_template({"kind": "ConfigMap"}) is None
    policy = pss.NamespacePolicy.from_labels(
        {pss.ENFORCE_LABEL: "baseline", pss.ENFORCE_LABEL + "-version": "v1.29"}
    )
    assert (policy.enforce, policy.enforce_version, policy.warn, policy.warn_version) == (
        "baseline",
        (1, 29),
        "baseline",
        (1, 29),
    )
    both = pss.NamespacePolicy.from_labels({pss.ENFORCE_LABEL: "baseline", pss.WARN_LABEL: "restricted"})
    assert (both.enforce, both.warn) == ("baseline", "restricted")
    with pytest.raises(ValueError, match="pod-security.kubernetes.io/enforce"):
        pss.NamespacePolicy.from_labels({pss.ENFORCE_LABEL: "strict"})


def test_strictest_admitting() -> None:
    assert pss.strictest_admitting(pod()) == "restricted"
    assert pss.strictest_admitting(pod(containers=[{"name": "c"}])) == "baseline"
    assert pss.strictest_admitting(pod(hostNetwork=True)) == "privileged"


def _isolation_modes() -> list[str | None]:
    """The sandbox's isolation modes the API offers (None: the API has no such field, one mode)."""
    import typing

    from purpcode_operator.api import SandboxSpec

    field = SandboxSpec.model_fields.get("isolation")
    return list(typing.get_args(field.annotation)) if field is not None else [None]


@pytest.mark.parametrize("isolation", _isolation_modes())
@pytest.mark.parametrize("sample", ["tiny-cpu", "qwen2.5-14b", "qwen2.5-32b"])
def test_every_pod_the_operator_renders(sample: str, isolation: str | None) -> None:
    """Stages and the judge pass `restricted`; the sandbox passes restricted unless it is the user-namespace jail
    (hostUsers: false, unmasked /proc, unconfined seccomp/AppArmor), which only a `privileged` namespace admits."""
    from support.run_specs import load_sample

    from purpcode_operator import render
    from purpcode_operator.decide import Settings, owner_of, prepare

    doc = load_sample(sample)
    doc["metadata"].update(namespace="ml", uid="6f0c1f3e-0000-4000-8000-000000000001", generation=1)
    if isolation is not None:
        doc["spec"].setdefault("services", {}).setdefault("sandbox", {})["isolation"] = isolation
    run, plan = prepare(doc, Settings())
    owner = owner_of(doc)
    pods = [render.build_stage_job(run, plan, stage, 1, owner) for stage in plan.stages]
    if plan.judge.deploy:
        pods.append(render.build_judge_deployment(run, plan, 1, owner))
    for obj in pods:
        meta, spec = pss.pod_template(obj) or ({}, {})
        assert pss.check_pod(spec, meta) == [], obj["metadata"]["name"]
    sandbox = render.build_sandbox_deployment(run, plan, 1, owner)
    meta, spec = pss.pod_template(sandbox) or ({}, {})
    want = "privileged" if spec.get("hostUsers") is False else "restricted"
    assert pss.strictest_admitting(spec, meta) == want
