"""`purpcode doctor`: will this run work on this cluster? A preflight against the current kubeconfig.

Each check prints one line (ok / warn / fail, what was found, and the fix); any fail exits 1. The run's pods are
rendered with the operator's own renderer and checked with the same Pod Security checker the API server's rules
were transcribed into (`pss`), so "the namespace would refuse the sandbox" is said before a run hangs on it.
Reads only (GET/LIST), with the operator's own client and login (in-cluster service account or kubeconfig).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from . import pss, render
from .api import GROUP, PLURAL, PurpCodeRun
from .crd import build_crd
from .decide import Settings, owner_of, prepare
from .kube import ApiError, KubeClient, login
from .plan import RunPlan

Obj = dict[str, Any]
Status = Literal["ok", "warn", "fail"]

# (minimum minor version of Kubernetes 1.x, what) for features a rendered object can use.
USER_NAMESPACES = (33, "user-namespaced pods (hostUsers: false, procMount: Unmasked), on by default")
APPARMOR_FIELD = (30, "the appArmorProfile field")
POD_FAILURE_POLICY = (26, "Job podFailurePolicy")
SUCCESS_POLICY = (33, "Job successPolicy")
BACKOFF_PER_INDEX = (33, "Job backoffLimitPerIndex")
OPERATOR_MINIMUM = (28, "the operator and its chart")
RWX_PROVISIONERS = re.compile(
    r"nfs|cephfs|efs|filestore|azurefile|file\.csi|glusterfs|lustre|juicefs|longhorn"
)
GPU = "nvidia.com/gpu"


@dataclass(frozen=True)
class Check:
    status: Status
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f" -> fix: {self.fix}" if self.fix and self.status != "ok" else ""
        return f"{self.status:<4} {self.name}: {self.detail}{fix}"


def default_run(namespace: str) -> Obj:
    """The run checked when no spec is given: the defaults (tiny model), so cluster-wide checks still apply."""
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "PurpCodeRun",
        "metadata": {"name": "doctor", "namespace": namespace},
        "spec": {"model": {"name": "tiny-random"}},
    }


class Doctor:
    """The checks, over one client; `run()` returns them in order."""

    def __init__(self, client: KubeClient, namespace: str, body: Obj, *, monitors: bool = False) -> None:
        self.client = client
        self.namespace = namespace
        self.body = body
        self.monitors = monitors
        self.version: tuple[int, int] | None = None
        meta = body.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta.setdefault("uid", "00000000-0000-4000-8000-00000000d0c0")
        meta.setdefault("generation", 1)
        self.run_model, self.plan = prepare(body, Settings())
        self.pods = self._pod_objects(self.run_model, self.plan)

    def _pod_objects(self, run: PurpCodeRun, plan: RunPlan) -> list[tuple[str, Obj]]:
        owner = owner_of(self.body)
        objs = [(f"stage {s.name}", render.build_stage_job(run, plan, s, 1, owner)) for s in plan.stages]
        if plan.sandbox.replicas > 0 or "sandbox" in plan.services_needed():
            objs.append(("sandbox", render.build_sandbox_deployment(run, plan, 1, owner)))
        if plan.judge.deploy:
            objs.append(("judge", render.build_judge_deployment(run, plan, 1, owner)))
        return objs

    async def _get(self, path: str) -> Obj | None:
        """GET; None on 404 (absent). Other errors propagate (they fail the check that asked)."""
        try:
            return await self.client.request("GET", path, what=f"GET {path}")
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    async def run(self) -> list[Check]:
        checks: list[Callable[[], Awaitable[list[Check]]]] = [
            self.check_version,
            self.check_crd,
            self.check_pod_security,
            self.check_storage,
            self.check_gpus,
            self.check_queue,
            self.check_monitors,
            self.check_runtime_class,
        ]
        out: list[Check] = []
        for check in checks:
            try:
                out += await check()
            except ApiError as err:
                name = check.__name__.removeprefix("check_").replace("_", " ")
                out.append(
                    Check("fail", name, f"the API server answered {err}", "check RBAC and the kubeconfig")
                )
        return out

    # ----------------------------------------------------------------------------- checks

    def _features(self) -> list[tuple[int, str]]:
        used: list[tuple[int, str]] = [OPERATOR_MINIMUM]
        for _, obj in self.pods:
            found = pss.pod_template(obj)
            spec = found[1] if found else {}
            if spec.get("hostUsers") is False or any(
                (c.get("securityContext") or {}).get("procMount") == "Unmasked"
                for c in spec.get("containers", [])
            ):
                used.append(USER_NAMESPACES)
            sc_all = [spec.get("securityContext") or {}] + [
                c.get("securityContext") or {} for c in spec.get("containers", [])
            ]
            if any("appArmorProfile" in sc for sc in sc_all):
                used.append(APPARMOR_FIELD)
            job = obj.get("spec") or {} if obj.get("kind") == "Job" else {}
            if "podFailurePolicy" in job:
                used.append(POD_FAILURE_POLICY)
            if "successPolicy" in job:
                used.append(SUCCESS_POLICY)
            if "backoffLimitPerIndex" in job:
                used.append(BACKOFF_PER_INDEX)
        return sorted(set(used), reverse=True)

    async def check_version(self) -> list[Check]:
        info = await self._get("/version") or {}
        try:
            major, minor = int(str(info.get("major"))), int(re.sub(r"\D.*", "", str(info.get("minor"))))
        except ValueError:
            return [Check("warn", "server version", f"unreadable: {info!r}", "check the kubeconfig's server")]
        self.version = (major, minor)
        text = f"v{major}.{minor}"
        missing = [what for need, what in self._features() if (major, minor) < (1, need)]
        if missing:
            need = max(n for n, w in self._features() if w in missing)
            return [
                Check(
                    "fail",
                    "server version",
                    f"{text} lacks {'; '.join(missing)} (needs >= v1.{need})",
                    f"upgrade the cluster to >= v1.{need}, or choose settings that avoid it "
                    "(e.g. the restricted sandbox isolation)",
                )
            ]
        return [Check("ok", "server version", f"{text} has every feature this run uses")]

    async def check_crd(self) -> list[Check]:
        want = build_crd()
        have = await self._get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLURAL}.{GROUP}")
        fix = "kubectl apply --server-side -f manifests/crd.yaml (helm upgrade never updates crds/)"
        if have is None:
            return [Check("fail", "CRD", f"{PLURAL}.{GROUP} is not installed", fix)]

        def schemas(crd: Obj) -> Any:
            return json.dumps(
                {v.get("name"): v.get("schema") for v in (crd.get("spec") or {}).get("versions", [])},
                sort_keys=True,
            )

        if schemas(have) != schemas(want):
            return [
                Check("warn", "CRD", f"{PLURAL}.{GROUP} is installed but differs from this version's", fix)
            ]
        return [Check("ok", "CRD", f"{PLURAL}.{GROUP} is installed and current")]

    async def check_pod_security(self) -> list[Check]:
        ns = await self._get(f"/api/v1/namespaces/{self.namespace}")
        if ns is None:
            return [
                Check(
                    "fail",
                    "namespace",
                    f"{self.namespace} does not exist",
                    f"kubectl create namespace {self.namespace}",
                )
            ]
        try:
            policy = pss.NamespacePolicy.from_labels((ns.get("metadata") or {}).get("labels"))
        except ValueError as err:
            return [
                Check(
                    "fail", "pod security", str(err), "fix the namespace's pod-security.kubernetes.io labels"
                )
            ]
        out: list[Check] = []
        for what, obj in self.pods:
            meta, spec = pss.pod_template(obj) or ({}, {})
            needs = pss.strictest_admitting(spec, meta, version=self.version)
            refused = pss.check_pod(
                spec, meta, level=policy.enforce, version=policy.enforce_version or self.version
            )
            warned = pss.check_pod(spec, meta, level=policy.warn, version=policy.warn_version or self.version)
            if refused:
                out.append(
                    Check(
                        "fail",
                        f"pod security ({what})",
                        f'namespace {self.namespace} enforces "{policy.enforce}" and would refuse these pods: '
                        f"{pss.describe(refused)}",
                        f"label the namespace {pss.ENFORCE_LABEL}={needs}"
                        + (" or use the restricted sandbox isolation" if what == "sandbox" else ""),
                    )
                )
            elif warned:
                out.append(
                    Check(
                        "warn",
                        f"pod security ({what})",
                        f'admitted, but namespace {self.namespace} warns at "{policy.warn}": {pss.describe(warned)}',
                        f"label the namespace {pss.WARN_LABEL}={needs}",
                    )
                )
        if not out:
            out.append(
                Check(
                    "ok",
                    "pod security",
                    f'namespace {self.namespace} ("{policy.enforce}") admits every pod of the run',
                )
            )
        return out

    async def check_storage(self) -> list[Check]:
        storage = self.run_model.spec.storage
        multi = any(s.resources.nodes > 1 for s in self.plan.stages)
        if storage.existing_claim:
            pvc = await self._get(
                f"/api/v1/namespaces/{self.namespace}/persistentvolumeclaims/{storage.existing_claim}"
            )
            if pvc is None:
                return [
                    Check(
                        "fail",
                        "storage",
                        f"claim {storage.existing_claim} does not exist",
                        "create it or drop existingClaim",
                    )
                ]
            modes = (pvc.get("spec") or {}).get("accessModes") or []
            if multi and "ReadWriteMany" not in modes:
                return [
                    Check(
                        "fail",
                        "storage",
                        f"claim {storage.existing_claim} is {', '.join(modes)}; multi-node stages mount it on several nodes",
                        "use a ReadWriteMany claim",
                    )
                ]
            return [Check("ok", "storage", f"claim {storage.existing_claim} exists ({', '.join(modes)})")]
        classes = (await self._get("/apis/storage.k8s.io/v1/storageclasses") or {}).get("items") or []
        by_name = {c["metadata"]["name"]: c for c in classes}
        if storage.storage_class_name:
            chosen = by_name.get(storage.storage_class_name)
            if chosen is None:
                return [
                    Check(
                        "fail",
                        "storage",
                        f"StorageClass {storage.storage_class_name} does not exist (have: {', '.join(sorted(by_name)) or 'none'})",
                        "set storage.storageClassName to an existing class",
                    )
                ]
        else:
            defaults = [
                c
                for c in classes
                if (c["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class")
                == "true"
            ]
            if not defaults:
                return [
                    Check(
                        "fail",
                        "storage",
                        "no default StorageClass: the artifacts claim would stay Pending",
                        "set storage.storageClassName, or mark a class default "
                        "(storageclass.kubernetes.io/is-default-class=true)",
                    )
                ]
            chosen = defaults[0]
        name, provisioner = chosen["metadata"]["name"], str(chosen.get("provisioner", ""))
        if storage.access_mode == "ReadWriteMany" and not RWX_PROVISIONERS.search(provisioner):
            return [
                Check(
                    "warn",
                    "storage",
                    f"StorageClass {name} ({provisioner}) may not provide ReadWriteMany, which this run asks for",
                    "use a shared-filesystem class (NFS, CephFS, EFS, Filestore, Azure Files)",
                )
            ]
        return [Check("ok", "storage", f"StorageClass {name} ({provisioner}), {storage.access_mode}")]

    async def check_gpus(self) -> list[Check]:
        """Every GPU workload must find enough nodes it selects and tolerates with enough allocatable GPUs."""
        needs = []  # (what, GPUs per pod, pods at once, pod spec)
        for what, obj in self.pods:
            _, spec = pss.pod_template(obj) or ({}, {})
            gpus = sum(
                _count(((c.get("resources") or {}).get("limits") or {}).get(GPU, 0))
                for c in spec.get("containers") or []
            )
            if gpus:
                pods = int((obj.get("spec") or {}).get("parallelism") or 1) if obj.get("kind") == "Job" else 1
                needs.append((what, gpus, pods, spec))
        if not needs:
            return [Check("ok", "GPUs", "this run needs none")]
        nodes = (await self._get("/api/v1/nodes") or {}).get("items") or []
        gpu_nodes = [n for n in nodes if _allocatable_gpus(n)]
        largest = max((_allocatable_gpus(n) for n in nodes), default=0)
        have = f"{len(gpu_nodes)} GPU node(s), largest {largest} allocatable"
        out: list[Check] = []
        for what, gpus, pods, spec in sorted(needs, key=lambda n: (-n[1] * n[2], n[0])):
            big_enough = [n for n in gpu_nodes if _allocatable_gpus(n) >= gpus]
            usable = [n for n in big_enough if _selects(spec, n) and _tolerates(spec, n)]
            if len(usable) >= pods:
                continue
            if len(big_enough) >= pods:
                out.append(
                    Check(
                        "fail",
                        f"GPUs ({what})",
                        f"{what} needs {pods} node(s) x {gpus} {GPU}: {len(big_enough)} node(s) have them, but "
                        f"only {len(usable)} match its nodeSelector and tolerate their taints",
                        "give the run (spec.scheduling) or the workload the GPU nodes' tolerations and nodeSelector",
                    )
                )
            else:
                out.append(
                    Check(
                        "fail",
                        f"GPUs ({what})",
                        f"{what} needs {pods} node(s) x {gpus} {GPU}; the cluster has {have}",
                        "add GPU nodes (or the device plugin), or lower the workload's GPUs",
                    )
                )
        if out:
            return out
        what, gpus, pods, _ = max(needs, key=lambda n: n[1] * n[2])
        return [Check("ok", "GPUs", f"every GPU workload fits (largest: {what}, {pods} x {gpus}); {have}")]

    async def check_queue(self) -> list[Check]:
        queue = self.run_model.spec.queue_name
        if not queue:
            return []
        crd = await self._get(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/localqueues.kueue.x-k8s.io"
        )
        if crd is None:
            return [
                Check(
                    "fail",
                    "Kueue",
                    f"queueName {queue} is set but Kueue is not installed",
                    "install Kueue or drop queueName",
                )
            ]
        version = next((v["name"] for v in crd["spec"].get("versions", []) if v.get("storage")), "v1beta1")
        lq = await self._get(
            f"/apis/kueue.x-k8s.io/{version}/namespaces/{self.namespace}/localqueues/{queue}"
        )
        if lq is None:
            return [
                Check(
                    "fail",
                    "Kueue",
                    f"LocalQueue {queue} does not exist in {self.namespace}: the Jobs would stay suspended",
                    f"create the LocalQueue {queue} in {self.namespace}",
                )
            ]
        return [
            Check(
                "ok",
                "Kueue",
                f"LocalQueue {queue} exists (ClusterQueue {lq.get('spec', {}).get('clusterQueue', '?')})",
            )
        ]

    async def check_monitors(self) -> list[Check]:
        missing = []
        for crd in ("servicemonitors.monitoring.coreos.com", "podmonitors.monitoring.coreos.com"):
            if await self._get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}") is None:
                missing.append(crd)
        if not missing:
            return [Check("ok", "monitoring", "Prometheus Operator CRDs are installed")]
        status: Status = "fail" if self.monitors else "warn"
        return [
            Check(
                status,
                "monitoring",
                f"missing {', '.join(missing)}"
                + ("" if self.monitors else " (only needed with the chart's monitors on)"),
                "install the Prometheus Operator CRDs, or set serviceMonitor.enabled=false and podMonitor.enabled=false",
            )
        ]

    async def check_runtime_class(self) -> list[Check]:
        names = set()
        for _, obj in self.pods:
            _, spec = pss.pod_template(obj) or ({}, {})
            if spec.get("runtimeClassName"):
                names.add(str(spec["runtimeClassName"]))
        out = []
        for name in sorted(names):
            rc = await self._get(f"/apis/node.k8s.io/v1/runtimeclasses/{name}")
            if rc is None:
                out.append(
                    Check(
                        "fail",
                        "RuntimeClass",
                        f"{name} does not exist: its pods would never start",
                        f"install the {name} runtime or drop runtimeClassName",
                    )
                )
            else:
                out.append(Check("ok", "RuntimeClass", f"{name} (handler {rc.get('handler', '?')})"))
        return out


def _allocatable_gpus(node: Obj) -> int:
    return _count(((node.get("status") or {}).get("allocatable") or {}).get(GPU, 0))


def _selects(spec: Mapping[str, Any], node: Obj) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in (spec.get("nodeSelector") or {}).items())


def _tolerates(spec: Mapping[str, Any], node: Obj) -> bool:
    """Whether the pod tolerates every NoSchedule/NoExecute taint of the node (the scheduler's rule)."""
    tolerations = spec.get("tolerations") or []

    def tolerated(taint: Obj) -> bool:
        for t in tolerations:
            if t.get("effect") and t.get("effect") != taint.get("effect"):
                continue
            if t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint.get("key")):
                return True
            if t.get("key") == taint.get("key") and t.get("operator", "Equal") == "Equal":
                if (t.get("value") or "") == (taint.get("value") or ""):
                    return True
        return False

    taints = (node.get("spec") or {}).get("taints") or []
    return all(tolerated(t) for t in taints if t.get("effect") in ("NoSchedule", "NoExecute"))


