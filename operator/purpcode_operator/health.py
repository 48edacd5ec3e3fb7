"""The operator's HTTP port: /metrics (Prometheus), /healthz (liveness), /readyz (readiness).

Liveness: the event loop answers and every reconcile worker is alive. Readiness: the operator has logged in,
reached the API server and found the PurpCodeRun API (the CRD is installed), and its workers run.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from .metrics import OperatorMetrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HealthServer:
    def __init__(
        self,
        metrics: OperatorMetrics,
        *,
        alive: Callable[[], bool],
        ready: Callable[[], bool],
        host: str = "0.0.0.0",
        port: int = 8080,
    ) -> None:
        self.metrics = metrics
        self.alive = alive
        self.ready = ready
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/livez", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, request: web.Request) -> web.Response:
        if self.alive():
            return web.Response(text="ok\n")
        return web.Response(text="reconcile workers stopped\n", status=503)

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.ready():
            return web.Response(text="ok\n")
        return web.Response(text="not ready: starting, or the PurpCodeRun API is not reachable\n", status=503)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
