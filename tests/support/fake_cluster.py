"""A fake cluster for tests and the bench: the emulator served over HTTP from a background thread.

The emulator (and the job simulator) live in their own event loop in a daemon thread so synchronous test code and
a separate operator process can both talk to it; `call()` runs a function inside that loop and returns its result,
which keeps every read of the store consistent with the writes. `kubeconfig` points a real client (kopf, kubectl,
the operator) at it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import kmock

from .job_simulator import JOBS, PODS, JobSimulator, Script
from .kube_emulator import Faults, KubeEmulator, Obj, Resource

T = TypeVar("T")

RUNS = Resource("purpcode.dev", "v1alpha1", "purpcoderuns")
EVENTS = Resource("", "v1", "events")
CONFIGMAPS = Resource("", "v1", "configmaps")
SERVICES = Resource("", "v1", "services")
PVCS = Resource("", "v1", "persistentvolumeclaims")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
NETPOLS = Resource("networking.k8s.io", "v1", "networkpolicies")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACES = Resource("", "v1", "namespaces")


def _crd_body() -> Obj:
    from purpcode_operator.crd import build_crd

    return build_crd()


def foreign_claim(name: str) -> Obj:
    """A volume claim no run owns: created under a run's artifacts claim name, it makes that run's creates fail
    (409 "belongs to another object") until it is deleted (name-clash scenarios)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


# The integration suite's namespace: the strictest Pod Security level; a test asks for another with pod_security=.
DEFAULT_POD_SECURITY = "restricted"


class FakeCluster:
    """Start with `with FakeCluster(tmp_path) as cluster:`; `cluster.kubeconfig` is ready to use.

    Like a real cluster: opaque resourceVersions, a bounded watch history (410 Gone beyond it), Pod Security
    admission on the `default` namespace (`pod_security`), a server version (`server_version`), and optional
    injected faults (`faults`).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        simulate: bool = True,
        script: Script | None = None,
        pod_security: str | None = DEFAULT_POD_SECURITY,
        server_version: tuple[int, int] = (1, 33),
        faults: Faults | None = None,
        history_seconds: float | None = 120.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.simulate = simulate
        self.script = script
        self.pod_security = pod_security
        self.server_version = server_version
        self.faults = faults
        self.history_seconds = history_seconds
        self.emulator: KubeEmulator
        self.simulator: JobSimulator | None = None
        self.url = ""
        self.kubeconfig = self.workdir / "kubeconfig.json"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    # ----------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> FakeCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="fake-cluster", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the fake cluster did not start in 30 s")
        if self._error is not None:
            raise RuntimeError("the fake cluster failed to start") from self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as err:  # surfaced to start() through _error
            self._error = err
            self._ready.set()
            raise

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        emulator = KubeEmulator(
            server_version=self.server_version,
            opaque_rv=True,
            history_seconds=self.history_seconds,
            faults=self.faults,
        )
        emulator.resources.load_bundled()
        emulator.declare(
            RUNS, kind="PurpCodeRun", singular="purpcoderun", shortnames=["pcr"], categories=["purpcode"]
        )
        self.emulator = emulator
        async with emulator, kmock.Server(emulator) as server:
            self.url = f"http://{server.host}:{server.port}"
            labels = {"pod-security.kubernetes.io/enforce": self.pod_security} if self.pod_security else {}
            emulator.create(NAMESPACES, None, {"metadata": {"name": "default", "labels": labels}})
            emulator.create(CRDS, None, _crd_body())
            if self.simulate:
                self.simulator = JobSimulator(emulator, self.script, api_url=self.url)
            self._write_kubeconfig()
            self._ready.set()
            await self._stop.wait()
            if self.simulator is not None:
                await self.simulator.aclose()

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}
            ],
            "current-context": "fake",
        }
        tmp = self.kubeconfig.with_suffix(".tmp")
        tmp.write_text(json.dumps(config))
        os.replace(tmp, self.kubeconfig)

    # ----------------------------------------------------------------------------- calls into the loop

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` inside the emulator's loop (consistent with its writes)."""
        assert self._loop is not None
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as err:  # noqa: BLE001 - handed to the caller's thread, re-raised there
                future.set_exception(err)

        self._loop.call_soon_threadsafe(run)
        return future.result(30)

    # ----------------------------------------------------------------------------- conveniences

    def create_run(self, doc: Obj, namespace: str = "default") -> Obj:
        return self.call(self.emulator.create, RUNS, namespace, doc)

    def get_run(self, name: str, namespace: str = "default") -> Obj | None:
        return self.call(self.emulator.get, RUNS, namespace, name)

    def patch_run(self, name: str, patch: Obj, namespace: str = "default") -> Obj:
        return self.call(self.emulator.patch, RUNS, namespace, name, patch)

    def delete_run(self, name: str, namespace: str = "default", propagation: str = "Background") -> Obj:
        return self.call(self.emulator.delete, RUNS, namespace, name, propagation=propagation)

    def objects(
        self, res: Resource, namespace: str | None = "default", labels: str | None = None
    ) -> list[Obj]:
        return self.call(self.emulator.list, res, namespace, labels)

    def jobs(self, run: str | None = None) -> list[Obj]:
        return self.objects(JOBS, labels=f"purpcode.dev/run={run}" if run else None)

    def pods(self, labels: str | None = None) -> list[Obj]:
        return self.objects(PODS, labels=labels)

    def events(self, run: str | None = None) -> list[Obj]:
        evs = self.objects(EVENTS)
        if run is not None:
            evs = [e for e in evs if e.get("involvedObject", {}).get("name") == run]
        return evs

    def job_creates(self) -> list[Any]:
        return self.call(lambda: [c for c in self.emulator.creates if c.resource == "batch/v1/jobs"])

    def wait_for(
        self,
        predicate: Callable[[], T],
        *,
        timeout: float = 30.0,
        interval: float = 0.05,
        what: str = "condition",
    ) -> T:
        """Poll `predicate` until it returns something truthy (tests only: product code never polls)."""
        deadline = time.monotonic() + timeout
        last: T | None = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; last value: {last!r}")

    def wait_phase(self, name: str, phase: str, *, timeout: float = 30.0, namespace: str = "default") -> Obj:
        def check() -> Obj | None:
            run = self.get_run(name, namespace)
            if run is not None and run.get("status", {}).get("phase") == phase:
                return run
            return None

        try:
            return self.wait_for(check, timeout=timeout, what=f"run {name} phase {phase}")
        except TimeoutError as err:
            run = self.get_run(name, namespace)
            raise TimeoutError(f"{err}; status: {json.dumps((run or {}).get('status'), indent=1)}") from None
