"""Pure renderers: a validated run + its plan -> the Kubernetes objects the operator creates.

No API calls and no clock here: the same input gives the same objects (golden tests pin them, and every object is
checked against the Kubernetes OpenAPI schemas offline). `owner` (the run's body) adds the owner reference with
kopf.adopt, so deleting the run deletes everything (garbage collection), including the artifacts claim the operator
created (bring `storage.existingClaim` to keep artifacts beyond a run).
"""

from __future__ import annotations

import copy
from typing import Any

import kopf

from . import naming
from .api import PurpCodeRun, Scheduling, SecretKeyRef, stage_spec
from .layout import CLUSTER_ROOT, CONFIG_FILE, CONFIG_MOUNT
from .plan import (
    GENERATION_API_KEY_ENV,
    HF_TOKEN_ENV,
    JUDGE_API_KEY_ENV,
    JUDGE_PORT,
    METRICS_PORT,
    SANDBOX_PORT,
    RunPlan,
    StagePlan,
    config_path,
    is_tiny,
)

Obj = dict[str, Any]

MASTER_PORT = 29500
RUN_AS_USER = 1000  # the images' non-root user (images/*.Dockerfile)
STAGE_CONTAINER = "stage"
CACHE_ROOT = f"{CLUSTER_ROOT}/.cache"
HF_HOME = f"{CACHE_ROOT}/huggingface"
SERVICE_CACHE = (
    "/cache"  # emptyDir of the judge (a ReadWriteOnce artifacts claim cannot follow it to a GPU node)
)
GPU_RESOURCE = "nvidia.com/gpu"
# Who may scrape the sandbox when neither the spec nor the operator (Helm value sandbox.metricsScrapers) says:
# Prometheus pods in any namespace (the label kube-prometheus-stack and the Prometheus Operator put on them).
DEFAULT_METRICS_SCRAPERS: tuple[Obj, ...] = (
    {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}},
)


def _adopt(obj: Obj, owner: Obj | None) -> Obj:
    """Owner reference (garbage collection) and namespace from the run; never the run's labels.

    kopf.adopt would also copy every label of the run into the child: a `kueue.x-k8s.io/queue-name` label on the
    run would then make Kueue manage the artifacts claim, Services and Deployments behind the operator's back.
    Children carry only the operator's own labels (naming.labels) and, on what Kueue should queue, the queue label.
    """
    if owner is not None:
        kopf.append_owner_reference(obj, owner=owner)  # type: ignore[arg-type]
        kopf.adjust_namespace(obj, namespace=owner.get("metadata", {}).get("namespace"))  # type: ignore[arg-type]
    return obj


def _apply_scheduling(pod_spec: Obj, sched: Scheduling) -> None:
    """The resolved scheduling block (run default + the workload's own) on a pod spec."""
    if sched.node_selector:
        pod_spec["nodeSelector"] = dict(sched.node_selector)
    if sched.tolerations:
        pod_spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in sched.tolerations]
    if sched.priority_class_name:
        pod_spec["priorityClassName"] = sched.priority_class_name
    if sched.runtime_class_name:
        pod_spec["runtimeClassName"] = sched.runtime_class_name
    if sched.affinity is not None:
        affinity = sched.affinity.model_dump(by_alias=True, exclude_none=True)
        if affinity:
            pod_spec["affinity"] = affinity


def _meta(
    name: str, namespace: str | None, labels: dict[str, str], annotations: dict[str, str] | None = None
) -> Obj:
    meta: Obj = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = annotations
    return meta


def _secret_env(name: str, ref: SecretKeyRef | None, *, optional: bool = False) -> list[Obj]:
    if ref is None:
        return []
    return [
        {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key, "optional": optional}},
        }
    ]


