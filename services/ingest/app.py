"""The ingest service's composition root: ``create_app(settings)`` builds the whole object graph.

Request path of ``POST /v1/events``: authenticate (cached keys, no database hit) → read the body up
to the byte limit → decode and validate every item → charge the key's rate limit → publish the
valid events and wait for Kafka's acknowledgement → answer 202 (some accepted) or 422 (none).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import TypeAdapter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from healthscore.apikeys import (
    OPENAPI_SECURITY,
    OPENAPI_SECURITY_SCHEMES,
    ApiKey,
    CachedKeyStore,
    KeyStore,
    PostgresKeyStore,
    authorize,
)
from healthscore.clock import Clock, clock_from_spec
from healthscore.db.engine import create_db_engine
from healthscore.topics import Topics
from schemas.events import Event
from services.ingest import intake
from services.ingest.intake import BatchTooLargeError, IngestResponse, Problem
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import EventPublisher, KafkaEventPublisher, PublishUnavailableError
from services.ingest.ratelimit import TokenBucketLimiter, retry_after_header
from services.ingest.settings import IngestSettings

logger = logging.getLogger(__name__)


class BodyTooLargeError(Exception):
    pass


class RateLimitedError(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("rate limit exceeded")
        self.retry_after = retry_after


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it passes ``limit`` bytes (nothing is buffered past
    it, so a huge upload costs at most ``limit`` bytes of memory)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class IngestService:
    """Validates, rate-limits and publishes one request's events, and counts what happened."""

    topics: Topics
    publisher: EventPublisher
    limiter: TokenBucketLimiter
    metrics: IngestMetrics
    max_items: int
    clock: Clock
    max_future: dt.timedelta

    async def ingest(self, body: bytes, key: ApiKey) -> intake.Intake:
        try:
            result = intake.decode(
                body,
                max_items=self.max_items,
                default_source=key.default_source,
                latest=self.clock.now() + self.max_future,
            )
        except BatchTooLargeError as exc:
            self.metrics.reject("too_many_items", exc.items)
            raise
        if result.malformed:
            self.metrics.reject("malformed")
            return result
        wait = self.limiter.take(key.key_id, result.items)
        if wait > 0:
            self.metrics.reject("rate_limited", result.items)
            raise RateLimitedError(wait)
        self.metrics.reject("validation", len(result.rejected))
        if result.events:
            started = time.perf_counter()
            try:
                await self.publisher.publish(result.records(self.topics))
            except PublishUnavailableError:
                self.metrics.reject("unavailable", len(result.events))
                logger.warning(
                    "kafka did not acknowledge; answering 503",
                    extra={"events": len(result.events), "key_id": key.key_id},
                )
                raise
            self.metrics.publish_latency.observe(time.perf_counter() - started)
            for event_type, count in Counter(event.type for event in result.events).items():
                self.metrics.accepted.labels(event_type).inc(count)
        return result


