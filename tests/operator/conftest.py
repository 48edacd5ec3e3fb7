"""Fixtures for the operator tests: a fake cluster (emulator + job simulator) and the real operator process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fake_cluster import FakeCluster
from support.job_simulator import Scenario
from support.operator_process import OperatorProcess


@pytest.fixture
def scenario() -> Scenario:
    return Scenario()


@pytest.fixture
def cluster(tmp_path: Path, scenario: Scenario) -> Iterator[FakeCluster]:
    with FakeCluster(tmp_path, script=scenario) as c:
        yield c


@pytest.fixture
def operator(
    cluster: FakeCluster, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(cluster.kubeconfig, tmp_path)
    yield op
    op.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(op.logs()[-8000:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
