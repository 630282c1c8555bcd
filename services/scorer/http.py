"""The worker's own HTTP endpoints: /healthz, /readyz, /metrics (faust's web server is off).

Served from the moment the worker starts, before table recovery, so that liveness probes pass
during a long recovery while /readyz says 503 until the worker scores.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class HealthServer(Service):
    def __init__(
        self, *, host: str, port: int, registry: CollectorRegistry, ready: Callable[[], bool]
    ) -> None:
        super().__init__()
        self._host = host
        self._port = port
        self._registry = registry
        self._ready = ready
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def on_start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        if self._ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "starting"}, status=503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
