"""The run's services as local subprocesses: the sandbox and the judge, each on a free loopback port.

Each service runs in its own session (process group), so stopping it stops everything it spawned (uvicorn workers,
the sandbox's fork-servers, vLLM's engine processes) and a Ctrl-C in the terminal reaches only the runner, which
then stops the services in order. A service also dies with the process that started it (`owned.die_with_parent`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from purpcode.runner.owned import die_with_parent

LOG = logging.getLogger("purpcode.runner")
SANDBOX_START_TIMEOUT_S = 120.0
JUDGE_START_TIMEOUT_S = 900.0  # vLLM loading a large judge takes minutes; the tiny CPU judge seconds


class ServiceError(RuntimeError):
    """A service did not start (exited, or not healthy before its deadline); the message holds its log tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, chars: int = 3000) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - chars))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def stop_process_group(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> int | None:
    """SIGTERM the process's group, wait `grace_s`, then SIGKILL what is left; returns the exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            LOG.warning("pid %d ignored SIGTERM for %.0fs: killing its process group", proc.pid, grace_s)
    # Children the leader left behind (or the leader itself) get SIGKILL; the group is gone after this.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    return proc.returncode


@dataclass
class Service:
    """One service process: how to start it, where it answers, where it logs."""

    name: str
    argv: list[str]
    url: str
    health_url: str
    log_path: Path
    start_timeout_s: float
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        LOG.info("%s: started pid %d at %s (log %s)", self.name, self.proc.pid, self.url, self.log_path)

    def wait_ready(self) -> None:
        """Poll the health URL until 200; raise ServiceError when the process exits or the deadline passes."""
        import httpx

        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + self.start_timeout_s
        with httpx.Client(timeout=2.0) as http:
            while True:
                if self.proc.poll() is not None:
                    raise ServiceError(
                        f"{self.name} exited with status {self.proc.returncode} while starting "
                        f"(log {self.log_path}):\n{log_tail(self.log_path)}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(self.health_url).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise ServiceError(
                        f"{self.name} not healthy at {self.health_url} after {self.start_timeout_s:.0f}s "
                        f"(log {self.log_path}):\n{log_tail(self.log_path)}"
                    )
                time.sleep(0.25)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            LOG.info("%s: stopped", self.name)


def sandbox_service(logs: Path, concurrency: int = 0) -> Service:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "purpcode.sandbox.server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--metrics-port",
        str(free_port()),
        "--log-level",
        "warning",
    ]
    if concurrency:
        argv += ["--max-concurrency", str(concurrency)]
    url = f"http://127.0.0.1:{port}"
    return Service("sandbox", argv, url, f"{url}/healthz", logs / "sandbox.log", SANDBOX_START_TIMEOUT_S)


def gpu_vllm_available() -> bool:
    """A GPU and vLLM both present (torch is imported only when vLLM is installed)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def judge_service(
    *,
    model: str,
    served_name: str,
    logs: Path,
    cache_dir: Path,
    max_model_len: int,
    tensor_parallel_size: int = 1,
    backend: str = "auto",
    threads: int | None = None,
) -> Service:
    """The judge: `vllm serve` with a GPU and vLLM (backend auto/vllm), else the project's transformers server.

    `model` is a hub id, a local directory or 'tiny-random' (built into `cache_dir`; vLLM gets the built directory).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    use_vllm = backend == "vllm" or (backend == "auto" and gpu_vllm_available())
    if use_vllm:
        from purpcode.judge_server.engine import resolve_model

        path = resolve_model(model, cache_dir)
        # The module entry point rather than the `vllm` script: works whether or not the venv's bin/ is on PATH.
        argv = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            path,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--served-model-name",
            served_name,
            "--max-model-len",
            str(max_model_len),
            "--tensor-parallel-size",
            str(tensor_parallel_size),
        ]
        return Service(
            "judge (vLLM)", argv, f"{url}/v1", f"{url}/health", logs / "judge.log", JUDGE_START_TIMEOUT_S
        )
    argv = [
        sys.executable,
        "-m",
        "purpcode.judge_server",
        "--model",
        model,
        "--served-model-name",
        served_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--cache-dir",
        str(cache_dir),
        "--max-model-len",
        str(max_model_len),
        "--truncate-long-prompts",
    ]
    if threads:
        argv += ["--threads", str(threads)]
    return Service("judge", argv, f"{url}/v1", f"{url}/health", logs / "judge.log", JUDGE_START_TIMEOUT_S)
