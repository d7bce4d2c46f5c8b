"""Connections: a cap on how many are open, and a time limit for the headers.

uvicorn keeps a connection open for as long as a client takes to send its
headers, and accepts every connection until the process runs out of file
handles. This HTTP/1.1 protocol (uvicorn's h11 one, with two additions)
answers a connection over the cap with 503 and Retry-After and closes it at
once, and one whose headers have not arrived within the read timeout with
408. Both happen before any request exists, so they are written as raw bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from .middleware import access_log, request_timeout

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
    "error": "Busy", "message": "The server has as many connections open as it takes",
    "problems": [{"field": "server", "problem": "has too many connections open",
                  "fix": f"try again in {FULL_RETRY_AFTER} seconds"}]},
    f"retry-after: {FULL_RETRY_AFTER}")


def guarded_protocol(read_timeout: float, max_connections: int) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol with a connection cap and a header read timeout (s)."""
    too_slow = _raw_response("408 Request Timeout", request_timeout(read_timeout))
    last_full_warning = [0.0]

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _partial = False  # bytes of a request came in since the timer was armed
        _refused = False  # over the cap: answered 503, closing

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self._refused = True
                transport.write(FULL)
                # Closing with the client's request unread would send a reset, which
                # can destroy the answer before the client reads it: end our side,
                # drop what comes, close a moment later.
                if (transport.can_write_eof()
                        and len(self.connections) <= max_connections + REFUSED_LINGERING):
                    transport.write_eof()
                    self.loop.call_later(REFUSED_LINGER, transport.close)
                else:
                    transport.close()
                if time.monotonic() - last_full_warning[0] > 10:  # one line, not a flood
                    last_full_warning[0] = time.monotonic()
                    log.warning("%d connections open, the most --max-connections allows; "
                                "new ones get 503", max_connections)
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            self._partial = True
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request's headers get the same time

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            if self._header_timer is not None:
                self._header_timer.cancel()

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
                client = self.client[0] if self.client else "-"
                access_log.info("%s - - 408 %.0fms", client, read_timeout * 1000)
            self.transport.close()

    return GuardedH11Protocol


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
