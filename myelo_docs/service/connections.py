"""Connections: caps on how many are open, and time limits for reading and writing.

uvicorn keeps a connection open for as long as a client takes to send its
headers or to read its answer, and accepts every connection until the process
runs out of file handles. This HTTP/1.1 protocol (uvicorn's h11 one, with
additions) holds the service up against slow and greedy clients:

- past ``max_connections`` open connections, or ``per_client`` from one
  address (reverse proxies we trust are not limited), a new connection is
  answered 503 with Retry-After and closed at once;
- a request's headers must arrive within the read timeout of the connection
  opening or of the previous answer, else 408 (the body has the same limit,
  in middleware.Guard);
- an answer the client does not read (the send buffer stays full) for the
  read timeout ends the connection.

With TLS (``ssl_context``) the cap is applied when the connection is accepted,
before the handshake, and the handshake has the read timeout too: a client
that opens sockets and never says hello cannot hold file handles for long.
The 503 and 408 come before any request exists, so they are raw bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import ssl
import time
from asyncio.sslproto import SSLProtocol
from collections import Counter
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from myelo_docs.schema.messages import problem, title
from myelo_docs.service.middleware import access_log, request_timeout

log = logging.getLogger("myelo_docs.service")
REFUSED_LINGER = 1.0  # seconds a refused connection stays open for its 503 to be read
FULL_RETRY_AFTER = 5  # seconds: long enough for a slow client's slot to free up
REFUSED_LINGERING = 32  # at most so many refused connections linger; past that, closed at once
# The listen backlog is also how many connections asyncio accepts in one go, before
# any of them can be refused: room for them is kept under the open-file limit.
BACKLOG = 64
FILES_PER_CONNECTION = 1
FILES_FOR_THE_REST = 32 + REFUSED_LINGERING + BACKLOG  # 32: listener, pipes, logs (16 seen)


def _raw_response(status: str, body: dict[str, Any], *headers: str) -> bytes:
    data = json.dumps(body).encode()
    head = [f"HTTP/1.1 {status}", "content-type: application/json",
            f"content-length: {len(data)}", "cache-control: no-store", "connection: close",
            *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


FULL = _raw_response("503 Service Unavailable", {
    "error": "Busy", "message": title("server_full"),
    "problems": [problem("server_full", "server", seconds=FULL_RETRY_AFTER).as_dict()]},
    f"retry-after: {FULL_RETRY_AFTER}")


def _peer(transport: Any) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "-"


class _Limits:
    """The open connections, in total and per address, shared by every connection."""

    def __init__(self, max_connections: int, per_client: int, trusted: frozenset[str]):
        self.max_connections, self.per_client, self.trusted = max_connections, per_client, trusted
        self.open = 0
        self.by_client: Counter[str] = Counter()
        self.last_warning = 0.0

    def enter(self, client: str) -> bool:
        """Count a new connection; False when it is one too many: then it counts in
        the total until ``leave`` (it holds a file handle while it lingers), but
        not against its address (a refused connection serves nobody)."""
        self.open += 1
        self.by_client[client] += 1
        over_total = self.open > self.max_connections
        over_client = client not in self.trusted and self.by_client[client] > self.per_client
        if over_total or over_client:
            self._forget(client)
        if (over_total or over_client) and time.monotonic() - self.last_warning > 10:
            self.last_warning = time.monotonic()  # one line, not a flood
            log.warning("%s; new connections get 503",
                        f"{self.max_connections} connections open, the most "
                        "--max-connections allows" if over_total else
                        f"{client} has {self.per_client} connections open, the most "
                        "--max-connections-per-client allows")
        return not (over_total or over_client)

    def leave(self, client: str, served: bool) -> None:
        self.open -= 1
        if served:
            self._forget(client)

    def _forget(self, client: str) -> None:
        self.by_client[client] -= 1
        if self.by_client[client] <= 0:
            del self.by_client[client]


def http_protocol(read_timeout: float, max_connections: int, per_client: int = 1_000_000,
                  trusted: frozenset[str] = frozenset(),
                  ssl_context: ssl.SSLContext | None = None) -> Callable[..., asyncio.Protocol]:
    """What uvicorn's ``http=`` takes: a factory of connection protocols with the caps
    and time limits above (``read_timeout`` in seconds; ``trusted``: addresses of
    reverse proxies, not limited per client; ``ssl_context``: serve HTTPS)."""
    too_slow = _raw_response("408 Request Timeout", request_timeout(read_timeout))
    limits = _Limits(max_connections, per_client, trusted)

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _write_timer: asyncio.TimerHandle | None = None
        _partial = False  # bytes of a request came in since the timer was armed
        _refused = False  # over a cap: answered 503, closing
        _counted = ""  # the address this connection was counted under (plain HTTP)

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if ssl_context is None:
                self._counted = _peer(transport)
                if not limits.enter(self._counted):
                    self._refuse(transport)
                    return
            self._arm()

        def _refuse(self, transport: Any) -> None:
            self._refused = True
            transport.write(FULL)
            # Closing with the client's request unread would send a reset, which
            # can destroy the answer before the client reads it: end our side,
            # drop what comes, close a moment later.
            if (transport.can_write_eof()
                    and limits.open <= limits.max_connections + REFUSED_LINGERING):
                transport.write_eof()
                self.loop.call_later(REFUSED_LINGER, transport.close)
            else:
                transport.close()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            self._partial = True
            super().data_received(data)

        def handle_events(self) -> None:
            before = self.cycle
            super().handle_events()
            if self.cycle is not before and self._header_timer is not None:
                self._header_timer.cancel()  # a request began: its headers are in
                self._header_timer = None

        def on_response_complete(self) -> None:
            before = self.cycle
            super().on_response_complete()
            # A pipelined request may have begun inside super(): then it is running,
            # and its headers are in; only an idle connection waits for headers.
            if not self.transport.is_closing() and self.cycle is before:
                self._arm()

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._write_timer is None:
                self._write_timer = self.loop.call_later(read_timeout, self._not_reading)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._write_timer is not None:
                self._write_timer.cancel()
                self._write_timer = None

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            for timer in (self._header_timer, self._write_timer):
                if timer is not None:
                    timer.cancel()
            if self._counted:
                limits.leave(self._counted, served=not self._refused)
                self._counted = ""

        def _arm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._partial = False
            self._header_timer = self.loop.call_later(read_timeout, self._headers_too_slow,
                                                      self.cycle)

        def _headers_too_slow(self, cycle: Any) -> None:
            """No request began since the timer was armed: 408 if part of one came."""
            self._header_timer = None
            if self.transport.is_closing() or self.cycle is not cycle:
                return
            if self._partial:
                self.transport.write(too_slow)
                access_log.info("%s - - 408 %.0fms", self._client(), read_timeout * 1000)
            self.transport.close()

        def _not_reading(self) -> None:
            """The client has not read its answer for the read timeout: let it go."""
            self._write_timer = None
            if not self.transport.is_closing():
                access_log.info("%s - - 408 %.0fms (answer not read)", self._client(),
                                read_timeout * 1000)
                self.transport.abort()

        def _client(self) -> str:
            return self.client[0] if self.client else "-"

    if ssl_context is None:
        return GuardedH11Protocol

    class CountedSSLProtocol(SSLProtocol):
        """TLS around the HTTP protocol, counted from the moment of accept."""

        _counted = ""
        _served = True

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            self._counted = _peer(transport)
            if not limits.enter(self._counted):
                self._served = False
                transport.abort()  # no handshake yet: nothing can be said in TLS
                return
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._counted:
                limits.leave(self._counted, self._served)
                self._counted = ""
            super().connection_lost(exc)

    def tls(config: Any, server_state: Any, app_state: Any,
            _loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
        loop = _loop or asyncio.get_event_loop()
        inner = GuardedH11Protocol(config=config, server_state=server_state,
                                   app_state=app_state, _loop=loop)
        return CountedSSLProtocol(loop, inner, ssl_context, None, server_side=True,
                                  ssl_handshake_timeout=read_timeout)

    return tls


def server_tls(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or later) from PEM files."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


def open_files_for(max_connections: int) -> int:
    """Raise this process's open-file limit so the connection cap is reached before it.

    Returns the number of connections the limit allows (``max_connections``,
    or fewer when the hard limit is lower: then it says so in the log).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections * FILES_PER_CONNECTION + FILES_FOR_THE_REST
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        soft = new_soft
    if soft != resource.RLIM_INFINITY and soft < wanted:
        allowed = max(1, soft - FILES_FOR_THE_REST)
        log.warning("the open-file limit (%d) allows %d connections, not %d", soft, allowed,
                    max_connections)
        return allowed
    return max_connections
