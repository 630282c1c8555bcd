"""A real local HTTP receiver for webhooks: the stand-in "Slack" and "CRM" of tests and the demo.

It records every request it receives and answers each path as programmed: a queue of behaviours
per path (answer with a status and body, hang, or close the connection), then a default behaviour
once the queue runs out (``200 ok`` unless told otherwise). It speaks real HTTP/1.1 on a real
socket (aiohttp), so the delivery code under test meets real timeouts, resets and keep-alive.

In a test::

    async with WebhookReceiver() as receiver:
        receiver.program("/slack", Respond(500), Respond.rate_limited(1), Respond(200))
        ...  # point a destination at receiver.url("/slack")
        done = await receiver.wait_for(lambda reqs: len(reqs) >= 3, path="/slack", within=10)

Standalone (``make demo`` runs it as the local Slack)::

    python -m healthscore.webhook_receiver --port 8099

Control endpoints under ``/_receiver/`` let another process read and program it:

- ``GET /_receiver/requests[?path=/slack]``: every recorded request as JSON (body as text),
- ``DELETE /_receiver/requests``: forget them,
- ``POST /_receiver/program`` with ``{"path": "/slack", "behaviours": [{"status": 500},
  {"status": 429, "retry_after": 1}, {"hang": 30}, {"close": true}], "then": {"status": 200}}``.

Each received webhook is printed to stdout as one JSON line (path, status answered, webhook-id,
size, and the Slack fallback ``text`` when there is one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

CONTROL_PREFIX = "/_receiver/"


@dataclass(frozen=True)
class Respond:
    """Answer with ``status``, a plain-text ``body`` and optional headers."""

    status: int = 200
    body: str = "ok"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def rate_limited(cls, retry_after: float) -> Respond:
        """Slack's answer when a webhook posts faster than about one message per second."""
        return cls(429, "rate_limited", {"Retry-After": _number(retry_after)})

    @classmethod
    def slack_error(cls, status: int, error: str) -> Respond:
        """A Slack-style error: a plain-text body such as ``no_service``."""
        return cls(status, error)


@dataclass(frozen=True)
class Hang:
    """Read the request and answer nothing for ``seconds`` (past the client's timeout), then 200.

    A hung request ends early, without an answer, when the receiver stops.
    """

    seconds: float = 3600.0


@dataclass(frozen=True)
class Close:
    """Read the request, then close the connection without answering."""


