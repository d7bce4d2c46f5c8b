"""``myelo-docs serve``: the HTTP service (FastAPI on uvicorn, renders in worker processes)."""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from .app import LOCAL_PROXIES, ServiceSettings, check_binding, create_app
from .connections import BACKLOG, guarded_protocol, open_files_for
from .door import TOKEN_VARIABLE
from .pool import RenderPool, RenderSettings

__all__ = ["LOCAL_PROXIES", "RenderPool", "RenderSettings", "ServiceSettings", "create_app",
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
    import uvicorn

    check_binding(settings)  # before the slow part
    log = logging.getLogger("myelo_docs.service")
    pool = RenderPool(render, workers=workers, queue=queue).start()
    try:
        app = create_app(pool, settings)
        connections = open_files_for(settings.max_connections)
        config = uvicorn.Config(app, host=settings.host, port=port, access_log=False,
                                log_config=LOG_CONFIG, server_header=False,
                                ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
                                http=guarded_protocol(settings.read_timeout, connections),
                                backlog=BACKLOG, proxy_headers=True,
                                forwarded_allow_ips=list(settings.trusted_proxies),
                                timeout_graceful_shutdown=5)
        log.info("%d render workers ready; token %s", workers,
                 "required" if settings.token else "not set (loopback only)")
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal
        # again; this handler turns that into a normal exit, so the workers stop too.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _exit_quietly)
        uvicorn.Server(config).run()
    finally:
        pool.close()


def _exit_quietly(signum: int, frame: Any) -> None:
    raise SystemExit(0)
