"""The namespaces-mode sandbox (the user-namespace jail) in a `restricted` namespace: Pod Security admission refuses
its pods, the ReplicaSet reports ReplicaFailure, and the run says so at once and fails at its pending timeout
instead of waiting forever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.fake_cluster import FakeCluster
from support.job_simulator import Scenario
from support.operator_process import OperatorProcess
from support.run_specs import tiny_run


def jail_run(name: str) -> dict[str, Any]:
    from purpcode_operator.api import SandboxSpec

    doc = tiny_run(name, pendingTimeoutSeconds=30)
    if "isolation" in SandboxSpec.model_fields:
        doc["spec"].setdefault("services", {}).setdefault("sandbox", {})["isolation"] = "namespaces"
    return doc


def _ready(run: dict[str, Any] | None) -> dict[str, Any]:
    for cond in (run or {}).get("status", {}).get("conditions") or []:
        if cond["type"] == "Ready":
            return dict(cond)
    return {}


@pytest.mark.slow  # the shortest pending timeout the API allows is 30 s
def test_the_jail_sandbox_in_a_restricted_namespace_fails_the_run_clearly(tmp_path: Path) -> None:
    with FakeCluster(tmp_path, script=Scenario(), pod_security="restricted") as cluster:
        operator = OperatorProcess(cluster.kubeconfig, tmp_path)
        operator.start()
        try:
            cluster.create_run(jail_run("jailed"))
            ready = cluster.wait_for(
                lambda: (c := _ready(cluster.get_run("jailed"))).get("reason") == "ReplicaFailure" and c,
                timeout=30,
                what="Ready=False ReplicaFailure",
            )
            assert ready["status"] == "False"
            assert 'violates PodSecurity "restricted:latest"' in ready["message"]
            assert "procMount" in ready["message"]  # the jail's unmasked /proc, named as the server names it
            run = cluster.wait_phase("jailed", "Failed", timeout=60)
        finally:
            operator.stop()
        failed = {c["type"]: c for c in run["status"]["conditions"]}["Failed"]
        assert failed["status"] == "True" and failed["reason"] == "ReplicaFailure"
        assert "service sandbox had no ready replica" in failed["message"]
        assert 'violates PodSecurity "restricted:latest"' in failed["message"]
        events = {(e["type"], e["reason"]) for e in cluster.events("jailed")}
        assert ("Warning", "ReplicaFailure") in events and ("Warning", "Failed") in events
        # only `initialize` ran: every later stage needs the sandbox, which never came up
        assert [j["metadata"]["name"] for j in cluster.jobs("jailed")] == ["jailed-init-1"]