def _count(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


async def diagnose(
    namespace: str, body: Obj | None, *, monitors: bool = False, client: KubeClient | None = None
) -> list[Check]:
    own = client is None
    client = client or KubeClient(login(), relogin=login)
    try:
        return await Doctor(client, namespace, body or default_run(namespace), monitors=monitors).run()
    finally:
        if own:
            await client.close()


def main(namespace: str | None, spec_path: str | None, *, monitors: bool = False) -> int:
    """Print one line per check; 1 if any failed, 2 for an invalid spec."""
    import sys

    from .validate import SpecError, load_documents, load_run

    body: Obj | None = None
    if spec_path:
        try:
            load_run(spec_path)  # exactly one valid PurpCodeRun, or one line per problem
            body = dict(load_documents(spec_path)[0])
        except SpecError as err:
            for problem in err.problems:
                print(f"{spec_path}: {problem}", file=sys.stderr)
            return 2
    ns = namespace or (body or {}).get("metadata", {}).get("namespace") or _current_namespace()
    checks = asyncio.run(diagnose(ns, body, monitors=monitors))
    for check in checks:
        print(check.line())
    failed = sum(c.status == "fail" for c in checks)
    print(
        f"{len(checks)} checks, {failed} failed, {sum(c.status == 'warn' for c in checks)} warnings (namespace {ns})"
    )
    return 1 if failed else 0


def _current_namespace() -> str:
    """The kubeconfig context's namespace, or the pod's own, or `default` (as kubectl picks it)."""
    import os

    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace", encoding="utf-8") as fh:
            return fh.read().strip() or "default"
    except OSError:
        pass
    path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or os.path.expanduser("~/.kube/config")
    try:
        import yaml

        with open(path, encoding="utf-8") as fh:
            config = yaml.safe_load(fh) or {}
    except (OSError, ValueError):
        return "default"
    current = config.get("current-context")
    for ctx in config.get("contexts") or []:
        if ctx.get("name") == current:
            return str((ctx.get("context") or {}).get("namespace") or "default")
    return "default"
