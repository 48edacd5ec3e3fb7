"""Status writes per transition: one write when a stage's Job is created, and no reconcile for echoes.

Every status write is a watch event for every watcher of the run (kubectl, dashboards, this operator); at hundreds
of runs they are most of the API traffic. A new attempt is decided on twice in one reconcile (before and after its
Job exists), so its status is written once; the Job's own ADDED event and the echo of the status write then queue
nothing. Real changes (a newer Job version) still move the run on.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fake_cluster import FakeCluster
from support.job_simulator import JOBS
from support.operator_process import OperatorProcess, metric_value
from support.run_specs import tiny_run

from purpcode_operator.config import OperatorConfig
from purpcode_operator.controller import Controller
from purpcode_operator.metrics import OperatorMetrics


@pytest.fixture
def still_cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    """No job simulator: Jobs stay as created until the test changes them."""
    with FakeCluster(tmp_path, simulate=False) as c:
        yield c


def reconciles(op: OperatorProcess) -> float:
    text = op.metrics()
    return sum(
        metric_value(text, "controller_runtime_reconcile_total", controller="purpcoderun", result=r) or 0.0
        for r in ("success", "requeue_after", "error")
    )


def run_status_writes(cluster: FakeCluster, log: list[tuple[str, str, int]], run: str) -> int:
    return sum(1 for action, name, status in log if action == "UPDATE" and name == run and status < 300)


def log_run_requests(cluster: FakeCluster) -> list[tuple[str, str, int]]:
    """(action, run name, HTTP status) of every request the fake API answers about runs, from now on."""
    log: list[tuple[str, str, int]] = []

    def hook(request: Any, status: int) -> None:
        if request.resource is not None and request.resource.plural == "purpcoderuns":
            log.append((str(request.action).rsplit(".", 1)[-1], request.name or "", status))

    cluster.call(lambda: cluster.emulator.request_hooks.append(hook))
    return log


def test_a_new_attempt_is_written_once_and_its_job_event_queues_nothing(
    still_cluster: FakeCluster, tmp_path: Path
) -> None:
    cluster = still_cluster
    log = log_run_requests(cluster)
    op = OperatorProcess(cluster.kubeconfig, tmp_path).start()
    try:
        cluster.create_run(tiny_run("once"))
        job = cluster.wait_for(lambda: cluster.jobs("once"), what="the first Job")[0]

        def pending_status() -> dict[str, Any] | None:
            run = cluster.get_run("once") or {}
            st = run.get("status", {}).get("stages", {}).get("initialize", {})
            return run if st.get("pendingSince") else None

        run = cluster.wait_for(pending_status, what="the status saying the pods are pending")
        # The one write already says what the Job's watch event would have made a second reconcile write.
        assert run_status_writes(cluster, log, "once") == 1
        created = datetime.datetime.fromisoformat(job["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        since = datetime.datetime.fromisoformat(
            run["status"]["stages"]["initialize"]["pendingSince"].replace("Z", "+00:00")
        )
        assert since == created
        ready = {c["type"]: c for c in run["status"]["conditions"]}["Ready"]
        assert (ready["status"], ready["reason"]) == ("False", "PodsPending")
        # Nothing else happens: the Job's ADDED event and the status echo queue no reconcile, nothing is written.
        time.sleep(1.5)
        assert run_status_writes(cluster, log, "once") == 1
        assert reconciles(op) == 1

        # A real change still moves the run on: the Job completes (a newer version of the same Job).
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        cluster.call(
            cluster.emulator.replace_status,
            JOBS,
            "default",
            job["metadata"]["name"],
            {
                "startTime": now,
                "completionTime": now,
                "succeeded": 1,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached"},
                ],
            },
        )

        def moved_on() -> dict[str, Any] | None:
            status = (cluster.get_run("once") or {}).get("status", {})
            return status if status.get("currentStage") == "synthesis" else None

        status = cluster.wait_for(moved_on, what="the run moving on to synthesis")
        assert status["stages"]["initialize"]["phase"] == "Succeeded"
        assert reconciles(op) >= 2
    finally:
        op.stop()


def test_an_older_or_echoed_run_version_queues_no_reconcile() -> None:
    controller = Controller(
        client=None,  # type: ignore[arg-type]  # run_event never calls the API
        config=OperatorConfig(),
        metrics=OperatorMetrics(),
        jobs={},
        pods={},
        deployments={},
    )

    def body(rv: str, uid: str = "u1") -> dict[str, Any]:
        return {"metadata": {"namespace": "ns", "name": "r", "uid": uid, "resourceVersion": rv}}

    controller.run_event("ADDED", body("5"))
    assert len(controller.queue) == 1
    # resourceVersions are opaque: these tokens order nothing (as numbers, the older one is the larger).
    controller._remember(("ns", "r"), body("19"), written=True)  # our own status write returned "19"
    controller.queue._queued.clear()  # as if a worker took the key and finished
    for rv in ("70", "19"):  # an older event the watch delivers before our write's echo, then the echo
        controller.run_event("MODIFIED", body(rv))
        assert len(controller.queue) == 0
        assert controller.bodies[("ns", "r")]["metadata"]["resourceVersion"] == "19"
    controller.run_event("MODIFIED", body("10"))  # somebody else's change
    assert len(controller.queue) == 1
    controller.queue._queued.clear()
    controller.run_event(
        "ADDED", body("3", uid="u2")
    )  # deleted and created again: a new object, lower version
    assert len(controller.queue) == 1
    assert controller.bodies[("ns", "r")]["metadata"]["uid"] == "u2"


class _WritesClient:
    """Just enough of KubeClient for one reconcile: creates succeed; the status write returns `returned`."""

    def __init__(self, returned: dict[str, Any]) -> None:
        self.returned = returned
        self.status_writes = 0

    async def ensure(self, obj: dict[str, Any], *, patch_if_exists: Any = None) -> dict[str, Any]:
        meta = {**obj["metadata"], "uid": f"uid-{obj['metadata']['name']}", "resourceVersion": "2"}
        meta.setdefault("creationTimestamp", "2026-11-26T00:00:00Z")
        return {**obj, "metadata": meta}

    async def post_event(self, event: dict[str, Any]) -> bool:
        return True

    async def patch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.status_writes += 1
        return self.returned


@pytest.mark.parametrize("edited", [False, True])
async def test_a_change_made_during_the_reconcile_is_decided_on(edited: bool) -> None:
    """The status write returns the newest version; if somebody edited the spec meanwhile, that edit's own watch
    event is older than what the operator now holds and is dropped, so the write's answer must queue the run."""
    doc = tiny_run("raced")
    body = {
        **doc,
        "metadata": {
            **doc["metadata"],
            "namespace": "default",
            "uid": "u1",
            "resourceVersion": "1",
            "generation": 1,
        },
    }
    returned = {
        **body,
        "metadata": {**body["metadata"], "resourceVersion": "4"},
        "status": {"phase": "Running"},
    }
    if edited:
        returned["metadata"]["generation"] = 2
        returned["spec"] = {**body["spec"], "suspend": True}
    client = _WritesClient(returned)
    controller = Controller(
        client=client,  # type: ignore[arg-type]
        config=OperatorConfig(),
        metrics=OperatorMetrics(),
        jobs={},
        pods={},
        deployments={},
    )
    controller.run_event("ADDED", body)
    key = await controller.queue.get()
    await controller.reconcile(key)
    controller.queue.done(key)
    assert client.status_writes == 1
    assert controller.bodies[key]["metadata"]["resourceVersion"] == "4"
    # Either way the edit's (older) watch event and the echo are dropped ...
    controller.run_event(
        "MODIFIED", {**returned, "metadata": {**returned["metadata"], "resourceVersion": "3"}}
    )
    controller.run_event("MODIFIED", returned)
    # ... so only the write's answer can bring the run back when it was edited.
    assert len(controller.queue) == (1 if edited else 0)


