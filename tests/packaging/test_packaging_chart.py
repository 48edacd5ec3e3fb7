"""The Helm chart, rendered by Helm's own engine (helm-python-sdk, offline) and checked object by object.

Kubernetes objects are validated strictly against the Kubernetes OpenAPI schemas (kubernetes-validate); Prometheus
Operator objects against that project's CRD models (cloudcoil), round-tripped so an unknown field fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from purpcode_operator import pss

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "purpcode"
KUBE_VERSIONS = ("1.28.0", "1.37.0")  # Chart.yaml kubeVersion floor, and the newest schemas we have

NON_DEFAULT: dict[str, Any] = {
    "image": {
        "repository": "registry.example.com/ml/purpcode-operator",
        "tag": "0.1.0-rc1",
        "digest": "sha256:" + "a" * 64,
    },
    "imagePullSecrets": [{"name": "regcred"}],
    "defaultImages": {
        "trainer": {"repository": "registry.example.com/ml/trainer", "tag": "cu13"},
        "sandbox": {"repository": "registry.example.com/ml/sandbox", "tag": "v2"},
        "judge": {"repository": "registry.example.com/ml/judge", "tag": "v3"},
    },
    "watchNamespaces": ["team-a", "team-b"],
    "sandbox": {"runtimeClassName": "gvisor"},
    "judge": {
        "url": "https://judge.example.com/v1",
        "model": "Qwen/Qwen2.5-32B-Instruct",
        "apiKeySecret": "judge-key",
    },
    "operator": {
        "verbose": True,
        "workers": 4,
        "retryBackoffSeconds": 5,
        "extraArgs": ["--verbose"],
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        "resources": {"requests": {"cpu": "200m", "memory": "300Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
        "podAnnotations": {"example.com/team": "ml"},
        "podLabels": {"team": "ml"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "system", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
                            ]
                        }
                    ]
                }
            }
        },
        "priorityClassName": "system-cluster-critical",
    },
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "podMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "dashboard": {
        "namespace": "monitoring",
        "labels": {"grafana_dashboard": "1", "team": "ml"},
        "folder": "ML",
    },
}
EXTERNAL_SA: dict[str, Any] = {
    "serviceAccount": {"create": False, "name": "preexisting-sa"},
    "rbac": {"create": False},
    "dashboard": {"enabled": False},
}
VALUE_SETS = {"default": {}, "non-default": NON_DEFAULT, "external-sa": EXTERNAL_SA}


@pytest.fixture(scope="module", params=list(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, gen: ModuleType) -> tuple[str, list[dict[str, Any]]]:
    return request.param, gen.render_chart(VALUE_SETS[request.param], release="pc", namespace="ml-system")


def _by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def _validate_monitoring(obj: dict[str, Any]) -> None:
    """Validate a monitoring.coreos.com object with the Prometheus Operator's CRD models, unknown fields included."""
    from cloudcoil.models.prometheus_operator import v1

    model = getattr(v1, obj["kind"])
    dumped = model.model_validate(obj).model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert dumped == obj, f"{obj['kind']} has fields its CRD does not know"


def test_every_object_validates(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, objs = rendered
    assert objs, "chart rendered nothing"
    for obj in objs:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            _validate_monitoring(obj)
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']} invalid for {version}: {err}")


def test_the_strict_validator_catches_a_typo(gen: ModuleType) -> None:
    """The validation above must be able to fail: a misspelt field is refused."""
    dep = _by_kind(gen.render_chart(), "Deployment")[0]
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBE_VERSIONS[-1], strict=True)
    sm = _by_kind(gen.render_chart(NON_DEFAULT), "ServiceMonitor")[0]
    sm["spec"]["endpoints"][0]["intervall"] = "5s"
    with pytest.raises(AssertionError, match="does not know"):
        _validate_monitoring(sm)


