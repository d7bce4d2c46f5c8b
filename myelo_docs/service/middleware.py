"""ASGI middleware: the access log, the door (host, token, failed logins), safety
headers, the body limit and read timeout, no tracebacks.

Patient data never reaches a log: the access log has the client address, the
method, the route (never a query string or body; a path that is not one of
ours is logged as "-"), the status and the time taken. The token never does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from myelo_docs.schema.messages import problem, title

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("myelo_docs.access")
error_log = logging.getLogger("myelo_docs.service")

# No scripts at all; styles and images only from this server; forms post only here.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


async def send_json(send: Send, status: int, body: dict[str, Any],
                    headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
        *headers]})
    await send({"type": "http.response.body", "body": data})


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "-"


class AccessLog:
    """One line per request: client address, method, route, status, milliseconds."""

    def __init__(self, app: ASGIApp, known_paths: Callable[[], set[str]]):
        self.app = app
        self.known_paths = known_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            # A route with an id in it is logged by its pattern (/packets/{id}), never the id.
            pattern = getattr(scope.get("route"), "path_format", None)
            path = scope["path"] if scope["path"] in self.known_paths() else pattern or "-"
            access_log.info("%s %s %s %d %.0fms", client_address(scope), scope["method"], path,
                            status, (time.perf_counter() - started) * 1000)


class Guard:
    """Safety headers on every response, the request body limit (413) and the body's
    read timeout (408).

    ``max_body`` bytes for every route, except the paths in ``limits``
    (path -> (bytes, the messages.toml entry to answer when a body is over it, like
    body_too_large)); the whole body
    must arrive within ``read_timeout`` seconds of the headers.
    """

    def __init__(self, app: ASGIApp, max_body: int,
                 limits: dict[str, tuple[int, str]] | None = None, read_timeout: float = 20.0):
        self.app = app
        self.max_body = max_body
        self.limits = limits or {}
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self._headers(message)]
            await send(message)

        limit, key = self.limits.get(scope["path"], (self.max_body, "body_too_large"))
        body = await self._read_body(scope, receive, with_headers, limit, key)
        if body is None:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, with_headers)

    @staticmethod
    def _headers(message: Message) -> list[tuple[bytes, bytes]]:
        kind = dict(message.get("headers", [])).get(b"content-type", b"")
        headers = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]
        if kind.startswith(b"text/html"):
            # "same-origin", not "no-referrer": under no-referrer a browser sends
            # "Origin: null" with the page's own form, which a forged post also sends.
            headers += [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
                        (b"referrer-policy", b"same-origin")]
            return headers
        headers.append((b"referrer-policy", b"no-referrer"))
        if kind.startswith(b"image/svg"):
            headers.append((b"content-security-policy", SVG_CSP.encode()))
        return headers

    async def _read_body(self, scope: Scope, receive: Receive, send: Send, limit: int,
                         key: str) -> bytes | None:
        """The whole body, or None after answering 413 or 408 (or when the client left)."""
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(send, limit, key)
            return None
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.read_timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                await send_json(send, 408, request_timeout(self.read_timeout),
                                [(b"connection", b"close")])
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(send, limit, key)
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


def request_timeout(seconds: float) -> dict[str, Any]:
    return {"error": "RequestTimeout", "message": title("body_too_slow"),
            "problems": [problem("body_too_slow", "body", seconds=f"{seconds:g}").as_dict()]}


async def _too_large(send: Send, limit: int, key: str) -> None:
    size = f"{limit // 1024} KB" if limit < 1024 * 1024 else f"{limit / 1024 / 1024:g} MB"
    await send_json(send, 413, {
        "error": "RequestTooLarge", "message": title(key, size=size),
        "problems": [problem(key, "body", size=size).as_dict()]},
        [(b"connection", b"close")])


class NoTracebacks:
    """A bug answers 500 with a plain message; only the exception's type is logged."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:  # the message could hold patient data, so only the type
            error_log.error("internal error (%s) on %s", type(exc).__name__, scope["method"])
            if not started:
                await send_json(send, 500, {
                    "error": "InternalError",
                    "message": title("internal_error"),
                    "problems": []})