def _field_env(name: str, path: str) -> Obj:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _restricted_container_security() -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _restricted_pod_security() -> Obj:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _writable_home_env(cache: str) -> list[Obj]:
    """Everything that wants to write under $HOME goes to emptyDirs (the root filesystem is read-only)."""
    return [
        {"name": "HOME", "value": "/tmp"},
        {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"},
        {"name": "HF_HOME", "value": f"{cache}/huggingface"},
        {"name": "PURPCODE_CACHE", "value": f"{cache}/purpcode"},
        {"name": "TRITON_CACHE_DIR", "value": "/tmp/.triton"},
        {"name": "TORCH_EXTENSIONS_DIR", "value": "/tmp/torch_extensions"},
        {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
    ]


def _resources(cpu: str, memory: str, gpus: int) -> Obj:
    requests: Obj = {"cpu": cpu, "memory": memory}
    limits: Obj = {"memory": memory}
    if gpus > 0:
        requests[GPU_RESOURCE] = str(gpus)
        limits[GPU_RESOURCE] = str(gpus)
    return {"requests": requests, "limits": limits}


# --------------------------------------------------------------------------------------------- storage


def claim_name(run: PurpCodeRun) -> str:
    """The artifacts claim stage pods mount: the user's existing claim or the one the operator creates."""
    return run.spec.storage.existing_claim or naming.pvc_name(run.metadata.name)


def build_pvc(run: PurpCodeRun, owner: Obj | None = None) -> Obj | None:
    """The artifacts PersistentVolumeClaim; None when the spec brings its own claim."""
    storage = run.spec.storage
    if storage.existing_claim:
        return None
    spec: Obj = {
        "accessModes": [storage.access_mode],
        "resources": {"requests": {"storage": storage.size}},
        "volumeMode": "Filesystem",
    }
    if storage.storage_class_name:
        spec["storageClassName"] = storage.storage_class_name
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(
            naming.pvc_name(run.metadata.name),
            run.metadata.namespace,
            naming.labels(run.metadata.name, "artifacts"),
        ),
        "spec": spec,
    }
    return _adopt(pvc, owner)


# --------------------------------------------------------------------------------------------- stages


def build_rendezvous_service(run: PurpCodeRun, stage: StagePlan, owner: Obj | None = None) -> Obj:
    """Headless Service of a multi-node stage: pod `<job>-<index>.<service>` resolves before it is ready."""
    name = naming.rendezvous_service_name(run.metadata.name, stage.slug)
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(
            name,
            run.metadata.namespace,
            naming.labels(
                run.metadata.name, "rendezvous", component=f"{stage.slug}-rendezvous", stage_slug=stage.slug
            ),
        ),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": naming.selector(run.metadata.name, naming.ROLE_STAGE, stage.slug),
            "ports": [
                {"name": "torch-dist", "port": MASTER_PORT, "targetPort": MASTER_PORT, "protocol": "TCP"}
            ],
        },
    }
    return _adopt(svc, owner)


def stage_command(run: PurpCodeRun, stage: StagePlan, attempt: int) -> list[str]:
    """The container command: python for one process, torchrun for several GPUs or nodes (Kubeflow style)."""
    cfg = config_path()
    r = stage.resources
    if not stage.distributed:
        return stage.argv(cfg)
    tail = ["-m", stage.module, "--config", cfg, *stage.args]
    nproc = max(r.gpus_per_node, 1)
    if r.nodes == 1:
        return ["torchrun", "--standalone", "--nnodes=1", f"--nproc-per-node={nproc}", *tail]
    job = naming.job_name(run.metadata.name, stage.slug, attempt)
    master = f"{job}-0.{naming.rendezvous_service_name(run.metadata.name, stage.slug)}"
    return [
        "torchrun",
        f"--nnodes={r.nodes}",
        f"--nproc-per-node={nproc}",
        "--node-rank=$(NODE_RANK)",  # expanded by the kubelet from the env var below
        f"--master-addr={master}",
        f"--master-port={MASTER_PORT}",
        *tail,
    ]


