"""Sandbox bench: a HumanEval-size check run (a) as a bare `python3` subprocess per check, no isolation, and through
the sandbox service in each isolation mode -- (b) namespaces (bubblewrap jail), (c) restricted (seccomp + Landlock,
run as uid 65534 with user namespaces refused, like a restricted-PSS pod) -- at concurrency 1, 8 and 64, in one run
on the same machine.

Prints executions/s, p50/p99 latency and CPU per execution (the service's whole process tree: service, zygotes,
executions; the bare baseline: its children) per mode and concurrency, then the throughput ratio of each sandbox
mode to (a) per concurrency, and last the smallest of those ratios over modes and concurrencies. Usage (as root,
so both modes can be started):

    python bench/sandbox.py                 # starts its own services on free loopback ports
    python bench/sandbox.py --modes namespaces --levels 1,8,64 --per-level 200
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


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of `pid` and every live descendant, each with its reaped children (utime+stime+cutime+cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        times[int(entry)] = sum(int(x) for x in fields[11:15]) / tick
    total, todo = 0.0, [pid]
    while todo:
        cur = todo.pop()
        total += times.get(cur, 0.0)
        todo.extend(children.get(cur, []))
    return total


def children_cpu_s() -> float:
    t = os.times()
    return t.children_user + t.children_system


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


def _restricted_launch() -> tuple[list[str], dict[str, str]]:
    """The restricted mode as a restricted-PSS pod runs it (the tests' launcher: uid 65534, no capabilities, no
    user namespaces, an interpreter that uid can read)."""
    tests = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests")
    sys.path[:0] = [tests, os.path.join(tests, "sandbox")]
    from sandbox_util import mode_launch

    python, env = mode_launch("restricted", {"PURPCODE_SANDBOX_ISOLATION": "restricted"})
    return python, env


@contextlib.contextmanager
def _service(mode: str, args: list[str]) -> Iterator[tuple[str, int]]:
    port = _free_port()
    log = tempfile.TemporaryFile()
    python, env = [sys.executable], {"PURPCODE_SANDBOX_ISOLATION": mode}
    if mode == "restricted" and os.getuid() == 0:
        python, env = _restricted_launch()
    proc = subprocess.Popen(
        [
            *python,
            "-m",
            "purpcode.sandbox.server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            "0",
            *args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
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
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _default_python() -> str:
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


async def _bench(
    services: dict[str, tuple[str, int]], python: str, levels: list[int], per_level: int
) -> dict[tuple[str, int], dict[str, float]]:
    results: dict[tuple[str, int], dict[str, float]] = {}
    clients = [AsyncSandboxClient(url, max_connections=max(levels)) for url, _ in services.values()]
    modes: dict[str, tuple[Callable[[], Awaitable[None]], Callable[[], float]]] = {
        "a:bare-python3": (bare_runner(python), children_cpu_s)
    }
    for (name, (_, pid)), client, letter in zip(services.items(), clients, "bcd", strict=False):
        modes[f"{letter}:{name}"] = (sandbox_runner(client), lambda pid=pid: tree_cpu_s(pid))
    try:
        for one, _ in modes.values():  # warm every path (page cache, zygote code cache, connections)
            await _drive(8, 4, one)
        for conc in levels:
            n = max(per_level, 3 * conc)
            for mode, (one, cpu) in modes.items():
                cpu0 = cpu()
                wall, lat = await _drive(n, conc, one)
                cpu_ms = (cpu() - cpu0) * 1000 / n
                p50, p99 = _percentile(lat, 0.5), _percentile(lat, 0.99)
                results[(mode, conc)] = {
                    "n": n, "rate": n / wall, "p50": p50 * 1000, "p99": p99 * 1000, "tail": p99 / p50, "cpu": cpu_ms,
                }  # fmt: skip
                r = results[(mode, conc)]
                print(
                    f"{mode:16s} c={conc:<3d} n={n:<5d} {r['rate']:8.1f} exec/s  p50 {r['p50']:7.1f} ms  "
                    f"p99 {r['p99']:7.1f} ms  p99/p50 {r['tail']:.2f}  CPU {cpu_ms:5.1f} ms/exec",
                    flush=True,
                )
    finally:
        for client in clients:
            await client.aclose()
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python", default=_default_python(), help="interpreter for the bare baseline")
    p.add_argument("--levels", default="1,8,64")
    p.add_argument("--modes", default="namespaces,restricted", help="isolation modes to start and measure")
    p.add_argument("--per-level", type=int, default=150)
    p.add_argument(
        "--service-arg", action="append", default=[], help="extra CLI argument for the started service"
    )
    args = p.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    print(f"baseline interpreter: {args.python}; CPUs: {os.cpu_count()}; load average: {os.getloadavg()}")
    wanted = [m for m in args.modes.split(",") if m]
    with contextlib.ExitStack() as stack:
        services: dict[str, tuple[str, int]] = {}
        for mode in wanted:
            url, pid = stack.enter_context(_service(mode, args.service_arg))
            iso = httpx.get(f"{url}/healthz", timeout=10).json().get("isolation") or {}
            print(f"sandbox {mode}: {url}; mode={iso.get('mode')}, namespaces={iso.get('namespaces')}, "
                  f"seccomp={iso.get('seccomp')}, landlock={iso.get('landlock')}, warm={iso.get('warm')}")  # fmt: skip
            services[mode] = (url, pid)
        results = asyncio.run(_bench(services, args.python, levels, args.per_level))
    ratios = []
    for key in sorted({m for m, _ in results if not m.startswith("a:")}):
        for conc in levels:
            ratio = results[(key, conc)]["rate"] / results[("a:bare-python3", conc)]["rate"]
            ratios.append(ratio)
            print(f"ratio {key}/(a) executions/s at concurrency {conc}: {ratio:.2f}")
    print(f"ratio sandbox/(a) executions/s (smallest over modes {args.modes} and concurrency {args.levels}): "
          f"{min(ratios):.2f}")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
