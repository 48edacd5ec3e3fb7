"""Renderers: golden objects, Kubernetes OpenAPI validation (offline, strict), and the rules each object follows.

Regenerate the golden files after an intended change: `PURPCODE_UPDATE_GOLDEN=1 pytest tests/operator/test_render.py`.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from support.k8s_schema import validate
from support.run_specs import load_sample

from purpcode_operator import naming, render
from purpcode_operator.api import PurpCodeRun
from purpcode_operator.decide import Settings, owner_of, prepare
from purpcode_operator.plan import METRICS_PORT, SANDBOX_PORT, RunPlan, StageConfig

GOLDEN = Path(__file__).parent / "golden"
UID = "6f0c1f3e-0000-4000-8000-000000000001"
K8S_VERSIONS = (
    "1.30.0",
    "1.37.0",
)  # oldest supported (appArmorProfile, podFailurePolicy GA) and newest schemas


def body(sample: str, **meta: Any) -> dict[str, Any]:
    doc = load_sample(sample)
    doc["metadata"].update(namespace="ml", uid=UID, generation=1, **meta)
    return doc


def prepared(doc: dict[str, Any]) -> tuple[PurpCodeRun, RunPlan]:
    return prepare(doc, Settings())


def render_all(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object the operator can create for a run (attempt 1 of each stage, both services)."""
    run, plan = prepared(doc)
    objs = render.render_run(run, plan, owner_of(doc))
    objs.append(
        render.build_event(
            doc,
            etype="Normal",
            reason="StageStarted",
            message="m",
            key="k",
            timestamp="2026-01-01T00:00:00Z",
            instance="op-0",
        )
    )
    return objs


def _without_config_data(obj: dict[str, Any]) -> dict[str, Any]:
    """A stage pod's config annotation is the plan's StageConfig (pinned by the plan's own tests and by
    test_stage_pods_read_their_config_from_their_own_annotation); keep golden files stable."""
    annotations = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})
    if obj["kind"] == "Job" and naming.ANNOTATION_STAGE_CONFIG in annotations:
        obj = copy.deepcopy(obj)
        obj["spec"]["template"]["metadata"]["annotations"][naming.ANNOTATION_STAGE_CONFIG] = (
            "<StageConfig JSON>"
        )
    return obj


SAMPLES = ["tiny-cpu", "qwen2.5-14b", "qwen2.5-32b"]


@pytest.mark.parametrize("sample", SAMPLES)
def test_golden_objects(sample: str) -> None:
    objs = [_without_config_data(o) for o in render_all(body(sample))]
    path = GOLDEN / f"{sample}.json"
    text = json.dumps(objs, indent=1, sort_keys=True) + "\n"
    if os.environ.get("PURPCODE_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}: run with PURPCODE_UPDATE_GOLDEN=1"
    assert json.loads(text) == json.loads(path.read_text()), f"{sample}: rendered objects differ from {path}"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("sample", SAMPLES)
def test_every_object_is_valid_kubernetes(sample: str, version: str) -> None:
    objs = render_all(body(sample))
    variants = render_all(body(sample, name="queued")) + _variants(sample)
    for obj in objs + variants:
        validate(obj, version)


def _variants(sample: str) -> list[dict[str, Any]]:
    """Option combinations the samples do not cover: queue, existing claim, secrets, scheduling, runtime class."""
    doc = body(sample)
    spec = doc["spec"]
    spec.update(queueName="team-a", imagePullSecrets=["regcred"], serviceAccountName="trainer")
    spec["storage"] = {"existingClaim": "shared-rwx", "accessMode": "ReadWriteMany"}
    spec["model"]["tokenSecretRef"] = {"name": "hf", "key": "token"}
    spec["services"]["sandbox"]["runtimeClassName"] = "gvisor"
    spec["services"]["sandbox"]["metricsScrapers"] = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    spec["services"]["judge"] = {"url": "https://judge.example/v1", "apiKeySecretRef": {"name": "judge-key"}}
    spec["scheduling"] = {
        "nodeSelector": {"topology.kubernetes.io/zone": "eu-west-1a"},
        "runtimeClassName": "nvidia",
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100", "h200"]}]}
                    ]
                }
            }
        },
    }
    spec["stages"]["rl"].update(
        scheduling={
            "nodeSelector": {"gpu": "h100"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "training",
        },
        activeDeadlineSeconds=3600,
    )
    return render_all(doc)


def test_every_child_has_fixed_name_labels_and_owner() -> None:
    for obj in render_all(body("qwen2.5-32b")):
        meta = obj["metadata"]
        if obj["kind"] == "Event":
            assert meta["name"].startswith("qwen25-32b.") and obj["involvedObject"]["uid"] == UID
            continue
        assert meta["namespace"] == "ml"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "purpcode.dev/v1alpha1",
                "kind": "PurpCodeRun",
                "name": "qwen25-32b",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        labels = meta["labels"]
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
            "app.kubernetes.io/part-of",
            "app.kubernetes.io/managed-by",
            "purpcode.dev/run",
            "purpcode.dev/role",
        ):
            assert key in labels, (obj["kind"], meta["name"], key)
        assert labels["purpcode.dev/run"] == "qwen25-32b"
        assert meta["name"].startswith("qwen25-32b-")


