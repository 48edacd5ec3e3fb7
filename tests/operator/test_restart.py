"""Restart safety: SIGKILL the real operator at 20 random points of a run, restart it each time.

Half the kill points are "right after the API server accepted the operator's k-th write, before the operator read
the answer" (the moments where an operator that keeps state in memory duplicates or loses work), the others are
random times after start (also during start-up, before the operator is ready). Afterwards: the run succeeded, no
operator process ever sent the same Job or Event create twice (counted in the fake API's request log: a 409 from
the store would hide a duplicate), each transition was reported exactly once, and the status is right.

Seeds: a fixed few (`SEEDS`); `PURPCODE_KILL_SEED=N` runs that seed only (to reproduce a failure), and
`PURPCODE_KILL_SEEDS=K` adds K random seeds to the matrix (they are printed in the test id).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import kmock
import pytest
from support.fake_cluster import FakeCluster
from support.job_simulator import USER_AGENT, Outcome, Scenario
from support.operator_process import OperatorProcess
from support.run_specs import tiny_run

from purpcode_operator.api import PurpCodeRunStatus
from purpcode_operator.plan import STAGE_ORDER

KILLS = 20
JOBS = 7  # six stages, one of them retried once
SEEDS = (
    [int(os.environ["PURPCODE_KILL_SEED"])]
    if os.environ.get("PURPCODE_KILL_SEED")
    else [
        20261125,
        7,
        *(random.randrange(1 << 30) for _ in range(int(os.environ.get("PURPCODE_KILL_SEEDS", "0")))),
    ]
)


def from_operator(request: Any) -> bool:
    """The operator's requests (the simulated controllers send their own User-Agent; the test writes in-process)."""
    return request.headers.get("User-Agent", "") != USER_AGENT


class KillAfterWrites:
    """An emulator request hook: SIGKILL the operator once the API has accepted its n-th write (before it answers)."""

    def __init__(self, pid: int, nth: int) -> None:
        self.pid, self.nth, self.writes = pid, nth, 0
        self.fired = threading.Event()

    def __call__(self, request: Any, status: int) -> None:
        if not from_operator(request) or status >= 400:
            return
        self.writes += 1
        if self.writes >= self.nth and not self.fired.is_set():
            os.kill(self.pid, signal.SIGKILL)
            self.fired.set()


def _finished(cluster: FakeCluster, name: str) -> bool:
    run = cluster.get_run(name)
    return bool(run and run.get("status", {}).get("phase") in ("Succeeded", "Failed"))


def _jobs_done(cluster: FakeCluster, name: str) -> int:
    """Progress as the cluster shows it (the status may lag: the operator writes it last, and is killed often)."""
    return sum(
        1
        for j in cluster.jobs(name)
        if any(
            c["type"] in ("Complete", "Failed") and c["status"] == "True"
            for c in j.get("status", {}).get("conditions", [])
        )
    )


@dataclass(frozen=True)
class CreateRequest:
    """One create the operator sent, as the API server logged it: which operator process, what, the answer."""

    incarnation: int
    plural: str
    name: str
    status: int


class CreateLog:
    """Every create request the operator sends (answered 201 or 409 alike), tagged with the operator's start count."""

    def __init__(self, operator: OperatorProcess) -> None:
        self.operator = operator
        self.requests: list[CreateRequest] = []

    def __call__(self, request: Any, status: int) -> None:
        if request.action != kmock.action.CREATE or request.resource is None or not from_operator(request):
            return
        data = request.data if isinstance(request.data, dict) else {}
        name = (data.get("metadata") or {}).get("name", "")
        self.requests.append(CreateRequest(self.operator.starts, request.resource.plural, name, status))

    def per_process(self, plural: str) -> Counter[tuple[int, str]]:
        return Counter((r.incarnation, r.name) for r in self.requests if r.plural == plural)


