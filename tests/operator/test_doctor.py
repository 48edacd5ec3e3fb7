"""`purpcode doctor` against the strict fake API in several cluster shapes (the real CLI path, over HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support.fake_cluster import CRDS, NAMESPACES, FakeCluster
from support.kube_emulator import Resource
from support.run_specs import load_sample, tiny_run

from purpcode import cli
from purpcode_operator import pss
from purpcode_operator.crd import build_crd

NODES = Resource("", "v1", "nodes")
STORAGE_CLASSES = Resource("storage.k8s.io", "v1", "storageclasses")
RUNTIME_CLASSES = Resource("node.k8s.io", "v1", "runtimeclasses")
LOCAL_QUEUES = Resource("kueue.x-k8s.io", "v1beta1", "localqueues")


def crd(plural: str, group: str, kind: str, version: str = "v1beta1") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"plural": plural, "kind": kind},
            "scope": "Namespaced",
            "versions": [{"name": version, "served": True, "storage": True}],
        },
    }


GPU_LABELS = {"nvidia.com/gpu.product": "NVIDIA-H200"}
GPU_TAINTS = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]


def gpu_node(
    name: str, gpus: int, *, labels: dict[str, str] | None = None, taints: list[Any] | None = None
) -> dict[str, Any]:
    """A GPU node as the NVIDIA GPU operator leaves it: product label, NoSchedule taint, allocatable GPUs."""
    return {
        "metadata": {"name": name, "labels": GPU_LABELS if labels is None else labels},
        "spec": {"taints": GPU_TAINTS if taints is None else taints},
        "status": {"allocatable": {"cpu": "64", "nvidia.com/gpu": str(gpus)}},
    }


def healthy(c: FakeCluster, *, gpus: int = 0, nodes: int = 1) -> None:
    """A cluster where the tiny run works: default StorageClass, nodes, Prometheus Operator CRDs."""
    e = c.emulator

    def setup() -> None:
        e.create(
            STORAGE_CLASSES,
            None,
            {
                "metadata": {
                    "name": "standard",
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "rancher.io/local-path",
            },
        )
        for i in range(nodes):
            if gpus:
                e.create(NODES, None, gpu_node(f"node-{i}", gpus), keep_status=True)
            else:
                node = {"metadata": {"name": f"node-{i}"}, "status": {"allocatable": {"cpu": "16"}}}
                e.create(NODES, None, node, keep_status=True)
        for plural, kind in (("servicemonitors", "ServiceMonitor"), ("podmonitors", "PodMonitor")):
            e.create(CRDS, None, crd(plural, "monitoring.coreos.com", kind, "v1"))

    c.call(setup)


def doctor(
    c: FakeCluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, str]]:
    monkeypatch.setenv("KUBECONFIG", str(c.kubeconfig))
    code = cli.main(["doctor", *args])
    out = capsys.readouterr().out.splitlines()
    lines: dict[str, str] = {}
    for line in out[:-1]:
        status, rest = line.split(" ", 1)
        name = rest.strip().split(":", 1)[0]
        lines[name] = f"{status} {rest.strip()}"
    assert out[-1].endswith("(namespace default)") or "namespace" in out[-1]
    return code, lines


def jail_run() -> dict[str, Any]:
    """The tiny run with the namespaces-mode sandbox (the user-namespace jail), however the default isolation is."""
    from purpcode_operator.api import SandboxSpec

    doc = tiny_run("t")
    if "isolation" in SandboxSpec.model_fields:
        doc["spec"].setdefault("services", {}).setdefault("sandbox", {})["isolation"] = "namespaces"
    return doc


def spec_file(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_a_healthy_cluster_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeCluster(tmp_path, simulate=False, pod_security="privileged") as c:
        healthy(c)
        code, lines = doctor(c, monkeypatch, capsys, "-n", "default", spec_file(tmp_path, tiny_run("t")))
    assert code == 0, lines
    assert all(line.startswith("ok") for line in lines.values()), lines
    assert set(lines) >= {"server version", "CRD", "pod security", "storage", "GPUs", "monitoring"}


def test_an_old_restricted_bare_cluster_fails_with_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeCluster(tmp_path, simulate=False, pod_security="restricted", server_version=(1, 31)) as c:
        c.call(c.emulator.delete, CRDS, None, f"purpcoderuns.{build_crd()['spec']['group']}")
        code, lines = doctor(c, monkeypatch, capsys, "-n", "default", spec_file(tmp_path, jail_run()))
    assert code == 1
    assert lines["CRD"].startswith("fail") and "kubectl apply --server-side" in lines["CRD"]
    assert lines["storage"].startswith("fail") and "no default StorageClass" in lines["storage"]
    assert lines["monitoring"].startswith("warn")
    sandbox = lines[
        "pod security (sandbox)"
    ]  # the user-namespace jail: refused at restricted, too new for 1.31
    assert sandbox.startswith("fail") and 'enforces "restricted"' in sandbox and "procMount" in sandbox
    assert f"{pss.ENFORCE_LABEL}=privileged" in sandbox
    assert lines["server version"].startswith("fail") and "user-namespaced pods" in lines["server version"]
    assert ">= v1.33" in lines["server version"]


def test_a_stale_crd_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeCluster(tmp_path, simulate=False, pod_security="privileged") as c:
        healthy(c)
        name = f"purpcoderuns.{build_crd()['spec']['group']}"
        stale = build_crd()
        stale["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] = "an older schema"
        c.call(c.emulator.patch, CRDS, None, name, {"spec": {"versions": stale["spec"]["versions"]}})
        code, lines = doctor(c, monkeypatch, capsys, spec_file(tmp_path, tiny_run("t")))
    assert code == 0, lines
    assert lines["CRD"].startswith("warn") and "differs" in lines["CRD"]


def test_gpus_queue_runtime_class_and_monitors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    big = load_sample("qwen2.5-32b")
    big["metadata"] = {"name": "big"}
    big["spec"]["queueName"] = "team-a"
    big["spec"].setdefault("services", {}).setdefault("sandbox", {})["runtimeClassName"] = "gvisor"
    with FakeCluster(tmp_path, simulate=False, pod_security="privileged") as c:
        healthy(c, gpus=2, nodes=1)
        for plural in ("servicemonitors", "podmonitors"):
            c.call(c.emulator.delete, CRDS, None, f"{plural}.monitoring.coreos.com")
        path = spec_file(tmp_path, big)
        code, lines = doctor(c, monkeypatch, capsys, "-n", "default", "--monitors", path)
        assert code == 1
        gpu_lines = [v for k, v in lines.items() if k.startswith("GPUs (")]
        assert gpu_lines and all(v.startswith("fail") and "largest 2 allocatable" in v for v in gpu_lines)
        assert not any("judge" in v for v in gpu_lines)  # the 2-GPU judge fits the 2-GPU node it tolerates
        assert lines["Kueue"].startswith("fail") and "Kueue is not installed" in lines["Kueue"]
        assert lines["RuntimeClass"].startswith("fail") and "gvisor does not exist" in lines["RuntimeClass"]
        assert lines["monitoring"].startswith("fail")

        def big_nodes(labels: dict[str, str] | None) -> None:
            for i in range(8):  # named apart: labelled ones "gpu-1-i", unlabelled ones "gpu-0-i"
                c.emulator.create(
                    NODES,
                    None,
                    gpu_node(f"gpu-{int(labels is None)}-{i}", 8, labels=labels),
                    keep_status=True,
                )

        c.call(big_nodes, {})  # 8-GPU nodes without the product label the run selects
        code, lines = doctor(c, monkeypatch, capsys, "-n", "default", path)
        gpu_lines = [v for k, v in lines.items() if k.startswith("GPUs (")]
        assert gpu_lines and all("only 0 match its nodeSelector" in v for v in gpu_lines), gpu_lines

        def grow() -> None:
            big_nodes(None)
            c.emulator.create(CRDS, None, crd("localqueues", "kueue.x-k8s.io", "LocalQueue"))
            c.emulator.declare(LOCAL_QUEUES, kind="LocalQueue")
            c.emulator.create(RUNTIME_CLASSES, None, {"metadata": {"name": "gvisor"}, "handler": "runsc"})

        c.call(grow)
        code, lines = doctor(c, monkeypatch, capsys, "-n", "default", path)
        assert lines["GPUs"].startswith("ok") and lines["RuntimeClass"].startswith("ok")
        assert lines["Kueue"].startswith("fail") and "LocalQueue team-a does not exist" in lines["Kueue"]
        c.call(
            c.emulator.create,
            LOCAL_QUEUES,
            "default",
            {"metadata": {"name": "team-a"}, "spec": {"clusterQueue": "gpu"}},
        )
        code, lines = doctor(c, monkeypatch, capsys, "-n", "default", path)
        assert lines["Kueue"].startswith("ok") and "ClusterQueue gpu" in lines["Kueue"]


def test_namespace_levels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeCluster(tmp_path, simulate=False, pod_security="baseline") as c:
        healthy(c)
        labels = {pss.ENFORCE_LABEL: "privileged", pss.WARN_LABEL: "restricted"}
        c.call(c.emulator.patch, NAMESPACES, None, "default", {"metadata": {"labels": labels}})
        code, lines = doctor(c, monkeypatch, capsys, spec_file(tmp_path, jail_run()))
        sandbox = lines["pod security (sandbox)"]
        assert sandbox.startswith("warn") and 'warns at "restricted"' in sandbox
        c.call(
            c.emulator.patch,
            NAMESPACES,
            None,
            "default",
            {"metadata": {"labels": {pss.ENFORCE_LABEL: "strict"}}},
        )
        code, lines = doctor(c, monkeypatch, capsys)
        assert (
            code == 1
            and lines["pod security"].startswith("fail")
            and "not a Pod Security level" in lines["pod security"]
        )
        code, lines = doctor(c, monkeypatch, capsys, "-n", "missing")
        assert code == 1 and "missing does not exist" in lines["namespace"]


def test_an_invalid_spec_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = spec_file(
        tmp_path,
        {"apiVersion": "purpcode.dev/v1alpha1", "kind": "PurpCodeRun", "metadata": {"name": "x"}, "spec": {}},
    )
    assert cli.main(["doctor", path]) == 2
    assert "spec.model" in capsys.readouterr().err


def test_taints_and_node_selectors_as_the_scheduler_reads_them() -> None:
    from purpcode_operator.doctor import _selects, _tolerates

    node = gpu_node("n", 8)
    assert _tolerates(
        {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}, node
    )
    assert _tolerates({"tolerations": [{"operator": "Exists"}]}, node)
    assert _tolerates({"tolerations": [{"key": "nvidia.com/gpu", "value": "present"}]}, node)
    assert not _tolerates({"tolerations": [{"key": "nvidia.com/gpu", "value": "absent"}]}, node)
    assert not _tolerates(
        {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}]}, node
    )
    assert not _tolerates({}, node)
    assert _tolerates({}, gpu_node("plain", 8, taints=[{"key": "x", "effect": "PreferNoSchedule"}]))
    assert _selects({"nodeSelector": GPU_LABELS}, node) and _selects({}, node)
    assert not _selects({"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100"}}, node)
