"""Operator scale bench: N PurpCodeRuns created at once against the fake API; how fast does each get its first Job?

    python bench/operator.py                 # 50-run baseline, then 500 runs (each with a fresh operator + API)
    python bench/operator.py --runs 200 --baseline 20

For each size: a fresh in-process fake API (kmock emulator, no job simulator: Jobs stay created), a fresh
`purpcode-operator` process, then all runs POSTed concurrently over HTTP (like `kubectl apply -f dir/`).
Apply-to-first-Job latency per run = the API's own create time of the run's first Job minus that of the run.
Reports p50/p99/max latency, the reconcile rate (controller_runtime_reconcile_total over the time until the last
first Job; deferred status writes that ran by then count too, see docs/operator.md "Architecture"), CPU per run of the operator and of this process (the fake API and the creating client: in a real
cluster that work is the API server's), the operator's peak RSS, and the ratios 500 vs 50 (how cost grows).
Goal (issue 8): p99 < 1 s and RSS < 300 MiB at 500 runs. The last line ends with the 500-run p99 in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.fake_cluster import FakeCluster  # noqa: E402
from support.operator_process import OperatorProcess, metric_value  # noqa: E402
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


def reconciles_done(metrics: str) -> float:
    """Finished reconciles, whatever their result (a reconcile that schedules a timer ends as requeue_after)."""
    return sum(
        metric_value(metrics, "controller_runtime_reconcile_total", controller="purpcoderun", result=r) or 0.0
        for r in ("success", "requeue_after", "error")
    )


def measure(n: int, workers: int, timeout: float, concurrency: int) -> Result:
    with (
        tempfile.TemporaryDirectory(prefix="purpcode-bench-") as tmp,
        FakeCluster(Path(tmp), simulate=False) as cluster,
    ):
        op = OperatorProcess(cluster.kubeconfig, Path(tmp), env={"PURPCODE_WORKERS": str(workers)})
        op.start()
        try:
            before = reconciles_done(op.metrics())
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
            cpu = sum(proc.cpu_times()[:2]) - cpu_before
            api_cpu = sum(me.cpu_times()[:2]) - api_cpu_before
            sampler.stop.set()
            sampler.join()
            after = reconciles_done(op.metrics())
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
    args = p.parse_args(argv)

    results = [measure(n, args.workers, args.timeout, args.concurrency) for n in (args.baseline, args.runs)]
    print(
        f"{'runs':>6} {'p50 s':>8} {'p99 s':>8} {'max s':>8} {'span s':>8} {'reconciles':>10} {'rec/s':>8} "
        f"{'op cpu ms/run':>13} {'api cpu ms/run':>14} {'op RSS MiB':>10} {'missing':>7}"
    )
    for r in results:
        print(
            f"{r.runs:>6} {r.p50:>8.3f} {r.p99:>8.3f} {r.worst:>8.3f} {r.span:>8.2f} {r.reconciles:>10.0f} "
            f"{r.rate:>8.1f} {r.cpu_per_run_ms:>13.1f} {r.api_cpu_per_run_ms:>14.1f} {r.rss_mib:>10.1f} "
            f"{r.missing:>7}"
        )
    base, big = results
    print(
        f"ratio {big.runs}/{base.runs} runs (x{big.runs / base.runs:.0f}): p50 x{big.p50 / base.p50:.2f}, "
        f"p99 x{big.p99 / base.p99:.2f}, span x{big.span / base.span:.2f}, "
        f"cpu/run x{big.cpu_per_run_ms / base.cpu_per_run_ms:.2f}, RSS x{big.rss_mib / base.rss_mib:.2f}"
    )
    goal_p99 = "met" if big.p99 < 1.0 and not big.missing else "NOT met"
    goal_rss = "met" if big.rss_mib < 300 else "NOT met"
    print(f"goals at {big.runs} runs: p99 < 1 s {goal_p99}; RSS < 300 MiB {goal_rss} ({big.rss_mib:.0f} MiB)")
    if args.json:
        print(json.dumps([r.__dict__ for r in results]))
    print(f"apply-to-first-Job p99 at {big.runs} runs (seconds): {big.p99:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