def _stage_env(run: PurpCodeRun, plan: RunPlan, stage: StagePlan, attempt: int) -> list[Obj]:
    env: list[Obj] = [
        {"name": "PURPCODE_RUN", "value": run.metadata.name},
        {"name": "PURPCODE_STAGE", "value": stage.name},
        {"name": "PURPCODE_ATTEMPT", "value": str(attempt)},
        {"name": "PURPCODE_CONFIG", "value": config_path()},
        {"name": "PURPCODE_METRICS_PORT", "value": str(METRICS_PORT)},
        _field_env("POD_NAME", "metadata.name"),
        _field_env("POD_NAMESPACE", "metadata.namespace"),
        *_writable_home_env(CACHE_ROOT),
    ]
    if stage.name == "initialize":
        # Only the initializer talks to the hub; it needs the token for gated models.
        env += _secret_env(HF_TOKEN_ENV, run.spec.model.token_secret_ref)
    else:
        env += [
            {"name": "HF_HUB_OFFLINE", "value": "1"},
            {"name": "HF_DATASETS_OFFLINE", "value": "1"},
            {"name": "TRANSFORMERS_OFFLINE", "value": "1"},
        ]
    if "judge" in stage.needs:
        env += _secret_env(JUDGE_API_KEY_ENV, run.spec.services.judge.api_key_secret_ref)
    if stage.name not in ("initialize", "report"):
        generation = getattr(stage_spec(run.spec, stage.name), "generation", None)
        if generation is not None:
            env += _secret_env(GENERATION_API_KEY_ENV, generation.api_key_secret_ref)
    if stage.distributed and stage.resources.nodes > 1:
        env += [
            _field_env("NODE_RANK", f"metadata.annotations['{naming.COMPLETION_INDEX_ANNOTATION}']"),
            {"name": "MASTER_PORT", "value": str(MASTER_PORT)},
        ]
    return env


SIGTERM_EXIT = 143  # the exit code of a container process killed by SIGTERM


def build_stage_job(
    run: PurpCodeRun,
    plan: RunPlan,
    stage: StagePlan,
    attempt: int,
    owner: Obj | None = None,
) -> Obj:
    """One attempt of a stage: a batch/v1 Job (Indexed + torchrun over a headless Service when multi-node).

    The Job itself never retries (backoffLimit 0): the operator owns retries, with backoff, one Job per attempt,
    so each attempt has its own name, logs and termination message. Node disruptions (preemption, drain) do not
    count as failures (podFailurePolicy Ignore on DisruptionTarget), nor does a SIGTERM exit (a suspended Job's
    pods are deleted without a DisruptionTarget condition, and the Job controller counts them as failed). With
    `queueName` the Job starts suspended and carries Kueue's queue label, so Kueue admits it.
    """
    name = run.metadata.name
    spec = run.spec
    r = stage.resources
    multi_node = stage.distributed and r.nodes > 1
    pod_labels = naming.labels(name, naming.ROLE_STAGE, stage_slug=stage.slug, attempt=attempt)
    job_labels = dict(pod_labels)
    if spec.queue_name:
        job_labels[naming.KUEUE_QUEUE_LABEL] = spec.queue_name
    ports = [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
    if multi_node:
        ports.append({"name": "torch-dist", "containerPort": MASTER_PORT, "protocol": "TCP"})
    container: Obj = {
        "name": STAGE_CONTAINER,
        "image": stage.image,
        "imagePullPolicy": "IfNotPresent",
        "command": stage_command(run, stage, attempt),
        "workingDir": "/tmp",
        "env": _stage_env(run, plan, stage, attempt),
        "ports": ports,
        "resources": _resources(r.cpu, r.memory, r.gpus_per_node),
        "securityContext": _restricted_container_security(),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "artifacts", "mountPath": CLUSTER_ROOT},
            {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }
    pod_spec: Obj = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _restricted_pod_security(),
        "containers": [container],
        "volumes": [
            {"name": "artifacts", "persistentVolumeClaim": {"claimName": claim_name(run)}},
            # The stage config travels in the pod's own annotation (below), read through the downward API: the
            # Job and its config are one object (no ConfigMap per stage to create, grant or clean up, and no
            # Job that can exist without its config).
            {
                "name": "config",
                "downwardAPI": {
                    "items": [
                        {
                            "path": CONFIG_FILE,
                            "fieldRef": {
                                "fieldPath": f"metadata.annotations['{naming.ANNOTATION_STAGE_CONFIG}']"
                            },
                        }
                    ]
                },
            },
            {"name": "tmp", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        ],
    }
    if spec.service_account_name:
        pod_spec["serviceAccountName"] = spec.service_account_name
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    _apply_scheduling(pod_spec, stage.scheduling)
    if multi_node:
        pod_spec["subdomain"] = naming.rendezvous_service_name(name, stage.slug)
    job_spec: Obj = {
        "backoffLimit": 0,
        "podFailurePolicy": {
            "rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                # SIGTERM (128 + 15): the pod was stopped from outside (the Job suspended by the operator or
                # Kueue, a plain pod delete), not failed; without this a suspended run's Job fails on its own.
                {
                    "action": "Ignore",
                    "onExitCodes": {
                        "containerName": STAGE_CONTAINER,
                        "operator": "In",
                        "values": [SIGTERM_EXIT],
                    },
                },
            ]
        },
        "template": {
            "metadata": {
                "labels": pod_labels,
                "annotations": {
                    "kubectl.kubernetes.io/default-container": STAGE_CONTAINER,
                    naming.ANNOTATION_STAGE: stage.name,
                    # Compact: the Job, its create's answer and every watch event of it carry this text.
                    naming.ANNOTATION_STAGE_CONFIG: stage.config.model_dump_json(),
                },
            },
            "spec": pod_spec,
        },
    }
    if multi_node:
        job_spec.update({"completionMode": "Indexed", "completions": r.nodes, "parallelism": r.nodes})
    if stage.active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = stage.active_deadline_seconds
    if spec.queue_name:
        job_spec["suspend"] = True
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(
            naming.job_name(name, stage.slug, attempt),
            run.metadata.namespace,
            job_labels,
            {naming.ANNOTATION_STAGE: stage.name},
        ),
        "spec": job_spec,
    }
    return _adopt(job, owner)