def test_single_node_stage_job() -> None:
    doc = body("tiny-cpu")
    run, plan = prepared(doc)
    stage = plan.stage("rl")
    job = render.build_stage_job(run, plan, stage, 2, owner_of(doc))
    assert job["metadata"]["name"] == "tiny-cpu-rl-2"
    assert job["metadata"]["labels"]["purpcode.dev/attempt"] == "2"
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and "completionMode" not in spec and "suspend" not in spec
    assert spec["podFailurePolicy"]["rules"][0] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == [
        "python",
        "-m",
        "purpcode.rl",
        "--config",
        "/etc/purpcode/config.json",
        *stage.args,
    ]
    assert c["ports"] == [{"name": "metrics", "containerPort": 9400, "protocol": "TCP"}]
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert (
        set(mounts) == {"/artifacts", "/etc/purpcode", "/tmp", "/dev/shm"}
        and mounts["/etc/purpcode"]["readOnly"]
    )
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["artifacts"]["persistentVolumeClaim"] == {"claimName": "tiny-cpu-artifacts"}
    assert volumes["config"] == {
        "name": "config",
        "downwardAPI": {
            "items": [
                {
                    "path": "config.json",
                    "fieldRef": {"fieldPath": "metadata.annotations['purpcode.dev/stage-config']"},
                }
            ]
        },
    }
    env = {e["name"]: e for e in c["env"]}
    assert (
        env["HF_HUB_OFFLINE"]["value"] == "1" and "HF_TOKEN" not in env
    )  # only the initializer hits the hub
    assert env["HF_HOME"]["value"] == "/artifacts/.cache/huggingface"
    assert c["resources"] == {"requests": {"cpu": "1", "memory": "3Gi"}, "limits": {"memory": "3Gi"}}
    labels = spec["template"]["metadata"]["labels"]
    assert labels["purpcode.dev/role"] == "stage" and labels["purpcode.dev/stage"] == "rl"