Behaviour = Respond | Hang | Close


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as received, with what the receiver did about it."""

    method: str
    path: str
    headers: Mapping[str, str]  # names lower-cased
    body: bytes
    received_at: float  # time.time()
    received_monotonic: float  # time.monotonic(), for latency measurements in one process
    answer: str  # "200", "500", "429", "hang", "close"

    @property
    def ok(self) -> bool:
        return self.answer.isdigit() and 200 <= int(self.answer) < 300

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    def json(self) -> Any:
        return orjson.loads(self.body)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": dict(self.headers),
            "body": self.body.decode("utf-8", errors="replace"),
            "received_at": self.received_at,
            "answer": self.answer,
        }


class WebhookReceiver:
    """Records requests and answers them as programmed per path. Use with ``async with``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, echo: bool = False) -> None:
        self._host = host
        self._port = port
        self._echo = echo
        self._queues: dict[str, list[Behaviour]] = {}
        self._defaults: dict[str, Behaviour] = {}
        self._requests: list[ReceivedRequest] = []
        self._changed = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get(CONTROL_PREFIX + "requests", self._list_requests)
        app.router.add_delete(CONTROL_PREFIX + "requests", self._clear_requests)
        app.router.add_post(CONTROL_PREFIX + "program", self._program_request)
        app.router.add_route("*", "/{tail:.*}", self._receive)
        # shutdown_timeout bounds how long stop() waits for hung handlers.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        assert server is not None
        sockets: Sequence[Any] = getattr(server, "sockets", None) or []
        self._bound_port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- addressing and programming ----------------------------------------------------------
    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError("the receiver is not started")
        return self._bound_port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def program(self, path: str, *behaviours: Behaviour, then: Behaviour | None = None) -> None:
        """Answer the next requests to ``path`` with ``behaviours`` in order, then with ``then``
        (or the path's previous default, ``200 ok`` at first) for every later request."""
        self._queues[path] = list(behaviours)
        if then is not None:
            self._defaults[path] = then

    # -- reading what arrived ----------------------------------------------------------------
    def requests(self, path: str | None = None) -> list[ReceivedRequest]:
        return [r for r in self._requests if path is None or r.path == path]

    def clear(self) -> None:
        self._requests.clear()

    async def wait_for(
        self,
        predicate: Callable[[list[ReceivedRequest]], bool],
        *,
        path: str | None = None,
        within: float,
    ) -> list[ReceivedRequest]:
        """Wait until ``predicate(requests(path))`` holds; raise TimeoutError after ``within`` s."""

        async def _until() -> list[ReceivedRequest]:
            async with self._changed:
                while not predicate(self.requests(path)):
                    await self._changed.wait()
                return self.requests(path)

        return await asyncio.wait_for(_until(), within)

    # -- HTTP handlers -----------------------------------------------------------------------
    def _next_behaviour(self, path: str) -> Behaviour:
        queue = self._queues.get(path)
        if queue:
            return queue.pop(0)
        return self._defaults.get(path, Respond())

    async def _record(self, request: web.Request, body: bytes, answer: str) -> None:
        received = ReceivedRequest(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            received_at=time.time(),
            received_monotonic=time.monotonic(),
            answer=answer,
        )
        self._requests.append(received)
        if self._echo:
            _echo_line(received)
        async with self._changed:
            self._changed.notify_all()

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        behaviour = self._next_behaviour(request.path)
        if isinstance(behaviour, Close):
            await self._record(request, body, "close")
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=200)  # never reaches the closed connection
        if isinstance(behaviour, Hang):
            await self._record(request, body, "hang")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), behaviour.seconds)
            if self._stopping.is_set() and request.transport is not None:
                request.transport.close()
            return web.Response(status=200, text="ok")
        await self._record(request, body, str(behaviour.status))
        return web.Response(
            status=behaviour.status,
            text=behaviour.body,
            headers=dict(behaviour.headers),
            content_type="text/plain",
        )

    async def _list_requests(self, request: web.Request) -> web.Response:
        path = request.query.get("path")
        data = [r.as_dict() for r in self.requests(path)]
        return web.Response(body=orjson.dumps(data), content_type="application/json")

    async def _clear_requests(self, request: web.Request) -> web.Response:
        self.clear()
        return web.Response(status=204)

    async def _program_request(self, request: web.Request) -> web.Response:
        try:
            spec = orjson.loads(await request.read())
            path = str(spec["path"])
            behaviours = [behaviour_from_dict(b) for b in spec.get("behaviours", [])]
            then = behaviour_from_dict(spec["then"]) if spec.get("then") else None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return web.Response(status=400, text=f"bad program: {exc}")
        self.program(path, *behaviours, then=then)
        return web.Response(status=204)


def behaviour_from_dict(spec: Mapping[str, Any]) -> Behaviour:
    """``{"status": 500}``, ``{"status": 429, "retry_after": 2}``, ``{"hang": 30}``,
    ``{"close": true}``; ``body`` sets a plain-text body (e.g. ``"no_service"``)."""
    if spec.get("close"):
        return Close()
    if "hang" in spec:
        return Hang(float(spec["hang"]))
    status = int(spec.get("status", 200))
    if not 100 <= status <= 599:
        raise ValueError(f"status {status} is not an HTTP status")
    headers = {}
    if "retry_after" in spec:
        headers["Retry-After"] = _number(float(spec["retry_after"]))
    return Respond(status, str(spec.get("body", "ok")), headers)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _echo_line(received: ReceivedRequest) -> None:
    line: dict[str, Any] = {
        "path": received.path,
        "answer": received.answer,
        "webhook_id": received.webhook_id,
        "bytes": len(received.body),
    }
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
        text = received.json().get("text")
        if isinstance(text, str):
            line["text"] = text
    sys.stdout.write(orjson.dumps(line).decode() + "\n")
    sys.stdout.flush()


async def _serve(host: str, port: int, echo: bool) -> None:
    async with WebhookReceiver(host, port, echo=echo) as receiver:
        sys.stdout.write(
            orjson.dumps({"msg": "webhook receiver listening", "url": receiver.base_url}).decode()
            + "\n"
        )
        sys.stdout.flush()
        await asyncio.Event().wait()  # until interrupted


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m healthscore.webhook_receiver", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--quiet", action="store_true", help="do not print received webhooks")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, not args.quiet))
    return 0


if __name__ == "__main__":
    sys.exit(main())