# --------------------------------------------------------------------------------------------- sandbox

# What the sandbox's bubblewrap jail needs from its pod (docs/sandbox.md "What the pod needs"): unprivileged user
# namespaces and mounts, which the runtime's default seccomp and AppArmor profiles refuse; an unmasked /proc (a
# new proc mount is refused under a partly masked one), which Kubernetes allows only in user-namespaced pods
# (hostUsers: false); no capability, no privilege escalation, read-only root.
SANDBOX_POD_SECURITY: Obj = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_USER,
    "runAsGroup": RUN_AS_USER,
    "seccompProfile": {"type": "Unconfined"},
}
SANDBOX_CONTAINER_SECURITY: Obj = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "appArmorProfile": {"type": "Unconfined"},
    "procMount": "Unmasked",
}


# The Pod Security level each isolation mode's pod needs (annotation on the Deployment and its pods).
POD_SECURITY_ANNOTATION = "purpcode.dev/pod-security-level"


def sandbox_pod_security_level(run: PurpCodeRun) -> str:
    """`privileged` for the namespaces jail; `restricted` for the restricted and auto modes (auto then runs the
    restricted mode: the runtime's default seccomp profile refuses the jail's namespaces)."""
    return "privileged" if run.spec.services.sandbox.isolation == "namespaces" else "restricted"


