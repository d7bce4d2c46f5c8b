"""``myelo-docs serve``: the HTTP service (FastAPI on uvicorn, renders in worker processes)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import time
from typing import Any

import uvicorn

from myelo_docs.schema.errors import ConfigError
from myelo_docs.schema.messages import error
from myelo_docs.service.app import ServiceSettings, check_binding, create_app
from myelo_docs.service.connections import BACKLOG, http_protocol, open_files_for, server_tls
from myelo_docs.service.door import TOKEN_VARIABLE
from myelo_docs.service.pool import RenderPool, RenderSettings

__all__ = ["RenderPool", "RenderSettings", "ServiceSettings", "create_app",
           "serve", "token_from_environment"]

# uvicorn's own access log prints query strings; ours (middleware.AccessLog) does not.
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                            "stream": "ext://sys.stderr"}},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        "myelo_docs.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "myelo_docs.service": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


def token_from_environment() -> str | None:
    return os.environ.get(TOKEN_VARIABLE) or None


def serve(settings: ServiceSettings, render: RenderSettings, port: int, workers: int,
          queue: int, ssl_certfile: str | None = None, ssl_keyfile: str | None = None) -> None:
    """Start the workers, then serve until stopped (Ctrl-C or SIGTERM)."""
    check_binding(settings)  # before the slow part
    render.resolved()  # a bad site, brand or font folder, too
    _check_port(settings.host, port)
    tls = _tls(ssl_certfile, ssl_keyfile)
    log = logging.getLogger("myelo_docs.service")
    pool = RenderPool(render, workers=workers, queue=queue).start()
    try:
        app = create_app(pool, settings)
        connections = open_files_for(settings.max_connections)
        trusted = frozenset(settings.trusted_proxies)
        # TLS is ours, not uvicorn's: the connection cap must see a connection
        # before its handshake (connections.py).
        protocol = http_protocol(settings.read_timeout, connections,
                                 settings.max_connections_per_client, trusted, tls)
        config = uvicorn.Config(app, host=settings.host, port=port, access_log=False,
                                log_config=LOG_CONFIG, server_header=False, http=protocol,
                                backlog=BACKLOG, proxy_headers=bool(trusted),
                                forwarded_allow_ips=list(trusted),
                                timeout_graceful_shutdown=5)
        log.info("%d render workers ready; %s; token %s", workers,
                 "HTTPS" if tls else "plain HTTP",
                 "required" if settings.token else "not set (loopback only)")
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal
        # again; this handler turns that into a normal exit, so the workers stop too.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _exit_quietly)
        _Server(config, pool).run()
    finally:
        pool.close()


class _Server(uvicorn.Server):
    """uvicorn's server, telling the pool first when it is asked to stop: a signal to
    the whole process group reaches the workers too, and they must not be replaced
    while everything shuts down."""

    def __init__(self, config: uvicorn.Config, pool: RenderPool):
        super().__init__(config)
        self.pool = pool

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.pool.stop_replacing()
        super().handle_exit(sig, frame)

    async def serve(self, sockets: Any = None) -> None:
        asyncio.get_running_loop().set_exception_handler(_quiet_when_out_of_files)
        await super().serve(sockets)


_last_out_of_files = [0.0]


def _quiet_when_out_of_files(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A burst of connections can use the last file handles before the cap refuses
    them; asyncio then stops accepting for a second and logs a traceback per try.
    One line every 10 s says it instead."""
    if context.get("message") != "socket.accept() out of system resource":
        loop.default_exception_handler(context)
        return
    if time.monotonic() - _last_out_of_files[0] > 10:
        _last_out_of_files[0] = time.monotonic()
        logging.getLogger("myelo_docs.service").warning(
            "no file handles left for new connections: waiting a second before accepting "
            "more (lower --max-connections, or raise the open-file limit)")


def _check_port(host: str, port: int) -> None:
    """ConfigError when the address is taken, before the workers' slow start."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise error(ConfigError, "serve_host_unknown", "--host", host=host) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError:
            raise error(ConfigError, "serve_port_in_use", "--port", port=port,
                        host=host) from None


def _tls(certfile: str | None, keyfile: str | None) -> Any:
    if certfile is None:
        if keyfile is not None:
            raise error(ConfigError, "serve_key_without_cert", "--ssl-keyfile")
        return None
    try:
        return server_tls(certfile, keyfile)
    except (OSError, ssl.SSLError):
        raise error(ConfigError, "serve_tls_unusable", "--ssl-certfile") from None


def _exit_quietly(signum: int, frame: Any) -> None:
    raise SystemExit(0)
