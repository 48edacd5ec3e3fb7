"""manifests/install.yaml: generated from the chart (one source), fresh, valid, and the same install as Helm's."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import yaml
from tool_loader import load_tool

from purpcode_operator import pss

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "manifests" / "install.yaml"


def _docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(INSTALL.read_text(encoding="utf-8")) if d]


def test_generated_files_are_fresh(gen: ModuleType) -> None:
    for path, text in gen.outputs().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(ROOT)} is stale: run `make manifests`"
        )
    assert load_tool("gen_dashboard").main(["--check"]) == 0


def test_drift_is_detected(gen: ModuleType, tmp_path: Path, monkeypatch: Any) -> None:
    """Change the chart (in a copy) and the generator's output no longer matches the committed file."""
    import shutil

    chart = tmp_path / "purpcode"
    shutil.copytree(gen.CHART, chart)
    values = chart / "values.yaml"
    values.write_text(values.read_text(encoding="utf-8").replace("cpu: 100m", "cpu: 150m"), encoding="utf-8")
    monkeypatch.setattr(gen, "CHART", chart)
    assert gen.build_install_yaml() != INSTALL.read_text(encoding="utf-8")


def test_install_holds_namespace_crd_rbac_and_operator(gen: ModuleType) -> None:
    docs = _docs()
    kinds = [d["kind"] for d in docs]
    assert kinds[:2] == ["Namespace", "CustomResourceDefinition"]
    for kind in (
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
    ):
        assert kind in kinds, kind
    ns = docs[0]
    assert ns["metadata"]["name"] == gen.NAMESPACE
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    crd = yaml.safe_load(
        (ROOT / "manifests" / "crd" / "purpcode.dev_purpcoderuns.yaml").read_text(encoding="utf-8")
    )
    assert docs[1] == crd
    for d in docs[2:]:
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert d["metadata"]["namespace"] == gen.NAMESPACE, d["metadata"]["name"]
        labels = d["metadata"].get("labels", {})
        assert "helm.sh/chart" not in labels and "app.kubernetes.io/managed-by" not in labels
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    assert pss.check_pod(dep["spec"]["template"]["spec"], level="restricted") == []


def test_install_is_the_helm_install(gen: ModuleType) -> None:
    """Same objects as `helm install purpcode -n purpcode-system` with the install values, Helm labels aside."""
    rendered = [gen._strip_helm_labels(o) for o in gen.render_chart(gen.INSTALL_VALUES)]
    assert _docs()[2:] == rendered


def test_every_object_validates_strictly() -> None:
    for d in _docs():
        for version in ("1.28.0", "1.37.0"):
            kubernetes_validate.validate(d, version, strict=True)