def sandbox_env(run: PurpCodeRun) -> list[Obj]:
    sb = run.spec.services.sandbox
    limits = sb.limits
    return [
        {"name": "PURPCODE_SANDBOX_ISOLATION", "value": sb.isolation},
        {"name": "PURPCODE_SANDBOX_ALLOW_WEAKER_ISOLATION", "value": str(sb.allow_weaker_isolation).lower()},
        {"name": "PURPCODE_SANDBOX_CONCURRENCY", "value": str(sb.concurrency)},
        {"name": "PURPCODE_SANDBOX_RUN_TIMEOUT_SECONDS", "value": str(limits.run_timeout_seconds)},
        {"name": "PURPCODE_SANDBOX_MEMORY_LIMIT_MB", "value": str(limits.memory_limit_mb)},
        {"name": "PURPCODE_SANDBOX_MAX_PROCESSES", "value": str(limits.max_processes)},
        {"name": "PURPCODE_SANDBOX_MAX_OUTPUT_BYTES", "value": str(limits.max_output_bytes)},
        {"name": "HOME", "value": "/tmp"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
    ]


def build_sandbox_deployment(run: PurpCodeRun, plan: RunPlan, replicas: int, owner: Obj | None = None) -> Obj:
    """The code-execution sandbox: `purpcode sandbox serve` (the image's entrypoint) behind readiness on /healthz."""
    name = run.metadata.name
    sb = plan.sandbox
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5, "timeoutSeconds": 3}
    container: Obj = {
        "name": "sandbox",
        "image": plan.sandbox_image,
        "imagePullPolicy": "IfNotPresent",
        # Arguments only: the image's ENTRYPOINT (`tini -- purpcode`) stays PID 1 and reaps what jailed code leaves.
        "args": [
            "sandbox",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(SANDBOX_PORT),
            "--metrics-port",
            str(METRICS_PORT),
        ],
        "env": sandbox_env(run),
        # /run_code and /healthz on "http" (stage pods, probes); /metrics alone on "metrics" (the scraper).
        "ports": [
            {"name": "http", "containerPort": SANDBOX_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {**probe, "failureThreshold": 3},
        "livenessProbe": {**probe, "failureThreshold": 6, "initialDelaySeconds": 10},
        "resources": _resources(sb.cpu, sb.memory, 0),
        "securityContext": SANDBOX_CONTAINER_SECURITY,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod_spec: Obj = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostUsers": False,
        "securityContext": SANDBOX_POD_SECURITY,
        "containers": [container],
        # /tmp is where restricted-mode executions write: bounded, or model-written code could fill the node's disk.
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": run.spec.services.sandbox.scratch_size}}],
    }
    level = sandbox_pod_security_level(run)
    if level == "restricted":
        # No namespaces, no unmasked /proc: the securityContext every other pod has (restricted PSS).
        container["securityContext"] = _restricted_container_security()
        pod_spec["securityContext"] = _restricted_pod_security()
        del pod_spec["hostUsers"]
    _apply_scheduling(pod_spec, plan.sandbox_scheduling)
    if run.spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in run.spec.image_pull_secrets]
    dep = _service_deployment(run, naming.ROLE_SANDBOX, naming.sandbox_name(name), pod_spec, replicas, owner)
    for meta in (dep["metadata"], dep["spec"]["template"]["metadata"]):
        meta.setdefault("annotations", {})[POD_SECURITY_ANNOTATION] = level
    return dep


def build_sandbox_service(run: PurpCodeRun, owner: Obj | None = None) -> Obj:
    return _http_service(
        run, naming.ROLE_SANDBOX, naming.sandbox_name(run.metadata.name), SANDBOX_PORT, owner
    )


def _service_deployment(
    run: PurpCodeRun, role: str, dep_name: str, pod_spec: Obj, replicas: int, owner: Obj | None
) -> Obj:
    """A run-scoped service Deployment (sandbox, judge): its pods carry the role's labels and selector.

    With `queueName` the Deployment and its pods carry Kueue's queue label: with Kueue's `deployment` (or `pod`)
    integration enabled, Kueue gates the pods until the queue's quota admits them (a 2-GPU judge counts against
    the same quota as the stages); without it, Kueue ignores the label and the services run outside the quota.
    """
    labels = naming.labels(run.metadata.name, role)
    if run.spec.queue_name:
        labels[naming.KUEUE_QUEUE_LABEL] = run.spec.queue_name
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(dep_name, run.metadata.namespace, labels),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": naming.selector(run.metadata.name, role)},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
    return _adopt(dep, owner)


def _http_service(run: PurpCodeRun, role: str, svc_name: str, port: int, owner: Obj | None) -> Obj:
    """The ClusterIP Service in front of a role's pods (their container port is named `http`)."""
    name = run.metadata.name
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(svc_name, run.metadata.namespace, naming.labels(name, role)),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.selector(name, role),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return _adopt(svc, owner)


def sandbox_scrapers(run: PurpCodeRun) -> list[Obj]:
    """Who may scrape the sandbox's /metrics: the spec's peers, else Prometheus pods in any namespace."""
    peers = run.spec.services.sandbox.metrics_scrapers
    if peers is None:
        return copy.deepcopy(list(DEFAULT_METRICS_SCRAPERS))
    return [p.model_dump(by_alias=True, exclude_none=True) for p in peers]


def build_sandbox_network_policy(run: PurpCodeRun, owner: Obj | None = None) -> Obj:
    """Sandbox pods may not open any connection; only this run's stage pods may reach the API port (/run_code), and
    only the metrics scraper (Prometheus) the metrics port, which serves /metrics alone (an empty `metricsScrapers`
    list: nobody). One port per peer: a pod labelled like Prometheus must not be able to run code."""
    name = run.metadata.name
    ingress: list[Obj] = [
        {
            "from": [{"podSelector": {"matchLabels": naming.selector(name, naming.ROLE_STAGE)}}],
            "ports": [{"protocol": "TCP", "port": SANDBOX_PORT}],
        }
    ]
    scrapers = sandbox_scrapers(run)
    if scrapers:
        ingress.append({"from": scrapers, "ports": [{"protocol": "TCP", "port": METRICS_PORT}]})
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(
            naming.sandbox_name(name), run.metadata.namespace, naming.labels(name, naming.ROLE_SANDBOX)
        ),
        "spec": {
            "podSelector": {"matchLabels": naming.selector(name, naming.ROLE_SANDBOX)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": [],
        },
    }
    return _adopt(policy, owner)


# --------------------------------------------------------------------------------------------- judge


def judge_command(run: PurpCodeRun, plan: RunPlan) -> list[str]:
    """vLLM's OpenAI-compatible server on GPUs; the project's small transformers server for CPU (tiny) runs."""
    judge = plan.judge
    served = run.spec.services.judge.model_name()
    names = [served] if served == judge.model else [served, judge.model]
    if judge.gpus > 0:
        cmd = [
            "vllm",
            "serve",
            judge.model,
            "--host",
            "0.0.0.0",
            "--port",
            str(JUDGE_PORT),
            "--tensor-parallel-size",
            str(judge.tensor_parallel_size),
            "--max-model-len",
            str(judge.max_model_len),
            "--served-model-name",
            *names,
        ]
        return cmd
    cmd = [
        "purpcode",
        "judge",
        "serve",
        "--model",
        judge.model,
        "--host",
        "0.0.0.0",
        "--port",
        str(JUDGE_PORT),
        "--max-model-len",
        str(judge.max_model_len),
        "--cache-dir",
        f"{SERVICE_CACHE}/purpcode",
    ]
    for n in names:
        cmd += ["--served-model-name", n]
    return cmd


def build_judge_deployment(run: PurpCodeRun, plan: RunPlan, replicas: int, owner: Obj | None = None) -> Obj:
    """The judge model server (OpenAI-compatible), ready when /health answers."""
    name = run.metadata.name
    judge = plan.judge
    assert judge.deploy and judge.image, "the judge is deployed only when the spec asks for it"
    env = [
        *_writable_home_env(SERVICE_CACHE),
        {"name": "VLLM_CACHE_ROOT", "value": f"{SERVICE_CACHE}/vllm"},
        *_secret_env(HF_TOKEN_ENV, run.spec.model.token_secret_ref, optional=True),
    ]
    if is_tiny(run.spec.model) or judge.model == "tiny-random":
        env.append({"name": "HF_HUB_OFFLINE", "value": "1"})
    probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 5}
    container: Obj = {
        "name": "judge",
        "image": judge.image,
        "imagePullPolicy": "IfNotPresent",
        "command": judge_command(run, plan),
        "env": env,
        "ports": [{"name": "http", "containerPort": JUDGE_PORT, "protocol": "TCP"}],
        # Loading a 32B model can take many minutes: the startup probe allows an hour before liveness applies.
        "startupProbe": {**probe, "failureThreshold": 360},
        "readinessProbe": {**probe, "failureThreshold": 3},
        "livenessProbe": {**probe, "failureThreshold": 6},
        "resources": _resources(judge.cpu, judge.memory, judge.gpus),
        "securityContext": _restricted_container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "cache", "mountPath": SERVICE_CACHE},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }
    pod_spec: Obj = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _restricted_pod_security(),
        "containers": [container],
        "volumes": [
            {"name": "cache", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        ],
    }
    if run.spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in run.spec.image_pull_secrets]
    _apply_scheduling(pod_spec, judge.scheduling)
    return _service_deployment(run, naming.ROLE_JUDGE, naming.judge_name(name), pod_spec, replicas, owner)


