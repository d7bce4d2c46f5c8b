"""Renders run in a few warm worker processes, behind an admission limit.

WeasyPrint is CPU-bound and holds the GIL, so threads do not help: each
worker process builds its Renderer once (fonts, CSS, templates, content) and
reuses it for every request. At most ``workers + queue`` renders are admitted
at a time; the next request is refused at once (the service answers 503 with
Retry-After) instead of waiting in an unbounded queue.

``run_job`` is the one place a render happens: a faster render path plugs in
there.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from .. import errors
from ..errors import MyeloDocsError, Problem
from ..record import record_model
from ..render_settings import RenderSettings


@dataclass(frozen=True)
class Rendered:
    pdf: bytes
    pages: int
    seconds: float


class Busy(Exception):
    """Every worker is busy and the queue is full: try again later."""

    def __init__(self, retry_after: int):
        super().__init__("busy")
        self.retry_after = retry_after


class RenderTimeout(Exception):
    """The render took longer than the request's time limit."""


# -- in the worker processes ---------------------------------------------------

_renderer: Any = None
_start_error: dict[str, Any] | None = None


def _start_worker(settings: RenderSettings) -> None:
    global _renderer, _start_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops us
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        _renderer = settings.renderer()
        _warm_up(_renderer)
    except MyeloDocsError as exc:
        _start_error = _error_result(exc)


def _warm_up(renderer: Any) -> None:
    """Fonts, WeasyPrint's caches and the everyday packet templates, loaded (or, the
    first time on this machine, rendered) before the first nurse is waiting."""
    from ..demo import DEMO_RECORD

    for type_name in ("lumbar", "cervical", "thoracic"):
        renderer.packet({**DEMO_RECORD, "type": type_name})


def _exit_with_parent(parent: int) -> None:
    """A killed server cannot stop its workers; they notice and leave by themselves."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _error_result(exc: MyeloDocsError) -> dict[str, Any]:
    # Exceptions with extra fields do not survive pickling; send plain data.
    return {"error": type(exc).__name__, "message": exc.message,
            "problems": [p.as_dict() for p in exc.problems]}


def _ready() -> dict[str, Any] | None:
    return _start_error


def run_job(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Render one packet (from a cached template where it can) or handout in this worker."""
    if _start_error is not None:
        return _start_error
    started = time.perf_counter()
    try:
        if kind == "packet":  # accepted by the server with its intake settings
            document = _renderer.packet(record_model(payload))
        else:
            document = _renderer.handout(payload["type"], payload["language"],
                                         payload["large_print"])
    except MyeloDocsError as exc:
        return _error_result(exc)
    return {"pdf": document.pdf, "pages": document.pages,
            "seconds": time.perf_counter() - started}


def _unwrap(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """Raise the worker's error in this process, as the same class with the same problems."""
    if result is None or "error" not in result:
        return result
    cls = getattr(errors, result["error"], MyeloDocsError)
    raise cls(result["message"], [Problem(**p) for p in result["problems"]])


# -- in the server process ---------------------------------------------------------


class RenderPool:
    def __init__(self, settings: RenderSettings, workers: int = 2, queue: int = 8,
                 recycle_after: int = 500):
        self.settings = settings
        self.workers = workers
        self.limit = workers + queue
        # A worker's memory creeps up by some tens of KB per render (WeasyPrint and
        # Pango caches); fresh workers every few hundred renders keep it bounded.
        self.recycle_after = recycle_after
        self._lock = threading.Lock()
        self._admitted = 0
        self._jobs = 0
        self._last_seconds = 1.0
        self._executor: ProcessPoolExecutor | None = None
        self._warming: ProcessPoolExecutor | None = None  # the next workers, while they start

    def _new_executor(self) -> ProcessPoolExecutor:
        # "spawn": a fresh interpreter per worker, never a fork of the server's threads.
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(self.settings,))

    def start(self) -> RenderPool:
        """Start the workers and wait until they answer; each renders once as it starts.

        A bad brand, protocol or font folder raises its ConfigError here.
        """
        self._executor = self._new_executor()
        ready = [self._executor.submit(_ready) for _ in range(self.workers)]
        for future in ready:
            _unwrap(future.result())
        return self

    def close(self) -> None:
        with self._lock:
            warming, self._warming = self._warming, None
        if warming is not None:
            warming.shutdown(wait=True, cancel_futures=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    @property
    def in_flight(self) -> int:
        return self._admitted

    def _admit(self) -> bool:
        with self._lock:
            if self._admitted >= self.limit:
                return False
            self._admitted += 1
            return True

    def _release(self, _: object = None) -> None:
        with self._lock:
            self._admitted -= 1

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead, at the last render speed."""
        return max(1, math.ceil(self._last_seconds * self.limit / self.workers))

    def _recycle(self) -> None:
        """After recycle_after jobs, start fresh workers; once they are warm, new jobs
        go to them and the old ones finish theirs. (Switching at once made the
        requests that came meanwhile wait seconds for cold workers.)"""
        with self._lock:
            self._jobs += 1
            if (self._jobs < self.recycle_after or self._executor is None
                    or self._warming is not None):
                return
            self._jobs = 0
            fresh = self._warming = self._new_executor()
        ready = [fresh.submit(_ready) for _ in range(self.workers)]

        def switch(_: object) -> None:
            if not all(future.done() for future in ready):
                return
            with self._lock:
                if self._warming is not fresh:
                    return
                self._warming = None
                if any(future.exception() or future.result() for future in ready):
                    fresh.shutdown(wait=False)  # keep the old workers; try again later
                    return
                old, self._executor = self._executor, fresh
            if old is not None:
                old.shutdown(wait=False)

        for future in ready:
            future.add_done_callback(switch)

    async def render(self, kind: str, payload: dict[str, Any], timeout: float) -> Rendered:
        """Render in a worker. Raises Busy, RenderTimeout or the render's MyeloDocsError."""
        if self._executor is None:
            raise RuntimeError("the render pool is not started")
        if not self._admit():
            raise Busy(self.retry_after())
        self._recycle()
        executor = self._executor
        try:
            future: Future[dict[str, Any]] = executor.submit(run_job, kind, payload)
        except (BrokenProcessPool, RuntimeError):
            self._release()
            self._restart(executor)
            raise Busy(self.retry_after()) from None
        # The slot is freed when the worker is really done, not when we stop waiting.
        future.add_done_callback(self._release)
        try:
            result = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
        except TimeoutError:
            future.cancel()  # only helps while it is still queued
            raise RenderTimeout() from None
        except BrokenProcessPool:
            self._restart(executor)
            raise Busy(self.retry_after()) from None
        result = _unwrap(result)
        assert result is not None
        self._last_seconds = result["seconds"]
        return Rendered(result["pdf"], result["pages"], result["seconds"])

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        """A worker died (out of memory, killed): replace the whole pool, once."""
        with self._lock:
            if self._executor is not broken:
                return
            self._executor = self._new_executor()
        broken.shutdown(wait=False, cancel_futures=True)