@pytest.mark.slow
@pytest.mark.timeout(420)
@pytest.mark.parametrize("seed", SEEDS)
def test_operator_killed_at_20_random_points(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario, seed: int
) -> None:
    rng = random.Random(seed)
    log = CreateLog(operator)
    cluster.call(cluster.emulator.request_hooks.append, log)
    scenario.default = Outcome(start_seconds=0.05, run_seconds=8.0)
    scenario.outcomes[("rl", 1)] = Outcome("fail", run_seconds=8.0, message="RuntimeError: NCCL timeout")
    name = "crashy"
    operator.start()
    cluster.create_run(tiny_run(name))
    points: list[str] = []
    starting = False  # the operator was just started without waiting for it to be ready
    while len(points) < KILLS:
        assert not _finished(cluster, name), f"the run finished after only {len(points)} kills: {points}"
        if starting:
            time.sleep(rng.uniform(0.05, 0.3))  # interpreter start, imports, login, first lists
            points.append("during start-up")
        elif rng.random() < 0.5:
            hook = KillAfterWrites(operator.pid, rng.randint(1, 4))
            cluster.call(cluster.emulator.request_hooks.append, hook)
            if not hook.fired.wait(30):
                run = cluster.get_run(name) or {}
                pytest.fail(
                    f"the operator made no write for 30 s at kill point {len(points) + 1} ({points}); "
                    f"status: {run.get('status')}\njobs: {[j['metadata']['name'] for j in cluster.jobs(name)]}"
                    f"\n{operator.logs()[-4000:]}"
                )
            cluster.call(cluster.emulator.request_hooks.remove, hook)
            points.append(f"after write #{hook.nth}")
        else:
            delay = rng.uniform(0.05, 1.0)
            time.sleep(delay)
            points.append(f"{delay:.2f}s after ready")
        operator.kill()
        # Let the API server answer what the dead process had sent already, so the request log attributes it to
        # that process (CreateLog tags requests with the start count), not to the next one.
        time.sleep(0.1)
        # Spread the kill points over the whole run: Jobs keep running while the operator is down, so when the
        # run got ahead of the kill points, kill the next operator while it is still starting (listing, indexing).
        starting = _jobs_done(cluster, name) > len(points) * JOBS / KILLS
        operator.start(wait_ready=not starting)

    run = cluster.wait_phase(name, "Succeeded", timeout=120)
    assert len(points) == KILLS and operator.starts == KILLS + 1, points

    # Never a duplicate Job: no operator process sent the same Job twice (a second POST is answered 409 by the
    # store and would not show in its objects), and exactly the expected Jobs exist, each created once.
    jobs = log.per_process("jobs")
    assert jobs and max(jobs.values()) == 1, [k for k, n in jobs.items() if n > 1]
    expected = {
        f"{name}-{slug}-1" for slug in ("init", "synthesis", "rule-learning", "rl", "evaluation", "report")
    } | {f"{name}-rl-2"}
    assert {r.name for r in log.requests if r.plural == "jobs"} == expected
    created = Counter(r.name for r in log.requests if r.plural == "jobs" and r.status < 300)
    assert created == Counter(dict.fromkeys(expected, 1)), created
    # A Job POST answered 409 is a restarted operator re-creating what its predecessor created just before dying:
    # there are never more of those than restarts.
    conflicts = sum(1 for r in log.requests if r.plural == "jobs" and r.status == 409)
    assert conflicts <= KILLS, conflicts
    deployments = Counter(
        c.name
        for c in cluster.call(lambda: list(cluster.emulator.creates))
        if c.resource == "apps/v1/deployments"
    )
    assert deployments == Counter({f"{name}-sandbox": 1, f"{name}-judge": 1})

    # The status is right (and has the CRD's shape).
    status = PurpCodeRunStatus.model_validate(run["status"], by_alias=True, by_name=False)
    assert list(status.stages) == list(STAGE_ORDER)
    assert all(s.phase == "Succeeded" for s in status.stages.values())
    assert {n: s.attempts for n, s in status.stages.items()} == {
        n: 2 if n == "rl" else 1 for n in STAGE_ORDER
    }
    conds = {c.type: c for c in status.conditions}
    assert conds["Succeeded"].status == "True" and conds["Failed"].status == "False"
    assert status.observed_generation == run["metadata"]["generation"]

    # Never a lost transition, never a doubled one: each Event exactly once.
    reasons = Counter(e["reason"] for e in cluster.events(name))
    assert reasons["StageStarted"] == 7 and reasons["StageSucceeded"] == 6
    assert reasons["StageAttemptFailed"] == 1 and reasons["Succeeded"] == 1
    # Each transition's Event posted once per operator process at most (the Event name derives from the transition,
    # so a repeat is a 409 that leaves no trace in the stored Events).
    events = log.per_process("events")
    assert events and max(events.values()) == 1, [k for k, n in events.items() if n > 1]
    posted = Counter(r.name for r in log.requests if r.plural == "events" and r.status < 300)
    assert set(posted.values()) == {1} and len(posted) == len(cluster.events(name))
