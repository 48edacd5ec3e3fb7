"""Restart safety: SIGKILL the real operator at 20 random points of a run, restart it each time.

Half the kill points are "right after the API server accepted the operator's k-th write, before the operator read
the answer" (the moments where an operator that keeps state in memory duplicates or loses work), the others are
random times after start (also during start-up, before the operator is ready). Afterwards: the run succeeded,
every Job was created exactly once, each transition was reported exactly once, and the status is right.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter

import pytest
from support.fake_cluster import FakeCluster
from support.job_simulator import Outcome, Scenario
from support.operator_process import OperatorProcess
from support.run_specs import tiny_run

from purpcode_operator.api import PurpCodeRunStatus
from purpcode_operator.plan import STAGE_ORDER

KILLS = 20
JOBS = 7  # six stages, one of them retried once
SEED = int(os.environ.get("PURPCODE_KILL_SEED", "20261125"))


class KillAfterWrites:
    """An emulator request hook: SIGKILL the operator once the API has accepted its n-th write (before it answers).

    Every write over HTTP comes from the operator: the job simulator and the test write in-process.
    """

    def __init__(self, pid: int, nth: int) -> None:
        self.pid, self.nth, self.writes = pid, nth, 0
        self.fired = threading.Event()

    def __call__(self, request: object, status: int) -> None:
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


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_operator_killed_at_20_random_points(
    cluster: FakeCluster, operator: OperatorProcess, scenario: Scenario
) -> None:
    rng = random.Random(SEED)
    scenario.default = Outcome(start_seconds=0.05, run_seconds=3.0)
    scenario.outcomes[("rl", 1)] = Outcome("fail", run_seconds=3.0, message="RuntimeError: NCCL timeout")
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
        # Spread the kill points over the whole run: Jobs keep running while the operator is down, so when the
        # run got ahead of the kill points, kill the next operator while it is still starting (listing, indexing).
        starting = _jobs_done(cluster, name) > len(points) * JOBS / KILLS
        operator.start(wait_ready=not starting)

    run = cluster.wait_phase(name, "Succeeded", timeout=120)
    assert len(points) == KILLS and operator.starts == KILLS + 1, points

    # Never a duplicate Job: every Job name was created exactly once, and exactly the expected ones.
    creates = Counter(c.name for c in cluster.job_creates())
    assert all(n == 1 for n in creates.values()), creates
    expected = {
        f"{name}-{slug}-1" for slug in ("init", "synthesis", "rule-learning", "rl", "evaluation", "report")
    }
    assert set(creates) == expected | {f"{name}-rl-2"}
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
    assert all(e.get("count", 1) == 1 for e in cluster.events(name))