def build_judge_service(run: PurpCodeRun, owner: Obj | None = None) -> Obj:
    return _http_service(run, naming.ROLE_JUDGE, naming.judge_name(run.metadata.name), JUDGE_PORT, owner)


# --------------------------------------------------------------------------------------------- whole run


def stage_objects(
    run: PurpCodeRun, plan: RunPlan, stage: StagePlan, attempt: int, owner: Obj | None
) -> list[Obj]:
    """What one attempt of a stage needs, in creation order (what its pods mount first, the Job last)."""
    objs: list[Obj] = []
    pvc = build_pvc(run, owner)
    if pvc is not None:
        objs.append(pvc)
    if stage.distributed and stage.resources.nodes > 1:
        objs.append(build_rendezvous_service(run, stage, owner))
    objs.append(build_stage_job(run, plan, stage, attempt, owner))
    return objs


def service_objects(
    run: PurpCodeRun, plan: RunPlan, role: str, replicas: int, owner: Obj | None
) -> list[Obj]:
    """A service (sandbox or judge) the run deploys: its NetworkPolicy, Service and Deployment."""
    if role == naming.ROLE_SANDBOX:
        return [
            build_sandbox_network_policy(run, owner),
            build_sandbox_service(run, owner),
            build_sandbox_deployment(run, plan, replicas, owner),
        ]
    return [build_judge_service(run, owner), build_judge_deployment(run, plan, replicas, owner)]


