"""The real operator as a child process (`purpcode-operator`), pointed at a fake cluster through KUBECONFIG.

Tests start it, SIGKILL it at any moment, start it again, and scrape its /metrics, exactly as a cluster would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Short timings so scenarios run in seconds (the same knobs the Helm chart sets for production values).
FAST_ENV = {
    "PURPCODE_RETRY_BACKOFF_SECONDS": "0.2",
    "PURPCODE_RETRY_BACKOFF_MAX_SECONDS": "1",
    "PURPCODE_RESYNC_SECONDS": "30",
    "PURPCODE_WORKERS": "8",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def operator_command() -> list[str]:
    exe = shutil.which("purpcode-operator", path=os.path.dirname(sys.executable)) or shutil.which(
        "purpcode-operator"
    )
    return [exe] if exe else [sys.executable, "-m", "purpcode_operator"]


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        log_dir: Path,
        *,
        namespace: str = "default",
        env: dict[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_dir = Path(log_dir)
        self.namespace = namespace
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, *, wait_ready: bool = True) -> OperatorProcess:
        env = dict(os.environ)
        env.update(FAST_ENV)
        env.update(self.extra_env)
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            PURPCODE_METRICS_PORT=str(self.port),
            PURPCODE_METRICS_HOST="127.0.0.1",
            PYTHONUNBUFFERED="1",
        )
        self.starts += 1
        log = open(self.log_dir / f"operator-{self.starts}.log", "wb")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                *operator_command(),
                *(["--namespace", self.namespace] if self.namespace else ["--all-namespaces"]),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"the operator exited with {self.proc.returncode}:\n{self.last_log()[-6000:]}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"the operator was not ready in {timeout}s:\n{self.last_log()[-6000:]}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful shutdown (a crash, an OOM kill, a node loss)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def last_log(self) -> str:
        path = self.log_dir / f"operator-{self.starts}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log")))


def metric_value(text: str, metric: str, /, **labels: str) -> float | None:
    """The value of one series in Prometheus text format (labels must match exactly those given)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None
