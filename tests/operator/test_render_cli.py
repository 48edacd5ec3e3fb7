"""`purpcode render`: the operator's own renderer, printed; and it matches what the operator creates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.fake_cluster import FakeCluster
from support.kube_emulator import Resource
from support.operator_process import OperatorProcess
from support.run_specs import SAMPLES, tiny_run

from purpcode.cli import main as purpcode_main

SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "ownerReferences",
)


def render(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = purpcode_main(["render", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_render_prints_every_object_as_yaml_or_a_json_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = render(capsys, str(SAMPLES / "tiny-cpu.yaml"), "-n", "ml")
    assert code == 0
    objs = list(yaml.safe_load_all(out))
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objs}
    stages = ("init", "synthesis", "rule-learning", "rl", "evaluation", "report")
    assert {("Job", f"tiny-cpu-{s}-1") for s in stages} <= kinds
    assert not any(kind == "ConfigMap" for kind, _ in kinds)  # each stage's config is in its Job's pods
    assert {
        ("PersistentVolumeClaim", "tiny-cpu-artifacts"),
        ("NetworkPolicy", "tiny-cpu-sandbox"),
        ("Deployment", "tiny-cpu-sandbox"),
        ("Service", "tiny-cpu-sandbox"),
        ("Deployment", "tiny-cpu-judge"),
        ("Service", "tiny-cpu-judge"),
    } <= kinds
    assert len(kinds) == len(objs)  # each once
    assert "&id0" not in out and "*id0" not in out  # no YAML anchors/aliases: plain manifests, as helm prints
    assert all(o["metadata"]["namespace"] == "ml" for o in objs)
    assert all("ownerReferences" not in o["metadata"] for o in objs)  # the run's uid does not exist yet
    rl_job = next(o for o in objs if o["metadata"]["name"] == "tiny-cpu-rl-1")
    rl_config = rl_job["spec"]["template"]["metadata"]["annotations"]["purpcode.dev/stage-config"]
    assert json.loads(rl_config)["services"]["sandbox_url"] == "http://tiny-cpu-sandbox.ml.svc:8080"

    code, out, _ = render(capsys, str(SAMPLES / "tiny-cpu.yaml"), "-o", "json", "-n", "ml")
    listed = json.loads(out)
    assert code == 0 and listed["kind"] == "List" and listed["items"] == objs


def test_render_uses_the_operators_defaults_from_the_chart_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PURPCODE_SANDBOX_RUNTIME_CLASS_NAME", "gvisor")
    monkeypatch.setenv("PURPCODE_TRAINER_IMAGE", "registry.local/trainer:dev")
    code, out, _ = render(capsys, str(SAMPLES / "tiny-cpu.yaml"))
    objs = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(out)}
    assert code == 0
    sandbox = objs[("Deployment", "tiny-cpu-sandbox")]["spec"]["template"]["spec"]
    assert sandbox["runtimeClassName"] == "gvisor"
    job = objs[("Job", "tiny-cpu-init-1")]
    assert job["metadata"]["namespace"] == "default"
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/trainer:dev"


def test_render_refuses_an_invalid_spec_naming_the_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = tiny_run("bad")
    doc["spec"]["stages"]["rl"]["resources"]["memory"] = "2Gii"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, out, err = render(capsys, str(path))
    assert code == 2 and out == ""
    assert "spec.stages.rl.resources.memory" in err and "Kubernetes quantity" in err


def _strip(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj["metadata"].items() if k not in SERVER_FIELDS}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def _subset(want: Any, got: Any, path: str = "") -> list[str]:
    """Where `got` differs from `want` (fields the API server adds by defaulting are allowed)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [path]
        return [d for k, v in want.items() for d in _subset(v, got.get(k), f"{path}.{k}")]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [path]
        return [
            d for i, (w, g) in enumerate(zip(want, got, strict=True)) for d in _subset(w, g, f"{path}[{i}]")
        ]
    return [] if want == got else [f"{path}: {want!r} != {got!r}"]


def test_render_matches_what_the_operator_creates(
    cluster: FakeCluster, operator: OperatorProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tiny_run("same")
    doc["spec"]["scheduling"] = {"nodeSelector": {"pool": "cpu"}}
    path = tmp_path / "same.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, out, _ = render(capsys, str(path), "-n", "default")
    assert code == 0
    rendered = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(out)}

    operator.start()
    cluster.create_run(doc)
    cluster.wait_phase("same", "Succeeded", timeout=60)
    records = cluster.call(
        lambda: [
            c
            for c in cluster.emulator.creates
            # pods, ReplicaSets and their Events are the cluster controllers' (the simulator's), not the operator's
            if c.labels.get("purpcode.dev/run") == "same"
            and not c.resource.endswith(("/pods", "/events", "/replicasets"))
        ]
    )
    created: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        parts = rec.resource.split("/")
        res = Resource(*(parts if len(parts) == 3 else ["", *parts]))
        first = cluster.call(cluster.emulator.history, res, rec.namespace, rec.name)[0]
        assert first is not None
        created[(first["kind"], first["metadata"]["name"])] = first
    assert set(created) == set(rendered)  # the same objects, no more, no fewer
    for key, obj in rendered.items():
        assert created[key]["metadata"]["ownerReferences"][0]["name"] == "same"
        assert _subset(_strip(obj), _strip(created[key])) == [], key
