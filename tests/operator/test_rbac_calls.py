"""The API calls the real operator process makes, recorded by the fake API, are all in the operator's declared list
(purpcode_operator.permissions), which the chart grants exactly (tests/packaging/test_packaging_rbac.py).

One operator process drives runs through the paths that make distinct calls: a name clash (create -> 409 -> get),
a failed attempt and its retry, suspend/resume (Job and Deployment patches), deletion mid-run (kopf's finalizer),
a TTL expiry (the controller deletes the run) and the service teardown at the end of a run.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.fake_cluster import DEPLOYMENTS, PVCS, RUNS, FakeCluster, foreign_claim
from support.job_simulator import ATTEMPT_LABEL, JOBS, STAGE_LABEL, Outcome
from support.job_simulator import USER_AGENT as SIMULATOR_AGENT
from support.operator_process import OperatorProcess
from support.run_specs import tiny_run

from purpcode_operator.controller import Controller
from purpcode_operator.naming import LABEL_RUN
from purpcode_operator.permissions import Call, required

# Declared calls this scenario may not reach, each for a stated reason (a call seen is fine; a declared call that
# is neither seen nor here fails the test).
ADMISSION_ONLY: dict[Call, str] = {
    # creating children with blockOwnerDeletion: checked by admission, never a request
    ("purpcode.dev", "purpcoderuns/finalizers", "update"): "OwnerReferencesPermissionEnforcement",
}
# Declared calls on a race path the scenario does not provoke: the call, and the code that makes it (checked).
RACE_ONLY: dict[Call, tuple[Callable[..., Any], str]] = {
    ("purpcode.dev", "purpcoderuns", "get"): (
        Controller._still_there,  # after a 422 on a status write: was the run deleted and created again?
        "self.client.get(api.API_VERSION, api.KIND",
    ),
}


def ensure_gets(calls: set[Call]) -> set[Call]:
    """KubeClient.ensure creates and, on a 409, reads the existing object: every kind it creates needs `get`
    (Events are posted with post_event, which takes a 409 as 'already posted' and reads nothing). Which kinds hit
    a 409 in a scenario depends on timing, so these are implied by the creates rather than waited for."""
    return {(g, r, "get") for g, r, v in calls if v == "create" and r != "events"}


def rbac_call(request: Any) -> Call | None:
    """(group, resource[/subresource], verb) of a resource request as the API server's authorizer sees it; None
    for discovery (non-resource URLs, granted to every authenticated user)."""
    res = request.resource
    if res is None or not res.plural:
        return None
    if str((request.headers or {}).get("User-Agent", "")) == SIMULATOR_AGENT:
        return None  # the simulated kube-controller-manager (Jobs' pods), not the operator
    action = str(request.action).rsplit(".", 1)[-1]
    method = str(request.method).rsplit(".", 1)[-1].upper()
    verb = {
        "LIST": "list",
        "WATCH": "watch",
        "FETCH": "get",
        "CREATE": "create",
        "DELETE": "delete" if request.name else "deletecollection",
    }.get(action)
    if action == "UPDATE":
        verb = "patch" if method == "PATCH" else "update"
    assert verb is not None, f"unmapped request {method} {action} {res}"
    resource = res.plural + (f"/{request.subresource}" if request.subresource else "")
    return (res.group or "", resource, verb)


@pytest.mark.parametrize("all_namespaces", [False, True], ids=["namespaced", "all-namespaces"])
def test_every_call_the_operator_makes_is_declared(tmp_path: Path, all_namespaces: bool) -> None:
    seen: set[Call] = set()
    lock = threading.Lock()

    def record(request: Any) -> None:
        call = rbac_call(request)
        if call is not None:
            with lock:
                seen.add(call)

    def outcome(job: dict[str, Any]) -> Outcome:
        labels = job["metadata"]["labels"]
        run, stage, attempt = labels[LABEL_RUN], labels[STAGE_LABEL], labels[ATTEMPT_LABEL]
        if run == "paused" and stage == "synthesis":
            return Outcome("hang")
        if run == "clash" and (stage, attempt) == ("rl", "1"):
            return Outcome("fail", message="RuntimeError: NCCL timeout")
        return Outcome()

    with FakeCluster(tmp_path, script=outcome) as cluster:
        operator = OperatorProcess(
            cluster.kubeconfig, tmp_path, namespace="" if all_namespaces else "default"
        )
        try:
            # Everything reaching the fake API from now on is the operator's (the test's own calls are in-process; the
            # simulated controller-manager is told apart by its User-Agent).
            cluster.call(cluster.emulator.access_hooks.append, record)
            cluster.call(cluster.emulator.create, PVCS, "default", foreign_claim("clash-artifacts"))
            operator.start()
            cluster.create_run(tiny_run("clash", ttlSecondsAfterFinished=1))
            cluster.create_run(tiny_run("paused"))
            cluster.wait_for(
                lambda: ("", "persistentvolumeclaims", "get") in seen, what="the clash's create -> 409 -> get"
            )
            cluster.call(cluster.emulator.delete, PVCS, "default", "clash-artifacts")
            cluster.wait_for(
                lambda: any(j["metadata"]["name"] == "paused-synthesis-1" for j in cluster.jobs("paused")),
                what="the paused run's hanging job",
            )
            cluster.wait_for(lambda: len(cluster.objects(DEPLOYMENTS)) >= 2, what="service deployments")
            cluster.patch_run("paused", {"spec": {"suspend": True}})
            cluster.wait_phase("paused", "Suspended")
            cluster.wait_for(
                lambda: cluster.call(cluster.emulator.get, JOBS, "default", "paused-synthesis-1")["spec"].get(
                    "suspend"
                ),
                what="the paused run's job suspended",
            )
            cluster.delete_run("paused")
            cluster.wait_for(
                lambda: cluster.get_run("paused") is None, what="paused run gone (kopf's finalizer)"
            )
            cluster.wait_for(
                lambda: cluster.call(cluster.emulator.history, RUNS, "default", "clash")[-1:] == [None],
                timeout=90,
                what="the clash run through a retry to Succeeded, then deleted by its TTL",
            )
        except (TimeoutError, AssertionError):
            print(operator.logs()[-6000:])
            raise
        finally:
            operator.stop()

    declared = set().union(*required(all_namespaces=all_namespaces).values())
    with lock:
        calls = set(seen)
    assert not calls - declared, (
        f"calls the declared list (and so the chart) lacks: {sorted(calls - declared)}"
    )
    for fn, code in RACE_ONLY.values():
        assert code in inspect.getsource(fn), f"{fn.__qualname__} no longer makes {code!r}: update RACE_ONLY"
    implied = ensure_gets(calls) | set(ADMISSION_ONLY) | set(RACE_ONLY)
    assert implied <= declared, f"implied calls the declared list lacks: {sorted(implied - declared)}"
    unused = declared - calls - implied
    assert not unused, f"declared but never made (remove them, or say where the code makes them): {unused}"
