"""The sandbox HTTP service: `POST /run_code` (SandboxFusion-compatible) and `GET /healthz` on the API port,
`GET /metrics` on a separate metrics port (a NetworkPolicy can then admit the scraper without admitting it to
/run_code).

Admission control: at most `concurrency` executions start or compute at once (CPU slots, held for `cpu_slot_s`
at most, so sleeping programs do not block the others), at most `running` are alive, at most `queue_size`
requests wait; beyond that the service answers 504 with Retry-After at once (the status SandboxFusion clients such
as verl's retry) instead of queueing without bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import ValidationError

from purpcode.sandbox.executor import RequestRejected, Sandbox
from purpcode.sandbox.jail import JailError
from purpcode.sandbox.models import RunCodeRequest
from purpcode.sandbox.settings import SandboxSettings

LOG = logging.getLogger("purpcode.sandbox")
DEFAULT_PORT = 8080
DEFAULT_METRICS_PORT = 9400
METRICS_PORT_ENV = "PURPCODE_SANDBOX_METRICS_PORT"
METRICS_HOST_ENV = "PURPCODE_SANDBOX_METRICS_HOST"
SETTINGS_ENV = "PURPCODE_SANDBOX_SETTINGS_JSON"
_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

__all__ = ["SandboxSettings", "create_app", "main", "serve"]


class SandboxMetrics:
    """Prometheus series of the service (names prefixed `purpcode_sandbox_`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.executions = Counter(
            "purpcode_sandbox_executions",
            "Executions by language and outcome (success, failed, timeout, output_limit, sandbox_error).",
            ["language", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "purpcode_sandbox_request_seconds",
            "Time from request to response of /run_code, queueing included.",
            ["language"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.run_seconds = Histogram(
            "purpcode_sandbox_run_seconds", "Wall time of the program itself.", ["language"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge("purpcode_sandbox_in_flight", "Executions running now.", registry=r)
        self.queued = Gauge(
            "purpcode_sandbox_queue_length", "Requests waiting for an execution slot.", registry=r
        )
        self.timeouts = Counter(
            "purpcode_sandbox_timeouts", "Executions killed at their wall-time limit.", registry=r
        )
        self.rejections = Counter(
            "purpcode_sandbox_rejections",
            "Requests refused: overload (504), payload_too_large (413), invalid (4xx).",
            ["reason"],
            registry=r,
        )
        self.zygotes = Gauge("purpcode_sandbox_zygotes_alive", "Warm fork-servers running.", registry=r)
        self.isolation = Gauge(
            "purpcode_sandbox_isolation_info",
            "1 for the isolation mode in use (namespaces | restricted) and the one asked for (auto | ...).",
            ["mode", "requested"],
            registry=r,
        )
        self.zygote_restarts = Gauge(
            "purpcode_sandbox_zygote_restarts", "Zygotes restarted since start.", registry=r
        )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _validation_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"]) or "body"
        parts.append(f"{loc}: {e['msg']}")
    return "invalid request: " + "; ".join(parts)


async def _disconnected(request: Request) -> None:
    """Return once the client has closed the connection (the body is read: the server's receive() then waits)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _give_back(waiter: asyncio.Future[Any], sem: asyncio.Semaphore) -> None:
    if not waiter.done():
        waiter.cancel()  # Semaphore.acquire is cancellation-safe: a wake-up it got passes to the next waiter
    elif not waiter.cancelled() and waiter.exception() is None:
        sem.release()


async def acquire_while_connected(request: Request, sem: asyncio.Semaphore) -> bool:
    """Wait for a slot of `sem`; False (nothing held) once the client has gone. A queued check whose client gave up
    (verl's read timeout) would otherwise still run later and delay every check queued behind it."""
    if not sem.locked():
        await sem.acquire()
        return True
    waiter = asyncio.ensure_future(sem.acquire())
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        _give_back(waiter, sem)
        raise
    finally:
        gone.cancel()
    if gone.done() and not gone.cancelled():
        gone.exception()  # retrieved: a failed receive() also means the client is gone
        _give_back(waiter, sem)
        return False
    return True


def create_app(
    settings: SandboxSettings,
    *,
    metrics_port: int | None = None,
    metrics_host: str = "0.0.0.0",
    reuse_metrics_port: bool = False,
) -> FastAPI:
    """The FastAPI app; the zygotes start in its lifespan (so importing this costs nothing). With `metrics_port`
    the lifespan also serves /metrics there (the API app itself has no /metrics)."""
    metrics = SandboxMetrics()
    sandbox = Sandbox(settings)
    state: dict[str, Any] = {"waiting": 0, "running": 0, "ready": False, "error": None}
    pod = os.environ.get("MY_POD_NAME") or os.environ.get("HOSTNAME")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["cpu"] = asyncio.Semaphore(settings.concurrency)
        state["run"] = asyncio.Semaphore(settings.running)
        try:
            await sandbox.start()
        except JailError as err:
            LOG.error("sandbox failed to start: %s", err)
            raise
        side = None
        if metrics_port:
            side = _SideServer(
                metrics_app(metrics, sandbox), metrics_host, metrics_port, reuse_port=reuse_metrics_port
            )
            try:
                await side.start()
            except BaseException:
                await sandbox.stop()
                raise
        state["ready"] = True
        metrics.zygotes.set(sandbox.alive)
        metrics.isolation.labels(sandbox.mode, settings.isolation).set(1)
        # Everything loaded so far lives as long as the service: keep it out of every later GC pass.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            state["ready"] = False
            if side is not None:
                await side.stop()
            await sandbox.stop()

    app = FastAPI(title="purpcode sandbox", lifespan=lifespan)
    app.state.sandbox = sandbox
    app.state.metrics = metrics

    async def read_body(request: Request) -> bytes | JSONResponse:
        limit = settings.max_payload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            metrics.rejections.labels("payload_too_large").inc()
            return _error(413, f"request body of {declared} bytes exceeds max_payload_bytes={limit}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                metrics.rejections.labels("payload_too_large").inc()
                return _error(413, f"request body exceeds max_payload_bytes={limit}")
        return bytes(body)

    @app.post("/run_code")
    async def run_code(request: Request) -> Response:
        started = time.perf_counter()
        body = await read_body(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            req = RunCodeRequest.model_validate_json(body)
        except ValidationError as err:
            metrics.rejections.labels("invalid").inc()
            return _error(422, _validation_message(err))
        cpu_sem: asyncio.Semaphore = state["cpu"]
        run_sem: asyncio.Semaphore = state["run"]
        if (cpu_sem.locked() or run_sem.locked()) and state["waiting"] >= settings.queue_size:
            metrics.rejections.labels("overload").inc()
            return _error(
                504,
                f"overloaded: {state['running']} executions running and {state['waiting']} queued; retry",
                headers={"Retry-After": "1"},
            )
        state["waiting"] += 1
        metrics.queued.inc()
        try:
            if not await acquire_while_connected(request, run_sem):
                metrics.rejections.labels("client_gone").inc()
                return _error(499, "the client went away while the request was queued; not run")
            try:
                admitted = await acquire_while_connected(request, cpu_sem)
            except BaseException:
                run_sem.release()
                raise
            if not admitted:
                run_sem.release()
                metrics.rejections.labels("client_gone").inc()
                return _error(499, "the client went away while the request was queued; not run")
        finally:
            state["waiting"] -= 1
            metrics.queued.dec()
        metrics.in_flight.inc()
        state["running"] += 1
        try:
            task = asyncio.ensure_future(sandbox.execute(req))
            try:
                # The CPU slot is held while the execution starts and for cpu_slot_s at most: a program that
                # sleeps or blocks until its deadline must not keep the next checks waiting.
                await asyncio.wait({task}, timeout=settings.cpu_slot_s)
            except asyncio.CancelledError:
                task.cancel()
                raise
            finally:
                cpu_sem.release()
            outcome = await task
        except RequestRejected as err:
            metrics.rejections.labels("invalid").inc()
            return _error(422, str(err))
        finally:
            run_sem.release()
            state["running"] -= 1
            metrics.in_flight.dec()
        outcome.response.executor_pod_name = pod
        metrics.executions.labels(req.language, outcome.label).inc()
        if outcome.label == "timeout":
            metrics.timeouts.inc()
        run = outcome.response.run_result
        if run is not None and run.execution_time is not None:
            metrics.run_seconds.labels(req.language).observe(run.execution_time)
        metrics.latency.labels(req.language).observe(time.perf_counter() - started)
        return Response(outcome.response.model_dump_json(), media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        alive = sandbox.alive
        metrics.zygotes.set(alive)
        metrics.zygote_restarts.set(sandbox.restarts)
        ok = state["ready"] and alive > 0
        doc = {
            "status": "ok" if ok else "unavailable",
            "zygotes_alive": alive,
            "zygotes": settings.zygotes,
            "in_flight": metrics.in_flight._value.get(),
            "queued": state["waiting"],
            "concurrency": settings.concurrency,
            "running": settings.running,
            "queue_size": settings.queue_size,
            "isolation_mode": sandbox.mode or None,
            "isolation": sandbox.isolation_report() if state["ready"] else None,
        }
        return JSONResponse(doc, status_code=200 if ok else 503)

    return app


def metrics_app(metrics: SandboxMetrics, sandbox: Sandbox) -> FastAPI:
    """The metrics listener's app: `GET /metrics` only (no /run_code: scrapers must not be able to run code)."""
    app = FastAPI(title="purpcode sandbox metrics", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        metrics.zygotes.set(sandbox.alive)
        metrics.zygote_restarts.set(sandbox.restarts)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


class _SideServer:
    """A second uvicorn listener in the service's own event loop. The main server owns the signals: this one
    only stops when the main app's lifespan ends."""

    def __init__(self, app: FastAPI, host: str, port: int, *, reuse_port: bool) -> None:
        import uvicorn

        class _Quiet(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:  # the main server's handlers stay in place
                yield

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # uvicorn workers: each binds the same metrics port (the kernel picks one per scrape)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            sock.close()
            raise OSError(f"sandbox metrics port {host}:{port}: {err.strerror} (--metrics-port)") from err
        sock.set_inheritable(False)
        self.socket = sock
        # log_config=None: keep the logging the main server set up (a Config would reconfigure it).
        config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
        self.server = _Quiet(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.socket]))
        while not self.server.started:
            if self.task.done():
                self.task.result()  # raises what stopped it
                raise RuntimeError("sandbox metrics listener stopped during start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
        self.socket.close()


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` and multi-worker mode: settings come as JSON in the environment."""
    if not logging.getLogger().handlers:  # a uvicorn worker process: log like the parent
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raw = os.environ.get(SETTINGS_ENV)
    settings = SandboxSettings.model_validate_json(raw) if raw else SandboxSettings.from_env()
    metrics_port = int(os.environ.get(METRICS_PORT_ENV, "0"))
    host = os.environ.get(METRICS_HOST_ENV, "0.0.0.0")
    return create_app(settings, metrics_port=metrics_port, metrics_host=host, reuse_metrics_port=True)


def serve(
    host: str = "0.0.0.0",
    port: int = DEFAULT_PORT,
    *,
    settings: SandboxSettings | None = None,
    workers: int = 1,
    log_level: str = "info",
    metrics_port: int = DEFAULT_METRICS_PORT,
) -> None:
    """Run the service with uvicorn (uvloop/httptools when installed) until interrupted; /metrics on
    `metrics_port` of the same host (0: no metrics listener)."""
    import uvicorn

    settings = settings or SandboxSettings.from_env()
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "loop": "auto",
        "http": "auto",
        "timeout_keep_alive": 75,
        "backlog": 4096,
    }
    if workers > 1:
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        os.environ[METRICS_PORT_ENV] = str(metrics_port)
        os.environ[METRICS_HOST_ENV] = host
        uvicorn.run("purpcode.sandbox.server:app_from_env", factory=True, workers=workers, **common)
    else:
        uvicorn.run(create_app(settings, metrics_port=metrics_port, metrics_host=host), **common)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="purpcode sandbox serve", description=__doc__.splitlines()[0])
    p.add_argument("command", nargs="?", default="serve", choices=["serve"], help="what to do (serve)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="API port: /run_code, /healthz")
    p.add_argument(
        "--metrics-port", type=int, default=DEFAULT_METRICS_PORT,
        help="port of /metrics, apart from the API port (0: none)",
    )  # fmt: skip
    p.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes (each with its own zygotes)"
    )
    p.add_argument("--zygotes", type=int, default=None, help="warm fork-servers per worker")
    p.add_argument("--max-concurrency", type=int, default=None, help="executions at once (0 = 2 x CPUs)")
    p.add_argument("--queue-size", type=int, default=None, help="waiting requests before 504")
    p.add_argument(
        "--isolation", choices=["auto", "namespaces", "restricted"], default=None,
        help="auto (default): the namespaces jail where the pod allows it, else restricted",
    )  # fmt: skip
    p.add_argument("--python", default=None, help="interpreter for user code (default: this one)")
    p.add_argument("--no-warm", action="store_true", help="exec a fresh interpreter per execution")
    p.add_argument("--cgroups", choices=["auto", "off"], default=None)
    p.add_argument("--host-uid", type=int, default=None, help="host uid for the jail when running as root")
    p.add_argument("--log-level", default="info")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """`purpcode sandbox serve --host --port [--workers]`; returns the exit status."""
    args = _parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides: dict[str, Any] = {
        "zygotes": args.zygotes,
        "max_concurrency": args.max_concurrency,
        "queue_size": args.queue_size,
        "python": args.python,
        "cgroups": args.cgroups,
        "host_uid": args.host_uid,
        "isolation": args.isolation,
    }
    if args.no_warm:
        overrides["warm"] = False
    try:
        settings = SandboxSettings.from_env(**overrides)
    except ValueError as err:
        print(f"purpcode sandbox: {err}")
        return 2
    LOG.info("settings: %s", json.dumps(settings.model_dump(), default=str))
    if args.metrics_port and args.metrics_port == args.port:
        print("purpcode sandbox: --metrics-port must differ from --port (scrapers must not reach /run_code)")
        return 2
    serve(
        args.host, args.port, settings=settings, workers=args.workers, log_level=args.log_level,
        metrics_port=args.metrics_port,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