def test_stage_pods_read_their_config_from_their_own_annotation() -> None:
    """The StageConfig is in the pod template's annotation, which the `config` volume (downward API) mounts as
    /etc/purpcode/config.json, the path PURPCODE_CONFIG names: no ConfigMap, no Job without its config."""
    doc = body("tiny-cpu")
    run, plan = prepared(doc)
    stage = plan.stage("ruleLearning")
    objs = render.stage_objects(run, plan, stage, 1, owner_of(doc))
    assert [o["kind"] for o in objs] == ["PersistentVolumeClaim", "Job"]
    pod = objs[-1]["spec"]["template"]
    raw = pod["metadata"]["annotations"]["purpcode.dev/stage-config"]
    config = StageConfig.model_validate_json(raw)
    assert config == stage.config and "\n" not in raw and ", " not in raw  # compact JSON
    assert config.stage == "ruleLearning" and config.run == "tiny-cpu"
    assert config.services.judge_url == "http://tiny-cpu-judge.ml.svc:8000/v1"
    (item,) = next(v for v in pod["spec"]["volumes"] if v["name"] == "config")["downwardAPI"]["items"]
    (container,) = pod["spec"]["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert f"{mount['mountPath']}/{item['path']}" == env["PURPCODE_CONFIG"] == "/etc/purpcode/config.json"
    assert item["fieldRef"]["fieldPath"] == "metadata.annotations['purpcode.dev/stage-config']"


def test_multi_node_stage_is_an_indexed_job_with_torchrun_over_a_headless_service() -> None:
    doc = body("qwen2.5-32b")
    run, plan = prepared(doc)
    stage = plan.stage("ruleLearning")
    nodes, gpus = stage.resources.nodes, stage.resources.gpus_per_node
    assert nodes > 1
    job = render.build_stage_job(run, plan, stage, 1, owner_of(doc))
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == nodes
    pod = spec["template"]["spec"]
    svc = render.build_rendezvous_service(run, stage, owner_of(doc))
    assert pod["subdomain"] == svc["metadata"]["name"] == "qwen25-32b-rule-learning"
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {
        "purpcode.dev/run": "qwen25-32b",
        "purpcode.dev/role": "stage",
        "purpcode.dev/stage": "rule-learning",
    }
    (c,) = pod["containers"]
    assert c["command"][:6] == [
        "torchrun",
        f"--nnodes={nodes}",
        f"--nproc-per-node={gpus}",
        "--node-rank=$(NODE_RANK)",
        "--master-addr=qwen25-32b-rule-learning-1-0.qwen25-32b-rule-learning",
        "--master-port=29500",
    ]
    assert c["command"][6:9] == ["-m", "purpcode.rule_learning", "--config"]
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    assert c["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)
    assert c["resources"]["requests"]["nvidia.com/gpu"] == str(gpus)


def test_single_node_multi_gpu_uses_torchrun_standalone() -> None:
    doc = body("qwen2.5-14b")
    run, plan = prepared(doc)
    stage = plan.stage("rl")
    assert stage.distributed and stage.resources.nodes == 1
    cmd = render.build_stage_job(run, plan, stage, 1)["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[:4] == [
        "torchrun",
        "--standalone",
        "--nnodes=1",
        f"--nproc-per-node={stage.resources.gpus_per_node}",
    ]


def test_queue_secrets_and_existing_claim() -> None:
    doc = body("tiny-cpu")
    doc["spec"].update(queueName="team-a", imagePullSecrets=["regcred"])
    doc["spec"]["storage"] = {"existingClaim": "shared"}
    doc["spec"]["model"]["tokenSecretRef"] = {"name": "hf"}
    doc["spec"]["services"]["judge"] = {
        "url": "https://j.example/v1",
        "apiKeySecretRef": {"name": "jk", "key": "k"},
    }
    run, plan = prepared(doc)
    assert render.build_pvc(run) is None and render.claim_name(run) == "shared"
    init = render.build_stage_job(run, plan, plan.stage("initialize"), 1)
    synth = render.build_stage_job(run, plan, plan.stage("synthesis"), 1)
    for job in (init, synth):
        assert job["spec"]["suspend"] is True
        assert job["metadata"]["labels"][naming.KUEUE_QUEUE_LABEL] == "team-a"
        assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
        vols = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
        assert vols["artifacts"]["persistentVolumeClaim"]["claimName"] == "shared"
    init_env = {e["name"]: e for e in init["spec"]["template"]["spec"]["containers"][0]["env"]}
    synth_env = {e["name"]: e for e in synth["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert init_env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "hf",
        "key": "token",
        "optional": False,
    }
    assert "HF_HUB_OFFLINE" not in init_env and "PURPCODE_JUDGE_API_KEY" not in init_env
    assert synth_env["PURPCODE_JUDGE_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "jk"
    assert "HF_TOKEN" not in synth_env


def test_sandbox_is_isolated() -> None:
    doc = body("tiny-cpu")
    doc["spec"].setdefault("services", {}).setdefault("sandbox", {})["isolation"] = "namespaces"
    run, plan = prepared(doc)
    policy = render.build_sandbox_network_policy(run)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"] and policy["spec"]["egress"] == []
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "purpcode.dev/run": "tiny-cpu",
        "purpcode.dev/role": "sandbox",
    }
    rule = policy["spec"]["ingress"][0]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": {"purpcode.dev/run": "tiny-cpu", "purpcode.dev/role": "stage"}}}
    ]
    dep = render.build_sandbox_deployment(run, plan, 3)
    assert dep["spec"]["replicas"] == 3
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert "command" not in c  # the image's ENTRYPOINT is `tini -- purpcode` (images/sandbox/Dockerfile)
    assert c["args"] == [
        "sandbox", "serve", "--host", "0.0.0.0", "--port", "8080", "--metrics-port", str(METRICS_PORT)
    ]  # fmt: skip
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert pod["automountServiceAccountToken"] is False
    # docs/sandbox.md: user namespaces + mounts (seccomp/AppArmor unconfined), an unmasked /proc in a user-namespaced pod
    assert pod["hostUsers"] is False and c["securityContext"]["procMount"] == "Unmasked"
    assert pod["securityContext"]["seccompProfile"] == {"type": "Unconfined"}
    assert c["securityContext"]["appArmorProfile"] == {"type": "Unconfined"}
    assert (
        pod["securityContext"]["runAsNonRoot"] is True
        and c["securityContext"]["readOnlyRootFilesystem"] is True
    )
    assert c["securityContext"]["allowPrivilegeEscalation"] is False and c["securityContext"][
        "capabilities"
    ] == {"drop": ["ALL"]}
    svc = render.build_sandbox_service(run)
    assert svc["metadata"]["name"] == "tiny-cpu-sandbox" and svc["spec"]["ports"][0]["port"] == 8080


def test_judge_vllm_on_gpus_and_small_server_on_cpu() -> None:
    doc = body("qwen2.5-32b")
    run, plan = prepared(doc)
    dep = render.build_judge_deployment(run, plan, 1)
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    judge = plan.judge
    assert c["command"][:3] == ["vllm", "serve", judge.model]
    assert c["command"][c["command"].index("--tensor-parallel-size") + 1] == str(judge.tensor_parallel_size)
    assert c["command"][c["command"].index("--max-model-len") + 1] == str(judge.max_model_len)
    assert (
        run.spec.services.judge.model_name() in c["command"][c["command"].index("--served-model-name") + 1 :]
    )
    assert c["resources"]["limits"]["nvidia.com/gpu"] == str(judge.gpus)
    assert c["readinessProbe"]["httpGet"]["path"] == "/health" and c["startupProbe"]["failureThreshold"] >= 60

    tiny = body("tiny-cpu")
    run, plan = prepared(tiny)
    (c,) = render.build_judge_deployment(run, plan, 1)["spec"]["template"]["spec"]["containers"]
    assert c["command"][:5] == ["purpcode", "judge", "serve", "--model", "tiny-judge"]
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    svc = render.build_judge_service(run)
    assert svc["metadata"]["name"] == "tiny-cpu-judge" and svc["spec"]["ports"][0]["port"] == 8000


def test_the_validator_rejects_what_the_api_server_would() -> None:
    import jsonschema

    job = next(o for o in render_all(body("tiny-cpu")) if o["kind"] == "Job")
    assert job["kind"] == "Job"
    bad = {
        **job,
        "spec": {**job["spec"], "backofLimit": 0},
    }  # a typo the API server rejects (strict decoding)
    with pytest.raises(jsonschema.ValidationError):
        validate(bad, "1.30.0")


def test_rendering_is_deterministic() -> None:
    assert render_all(body("qwen2.5-32b")) == render_all(body("qwen2.5-32b"))


def test_event_names_are_deterministic_per_transition() -> None:
    a = render.build_event(
        body("tiny-cpu"),
        etype="Normal",
        reason="R",
        message="m",
        key="StageStarted/rl/1",
        timestamp="t",
        instance="i",
    )
    b = render.build_event(
        body("tiny-cpu"),
        etype="Normal",
        reason="R",
        message="other",
        key="StageStarted/rl/1",
        timestamp="t2",
        instance="j",
    )
    c = render.build_event(
        body("tiny-cpu"),
        etype="Normal",
        reason="R",
        message="m",
        key="StageStarted/rl/2",
        timestamp="t",
        instance="i",
    )
    assert a["metadata"]["name"] == b["metadata"]["name"] != c["metadata"]["name"]


# --------------------------------------------------------------------------------------------- issue 16


def _pod_specs(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in objs
        if o["kind"] in ("Job", "Deployment")
    }


def test_the_run_scheduling_default_reaches_every_pod_and_each_may_override() -> None:
    doc = body("tiny-cpu")
    gpu = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    affinity = {
        "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {}}]}
    }
    doc["spec"]["scheduling"] = {
        "nodeSelector": {"pool": "gpu"},
        "tolerations": gpu,
        "priorityClassName": "training",
        "runtimeClassName": "nvidia",
        "affinity": affinity,
    }
    doc["spec"]["stages"]["rl"]["scheduling"] = {
        "nodeSelector": {"pool": "big"},
        "priorityClassName": "urgent",
    }
    doc["spec"]["services"]["sandbox"]["scheduling"] = {"nodeSelector": {}, "tolerations": []}
    doc["spec"]["services"]["sandbox"]["runtimeClassName"] = "gvisor"
    specs = _pod_specs(render_all(doc))
    assert set(specs) == {
        f"tiny-cpu-{s}-1" for s in ("init", "synthesis", "rule-learning", "rl", "evaluation", "report")
    } | {
        "tiny-cpu-sandbox",
        "tiny-cpu-judge",
    }
    for name, pod in specs.items():
        if name in ("tiny-cpu-sandbox", "tiny-cpu-rl-1"):
            continue
        # initialize and report, the other stages and the judge: the run's default, whole.
        assert pod["nodeSelector"] == {"pool": "gpu"}, name
        assert pod["tolerations"] == gpu and pod["priorityClassName"] == "training", name
        assert pod["runtimeClassName"] == "nvidia" and pod["affinity"] == affinity, name
    rl = specs["tiny-cpu-rl-1"]
    assert rl["nodeSelector"] == {"pool": "big"} and rl["priorityClassName"] == "urgent"
    assert rl["tolerations"] == gpu and rl["runtimeClassName"] == "nvidia"  # the fields rl leaves out
    sandbox = specs["tiny-cpu-sandbox"]
    assert "nodeSelector" not in sandbox and "tolerations" not in sandbox  # cleared by the override
    assert sandbox["runtimeClassName"] == "gvisor" and sandbox["priorityClassName"] == "training"


def test_children_carry_only_the_operators_labels_never_the_runs() -> None:
    doc = body("tiny-cpu", labels={"kueue.x-k8s.io/queue-name": "sneaky", "team": "red"})
    for obj in render_all(doc):
        if obj["kind"] == "Event":
            continue
        labels = dict(obj["metadata"]["labels"])
        template = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
        for found in (labels, template):
            assert "team" not in found and "kueue.x-k8s.io/queue-name" not in found, obj["metadata"]["name"]


def test_with_a_queue_the_jobs_and_service_deployments_carry_the_queue_label() -> None:
    doc = body("tiny-cpu")
    doc["spec"]["queueName"] = "team-a"
    objs = render_all(doc)
    queued = {
        o["metadata"]["name"]
        for o in objs
        if o["metadata"].get("labels", {}).get(naming.KUEUE_QUEUE_LABEL) == "team-a"
    }
    workloads = {o["metadata"]["name"] for o in objs if o["kind"] in ("Job", "Deployment")}
    assert queued == workloads  # and nothing else (claims, ConfigMaps, Services, policies)
    for o in objs:
        if o["kind"] == "Deployment":
            assert o["spec"]["template"]["metadata"]["labels"][naming.KUEUE_QUEUE_LABEL] == "team-a"
            assert naming.KUEUE_QUEUE_LABEL not in o["spec"]["selector"]["matchLabels"]


def test_the_sandbox_scratch_volume_is_bounded_by_scratch_size() -> None:
    """/tmp is where restricted-mode executions write: an unbounded emptyDir lets model code fill the node's disk."""
    doc = body("tiny-cpu")
    run, plan = prepared(doc)
    pod = render.build_sandbox_deployment(run, plan, 1)["spec"]["template"]["spec"]
    (tmp,) = [v for v in pod["volumes"] if v["name"] == "tmp"]
    assert tmp["emptyDir"] == {"sizeLimit": "2Gi"}
    assert {"name": "tmp", "mountPath": "/tmp"} in pod["containers"][0]["volumeMounts"]
    doc["spec"]["services"]["sandbox"]["scratchSize"] = "512Mi"
    run, plan = prepared(doc)
    pod = render.build_sandbox_deployment(run, plan, 1)["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}}]


def test_allow_weaker_isolation_reaches_the_sandbox_settings() -> None:
    """The restricted mode refuses to start without Landlock ABI 6 unless the service setting says otherwise: the
    spec field must reach it, and the env var must parse as the service's own setting."""
    from purpcode.sandbox.settings import SandboxSettings

    def settings_of(doc: dict[str, Any]) -> SandboxSettings:
        run, plan = prepared(doc)
        (c,) = render.build_sandbox_deployment(run, plan, 1)["spec"]["template"]["spec"]["containers"]
        return SandboxSettings.from_env({e["name"]: e["value"] for e in c["env"] if "value" in e})

    doc = body("tiny-cpu")
    assert settings_of(doc).allow_weaker_isolation is False
    doc["spec"]["services"]["sandbox"]["allowWeakerIsolation"] = True
    assert settings_of(doc).allow_weaker_isolation is True


def test_the_sandbox_policy_admits_the_metrics_scraper_on_the_metrics_port() -> None:
    """The scraper reaches only the metrics port (no /run_code there), stage pods only the API port: a pod
    labelled like Prometheus in any namespace must not be able to run code in the run's sandbox."""
    doc = body("tiny-cpu")
    run, plan = prepared(doc)
    dep = render.build_sandbox_deployment(run, plan, 1)
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": SANDBOX_PORT, "metrics": METRICS_PORT}
    assert c["args"][c["args"].index("--port") + 1] == str(ports["http"])
    assert c["args"][c["args"].index("--metrics-port") + 1] == str(ports["metrics"])
    policy = render.build_sandbox_network_policy(run)
    stages, scraper = policy["spec"]["ingress"]
    assert stages["ports"] == [{"protocol": "TCP", "port": ports["http"]}]
    assert scraper["ports"] == [{"protocol": "TCP", "port": ports["metrics"]}]
    svc = render.build_sandbox_service(run)
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"]  # the Service exposes the API only
    assert scraper["from"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    ]
    mine = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    doc["spec"]["services"]["sandbox"]["metricsScrapers"] = [mine]
    run, _ = prepared(doc)
    assert render.build_sandbox_network_policy(run)["spec"]["ingress"][1]["from"] == [mine]
    doc["spec"]["services"]["sandbox"]["metricsScrapers"] = []
    run, _ = prepared(doc)
    assert render.build_sandbox_network_policy(run)["spec"]["ingress"] == [stages]  # nobody else


def test_the_samples_hard_code_no_namespace_and_the_32b_gpu_workloads_tolerate_the_gpu_taint() -> None:
    for sample in SAMPLES:
        assert "namespace" not in load_sample(sample)["metadata"], sample
    doc = body("qwen2.5-32b")
    run, plan = prepared(doc)
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    for name, pod in _pod_specs(render_all(doc)).items():
        gpus = sum(int(c["resources"]["requests"].get("nvidia.com/gpu", "0")) for c in pod["containers"])
        if gpus or name.endswith(("-init-1", "-report-1")):
            assert gpu in pod.get("tolerations", []), name
            assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200"}, name


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {},
            [
                {
                    "namespaceSelector": {},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
                }
            ],
        ),
        (
            {"sandbox": {"metricsScrapers": [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]}},
            [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}],
        ),
        ({"sandbox": {"metricsScrapers": []}}, None),
    ],
    ids=["default", "custom", "none"],
)
def test_the_charts_scraper_selector_reaches_the_sandbox_policy(
    values: dict[str, Any], expected: list[dict[str, Any]] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util
    import sys

    from purpcode_operator.config import OperatorConfig
    from purpcode_operator.controller import Controller

    path = Path(__file__).resolve().parents[2] / "tools" / "gen_manifests.py"
    module_spec = importlib.util.spec_from_file_location("purpcode_tools_gen_manifests_render", path)
    assert module_spec and module_spec.loader
    gen = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = gen
    module_spec.loader.exec_module(gen)
    (dep,) = [o for o in gen.render_chart(values, release="pc", namespace="ops") if o["kind"] == "Deployment"]
    for env in dep["spec"]["template"]["spec"]["containers"][0]["env"]:
        if env["name"].startswith("PURPCODE_") and "value" in env:
            monkeypatch.setenv(env["name"], env["value"])
    settings = Controller.settings_from(OperatorConfig.from_env())
    run, _ = prepare(body("tiny-cpu"), settings)
    ingress = render.build_sandbox_network_policy(run)["spec"]["ingress"]
    if expected is None:
        assert len(ingress) == 1  # the stage pods only
    else:
        assert ingress[1]["from"] == expected