def test_operator_pod_meets_restricted_pod_security(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objs = rendered
    (dep,) = _by_kind(objs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pss.check_pod(pod, dep["spec"]["template"].get("metadata"), level="restricted") == []
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}


def test_restricted_check_catches_a_root_pod() -> None:
    pod = {"containers": [{"name": "c", "securityContext": {"privileged": True}}], "hostNetwork": True}
    problems = {v.check for v in pss.check_pod(pod, level="restricted")}
    assert {"privileged", "hostNamespaces", "capabilities_restricted", "runAsNonRoot"} <= problems


def test_operator_gets_default_images_and_settings(gen: ModuleType) -> None:
    from purpcode_operator.plan import PlanDefaults

    (dep,) = _by_kind(gen.render_chart(NON_DEFAULT, release="pc", namespace="ml-system"), "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert c["image"] == "registry.example.com/ml/purpcode-operator@sha256:" + "a" * 64
    # The operator reads these through the lead's PlanDefaults.from_env: the chart's values reach the plan.
    monkey = {k: v for k, v in env.items() if k.startswith("PURPCODE_") and k.endswith("_IMAGE")}
    defaults = PlanDefaults(**{k[len("PURPCODE_") :].lower(): v for k, v in monkey.items()})
    assert defaults.trainer_image == "registry.example.com/ml/trainer:cu13"
    assert defaults.sandbox_image == "registry.example.com/ml/sandbox:v2"
    assert defaults.judge_image == "registry.example.com/ml/judge:v3"
    assert "--namespace=team-a" in c["args"] and "--namespace=team-b" in c["args"]
    assert "--all-namespaces" not in c["args"] and "--verbose" in c["args"] and "--workers=4" in c["args"]
    assert env["HTTPS_PROXY"] == "http://proxy:3128"

    (dep,) = _by_kind(gen.render_chart(), "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert c["image"] == "ghcr.io/purpcode-k8s/operator:0.1.0"
    assert env["PURPCODE_TRAINER_IMAGE"] == PlanDefaults().trainer_image
    assert env["PURPCODE_SANDBOX_IMAGE"] == PlanDefaults().sandbox_image
    assert env["PURPCODE_JUDGE_IMAGE"] == PlanDefaults().judge_image
    assert "--all-namespaces" in c["args"]


def _rules(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(obj.get("rules", []))


def _grants_write(rule: dict[str, Any]) -> bool:
    return bool(set(rule["verbs"]) & {"create", "update", "patch", "delete", "deletecollection", "*"})


def test_rbac_is_least_privilege(gen: ModuleType) -> None:
    for values in ({}, NON_DEFAULT):
        objs = gen.render_chart(values, release="pc", namespace="ml-system")
        for obj in _by_kind(objs, "ClusterRole") + _by_kind(objs, "Role"):
            for rule in _rules(obj):
                assert "*" not in rule["verbs"] and "*" not in rule["resources"], obj["metadata"]["name"]
                assert "*" not in rule.get("apiGroups", []), obj["metadata"]["name"]
                assert not {"secrets", "pods/exec", "serviceaccounts/token"} & set(rule["resources"])
                assert "escalate" not in rule["verbs"] and "bind" not in rule["verbs"]

    # Namespaced install: cluster-wide rights are read-only discovery; run rights only in the listed namespaces.
    objs = gen.render_chart(NON_DEFAULT, release="pc", namespace="ml-system")
    cluster_roles = _by_kind(objs, "ClusterRole")
    assert [o["metadata"]["name"] for o in cluster_roles] == ["pc-purpcode-operator-watch"]
    for rule in _rules(cluster_roles[0]):
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
        assert set(rule["resources"]) <= {"customresourcedefinitions", "namespaces"}
    run_roles = {
        o["metadata"]["namespace"]: o
        for o in _by_kind(objs, "Role")
        if o["metadata"]["name"].endswith("-runs")
    }
    assert set(run_roles) == {"team-a", "team-b"}
    bindings = {
        o["metadata"]["namespace"]: o
        for o in _by_kind(objs, "RoleBinding")
        if o["metadata"]["name"].endswith("-runs")
    }
    assert set(bindings) == {"team-a", "team-b"}
    for b in bindings.values():
        assert b["subjects"] == [
            {"kind": "ServiceAccount", "name": "pc-purpcode-operator", "namespace": "ml-system"}
        ]
        assert b["roleRef"]["kind"] == "Role"

    # All-namespaces install: the same run rules, granted cluster-wide (documented in docs/install.md).
    objs = gen.render_chart({}, release="pc", namespace="ml-system")
    names = sorted(o["metadata"]["name"] for o in _by_kind(objs, "ClusterRole"))
    assert names == ["pc-purpcode-operator-runs", "pc-purpcode-operator-watch"]
    runs_cluster = next(o for o in _by_kind(objs, "ClusterRole") if o["metadata"]["name"].endswith("-runs"))
    assert _rules(runs_cluster) == _rules(next(iter(run_roles.values())))
    assert not any(o["metadata"]["name"].endswith("-runs") for o in _by_kind(objs, "Role"))


def test_monitoring_objects_are_opt_in(gen: ModuleType) -> None:
    kinds = {o["kind"] for o in gen.render_chart()}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    objs = gen.render_chart(NON_DEFAULT, release="pc", namespace="ml-system")
    (sm,) = _by_kind(objs, "ServiceMonitor")
    (svc,) = _by_kind(objs, "Service")
    (dep,) = _by_kind(objs, "Deployment")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == "purpcode-operator"
    (pm,) = _by_kind(objs, "PodMonitor")
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_prometheus_rule_is_the_rules_file(gen: ModuleType) -> None:
    (rule,) = _by_kind(gen.render_chart(NON_DEFAULT), "PrometheusRule")
    source = yaml.safe_load((CHART / "rules" / "alerts.yaml").read_text(encoding="utf-8"))
    assert rule["spec"]["groups"] == source["groups"]
    alerts = {r["alert"] for g in source["groups"] for r in g["rules"] if "alert" in r}
    assert len(alerts) >= 5


def test_dashboard_configmap_carries_the_dashboard_file(gen: ModuleType) -> None:
    (cm,) = _by_kind(gen.render_chart(NON_DEFAULT, release="pc", namespace="ml-system"), "ConfigMap")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "ML"
    on_disk = json.loads((CHART / "dashboards" / "purpcode.json").read_text(encoding="utf-8"))
    assert json.loads(cm["data"]["purpcode.json"]) == on_disk
    assert not _by_kind(gen.render_chart({"dashboard": {"enabled": False}}), "ConfigMap")


def test_notes_tell_the_user_what_to_do_next(gen: ModuleType) -> None:
    notes = gen.render_notes(NON_DEFAULT, release="pc", namespace="ml-system")
    assert "rollout status deployment/pc-purpcode-operator" in notes
    assert "team-a, team-b" in notes and "kubectl apply -n team-a" in notes
    assert "gvisor" in notes and "ServiceMonitor" in notes
    default = gen.render_notes()
    assert "every namespace" in default and "serviceMonitor.enabled=true" in default


def test_helm_lint_is_clean() -> None:
    for values in VALUE_SETS.values():
        for kube in ("v1.28.0", "v1.37.0"):
            report = helm_python.lint(
                str(CHART), values, strict=True, namespace="ml-system", kube_version=kube
            )
            assert report["errors"] == [], report
            serious = [m for m in report["messages"] if m["severity"] >= 2]
            assert serious == [], serious


BAD_VALUES = [
    ({"operator": {"replicas": "two"}}, "/operator/replicas"),
    ({"operator": {"replicas": 2}}, "/operator/replicas"),
    ({"unknownKey": True}, "unknownKey"),
    ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
    ({"watchNamespaces": ["a", "a"]}, "/watchNamespaces"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"image": {"digest": "md5:abc"}}, "/image/digest"),
    ({"defaultImages": {"trainer": {"repository": "", "tag": "x"}}}, "/defaultImages/trainer/repository"),
    ({"judge": {"url": "judge:8000"}}, "/judge/url"),
    ({"sandbox": {"runtimeClassName": "gVisor!"}}, "/sandbox/runtimeClassName"),
    ({"serviceMonitor": {"enabled": "yes"}}, "/serviceMonitor/enabled"),
    ({"serviceMonitor": {"interval": "30"}}, "/serviceMonitor/interval"),
    ({"operator": {"resources": {"limits": {"memory": "lots"}}}}, "/operator/resources/limits/memory"),
    ({"operator": {"metricsPort": 70000}}, "/operator/metricsPort"),
    ({"operator": {"workers": 0}}, "/operator/workers"),
    ({"operator": {"resyncSeconds": 0}}, "/operator/resyncSeconds"),
]


@pytest.mark.parametrize(("values", "where"), BAD_VALUES, ids=[w for _, w in BAD_VALUES])
def test_schema_rejects_bad_values(values: dict[str, Any], where: str) -> None:
    with helm_python.Chart.load(str(CHART)) as chart:
        with pytest.raises(helm_python.HelmValuesError, match=where):
            chart.render(values, name="pc", namespace="ml-system", is_install=True)


def test_schema_accepts_every_shipped_value_set() -> None:
    with helm_python.Chart.load(str(CHART)) as chart:
        for values in VALUE_SETS.values():
            chart.validate_schema(chart.merge_values(values))


def test_crds_dir_holds_the_generated_crd_unchanged() -> None:
    """`crds/` is not part of a render: check the file itself (identical to the generated one, valid, loaded)."""
    source = (ROOT / "manifests" / "crd" / "purpcode.dev_purpcoderuns.yaml").read_text(encoding="utf-8")
    copied = (CHART / "crds" / "purpcode.dev_purpcoderuns.yaml").read_text(encoding="utf-8")
    assert copied == source, "helm/purpcode/crds is stale: run `make manifests`"
    crd = yaml.safe_load(copied)
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(crd, version, strict=True)
    with helm_python.Chart.load(str(CHART)) as chart:
        assert [c["filename"] for c in chart.crds] == ["purpcode/crds/purpcode.dev_purpcoderuns.yaml"]
        assert yaml.safe_load(chart.crds[0]["data"]) == crd
        assert all("CustomResourceDefinition" not in text for text in chart.render({}, name="pc").values())


def test_crd_matches_the_api_models() -> None:
    """The chart ships the CRD the lead's models generate today (not only yesterday's file)."""
    from purpcode_operator.crd import build_crd

    shipped = yaml.safe_load((CHART / "crds" / "purpcode.dev_purpcoderuns.yaml").read_text(encoding="utf-8"))
    assert shipped == build_crd()


# Settings the chart passes that the operator does not read yet (docs/install.md, "Not yet wired"). The test below
# fails once the operator reads one of them, so this set and the doc get updated.
NOT_READ_YET: set[str] = set()


def test_the_operator_reads_the_settings_the_chart_passes(
    gen: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feed the rendered Deployment's environment and args to the operator's own config code."""
    import inspect

    from purpcode_operator import config as operator_config
    from purpcode_operator.main import build_config, parse_args
    from purpcode_operator.plan import PlanDefaults

    (dep,) = _by_kind(gen.render_chart(NON_DEFAULT, release="pc", namespace="ml-system"), "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    for name in list(operator_config.os.environ):
        if name.startswith("PURPCODE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = build_config(parse_args(c["args"][: -len(NON_DEFAULT["operator"]["extraArgs"])]))
    assert config.namespaces == ["team-a", "team-b"]
    assert config.metrics_port == 8080 and config.workers == 4
    assert (
        config.retry_backoff_seconds == 5
        and config.retry_backoff_max_seconds == 600
        and config.resync_seconds == 600
    )
    assert config.defaults.trainer_image == "registry.example.com/ml/trainer:cu13"
    assert config.defaults.judge_image == "registry.example.com/ml/judge:v3"

    read = set(re.findall(r"PURPCODE_[A-Z_]+", inspect.getsource(operator_config)))
    read |= {f"PURPCODE_{field.upper()}" for field in PlanDefaults.model_fields}
    passed = {n for n in env if n.startswith("PURPCODE_")}
    assert passed - read == NOT_READ_YET, (
        f"read now, drop from NOT_READ_YET and docs/install.md: {NOT_READ_YET - (passed - read)}; "
        f"passed but unread: {passed - read - NOT_READ_YET}"
    )


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def _endpoint_keeps(endpoint: dict[str, Any], role: str) -> bool:
    """Whether an endpoint's `keep` relabelings on the pod's role label let a pod of `role` through."""
    for r in endpoint.get("relabelings", []):
        if r.get("action") == "keep" and r["sourceLabels"] == [
            "__meta_kubernetes_pod_label_purpcode_dev_role"
        ]:
            if not re.fullmatch(r["regex"], role):
                return False
    return True


def test_pod_monitor_scrapes_the_pods_the_operator_renders(gen: ModuleType) -> None:
    """The PodMonitor's selector and port names match the operator's real stage Job, sandbox and judge pods."""
    from support.run_specs import tiny_run

    from purpcode_operator import render
    from purpcode_operator.api import PurpCodeRun
    from purpcode_operator.plan import METRICS_PORT, build_plan

    (pm,) = _by_kind(gen.render_chart(NON_DEFAULT), "PodMonitor")
    ports = {e["port"] for e in pm["spec"]["podMetricsEndpoints"]}
    run = PurpCodeRun.model_validate({**tiny_run("obs"), "metadata": {"name": "obs", "namespace": "team-a"}})
    plan = build_plan(run)
    rl = next(s for s in plan.stages if s.name == "rl")
    pods = {
        "stage": render.build_stage_job(run, plan, rl, 1)["spec"]["template"],
        "sandbox": render.build_sandbox_deployment(run, plan, 1)["spec"]["template"],
    }
    if plan.judge.deploy:
        pods["judge"] = render.build_judge_deployment(run, plan, 1)["spec"]["template"]
    for role, pod in pods.items():
        labels = pod["metadata"]["labels"]
        assert _selects(pm["spec"]["selector"], labels), role
        assert {"purpcode.dev/run", "purpcode.dev/stage"} & set(labels) <= set(pm["spec"]["podTargetLabels"])
        named = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        assert ports & set(named), f"{role} pods expose none of the PodMonitor's ports {ports}: {named}"
    stage_ports = {p["name"]: p["containerPort"] for p in pods["stage"]["spec"]["containers"][0]["ports"]}
    assert stage_ports["metrics"] == METRICS_PORT
    # Each role is scraped on the port that serves /metrics and that its NetworkPolicy admits the scraper to: the
    # sandbox on "metrics" only (its "http" port runs code), the judge (vLLM) on "http".
    scraped = {
        role: {e["port"] for e in pm["spec"]["podMetricsEndpoints"] if _endpoint_keeps(e, role)}
        & {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        for role, pod in pods.items()
    }
    assert scraped["stage"] == {"metrics"} and scraped["sandbox"] == {"metrics"}, scraped
    if "judge" in scraped:
        assert scraped["judge"] == {"http"}, scraped
    policy = render.build_sandbox_network_policy(run)
    sandbox_ports = {p["name"]: p["containerPort"] for p in pods["sandbox"]["spec"]["containers"][0]["ports"]}
    scraper_rule = policy["spec"]["ingress"][-1]
    assert scraper_rule["ports"] == [{"protocol": "TCP", "port": sandbox_ports["metrics"]}]
    # Pods of other apps in the namespace are not scraped.
    assert not _selects(
        pm["spec"]["selector"], {"app.kubernetes.io/name": "other", "purpcode.dev/role": "stage"}
    )
