"""Sandbox bench: a HumanEval-size check run (a) as a bare `python3` subprocess per check, no isolation, and (b)
through the sandbox service (full isolation), at concurrency 1, 8 and 64, in one run on the same machine.

Prints executions/s and p50/p99 latency per mode and concurrency, then the throughput ratio (b)/(a) per
concurrency, and last the smallest of those ratios. Usage:

    python bench/sandbox.py                 # starts its own service on a free loopback port
    python bench/sandbox.py --url http://127.0.0.1:8080 --levels 1,8,64 --per-level 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx

from purpcode.sandbox.client import AsyncSandboxClient
from purpcode.sandbox.models import RunCodeRequest, RunStatus

# A HumanEval-size check: one function plus 10 asserts (HumanEval/0-style).
CHECK = '''
from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """Check if in given list of numbers, are any two numbers closer to each other than given threshold."""
    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                distance = abs(elem - elem2)
                if distance < threshold:
                    return True
    return False


def check(candidate):
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False
    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True
    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.8) == False
    assert candidate([1.0, 2.0, 3.0, 4.0, 5.0, 2.0], 0.1) == True
    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 1.0) == True
    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 0.5) == False
    assert candidate([], 0.5) == False
    assert candidate([1.0], 0.5) == False
    assert candidate([1.0, 1.0], 0.0) == False


check(has_close_elements)
'''


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


async def _drive(n: int, concurrency: int, one: Callable[[], Awaitable[None]]) -> tuple[float, list[float]]:
    """Run `one` n times with at most `concurrency` in flight; returns (wall seconds, latencies)."""
    latencies: list[float] = []
    it = iter(range(n))

    async def worker() -> None:
        for _ in it:
            t0 = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies


def bare_runner(python: str) -> Callable[[], Awaitable[None]]:
    async def one() -> None:
        proc = await asyncio.create_subprocess_exec(
            python, "-c", CHECK, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"bare check failed: {err.decode()[-500:]}")

    return one


def sandbox_runner(client: AsyncSandboxClient) -> Callable[[], Awaitable[None]]:
    req = RunCodeRequest(code=CHECK, language="python", run_timeout=30)

    async def one() -> None:
        resp = await client.run_code(req)
        if resp.status != RunStatus.Success:
            raise RuntimeError(f"sandbox check failed: {resp.model_dump_json()[:800]}")

    return one


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _service(args: list[str]) -> Iterator[str]:
    port = _free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "purpcode.sandbox.server", "--host", "127.0.0.1", "--port", str(port), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"service exited: {log.read().decode()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("service did not become healthy in 120 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _default_python() -> str:
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


async def _bench(
    url: str, python: str, levels: list[int], per_level: int
) -> dict[tuple[str, int], dict[str, float]]:
    results: dict[tuple[str, int], dict[str, float]] = {}
    client = AsyncSandboxClient(url, max_connections=max(levels))
    modes = {"a:bare-python3": bare_runner(python), "b:sandbox": sandbox_runner(client)}
    try:
        for one in modes.values():  # warm both paths (page cache, zygote code cache, connections)
            await _drive(8, 4, one)
        for conc in levels:
            n = max(per_level, 3 * conc)
            for mode, one in modes.items():
                wall, lat = await _drive(n, conc, one)
                p50, p99 = _percentile(lat, 0.5), _percentile(lat, 0.99)
                results[(mode, conc)] = {
                    "n": n, "rate": n / wall, "p50": p50 * 1000, "p99": p99 * 1000, "tail": p99 / p50,
                }  # fmt: skip
                r = results[(mode, conc)]
                print(
                    f"{mode:16s} c={conc:<3d} n={n:<5d} {r['rate']:8.1f} exec/s  p50 {r['p50']:7.1f} ms  "
                    f"p99 {r['p99']:7.1f} ms  p99/p50 {r['tail']:.2f}",
                    flush=True,
                )
    finally:
        await client.aclose()
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="an already running sandbox service (default: start one)")
    p.add_argument("--python", default=_default_python(), help="interpreter for the bare baseline")
    p.add_argument("--levels", default="1,8,64")
    p.add_argument("--per-level", type=int, default=150)
    p.add_argument(
        "--service-arg", action="append", default=[], help="extra CLI argument for the started service"
    )
    args = p.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    print(f"baseline interpreter: {args.python}; CPUs: {os.cpu_count()}; load average: {os.getloadavg()}")
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(_service(args.service_arg))
        health = httpx.get(f"{url}/healthz", timeout=10).json()
        iso = health.get("isolation") or {}
        print(f"sandbox: {url}; isolation: {iso.get('namespaces')}, seccomp={iso.get('seccomp')}, "
              f"cgroups={iso.get('cgroups', {}).get('version')}, warm={iso.get('warm')}")  # fmt: skip
        results = asyncio.run(_bench(url, args.python, levels, args.per_level))
    ratios = []
    for conc in levels:
        ratio = results[("b:sandbox", conc)]["rate"] / results[("a:bare-python3", conc)]["rate"]
        ratios.append(ratio)
        print(f"ratio (b)/(a) executions/s at concurrency {conc}: {ratio:.2f}")
    print(f"ratio (b)/(a) executions/s (smallest over concurrency {args.levels}): {min(ratios):.2f}")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
