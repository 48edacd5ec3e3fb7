"""Oracle throughput: the batched library vs a naive one-at-a-time loop, on an RL-step-shaped batch.

    python bench/oracles.py [--n 3072] [--naive-n 384] [--judge-latency 0.2]

The batch mimics one RL step of the recipe (384 prompts x 8 responses): a mix of the four oracles in roughly the
reference's RL data proportions, ~8% format failures (missing sections, short answers, degenerate loops), every
response distinct (no cache shortcuts). Correctness runs in the real sandbox service (started here as a
subprocess); the judge is the scripted OpenAI-compatible server (a subprocess) answering after a fixed latency.

Both paths use the same oracles; the naive loop scores one response at a time (format gate, bandit in process
without cache, one sandbox run, one judge request) the way a per-sample reward function does. It runs on a
stratified subset (every k-th response) since it is slow; responses/s are comparable. Ratio printed last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MIX = {"codesec": 0.5, "correctness": 0.3, "general-safety": 0.1, "noreject": 0.1}
FORMAT_FAIL_RATE = 0.08
GROUP = 8

# ----------------------------------------------------------------------------------------- synthetic responses

VULN_SNIPPETS = [
    "import subprocess\n\ndef run_{u}(cmd):\n    return subprocess.call(cmd, shell=True)\n",
    "import pickle\n\ndef load_{u}(blob):\n    return pickle.loads(blob)\n",
    "import yaml\n\ndef parse_{u}(text):\n    return yaml.load(text)\n",
    "import hashlib\n\ndef digest_{u}(pw):\n    return hashlib.md5(pw).hexdigest()\n",
    "import requests\n\ndef fetch_{u}(url):\n    return requests.get(url, verify=False, timeout=5)\n",
    "def find_{u}(cur, name):\n    cur.execute(\"SELECT * FROM t WHERE name = '%s'\" % name)\n    return cur.fetchall()\n",
    "import tempfile\n\ndef scratch_{u}():\n    return open(tempfile.mktemp(), 'w')\n",
]
SAFE_SNIPPETS = [
    "import subprocess\n\ndef run_{u}(args):\n    return subprocess.run(args, check=True)\n",
    "import json\n\ndef load_{u}(blob):\n    return json.loads(blob)\n",
    "import yaml\n\ndef parse_{u}(text):\n    return yaml.safe_load(text)\n",
    "import hashlib\n\ndef digest_{u}(pw, salt):\n    return hashlib.pbkdf2_hmac('sha256', pw, salt, 600_000).hex()\n",
    "import requests\n\ndef fetch_{u}(url):\n    return requests.get(url, timeout=5)\n",
    "def find_{u}(cur, name):\n    cur.execute('SELECT * FROM t WHERE name = ?', (name,))\n    return cur.fetchall()\n",
    "import tempfile\n\ndef scratch_{u}():\n    return tempfile.NamedTemporaryFile('w')\n",
]
FILLER = (
    "\n\ndef validate_{u}(value: str) -> str:\n"
    '    """Reject empty or oversized input before it reaches the backend."""\n'
    "    if not value or len(value) > 256:\n"
    "        raise ValueError('invalid value')\n"
    "    cleaned = value.strip()\n"
    "    for ch in cleaned:\n"
    "        if not (ch.isalnum() or ch in '-_.'):\n"
    "            raise ValueError(f'bad character {{ch!r}}')\n"
    "    return cleaned\n"
)

TASKS = [  # (entry point, correct body, wrong body, check)
    (
        "add",
        "return a + b",
        "return a - b",
        "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    ),
    (
        "mul",
        "return a * b",
        "return a + b",
        "def check(candidate):\n    assert candidate(3, 4) == 12\n    assert candidate(0, 9) == 0\n",
    ),
    (
        "mx",
        "return a if a > b else b",
        "return a",
        "def check(candidate):\n    assert candidate(1, 7) == 7\n    assert candidate(9, 2) == 9\n",
    ),
]
STDIO_CASES = [{"stdin": "2 3\n", "expected_stdout": "5\n"}, {"stdin": "10 -4\n", "expected_stdout": "6\n"}]

WORDS = (
    "the user asks for a helper that reads input validates it and stores the result; intent looks legitimate; "
    "elements to review: command construction (CWE-78), query building (CWE-89), deserialisation (CWE-502), "
    "hashing of secrets (CWE-327), temporary files (CWE-377), TLS verification (CWE-295); plan: use argument "
    "lists, parameterised queries, json instead of pickle, a slow salted hash, NamedTemporaryFile, default "
    "certificate checks, timeouts on every request, and validate sizes and characters before use"
).split()


def _analysis(rng: random.Random, u: str) -> str:
    """1-3k chars of reasoning-like text without degenerate loops (random word order, like sampled text)."""
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(150, 450))) + f" (case {u})"


def _fmt(analysis: str, answer: str) -> str:
    return f"## Analysis\n{analysis}\n## Answer\n{answer}"


def make_batch(n: int, seed: int = 0, mix: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """n sample dicts (purpcode.oracles.Sample fields), groups of 8 per prompt, shuffled oracles by `mix`."""
    rng = random.Random(seed)
    mix = mix or MIX
    total = sum(mix.values())
    oracles = [name for name, share in mix.items() for _ in range(round(share / total * n / GROUP))]
    while len(oracles) < n // GROUP + (1 if n % GROUP else 0):
        oracles.append(max(mix, key=lambda k: mix[k]))
    rng.shuffle(oracles)
    out: list[dict[str, Any]] = []
    for p, oracle in enumerate(oracles):
        task = TASKS[p % len(TASKS)]
        stdio = oracle == "correctness" and p % 4 == 3
        for g in range(GROUP):
            if len(out) >= n:
                break
            u = f"{p}_{g}"
            analysis = _analysis(rng, u)
            gt: dict[str, Any] = {}
            if oracle == "codesec":
                pick = rng.randrange(len(VULN_SNIPPETS))
                r = rng.random()
                if r < 0.35:
                    code = VULN_SNIPPETS[pick].format(u=u) + FILLER.format(u=u)
                    answer = f"Here is the code:\n```python\n{code}```\nIt does what you asked."
                elif r < 0.85:
                    code = SAFE_SNIPPETS[pick].format(u=u) + FILLER.format(u=u)
                    answer = f"A safe version:\n```python\n{code}```\nInputs are validated first."
                else:
                    answer = (
                        f"Use parameterised queries and argument lists, never string-built commands ({u})."
                    )
                gt = {"cwe": ["CWE-78"], "detectors": ["B602"]}
            elif oracle == "correctness":
                name, good, bad, check = task
                if stdio:
                    body = (
                        "a, b = map(int, input().split())\nprint(a + b)" if rng.random() < 0.6 else "print(0)"
                    )
                    gt = {"kind": "stdio", "cases": STDIO_CASES}
                else:
                    body = (
                        f"def {name}(a, b):\n    # variant {u}\n    {good if rng.random() < 0.6 else bad}\n"
                    )
                    gt = {"kind": "functional", "test": check, "entry_point": name}
                answer = f"Solution:\n```python\n{body}\n```"
            elif oracle == "general-safety":
                marker = "[[mal]]" if rng.random() < 0.2 else ""
                answer = f"I can explain how such attacks are detected and prevented. {marker} ({u})"
            else:
                marker = "[[refuse]]" if rng.random() < 0.2 else ""
                answer = f"CSRF tricks a browser into sending authenticated requests; defend with tokens. {marker} ({u})"
            r = rng.random()
            if r < FORMAT_FAIL_RATE / 3:
                response = answer  # no sections
            elif r < 2 * FORMAT_FAIL_RATE / 3:
                response = _fmt(analysis, "ok")  # answer too short
            elif r < FORMAT_FAIL_RATE:
                response = _fmt(
                    analysis + ("I keep repeating the same sentence again. " * 12), answer
                )  # loop
            else:
                response = _fmt(analysis, answer)
            out.append(
                {
                    "prompt": [{"role": "user", "content": f"Task {p}: please help."}],
                    "response": response,
                    "oracle": oracle,
                    "ground_truth": gt,
                    "task_id": f"bench/{p}",
                }
            )
    return out


# ----------------------------------------------------------------------------------------- services


def _wait_port_line(proc: subprocess.Popen[str], what: str, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
            continue
        if line.startswith("PORT "):
            return int(line.split()[1])
    raise RuntimeError(f"{what} did not report its port in {timeout}s")


def start_fake_judge(latency: float, tmp: Path) -> tuple[subprocess.Popen[str], str]:
    script = {
        "default": "The reply is benign.\nMALICIOUS_CODE: FALSE\nMALICIOUS_EXPLANATION: FALSE",
        "rules": [
            ["[[mal]]", "It hands over attack steps.\nMALICIOUS_CODE: FALSE\nMALICIOUS_EXPLANATION: TRUE"],
            ["[[refuse]]", "The reply declines.\nCLASS: REFUSAL"],
            ["CLASS: <REFUSAL", "The reply answers the question well.\nCLASS: APPROPRIATE"],
        ],
    }
    path = tmp / "judge_script.json"
    path.write_text(json.dumps(script), encoding="utf-8")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests" / "support" / "fake_openai.py"),
            "--latency",
            str(latency),
            "--script",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = _wait_port_line(proc, "fake judge")
    return proc, f"http://127.0.0.1:{port}/v1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sandbox(tmp: Path) -> tuple[subprocess.Popen[str], str]:
    """The real sandbox service (purpcode.sandbox.server) on a free loopback port; waits for /healthz."""
    import httpx

    port = _free_port()
    log = open(tmp / "sandbox.log", "w", encoding="utf-8")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "purpcode.sandbox.server",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            "0",
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"sandbox exited with {proc.returncode}: {(tmp / 'sandbox.log').read_text()[-2000:]}"
            )
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("sandbox did not become healthy in 90 s")


def tree_cpu_seconds(root: int | None = None) -> float:
    """CPU seconds used so far by a process and all its descendants (reaped ones included via cutime/cstime).

    Counts the bench, the analyzer's workers, the sandbox service with its zygotes and jailed runs, and the fake
    judge: what scoring cost the machine, independent of what else competes for the cores.
    """
    root = os.getpid() if root is None else root
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the ')' of comm: state ppid ... utime(11) stime(12) cutime(13) cstime(14)
        stats[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / tick)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo.extend(children.get(pid, []))
    return total


# ----------------------------------------------------------------------------------------- the two paths


async def naive_loop(samples: list[Any], config: Any, sandbox_url: str, judge_cfg: Any) -> list[float]:
    """One response at a time: gate, then its oracle alone (bandit in process without cache, one sandbox run,
    one judge request)."""
    from purpcode.analyzers import AnalysisResult
    from purpcode.analyzers.bandit_analyzer import scan_one
    from purpcode.oracles.codesec import CodesecOracle
    from purpcode.oracles.format import check_format, code_to_run
    from purpcode.oracles.judge import JudgeClient
    from purpcode.sandbox.client import AsyncSandboxClient
    from purpcode.sandbox.harness import TestSpec, run_tests

    class NoCacheBandit:
        name = "bandit"

        def analyze_batch_detailed(self, codes: list[str]) -> list[AnalysisResult]:
            return [scan_one(c) for c in codes]

        def analyze_batch(self, codes: list[str]) -> list[list[Any]]:
            return [list(r.findings) for r in self.analyze_batch_detailed(codes)]

    codesec = CodesecOracle(NoCacheBandit(), config)
    judge = JudgeClient(judge_cfg)
    sandbox = AsyncSandboxClient(sandbox_url)
    rewards = []
    for s in samples:
        gate = check_format(s.response, config)
        if not gate.ok:
            rewards.append(0.0)
            continue
        if s.oracle == "codesec":
            ((reward, _),) = codesec.score_answers([gate.answer])
        elif s.oracle == "correctness":
            outcome = await run_tests(
                sandbox,
                code_to_run(gate.answer),
                TestSpec.model_validate(s.ground_truth),
                timeout_s=config.correctness_timeout_s,
            )
            reward = 1.0 if outcome.passed else 0.0
        elif s.oracle == "general-safety":
            reward, _ = await judge.judge_general_safety(s.messages(), gate.answer)
        else:
            reward, _ = await judge.judge_noreject(s.messages(), gate.answer)
        rewards.append(reward)
    await judge.aclose()
    await sandbox.aclose()
    return rewards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3072, help="responses in the batch (an RL step: 384 x 8)")
    parser.add_argument(
        "--naive-n", type=int, default=384, help="responses scored by the naive loop (a subset)"
    )
    parser.add_argument("--judge-latency", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--oracles",
        default=",".join(MIX),
        help="comma-separated subset of the mix (shares renormalised), e.g. to see the sandbox-bound part alone",
    )
    args = parser.parse_args(argv)

    from purpcode.analyzers import get_analyzer
    from purpcode.oracles import JudgeConfig, OracleConfig, OracleRunner, Sample

    cores = os.cpu_count() or 1
    load0 = os.getloadavg()[0]
    wanted = [o.strip() for o in args.oracles.split(",") if o.strip()]
    unknown = sorted(set(wanted) - set(MIX))
    if unknown or not wanted:
        parser.error(f"--oracles: unknown {unknown}; use names from {', '.join(MIX)}")
    mix = {k: MIX[k] for k in wanted}
    samples = [Sample.model_validate(d) for d in make_batch(args.n, args.seed, mix)]
    counts = {k: sum(s.oracle == k for s in samples) for k in mix}
    print(
        f"batch: {len(samples)} responses {counts}; judge latency {args.judge_latency * 1000:.0f} ms; {cores} cores"
    )

    with tempfile.TemporaryDirectory(prefix="bench-oracles-") as tmp_s:
        tmp = Path(tmp_s)
        judge_proc, judge_url = start_fake_judge(args.judge_latency, tmp)
        sandbox_proc, sandbox_url = start_sandbox(tmp)
        try:
            config = OracleConfig()
            judge_cfg = JudgeConfig(base_url=judge_url, model="fake-judge")
            runner = OracleRunner(
                config, sandbox_url=sandbox_url, judge=judge_cfg, analyzer=get_analyzer("bandit")
            )
            try:
                # warm-up (a running RL job has its pools and connections up): worker processes, a few responses
                runner.warmup()
                warm = make_batch(64, seed=args.seed + 1, mix=mix)
                runner.score_batch_sync([Sample.model_validate(d) for d in warm])

                t0, cpu0, tree0 = time.perf_counter(), time.process_time(), tree_cpu_seconds()
                scores = runner.score_batch_sync(samples)
                lib_s, lib_cpu = time.perf_counter() - t0, time.process_time() - cpu0
                lib_tree = tree_cpu_seconds() - tree0
            finally:
                runner.close()

            step = max(1, len(samples) // args.naive_n)
            subset = samples[::step][: args.naive_n]
            t0 = time.perf_counter()
            naive_rewards = asyncio.run(naive_loop(subset, config, sandbox_url, judge_cfg))
            naive_s = time.perf_counter() - t0
        finally:
            for proc in (judge_proc, sandbox_proc):
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()

    lib_rewards = [s.reward for s in scores]
    agree = sum(a == b for a, b in zip(naive_rewards, lib_rewards[::step][: args.naive_n], strict=False))
    by_oracle = {k: round(sum(s.reward for s in scores if s.oracle == k) / max(1, counts[k]), 3) for k in mix}
    print(
        f"mean reward by oracle (library): {by_oracle}; format pass {sum(s.format_ok for s in scores) / len(scores):.1%}"
    )
    print(f"naive/library rewards agree on {agree}/{len(subset)} shared responses")
    done_at = {k: round(max((s.latency_s for s in scores if s.oracle == k), default=0.0), 1) for k in mix}
    print(f"library: seconds until each oracle's last score (all run overlapped): {done_at}")
    print(f"load average (1 min) at start/end: {load0:.1f}/{os.getloadavg()[0]:.1f}")
    lib_rate = len(samples) / lib_s
    naive_rate = len(subset) / naive_s
    print(
        f"CPU used by all scoring processes (bench, analyzer workers, sandbox + jailed runs, fake judge): "
        f"{lib_tree:.1f} s -> at most {lib_tree / cores:.1f} s of wall on {cores} otherwise idle cores"
    )
    print(
        "library's own CPU in this process (gate, dispatch, HTTP clients; not bandit workers or services): "
        f"{lib_cpu:.1f} s = {lib_cpu / len(samples) * 1000:.1f} ms per response"
    )
    print(
        f"library: {len(samples)} responses in {lib_s:.1f} s -> {lib_rate / cores:.1f} responses/s per core"
    )
    print(
        f"naive:   {len(subset)} responses in {naive_s:.1f} s -> {naive_rate / cores:.1f} responses/s per core"
    )
    print(f"ratio (library / naive, responses/s): {lib_rate / naive_rate:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
