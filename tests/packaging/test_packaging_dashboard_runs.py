"""Every dashboard panel with one namespace and one run selected, against series labelled by the chart's monitors.

Why: with Grafana's "All" (`.*`) a panel filtering on a label its series do not have still shows data
(`label=~".*"` matches a missing label), so only a concrete selection shows whether the filters work.

Two runs, `dash-a` in namespace `team-a` and `dash-b` in `team-b`, each with:
- its real RL stage process (`python -m purpcode.rl` on the tiny policy, real oracles: its own sandbox service,
  bandit, the scripted judge), serving its figures on its metrics port;
- its real sandbox service (bubblewrap), also fed a few timeouts and refused requests;
- the run itself, reconciled by the real operator process on the fake cluster (one retry of the RL stage).
A real Prometheus scrapes them with the scrape configs the Prometheus Operator would generate from the rendered
chart's ServiceMonitor and PodMonitor (dashboard_queries.*_monitor_scrape_configs): the targets carry the
`__meta_kubernetes_*` labels of the pods the operator renders for these runs, and Prometheus applies the
relabelings itself. For each panel and each selected run: the query returns data; each of its selectors returns
series of the selected run and namespace only; a run or namespace nobody has returns nothing.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from dashboard_queries import (
    load_dashboard,
    pod_meta_labels,
    pod_monitor_scrape_configs,
    select,
    selectors,
    service_monitor_scrape_configs,
    uses,
)
from support.fake_cluster import NAMESPACES, PVCS, FakeCluster, foreign_claim
from support.job_simulator import Outcome, Scenario
from support.operator_process import OperatorProcess, free_port, metric_value
from support.run_specs import tiny_run
from support.sandbox_fixture import sandbox_service
from test_packaging_prometheus import _get, running_prometheus, sandbox_traffic
from tools_check import require_tool

from purpcode_operator import render
from purpcode_operator.decide import Settings, owner_of, prepare

ROOT = Path(__file__).resolve().parents[2]
RUNS = {"dash-a": "team-a", "dash-b": "team-b"}
NEEDS_GPU = {"GPU utilisation", "GPU memory used"}  # NVIDIA DCGM exporter: nothing here feeds them
RUN_LABELS = ("run", "purpcode_dev_run")  # the run as the stage reports it / as the PodMonitor copies it


def _run_objects(name: str, namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The RL stage pod and a sandbox pod the operator renders for this run (pod = its template + a name)."""
    doc = tiny_run(name)
    doc["metadata"].update(namespace=namespace, uid=f"uid-{name}", generation=1)
    run, plan = prepare(doc, Settings())
    owner = owner_of(doc)
    job = render.build_stage_job(run, plan, plan.stage("rl"), 1, owner)
    sandbox = render.build_sandbox_deployment(run, plan, 1, owner)

    def pod(template: dict[str, Any], pod_name: str) -> dict[str, Any]:
        meta = {**template["metadata"], "name": pod_name, "namespace": namespace}
        return {"metadata": meta, "spec": template["spec"], "status": {"phase": "Running"}}

    return (
        pod(job["spec"]["template"], f"{job['metadata']['name']}-0-abcde"),
        pod(sandbox["spec"]["template"], f"{sandbox['metadata']['name']}-5d8f7-xyz12"),
    )


