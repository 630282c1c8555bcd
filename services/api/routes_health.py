"""``/healthz``, ``/readyz`` and ``/metrics``: unauthenticated, for probes and Prometheus."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


def health_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """Ready: PostgreSQL and Kafka both answer (503 naming what does not)."""
        state = request.app.state
        timeout = state.settings.readiness_timeout_seconds
        postgres, kafka = await asyncio.gather(
            _check(state.accounts.ready(), timeout), _check(state.publisher.ready(), timeout)
        )
        checks = {"postgres": postgres, "kafka": kafka}
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503
        )

    @router.get("/metrics")
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this process."""
        return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)

    return router


async def _check(probe: Awaitable[object], seconds: float) -> str:
    """``ok`` when ``probe`` finishes in time and does not return False, else why not."""
    try:
        result = await asyncio.wait_for(probe, seconds)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "error: unreachable" if result is False else "ok"
