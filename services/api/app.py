"""The api's composition root: :func:`create_app` builds the FastAPI app from settings.

The lifespan opens the PostgreSQL engine, the API key store and the Kafka producer, and closes
them on shutdown. Tests pass their own registry, clock, key store or publisher.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import DBAPIError

from healthscore.apikeys import KeyStore, PostgresKeyStore
from healthscore.clock import Clock, clock_from_spec
from healthscore.db.engine import create_db_engine
from healthscore.engine import ModelInvalid, PublishedModel, default_models
from services.api.accounts import BadCursorError, PostgresAccountReader
from services.api.documents import DocumentRejectedError, UnsupportedMediaTypeError
from services.api.metrics import ApiMetrics
from services.api.models_service import ConflictError, ModelService, NotFoundError, model_errors
from services.api.publisher import KafkaModelPublisher, ModelPublisher, PublishUnavailableError
from services.api.routes_accounts import accounts_router
from services.api.routes_health import health_router
from services.api.routes_models import models_router
from services.api.settings import ApiSettings
from services.api.views import ErrorOut, ProblemOut

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

# How long a client should wait before retrying a publish Kafka did not acknowledge.
RETRY_AFTER_SECONDS = "5"


def create_app(
    settings: ApiSettings,
    *,
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
    key_store: KeyStore | None = None,
    publisher: ModelPublisher | None = None,
    repository: Sequence[PublishedModel] | None = None,
) -> FastAPI:
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ApiMetrics(registry)
    clock = clock if clock is not None else clock_from_spec(settings.clock)
    repository = tuple(repository) if repository is not None else default_models()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            db = create_db_engine(settings.database_url)
            stack.push_async_callback(db.dispose)
            store = key_store
            if store is None:
                keys = PostgresKeyStore(db, bootstrap_token=settings.bootstrap_api_key)
                await keys.start()
                stack.push_async_callback(keys.close)
                store = keys
            kafka = publisher
            if kafka is None:
                owned = KafkaModelPublisher(
                    settings.kafka_bootstrap_servers,
                    settings.topics.models,
                    timeout=settings.publish_timeout_seconds,
                )
                await owned.start()
                stack.push_async_callback(owned.close)
                kafka = owned
            accounts = PostgresAccountReader(db)
            app.state.db_engine = db  # the alert log routes (routes_alerts.py) read through it
            app.state.key_store = store
            app.state.publisher = kafka
            app.state.accounts = accounts
            app.state.models = ModelService(
                db,
                kafka,
                accounts,
                repository=repository,
                clock=clock,
                metrics=metrics,
                preview_limit=settings.preview_list_limit,
            )
            yield

    app = FastAPI(
        title="Healthscore API",
        summary="Health-model management, account health reads and the alert log.",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.include_router(health_router())
    app.include_router(models_router())
    app.include_router(accounts_router())
    _include_alerts(app)
    _install_error_handlers(app)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    return app


def _include_alerts(app: FastAPI) -> None:
    """The alert log routes, owned by the alerts service's engineer (services/api/routes_alerts)."""
    try:
        from services.api.routes_alerts import alerts_router
    except ImportError:  # not part of this build
        return
    app.include_router(alerts_router())


def _error(status: int, detail: str, problems: list[ProblemOut] | None = None) -> JSONResponse:
    body = ErrorOut(detail=detail, errors=problems or [])
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(ConflictError)
    async def conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(ModelInvalid)
    async def invalid(_: Request, exc: ModelInvalid) -> JSONResponse:
        problems = [ProblemOut.of(p) for p in model_errors(exc)]
        return _error(422, f"the model document has {len(problems)} error(s)", problems)

    @app.exception_handler(DocumentRejectedError)
    async def rejected(_: Request, exc: DocumentRejectedError) -> JSONResponse:
        return _error(422, "unusable document", [ProblemOut.of(p) for p in exc.problems])

    @app.exception_handler(UnsupportedMediaTypeError)
    async def media(_: Request, exc: UnsupportedMediaTypeError) -> JSONResponse:
        return _error(415, str(exc))

    @app.exception_handler(BadCursorError)
    async def cursor(_: Request, exc: BadCursorError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(PublishUnavailableError)
    async def unavailable(_: Request, exc: PublishUnavailableError) -> JSONResponse:
        response = _error(503, f"not published: {exc}; nothing was changed, retry later")
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
        return response

    @app.exception_handler(DBAPIError)
    async def database(_: Request, exc: DBAPIError) -> JSONResponse:
        if not _bad_value(exc):
            raise exc  # a database fault: 500
        # The value itself is not echoed: it may be anything a client sent.
        return _error(422, "a value is out of range or holds characters that cannot be stored")

    @app.exception_handler(HTTPException)
    async def http(_: Request, exc: HTTPException) -> JSONResponse:
        response = _error(exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response


def _bad_value(exc: DBAPIError) -> bool:
    """Whether the database refused a value the request carried rather than failing: asyncpg
    cannot encode a parameter (an integer beyond the column's range) or PostgreSQL raised a data
    exception (SQLSTATE class 22: a NUL character in text or JSON, a value out of range)."""
    cause = exc.orig.__cause__ if exc.orig is not None else None
    client_side = isinstance(cause, asyncpg.InterfaceError) and isinstance(cause, ValueError)
    return client_side or isinstance(cause, asyncpg.exceptions.DataError)


class _MetricsMiddleware:
    """Counts and times every request by route template (never the raw path)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(template, str(status)).inc()
            self.metrics.request_duration.labels(template).observe(time.perf_counter() - started)