def _targets(pod: dict[str, Any], addresses: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    """One discovery target per container port, pointing at the real process that serves that port (ports the test
    does not serve point at a closed port: the monitor must not scrape them)."""
    return [
        (addresses.get(port.get("name", ""), "127.0.0.1:9"), pod_meta_labels(pod, c["name"], port))
        for c in pod["spec"]["containers"]
        for port in c.get("ports", [])
    ]


def _query(prom: str, expr: str, at: float) -> list[dict[str, Any]]:
    qs = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    try:
        body = _get(f"{prom}/api/v1/query?{qs}")
    except urllib.error.HTTPError as err:
        raise AssertionError(f"Prometheus refused {expr!r}: {err.read().decode(errors='replace')}") from err
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


@contextlib.contextmanager
def rl_stage(
    tmp: Path, run: str, namespace: str, policy: Path, sandbox: str, judge: Any, port: int
) -> Iterator[Any]:
    """The real RL stage of `run` (3 steps on the tiny policy), serving its metrics on `port`."""
    sys.path.insert(0, str(ROOT / "tests"))
    from rl.conftest import rl_config, write_rl_sets

    config = rl_config(
        tmp / "artifacts",
        rl={
            "maxCompletionLength": 56,
            "maxPromptLength": 2048,
        },  # as tests/rl/test_stage.py (the system prompt is long)
        sandbox_url=sandbox,
        judge_url=judge.url,
        judge_model=judge.model,
        metrics_port=port,
        rule_learning=False,
    ).model_copy(update={"run": run, "namespace": namespace})
    data = Path(config.paths.data)
    data.mkdir(parents=True)
    write_rl_sets(data)
    cfg_path = tmp / "rl-config.json"
    cfg_path.write_text(config.to_json(), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "workloads"), str(ROOT / "operator"), env.get("PYTHONPATH", "")]
    )
    log = open(tmp / "rl.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "purpcode.rl",
            "--config",
            str(cfg_path),
            "--data",
            config.paths.data,
            "--model",
            str(policy),
            "--out",
            config.paths.out,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    log.close()
    proc.port = port  # type: ignore[attr-defined]
    proc.log = tmp / "rl.log"  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.mark.slow
def test_every_panel_shows_the_selected_run_only(gen: ModuleType, tmp_path: Path, fake_openai: Any) -> None:
    require_tool("prometheus", "apt-get install prometheus")
    sys.path.insert(0, str(ROOT / "tests"))
    from rl.conftest import judge_reply
    from rl.policy import build_formatted_policy

    fake_openai.reply(judge_reply)
    policy = build_formatted_policy(tmp_path / "policy")
    chart = gen.render_chart(
        {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
        release="pc",
        namespace="ml-system",
    )
    (pod_monitor,) = [o for o in chart if o["kind"] == "PodMonitor"]
    (service_monitor,) = [o for o in chart if o["kind"] == "ServiceMonitor"]
    (op_service,) = [o for o in chart if o["kind"] == "Service"]
    (op_deploy,) = [o for o in chart if o["kind"] == "Deployment"]
    op_pod = {
        "metadata": {**op_deploy["spec"]["template"]["metadata"], "name": "pc-purpcode-operator-7c9d-abcde"},
        "spec": op_deploy["spec"]["template"]["spec"],
    }

    with contextlib.ExitStack() as stack:
        (tmp_path / "cluster").mkdir()
        cluster = stack.enter_context(
            FakeCluster(
                tmp_path / "cluster", script=Scenario(outcomes={("rl", 1): Outcome("fail", message="OOM")})
            )
        )
        for ns in RUNS.values():
            cluster.call(cluster.emulator.create, NAMESPACES, None, {"metadata": {"name": ns}})
        operator = OperatorProcess(cluster.kubeconfig, tmp_path, namespace="")
        stack.callback(operator.stop)
        operator.start()

        scrape: list[dict[str, Any]] = service_monitor_scrape_configs(
            service_monitor, op_service, op_pod, f"127.0.0.1:{operator.port}"
        )
        pod_targets: list[tuple[str, dict[str, str]]] = []
        stage_ports = {run: free_port() for run in RUNS}
        sandbox_urls = {}
        for run, ns in RUNS.items():
            stage_pod, sandbox_pod = _run_objects(run, ns)
            sandbox = stack.enter_context(sandbox_service())
            sandbox_url = sandbox_urls[run] = sandbox.url
            stack.enter_context(sandbox_traffic(sandbox_url))
            # The stage starts later (below); until then Prometheus finds its port closed (up == 0).
            pod_targets += _targets(stage_pod, {"metrics": f"127.0.0.1:{stage_ports[run]}"})
            pod_targets += _targets(
                sandbox_pod,
                {
                    "http": sandbox_url.removeprefix("http://"),
                    "metrics": sandbox.metrics_url.removeprefix("http://"),
                },
            )
        scrape += pod_monitor_scrape_configs(pod_monitor, pod_targets)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": scrape,
        }
        prom = stack.enter_context(running_prometheus(config, tmp_path))
        started = time.time()
        # dash-b's artifacts claim name is taken: reconcile errors (the operator's error panel) until it goes.
        cluster.call(cluster.emulator.create, PVCS, "team-b", foreign_claim("dash-b-artifacts"))
        for run, ns in RUNS.items():
            cluster.create_run(tiny_run(run), namespace=ns)
        cluster.wait_for(
            lambda: metric_value(operator.metrics(), "controller_runtime_reconcile_errors_total"),
            timeout=60,
            what="a reconcile error from the name clash",
        )
        # The reconcile histogram must have a scraped sample before the next reconciles, and an increase scraped
        # before the stages start: every moment the panels are read at (while both stages train) then has two
        # samples with an increase in its rate window. Without this ordering, a loaded machine could finish every
        # reconcile before the histogram's second scrape, and the Reconcile latency panels read NaN.
        hist = 'controller_runtime_reconcile_time_seconds_count{controller="purpcoderun"}'
        cluster.wait_for(
            lambda: _query(prom, hist, time.time()),
            timeout=60,
            interval=0.5,
            what="a scraped reconcile histogram",
        )
        cluster.call(cluster.emulator.delete, PVCS, "team-b", "dash-b-artifacts")
        cluster.wait_for(
            lambda: _query(prom, f"increase({hist}[10m]) > 0", time.time()),
            timeout=60,
            interval=0.5,
            what="an increase of the reconcile histogram scraped",
        )
        stages = {}
        for run, ns in RUNS.items():
            (tmp_path / run).mkdir()
            stages[run] = stack.enter_context(
                rl_stage(tmp_path / run, run, ns, policy, sandbox_urls[run], fake_openai, stage_ports[run])
            )
        for proc in stages.values():
            rc = proc.wait(300)
            assert rc == 0, proc.log.read_text(errors="replace")[-4000:]
        for run, ns in RUNS.items():
            cluster.wait_phase(run, "Succeeded", timeout=90, namespace=ns)
        time.sleep(3)  # the operator's last transitions scraped

        # A moment when both stages were up and had trained a step: the last one in the stored data.
        qs = urllib.parse.urlencode(
            {
                "query": "count(count by (purpcode_dev_run) (purpcode_train_loss))",
                "start": f"{started:.3f}",
                "end": f"{time.time():.3f}",
                "step": "0.5",
            }
        )
        series = _get(f"{prom}/api/v1/query_range?{qs}")["data"]["result"]
        both = [float(t) for t, v in (series[0]["values"] if series else []) if v == "2"]
        assert both, f"the two stages were never scraped at the same time: {series}"
        at = both[-1]
        rate_interval = f"{int(at - started) + 10}s"

        # The relabelings produced what the dashboard filters on.
        up = {r["metric"]["job"] for r in _query(prom, "up == 1", at)}
        assert up == {"purpcode-operator", "stage", "sandbox"}, up
        for run, ns in RUNS.items():
            info = _query(prom, f'purpcode_run_info{{namespace=~"{ns}"}}', at)
            assert {r["metric"]["run"] for r in info} == {run}  # the run variable's values per namespace

        empty, leaked, unfiltered = [], [], []
        for panel in load_dashboard()["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                where = f"{panel['title']} [{target['refId']}]"
                for run, ns in RUNS.items():
                    q = select(expr, namespace=ns, run=run, rate_interval=rate_interval)
                    if not _finite(_query(prom, q, at)):
                        empty.append(f"{where} for {run}: {q}")
                        continue
                    for sel in selectors(q):
                        for r in _query(prom, sel, at):
                            m = r["metric"]
                            if uses(expr, "namespace") and m.get("namespace") != ns:
                                leaked.append(f"{where} for {run}: {sel} -> {m}")
                            if uses(expr, "run") and any(m.get(k, run) != run for k in RUN_LABELS):
                                leaked.append(f"{where} for {run}: {sel} -> {m}")
                for var in ("namespace", "run"):
                    if uses(expr, var):
                        values = {"namespace": "team-a", "run": "dash-a", var: "nobody"}
                        q = select(expr, rate_interval=rate_interval, **values)
                        if _query(prom, q, at):
                            unfiltered.append(f"{where}: ${var} = nobody still shows {q}")
        gpu = [e for e in empty if e.split(" [")[0] in NEEDS_GPU]
        assert not [e for e in empty if e not in gpu], "panels without data:\n" + "\n".join(
            e for e in empty if e not in gpu
        )
        assert len(gpu) == 4, gpu  # two DCGM panels x two runs, empty without GPUs
        assert not leaked, "series of another run or namespace:\n" + "\n".join(leaked)
        assert not unfiltered, "\n".join(unfiltered)
        print(json.dumps({"at": at, "rate_interval": rate_interval}))
