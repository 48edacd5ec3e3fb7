"""Whole tiny runs through the real operator process while the API server misbehaves: 10% of writes fail (409, 429
with Retry-After, 500, and 504 after the write was stored), watch streams are cut every few seconds, and the watch
window is short (resumes from an old resourceVersion get 410 Gone). Every run must complete, no Job may ever be
created twice, and the statuses must end exactly as without faults."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from support.fake_cluster import RUNS, FakeCluster
from support.job_simulator import Scenario
from support.kube_emulator import Faults
from support.operator_process import OperatorProcess
from support.run_specs import tiny_run

from purpcode_operator.plan import STAGE_ORDER

STAGE_SLUGS = ["init", "synthesis", "rule-learning", "rl", "evaluation", "report"]


@pytest.mark.parametrize("seed", [1, 2])
def test_runs_complete_under_faults_and_watch_cuts(tmp_path: Path, seed: int) -> None:
    faults = Faults(write_rate=0.1, watch_cut_seconds=2.0, seed=seed)
    with FakeCluster(tmp_path, script=Scenario(), faults=faults, history_seconds=5.0) as cluster:
        operator = OperatorProcess(cluster.kubeconfig, tmp_path)
        operator.start()
        try:
            names = [f"f{seed}-{i}" for i in range(3)]
            for name in names:
                cluster.create_run(tiny_run(name))
            runs = {name: cluster.wait_phase(name, "Succeeded", timeout=120) for name in names}
        except TimeoutError:
            print(operator.logs()[-8000:])
            raise
        finally:
            operator.stop()
        for run in runs.values():
            stages = run["status"]["stages"]
            assert list(stages) == list(STAGE_ORDER)
            assert all(s["phase"] == "Succeeded" and s["attempts"] == 1 for s in stages.values()), stages
            conds = {c["type"]: c for c in run["status"]["conditions"]}
            assert conds["Succeeded"]["status"] == "True" and conds["Failed"]["status"] == "False"
            assert run["status"]["observedGeneration"] == run["metadata"]["generation"]
        creates = cluster.job_creates()
        counts = Counter(c.name for c in creates)
        assert [n for n, k in counts.items() if k > 1] == []  # never a duplicate Job
        assert sorted(counts) == sorted(f"{n}-{slug}-1" for n in names for slug in STAGE_SLUGS)
        faulted = cluster.call(lambda: list(cluster.emulator.fault_log))
        codes = Counter(code for _, _, code in faulted)
        assert sum(codes.values()) >= 10 and {409, 429, 500, 504} <= set(codes), codes
        assert cluster.call(lambda: [r for r in cluster.emulator.list(RUNS, "default")]) != []
