"""The door: which requests get in, decided on the headers before any body is read.

In order: the Host must be one of the names this server answers to (a page on
another site that resolves its own name to us, DNS rebinding, is refused);
with a token set, every route but the public ones needs it (401), and a
client that sent too many wrong tokens waits (429).

The right token always gets in, even from an address that is waiting: a
nurse is never locked out by someone else's mistakes at the same address.
A missing token (a browser's first visit, before it asks for the password)
does not count as a wrong one. A token of 32 random characters cannot be
guessed in any case; the limit makes trying slow and visible in the log.
WebSocket requests are refused: the service has none.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from myelo_docs.schema.errors import ConfigError
from myelo_docs.schema.messages import error, problem, title
from myelo_docs.service.middleware import ASGIApp, Receive, Scope, Send, client_address, send_json

TOKEN_VARIABLE = "MYELO_DOCS_TOKEN"
TOKEN_MIN_LENGTH = 32
TOKEN_MIN_DISTINCT = 10  # "aaaa…" or "12121212…" is long but not random
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ANY_HOST = "*"
MAKE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def check_token(token: str) -> None:
    """Refuse a token that can be guessed: shorter than 32 characters or barely varied."""
    if len(token) < TOKEN_MIN_LENGTH or len(set(token)) < TOKEN_MIN_DISTINCT:
        raise error(ConfigError, "token_weak", TOKEN_VARIABLE, least=TOKEN_MIN_LENGTH,
                    make=MAKE_TOKEN)


_HOST = re.compile(r"\[(?P<ip6>[0-9a-f:.]+)\](:\d{1,5})?|(?P<name>[a-z0-9.-]+)(:\d{1,5})?")


def host_name(header: str) -> str:
    """The name in a Host header, without the port, lower case: '[::1]:8000' -> '::1';
    '' for anything that is not a host name or address with an optional port."""
    found = _HOST.fullmatch(header.strip().lower())
    if found is None:
        return ""
    return found["ip6"] or found["name"]


def token_matches(header: str, token: str) -> bool:
    """Bearer <token>, or HTTP Basic with any user name and the token as the password."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":  # the nurse's browser
        try:
            value = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


class LoginThrottle:
    """Failed logins per client address: after ``attempts`` within ``window`` seconds,
    the client waits until the oldest of them is ``window`` seconds old. At most
    ``clients`` addresses are remembered (the oldest are forgotten)."""

    def __init__(self, attempts: int = 5, window: float = 60.0, clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.attempts, self.window, self.clients, self.clock = attempts, window, clients, clock
        self._failed: OrderedDict[str, deque[float]] = OrderedDict()

    @staticmethod
    def _key(client: str) -> str:
        """The address, or for IPv6 its /64: one subscriber's whole block, which a
        guesser could otherwise walk through an address at a time."""
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return client
        if address.version == 6 and not address.is_loopback:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return client

    def wait(self, client: str) -> int:
        """Seconds this client must wait before trying again (0: it may try now)."""
        client = self._key(client)
        failed = self._failed.get(client)
        if failed is None:
            return 0
        now = self.clock()
        while failed and failed[0] <= now - self.window:
            failed.popleft()
        if len(failed) < self.attempts:
            return 0
        return max(1, math.ceil(failed[0] + self.window - now))

    def failed(self, client: str) -> None:
        client = self._key(client)
        self._failed.setdefault(client, deque(maxlen=self.attempts)).append(self.clock())
        self._failed.move_to_end(client)
        while len(self._failed) > self.clients:
            self._failed.popitem(last=False)


class Door:
    """ASGI middleware: Host check, failed-login throttle, token; all on the headers.

    ``allowed_hosts``: the names (lower case, no port) the Host header may give,
    or ``*`` for any; ``public``: the paths that need no token; ``challenge``:
    the WWW-Authenticate value for a path (Basic for the nurse's page, so the
    browser asks for it).
    """

    def __init__(self, app: ASGIApp, token: str | None, allowed_hosts: frozenset[str],
                 public: frozenset[str], challenge: Callable[[str], str],
                 throttle: LoginThrottle | None = None):
        self.app, self.token, self.allowed_hosts = app, token, allowed_hosts
        self.public, self.challenge = public, challenge
        self.throttle = throttle or LoginThrottle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if ANY_HOST not in self.allowed_hosts and host not in self.allowed_hosts:
            await send_json(send, 400, {
                "error": "UnknownHost", "message": title("door_unknown_host"),
                "problems": [problem("door_unknown_host", "Host").as_dict()]},
                [(b"connection", b"close")])
            return
        given = headers.get(b"authorization", b"").decode("latin-1")
        if self.token and scope["path"] not in self.public and \
                not token_matches(given, self.token):
            client = client_address(scope)
            wait = self.throttle.wait(client)
            if wait:
                await send_json(send, 429, {
                    "error": "TooManyAttempts", "message": title("door_too_many_tries"),
                    "problems": [problem("door_too_many_tries", "Authorization",
                                         wait=wait).as_dict()]},
                    [(b"retry-after", str(wait).encode()), (b"connection", b"close")])
                return
            if given:
                self.throttle.failed(client)
            await send_json(send, 401, {
                "error": "Unauthorized", "message": title("door_no_token"),
                "problems": [problem("door_no_token", "Authorization",
                                     variable=TOKEN_VARIABLE).as_dict()]},
                [(b"www-authenticate", self.challenge(scope["path"]).encode()),
                 (b"connection", b"close")])
            return
        await self.app(scope, receive, send)
