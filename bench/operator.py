"""Operator scale bench: N PurpCodeRuns created at once against the fake API; how fast does each get its first Job?

    python bench/operator.py                 # 50-run baseline, then 500 runs (each with a fresh operator + API)
    python bench/operator.py --runs 200 --baseline 20

For each size: a fresh in-process fake API (kmock emulator, no job simulator: Jobs stay created), a fresh
`purpcode-operator` process, then all runs POSTed concurrently over HTTP (like `kubectl apply -f dir/`).
Apply-to-first-Job latency per run = the API's own create time of the run's first Job minus that of the run.
Reports p50/p99/max latency, the reconcile rate (controller_runtime_reconcile_total over the time until the last
first Job; deferred status writes that ran by then count too, see docs/operator.md "Architecture"), CPU per run of the operator and of this process (the fake API and the creating client: in a real
cluster that work is the API server's), the operator's peak RSS, and the ratios 500 vs 50 (how cost grows).
Goal (issue 8): p99 < 1 s and RSS < 300 MiB at 500 runs.

The floor (issue 16): the same harness, the same fake API, with bench/floor_operator.py instead of ours: a minimal
kopf operator that creates one Job per run with kopf.adopt and nothing else. For both, operator CPU is counted from
the creates until every run has its first Job and the operator has gone quiet (its deferred status writes and
Events included). Printed: our CPU per run / the floor's, for each size; goal <= 1.5 (our lifecycle, status,
Events and metrics cost at most half again what kopf itself costs). Both operators are measured in `--rounds`
interleaved rounds (default 3: one round's CPU per run moves by tens of percent on a shared machine); the ratios and
goals use the medians over rounds, each round's ratios are printed too. The last line ends with the 500-run median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.fake_cluster import FakeCluster  # noqa: E402
from support.operator_process import OperatorProcess, free_port, metric_value  # noqa: E402
from support.run_specs import tiny_run  # noqa: E402


@dataclass
class Result:
    runs: int
    p50: float
    p99: float
    worst: float
    span: float
    reconciles: float
    rate: float
    cpu_per_run_ms: float
    api_cpu_per_run_ms: float
    rss_mib: float
    missing: int


def _median_result(rs: list[Result]) -> Result:
    """Field by field median over rounds (a summary, not one measured round)."""
    fields = {k: statistics.median(getattr(r, k) for r in rs) for k in Result.__dataclass_fields__}
    return Result(**{**fields, "runs": rs[0].runs, "missing": max(r.missing for r in rs)})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


async def create_all(url: str, n: int, concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    path = f"{url}/apis/purpcode.dev/v1alpha1/namespaces/default/purpcoderuns"
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            async with sem, session.post(path, json=tiny_run(f"bench-{i:04d}")) as resp:
                if resp.status >= 300:
                    raise RuntimeError(f"create bench-{i:04d}: {resp.status} {await resp.text()}")

        await asyncio.gather(*(one(i) for i in range(n)))


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            self.stop.wait(0.1)


class FloorProcess:
    """bench/floor_operator.py under `kopf run`, ready when kopf's liveness endpoint answers."""

    def __init__(self, kubeconfig: Path, log_dir: Path) -> None:
        self.kubeconfig, self.log_dir = kubeconfig, log_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        log = open(self.log_dir / "floor.log", "wb")  # noqa: SIM115 - owned by the child
        cmd = [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", "default"]
        cmd += [
            "--liveness",
            f"http://127.0.0.1:{self.port}/healthz",
            str(REPO / "bench" / "floor_operator.py"),
        ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.log_dir / "floor.log").read_text()[-4000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise TimeoutError("the floor operator did not become live in 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def settle(proc: psutil.Process, quiet_cpu: float = 0.03, window: float = 1.0, limit: float = 60.0) -> None:
    """Wait until the operator has used less than `quiet_cpu` seconds of CPU over `window` (its work is done)."""
    deadline = time.monotonic() + limit
    last = sum(proc.cpu_times()[:2])
    while time.monotonic() < deadline:
        time.sleep(window)
        now = sum(proc.cpu_times()[:2])
        if now - last < quiet_cpu:
            return
        last = now


def reconciles_done(metrics: str) -> float:
    """Finished reconciles, whatever their result (a reconcile that schedules a timer ends as requeue_after)."""
    return sum(
        metric_value(metrics, "controller_runtime_reconcile_total", controller="purpcoderun", result=r) or 0.0
        for r in ("success", "requeue_after", "error")
    )


def measure(n: int, workers: int, timeout: float, concurrency: int, *, floor: bool = False) -> Result:
    with (
        tempfile.TemporaryDirectory(prefix="purpcode-bench-") as tmp,
        FakeCluster(Path(tmp), simulate=False) as cluster,
    ):
        op: OperatorProcess | FloorProcess
        if floor:
            op = FloorProcess(cluster.kubeconfig, Path(tmp))
        else:
            op = OperatorProcess(cluster.kubeconfig, Path(tmp), env={"PURPCODE_WORKERS": str(workers)})
        op.start()
        try:
            before = 0.0 if isinstance(op, FloorProcess) else reconciles_done(op.metrics())
            proc = psutil.Process(op.pid)
            me = psutil.Process()
            cpu_before = sum(proc.cpu_times()[:2])
            api_cpu_before = sum(me.cpu_times()[:2])
            sampler = RssSampler(op.pid)
            sampler.start()
            asyncio.run(create_all(cluster.url, n, concurrency))
            deadline = time.monotonic() + timeout

            def firsts() -> tuple[dict[str, float], dict[str, float]]:
                def collect() -> tuple[dict[str, float], dict[str, float]]:
                    runs = {
                        c.name: c.at for c in cluster.emulator.creates if c.resource.endswith("purpcoderuns")
                    }
                    jobs: dict[str, float] = {}
                    for c in cluster.emulator.creates:
                        if c.resource == "batch/v1/jobs":
                            run = c.labels.get("purpcode.dev/run", "")
                            jobs[run] = min(jobs.get(run, c.at), c.at)
                    return runs, jobs

                return cluster.call(collect)

            runs, jobs = firsts()
            while len(jobs) < n and time.monotonic() < deadline:
                time.sleep(0.2)
                runs, jobs = firsts()
            settle(proc)
            cpu = sum(proc.cpu_times()[:2]) - cpu_before
            api_cpu = sum(me.cpu_times()[:2]) - api_cpu_before
            sampler.stop.set()
            sampler.join()
            after = 0.0 if isinstance(op, FloorProcess) else reconciles_done(op.metrics())
            rss = max(sampler.peak, proc.memory_info().rss)
        finally:
            op.stop()
        latencies = [jobs[r] - t for r, t in runs.items() if r in jobs]
        start = min(runs.values())
        span = (max(jobs.values()) - start) if jobs else float("nan")
        reconciles = after - before
        return Result(
            runs=n,
            p50=percentile(latencies, 0.50),
            p99=percentile(latencies, 0.99),
            worst=max(latencies) if latencies else float("nan"),
            span=span,
            reconciles=reconciles,
            rate=reconciles / span if span > 0 else float("nan"),
            cpu_per_run_ms=1000 * cpu / n,
            api_cpu_per_run_ms=1000 * api_cpu / n,
            rss_mib=rss / 2**20,
            missing=n - len(latencies),
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--baseline", type=int, default=50)
    p.add_argument("--workers", type=int, default=16, help="Operator reconcile workers (PURPCODE_WORKERS).")
    p.add_argument("--concurrency", type=int, default=64, help="Concurrent creates (the 'kubectl apply').")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--json", action="store_true", help="Also print the results as one JSON line.")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="Interleaved rounds (ours, then the floor, both sizes); ratios and goals use the medians: on a shared "
        "machine one round's CPU per run moves by tens of percent.",
    )
    args = p.parse_args(argv)

    sizes = (args.baseline, args.runs)
    rounds: list[tuple[list[Result], list[Result]]] = []
    for _ in range(args.rounds):  # interleaved, so a slow phase of the machine hits both operators
        results = [measure(n, args.workers, args.timeout, args.concurrency) for n in sizes]
        floors = [measure(n, args.workers, args.timeout, args.concurrency, floor=True) for n in sizes]
        rounds.append((results, floors))
    print(
        f"{'runs':>6} {'p50 s':>8} {'p99 s':>8} {'max s':>8} {'span s':>8} {'reconciles':>10} {'rec/s':>8} "
        f"{'op cpu ms/run':>13} {'api cpu ms/run':>14} {'op RSS MiB':>10} {'missing':>7}"
    )
    for k, (results, floors) in enumerate(rounds, 1):
        for r in results + floors:
            if r is results[0] and len(rounds) > 1:
                print(f"round {k} of {len(rounds)}: purpcode-operator")
            if r is floors[0]:
                print("floor operator (bench/floor_operator.py: one adopted Job per run, kopf defaults):")
            print(
                f"{r.runs:>6} {r.p50:>8.3f} {r.p99:>8.3f} {r.worst:>8.3f} {r.span:>8.2f} {r.reconciles:>10.0f} "
                f"{r.rate:>8.1f} {r.cpu_per_run_ms:>13.1f} {r.api_cpu_per_run_ms:>14.1f} {r.rss_mib:>10.1f} "
                f"{r.missing:>7}"
            )
    base = _median_result([results[0] for results, _ in rounds])
    big = _median_result([results[1] for results, _ in rounds])
    print(
        f"ratio {big.runs}/{base.runs} runs (x{big.runs / base.runs:.0f}, medians over rounds): "
        f"p50 x{big.p50 / base.p50:.2f}, p99 x{big.p99 / base.p99:.2f}, span x{big.span / base.span:.2f}, "
        f"cpu/run x{big.cpu_per_run_ms / base.cpu_per_run_ms:.2f}, RSS x{big.rss_mib / base.rss_mib:.2f}"
    )
    missing = max(results[1].missing for results, _ in rounds)
    goal_p99 = "met" if big.p99 < 1.0 and not missing else "NOT met"
    goal_rss = "met" if big.rss_mib < 300 else "NOT met"
    print(f"goals at {big.runs} runs: p99 < 1 s {goal_p99}; RSS < 300 MiB {goal_rss} ({big.rss_mib:.0f} MiB)")
    if args.json:
        print(
            json.dumps(
                [
                    {"operator": [r.__dict__ for r in ours], "floor": [r.__dict__ for r in fl]}
                    for ours, fl in rounds
                ]
            )
        )
    print(f"apply-to-first-Job p99 at {big.runs} runs (seconds, median over rounds): {big.p99:.3f}")
    per_round = [
        [ours.cpu_per_run_ms / fl.cpu_per_run_ms for ours, fl in zip(results, floors, strict=True)]
        for results, floors in rounds
    ]
    ratios = [statistics.median(r[i] for r in per_round) for i in range(len(sizes))]
    for i, n in enumerate(sizes):
        each = ", ".join(f"{r[i]:.2f}" for r in per_round)
        print(f"operator CPU per run / floor's at {n} runs, per round: {each}")
    for n, ratio in zip(sizes, ratios[:-1], strict=False):
        print(f"operator CPU per run / floor's at {n} runs (median): {ratio:.2f}")
    verdict = "met" if ratios[-1] <= 1.5 else "NOT met"
    print(
        f"operator CPU per run / floor's (goal <= 1.5, {verdict}; median of {len(rounds)} rounds) "
        f"at {sizes[-1]} runs: {ratios[-1]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