def test_a_burst_of_runs_gets_its_jobs_first_and_every_status_once(
    still_cluster: FakeCluster, tmp_path: Path
) -> None:
    """40 runs at once: each run's status is written once (most of them by a deferred, LOW reconcile after the
    burst's Jobs), with one StageStarted Event and one Job per run."""
    cluster = still_cluster
    log = log_run_requests(cluster)
    op = OperatorProcess(cluster.kubeconfig, tmp_path).start()
    names = [f"burst-{i:02d}" for i in range(40)]
    try:
        for name in names:
            cluster.create_run(tiny_run(name))

        def all_written() -> bool:
            for name in names:
                st = (cluster.get_run(name) or {}).get("status", {}).get("stages", {}).get("initialize", {})
                if not st.get("pendingSince"):
                    return False
            return True

        cluster.wait_for(all_written, timeout=60, what="every run's status saying its pods are pending")
        time.sleep(1.0)  # anything still queued would write now
        deferred = metric_value(op.metrics(), "purpcode_deferred_status_total", controller="purpcoderun")
    finally:
        op.stop()
    assert deferred is not None and deferred > 0  # the burst did take the deferred path
    for name in names:
        assert run_status_writes(cluster, log, name) == 1, name
        assert [j["metadata"]["name"] for j in cluster.jobs(name)] == [f"{name}-init-1"], name
        started = [e for e in cluster.events(name) if e["reason"] == "StageStarted"]
        assert len(started) == 1, (name, started)
        stage = cluster.get_run(name)["status"]["stages"]["initialize"]  # type: ignore[index]
        assert (stage["attempts"], stage["jobName"]) == (1, f"{name}-init-1")