class RequestMetricsMiddleware:
    """Counts every response by route and status code (plain ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp, metrics: IngestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.request(path, message["status"])
            await send(message)

        await self.app(scope, receive, counting_send)


def _json(body: object, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def create_app(
    settings: IngestSettings,
    *,
    registry: CollectorRegistry | None = None,
    publisher: EventPublisher | None = None,
    key_store: KeyStore | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the ingest app. Parts passed in are used as given (their owner starts and closes
    them); parts left out are built from ``settings`` and live as long as the app's lifespan."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = IngestMetrics(registry)
    limiter = TokenBucketLimiter(
        settings.rate_limit_per_second, settings.rate_limit_burst, monotonic=monotonic
    )
    retry_503 = str(settings.unavailable_retry_after_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            store = key_store
            if store is None:
                engine = create_db_engine(settings.database_url)
                stack.push_async_callback(engine.dispose)
                cached = PostgresKeyStore(
                    engine,
                    bootstrap_token=settings.bootstrap_api_key,
                    refresh_interval=settings.key_refresh_seconds,
                    miss_interval=settings.key_miss_refresh_seconds,
                )
                await cached.start()
                stack.push_async_callback(cached.close)
                store = cached
            pub = publisher
            if pub is None:
                kafka = KafkaEventPublisher(
                    settings.kafka_bootstrap_servers,
                    send_timeout=settings.send_timeout_seconds,
                    readiness_timeout=settings.readiness_timeout_seconds,
                )
                await kafka.start()
                stack.push_async_callback(kafka.close)
                pub = kafka
            app.state.key_store = store
            app.state.ingest = IngestService(
                settings.topics,
                pub,
                limiter,
                metrics,
                settings.max_batch_items,
                clock if clock is not None else clock_from_spec(settings.clock),
                dt.timedelta(seconds=settings.max_future_seconds),
            )
            yield

    app = FastAPI(
        title="Healthscore ingest",
        version="1",
        lifespan=lifespan,
        description="Send customer events (usage, ticket, billing, email, feedback, account).",
    )
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)

    @app.exception_handler(BodyTooLargeError)
    async def _too_large(request: Request, exc: BodyTooLargeError) -> Response:
        return _json({"detail": f"the body exceeds {settings.max_body_bytes} bytes"}, 413)

    @app.exception_handler(BatchTooLargeError)
    async def _too_many(request: Request, exc: BatchTooLargeError) -> Response:
        return _json({"detail": str(exc)}, 413)

    @app.exception_handler(RateLimitedError)
    async def _limited(request: Request, exc: RateLimitedError) -> Response:
        headers = {"Retry-After": retry_after_header(exc.retry_after)}
        return _json({"detail": "rate limit exceeded for this API key"}, 429, headers)

    @app.exception_handler(PublishUnavailableError)
    async def _unavailable(request: Request, exc: PublishUnavailableError) -> Response:
        detail = "Kafka is unavailable; nothing from this request is guaranteed, retry it"
        return _json({"detail": detail}, 503, {"Retry-After": retry_503})

    problems: dict[int | str, dict[str, object]] = {
        code: {"model": Problem, "description": text}
        for code, text in {
            401: "missing or wrong API key",
            403: "the API key lacks the ingest scope",
            413: "body above the byte limit or more than the batch limit of items",
            429: "rate limit of the API key exceeded; see Retry-After",
            503: "Kafka did not acknowledge in time; retry after Retry-After",
        }.items()
    }
    problems[422] = {"model": IngestResponse, "description": "no item was valid"}

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=IngestResponse,
        responses=problems,
        openapi_extra={
            "security": OPENAPI_SECURITY,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/Event"},
                                {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Event"},
                                    "minItems": 1,
                                    "maxItems": settings.max_batch_items,
                                },
                            ]
                        }
                    }
                },
            },
        },
    )
    async def post_events(request: Request) -> Response:
        """Publish one event or a batch; 202 once Kafka acknowledged every accepted event."""
        key = await authorize(request, "ingest", request.app.state.key_store)
        body = await read_body(request, settings.max_body_bytes)
        result = await request.app.state.ingest.ingest(body, key)
        status = 202 if result.events else 422
        return _json(result.response().model_dump(), status)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"description": "a dependency is unreachable"}})
    async def readyz(request: Request) -> Response:
        """Readiness: Kafka answers a metadata request and the API keys are loaded."""
        kafka = await request.app.state.ingest.publisher.ready()
        store = request.app.state.key_store
        keys = store.loaded if isinstance(store, CachedKeyStore) else True
        body = {"kafka": kafka, "api_keys": keys}
        return _json(body, 200 if kafka and keys else 503)

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    _add_event_schema(app)
    return app


def _add_event_schema(app: FastAPI) -> None:
    """Put the Event JSON Schema into the OpenAPI components, where the request body refers."""
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        event = TypeAdapter(Event).json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(event.pop("$defs", {}))
        schemas["Event"] = event
        components.setdefault("securitySchemes", {}).update(OPENAPI_SECURITY_SCHEMES)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