def service_replicas(plan: RunPlan) -> dict[str, int]:
    """Replicas of each service the run deploys (an absent role is not deployed at all)."""
    out: dict[str, int] = {}
    if plan.sandbox.replicas > 0:
        out[naming.ROLE_SANDBOX] = plan.sandbox.replicas
    if plan.judge.deploy:
        out[naming.ROLE_JUDGE] = plan.judge.replicas
    return out


def render_run(run: PurpCodeRun, plan: RunPlan, owner: Obj | None = None) -> list[Obj]:
    """Every object the operator creates for a run (first attempt of each stage), once each, in the order the
    operator creates them: `purpcode render` prints this; the operator creates the same objects piece by piece."""
    objs: list[Obj] = []
    seen: set[tuple[str, str]] = set()
    services = service_replicas(plan)
    for stage in plan.stages:
        batch = [
            o
            for role in stage.needs
            if role in services
            for o in service_objects(run, plan, role, services[role], owner)
        ]
        for obj in batch + stage_objects(run, plan, stage, 1, owner):
            key = (obj["kind"], obj["metadata"]["name"])
            if key not in seen:
                seen.add(key)
                objs.append(obj)
    return objs


# --------------------------------------------------------------------------------------------- events


def build_event(
    run_body: Obj, *, etype: str, reason: str, message: str, key: str, timestamp: str, instance: str
) -> Obj:
    """A core/v1 Event about the run, named after the transition `key` (so a repeat post is a 409)."""
    meta = run_body.get("metadata", {})
    name, namespace, uid = meta.get("name", ""), meta.get("namespace", ""), meta.get("uid", "")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": naming.event_name(name, uid, key),
            "namespace": namespace,
            "labels": {naming.LABEL_RUN: name, naming.LABEL_MANAGED_BY: naming.MANAGED_BY},
        },
        "involvedObject": {
            "apiVersion": run_body.get("apiVersion"),
            "kind": run_body.get("kind"),
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": etype,
        "action": reason,
        "source": {"component": naming.MANAGED_BY},
        "reportingComponent": f"purpcode.dev/{naming.MANAGED_BY}",
        "reportingInstance": instance,
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "count": 1,
    }
