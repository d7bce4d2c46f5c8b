"""Renders run in a few warm worker processes, behind an admission limit.

WeasyPrint is CPU-bound and holds the GIL, so threads do not help: each
worker process builds its Renderer once (fonts, CSS, templates, content) and
reuses it for every request. At most ``workers + queue`` renders are admitted
at a time; the next request is refused at once (the service answers 503 with
Retry-After) instead of waiting in an unbounded queue.

A request's ``timeout`` is how long its caller waits for the PDF, queue
included: it gets its answer, or RenderTimeout, by then. Time spent in the
queue is not charged to the render itself:

- A job is sent to a worker only while it has enough time left for a render
  (the last render's duration, at least 0.1 s, at most half its timeout);
  otherwise it is dropped from the queue with RenderTimeout, and no worker is
  touched. A burst that the workers cannot finish in time is answered with
  some RenderTimeouts, never with killed workers.
- A worker is stopped only when the render itself (counted from the moment
  the worker got the job) passes ``timeout``: it is killed (SIGKILL) and a
  fresh one warm-started in its place.
- A caller that stops waiting (its time ran out while its render was still
  within its own time, or it went away) gets RenderTimeout, or nothing; its
  render goes on, its result is thrown away and the worker goes back to
  idle. Its admission slot stays taken until then, since it still holds a
  worker. A job whose caller went away before it reached a worker is dropped.

The pool runs its worker processes itself (one pipe each), so that one worker
can be stopped or lost without touching the others:

- A worker that dies (out of memory, killed) fails only the request it was
  rendering (WorkerLost); an idle worker that dies fails none (a job it had not
  taken yet goes to another worker). It is logged on the ``myelo_docs.service``
  logger (pid and exit status, never patient data) and replaced in the
  background; requests in flight elsewhere go on, queued ones wait for the next
  free worker within their own time limit.
- A worker that does not get warm within ``startup_timeout`` seconds (a stuck
  font cache lock, a slow network font folder) is killed and logged; in
  ``start()`` that is a RuntimeError, for a replacement it is tried again
  later (1 s, 2 s, ... up to 60 s apart), like any other failed start.
- After ``recycle_after`` renders a worker is replaced by a fresh one, which
  takes over once warm; no request waits for a cold worker.
- ``stop_replacing()`` is called when the service begins to shut down (a
  signal sent to the whole process group may reach the workers first): from
  then on no worker is started, and a worker that stops is logged as info.
  ``close()`` implies it, and kills any worker that is started after it.
- ``health()`` says how many workers are ready to render.

``run_job`` is the one place a render happens: a faster render path plugs in
there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from myelo_docs.render.options import RenderSettings
from myelo_docs.schema import errors
from myelo_docs.schema.errors import MyeloDocsError, Problem
from myelo_docs.schema.record import record_model

log = logging.getLogger("myelo_docs.service")


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
    """The request's time ran out: in the queue (no worker touched), or in its render
    (a render that passes the limit itself has its worker stopped)."""


class WorkerLost(Exception):
    """The worker rendering this request died (killed, out of memory); a new one is
    starting, so trying again is safe."""

    def __init__(self) -> None:
        super().__init__("the render worker stopped; try again")


# -- in the worker processes ---------------------------------------------------

_renderer: Any = None
_start_error: dict[str, Any] | None = None


def _start_worker(settings: RenderSettings) -> None:
    global _renderer, _start_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops us
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        from myelo_docs.render.engine import renderer_for

        _renderer = renderer_for(settings)
        _warm_up(_renderer)
    except MyeloDocsError as exc:
        _start_error = _error_result(exc)


def _warm_up(renderer: Any) -> None:
    """Fonts, WeasyPrint's caches and the everyday packet templates, loaded (or, the
    first time on this machine, rendered) before the first nurse is waiting."""
    from myelo_docs.cli.demo import DEMO_RECORD

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


_TAKEN = "taken"  # a worker's receipt for a job: a death before it means the job is untouched


def _worker_main(settings: RenderSettings, conn: Connection) -> None:
    """A worker's life: start warm, say so (None, or the start error), then answer
    each ``(kind, payload)`` with _TAKEN and then run_job's result, until the pipe
    closes or None comes."""
    _start_worker(settings)
    conn.send(_ready())
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        conn.send(_TAKEN)
        try:
            result = run_job(*job)
        except Exception as exc:  # a bug: the server answers 500; the message may hold PHI
            result = {"failed": type(exc).__name__}
        conn.send(result)


def _unwrap(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """Raise the worker's error in this process, as the same class with the same problems."""
    if result is None or "error" not in result:
        return result
    cls = getattr(errors, result["error"], MyeloDocsError)
    raise cls(result["message"], [Problem(**p) for p in result["problems"]])


# -- in the server process ---------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection
    slot: int
    started: float = field(default_factory=time.monotonic)
    jobs: int = 0
    busy: bool = False
    retire: bool = False  # replaced by a fresh worker: stop once its job is done

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid


@dataclass(eq=False)
class _Slot:
    current: _Worker | None = None  # the warm worker serving this slot
    warming: bool = False  # a fresh worker is starting for it (a replacement or a recycle)
    recycle_from: float = 0.0  # after a failed recycle, not before this time.monotonic()


@dataclass(eq=False)
class _Job:
    kind: str
    payload: dict[str, Any]
    timeout: float  # the caller's wait (queue included), and the render's own limit
    deadline: float  # time.monotonic() when the caller stops waiting
    abandoned: bool = False  # the caller stopped waiting (set under the pool's lock)


class _SlowStart(Exception):
    """A worker did not get warm within the pool's startup_timeout (it was killed)."""


class _Closed(RuntimeError):
    def __init__(self) -> None:
        super().__init__("the render pool is closed, or starts no more workers")


# A job goes to a worker only with at least this long left (and the last render's time).
MIN_DISPATCH_SECONDS = 0.1


def _drop_unclaimed(answer: asyncio.Future[Any]) -> None:
    """Mark a job's exception as seen: its caller may have stopped waiting for it."""
    if not answer.cancelled():
        answer.exception()


def _exit_status(process: BaseProcess) -> str:
    code = process.exitcode
    if code is None:
        return "no answer"
    if code < 0:
        return f"signal {-code}"
    return f"exit code {code}"


class RenderPool:
    """``workers`` warm render processes and a bounded queue (see the module's doc).

    ``render`` raises Busy (over the limit), RenderTimeout (its time ran out, in
    the queue or in the render), WorkerLost (its worker died) or the render's own
    MyeloDocsError. ``health()`` gives the capacity. ``stop_replacing()`` when
    shutting down, ``close()`` at the end.
    """

    def __init__(self, settings: RenderSettings, workers: int = 2, queue: int = 8,
                 recycle_after: int = 500, startup_timeout: float = 120.0):
        self.settings = settings
        self.workers = workers
        self.limit = workers + queue
        # A worker's memory creeps up by some tens of KB per render (WeasyPrint and
        # Pango caches); fresh workers every few hundred renders keep it bounded.
        self.recycle_after = recycle_after
        # How long a worker may take to get warm (fonts, caches, three renders)
        # before it is killed as stuck.
        self.startup_timeout = startup_timeout
        self._context = multiprocessing.get_context("spawn")  # never a fork of our threads
        self._lock = threading.Lock()
        self._free = threading.Condition(self._lock)  # notified when a worker becomes idle
        self._idle: list[_Worker] = []
        self._slots = [_Slot() for _ in range(workers)]
        self._processes: dict[int, _Worker] = {}  # every live worker process, by pid
        self._admitted = 0
        self._last_seconds = 1.0
        self._threads: ThreadPoolExecutor | None = None
        self._closed = threading.Event()
        self._replacing = True  # False once shutting down: no worker is started any more

    # -- starting and stopping -----------------------------------------------

    def _spawn(self, slot: int) -> _Worker:
        """Start a worker process for ``slot``. Raises _Closed (and leaves no process)
        when the pool is closed or starts no more workers, even if that happened
        while this one was being started."""
        with self._lock:
            if not self._replacing:
                raise _Closed()
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(self.settings, theirs),
                                        name=f"myelo-docs render worker {slot}", daemon=True)
        process.start()
        theirs.close()
        worker = _Worker(process, ours, slot)
        with self._lock:
            # close() kills every process registered here; one started after it
            # took its list must not live on.
            late = not self._replacing
            if not late:
                self._processes[worker.pid] = worker
        if late:
            process.kill()
            process.join(5)
            ours.close()
            raise _Closed()
        return worker

    def _await_ready(self, worker: _Worker) -> dict[str, Any] | None:
        """The worker's start message: None when warm, or its start error. Raises
        EOFError/OSError when it died while starting, and _SlowStart (after killing
        it) when it is not warm within ``startup_timeout`` of being started."""
        left = worker.started + self.startup_timeout - time.monotonic()
        if not worker.conn.poll(max(0.0, left)):
            worker.process.kill()
            worker.process.join(5)
            raise _SlowStart()
        return worker.conn.recv()

    def start(self) -> RenderPool:
        """Start the workers and wait until they are warm; each renders once as it starts.

        A bad brand, protocol or font folder raises its ConfigError here; a worker
        that dies while starting, or is not warm within ``startup_timeout``, a
        RuntimeError.
        """
        if self._threads is not None:
            raise RuntimeError("the render pool is already started")
        # Enough threads that an admitted request never waits for one.
        self._threads = ThreadPoolExecutor(self.limit + self.workers,
                                           thread_name_prefix="render-wait")
        try:
            started = [self._spawn(slot) for slot in range(self.workers)]
            for worker in started:
                try:
                    _unwrap(self._await_ready(worker))
                except (EOFError, OSError):
                    worker.process.join(5)
                    raise RuntimeError(f"a render worker stopped while starting "
                                       f"({_exit_status(worker.process)})") from None
                except _SlowStart:
                    log.error("render worker %d was not ready within %g s and was stopped",
                              worker.pid, self.startup_timeout)
                    raise RuntimeError(
                        f"a render worker was not ready within {self.startup_timeout:g} "
                        "seconds (stuck loading fonts? check the font folder and the "
                        "fontconfig cache)") from None
        except BaseException:
            self.close()
            raise
        with self._lock:
            for worker in started:
                self._slots[worker.slot].current = worker
                self._idle.append(worker)
        threading.Thread(target=self._watch_idle, name="render-watch", daemon=True).start()
        return self

    def stop_replacing(self) -> None:
        """Shutdown has begun: start no more workers (no replacement, no recycle, no
        retry of a failed start), and log a worker that stops as info only. Workers
        already warming may still take over; close() stops them all."""
        with self._lock:
            self._replacing = False

    def close(self) -> None:
        """Stop every worker: idle ones are asked to leave, busy or starting ones killed.
        A worker started after this (by a replacement under way) is killed at once."""
        with self._lock:
            self._replacing = False
            self._closed.set()
            self._free.notify_all()
            idle, self._idle = self._idle, []
            others = [w for w in self._processes.values() if w not in idle]
        for worker in idle:
            self._leave(worker, wait=False)
        for worker in others:
            worker.process.kill()
        deadline = time.monotonic() + 5
        for worker in idle + others:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(1)
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)

    def _leave(self, worker: _Worker, wait: bool = True) -> None:
        """Ask a worker that is not rendering to exit (recycled, or the pool closing)."""
        with self._lock:
            self._processes.pop(worker.pid, None)
        with contextlib.suppress(OSError):
            worker.conn.send(None)
        worker.conn.close()
        if wait:
            threading.Thread(target=self._reap, args=(worker,), daemon=True).start()

    @staticmethod
    def _reap(worker: _Worker) -> None:
        worker.process.join(10)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(1)

    def _warm_start(self, slot: int) -> None:
        """In a background thread: start a fresh worker for ``slot`` and switch it in
        once warm. While the slot has no worker, failed starts are retried (1 s, 2 s,
        … up to 60 s apart)."""
        delay = 1.0
        try:
            while not self._closed.is_set():
                try:
                    worker = self._spawn(slot)
                except OSError as exc:  # out of processes or memory: try again later
                    log.error("could not start a render worker (%s)", type(exc).__name__)
                    worker = None
                problem = None
                if worker is not None:
                    try:
                        start_error = self._await_ready(worker)
                    except (EOFError, OSError):
                        worker.process.join(5)
                        problem = f"stopped while starting ({_exit_status(worker.process)})"
                    except _SlowStart:
                        problem = (f"was not ready within {self.startup_timeout:g} s "
                                   "and was stopped")
                    else:
                        if start_error is None:
                            self._switch_in(worker)
                            return
                        problem = f"could not start: {start_error['error']}"
                        self._leave(worker)
                    with self._lock:
                        self._processes.pop(worker.pid, None)
                        closed, stopping = self._closed.is_set(), not self._replacing
                    if stopping and not closed:  # shutting down: the signal reached it
                        log.info("render worker %d %s (shutting down)", worker.pid, problem)
                    elif not closed:
                        log.error("render worker %d %s", worker.pid, problem)
                with self._lock:
                    if self._slots[slot].current is not None:  # a recycle failed: keep the old
                        self._slots[slot].warming = False
                        self._slots[slot].recycle_from = time.monotonic() + 60
                        return
                self._closed.wait(delay)
                delay = min(delay * 2, 60.0)
        except _Closed:
            pass
        with self._lock:
            self._slots[slot].warming = False

    def _switch_in(self, fresh: _Worker) -> None:
        seconds = time.monotonic() - fresh.started
        with self._lock:
            slot = self._slots[fresh.slot]
            slot.warming = False
            closed = self._closed.is_set()
            old, slot.current = slot.current, (None if closed else fresh)
            retired = None
            if old is not None:
                if old in self._idle:
                    self._idle.remove(old)
                    retired = old
                else:
                    old.retire = True  # busy: it leaves when its job is done
            if not closed:
                self._idle.append(fresh)
                self._free.notify()
        if closed:
            self._leave(fresh)
            return
        if retired is not None:
            self._leave(retired)
        if old is None:
            log.info("render worker %d ready (%.1f s)", fresh.pid, seconds)
        else:
            log.info("render worker %d ready (%.1f s); it replaces %d after %d renders",
                     fresh.pid, seconds, old.pid, old.jobs)

    def _replace(self, worker: _Worker, why: str) -> None:
        """A worker is gone (killed by us or by something else): log it, take it out,
        and start a fresh one for its slot unless one is already on the way (or the
        service is shutting down)."""
        with self._lock:
            self._processes.pop(worker.pid, None)
            if worker in self._idle:
                self._idle.remove(worker)
            slot = self._slots[worker.slot]
            if slot.current is worker:
                slot.current = None
            if self._closed.is_set():
                return
            stopping = not self._replacing
            already = slot.warming
            start = slot.current is None and not already and not stopping
            if start:
                slot.warming = True
        if stopping:
            log.info("render worker %d %s (shutting down)", worker.pid, why)
        elif start:
            log.warning("render worker %d %s; starting a new one", worker.pid, why)
        elif already and not worker.retire:
            log.warning("render worker %d %s; a new one is already starting", worker.pid, why)
        else:
            log.warning("render worker %d %s", worker.pid, why)
        if start:
            threading.Thread(target=self._warm_start, args=(worker.slot,),
                             name="render-warm-start", daemon=True).start()

    def _watch_idle(self) -> None:
        """Notices idle workers that died (so that no request is sent to them and
        health() is right), within half a second."""
        while not self._closed.is_set():
            with self._lock:
                idle = list(self._idle)
            ready = multiprocessing.connection.wait(
                [w.process.sentinel for w in idle], timeout=0.5) if idle else []
            if not idle:
                self._closed.wait(0.5)
            for worker in idle:
                if worker.process.sentinel in ready:
                    with self._lock:
                        if worker not in self._idle:
                            continue  # taken for a job meanwhile: that job will see it
                        self._idle.remove(worker)
                    self._lost(worker)

    def _lost(self, worker: _Worker) -> None:
        worker.process.join(2)
        worker.conn.close()
        self._replace(worker, f"stopped ({_exit_status(worker.process)})")

    # -- admission ---------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Jobs admitted and not over: queued, rendering, or rendering for a caller
        that stopped waiting."""
        return self._admitted

    def _admit(self) -> bool:
        with self._lock:
            if self._admitted >= self.limit:
                return False
            self._admitted += 1
            return True

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead, at the last render speed."""
        return max(1, math.ceil(self._last_seconds * self.limit / self.workers))

    def health(self) -> dict[str, Any]:
        """Capacity now: ``{"workers": configured, "ready": warm workers serving,
        "starting": fresh workers warming up (replacements and recycles),
        "in_flight": renders admitted (queued, rendering, or still rendering for a
        caller that stopped waiting), "limit": workers + queue}``.
        ready < workers means degraded; ready == 0 means no render can be served."""
        with self._lock:
            return {"workers": self.workers,
                    "ready": sum(slot.current is not None for slot in self._slots),
                    "starting": sum(slot.warming for slot in self._slots),
                    "in_flight": self._admitted, "limit": self.limit}

    def processes(self) -> dict[int, str]:
        """The live worker processes, pid -> "idle", "busy" or "starting" (for
        diagnostics and tests)."""
        with self._lock:
            serving = {id(slot.current) for slot in self._slots}
            return {pid: ("busy" if w.busy else "idle" if id(w) in serving or w in self._idle
                          else "starting")
                    for pid, w in self._processes.items()}

    # -- rendering ---------------------------------------------------------------

    async def render(self, kind: str, payload: dict[str, Any], timeout: float) -> Rendered:
        """Render in a worker; the answer comes within ``timeout`` seconds (queue
        included), and the render itself may take ``timeout`` from when a worker
        takes it (see the module's doc).

        Raises Busy, RenderTimeout, WorkerLost or the render's MyeloDocsError.
        """
        if self._threads is None or self._closed.is_set():
            raise RuntimeError("the render pool is not started, or closed")
        if not self._admit():
            raise Busy(self.retry_after())
        job = _Job(kind, payload, timeout, time.monotonic() + timeout)
        try:
            future = self._threads.submit(self._run, job)
        except RuntimeError:  # closed meanwhile
            self._release()
            raise
        # The slot is freed by _run when the job is really over, not when we stop
        # waiting. asyncio.wait, not wait_for: a caller that times out or goes away
        # must not cancel a job still queued for a thread, or its slot would never
        # be freed. A result nobody waits for any more is dropped quietly.
        answer = asyncio.wrap_future(future)
        answer.add_done_callback(_drop_unclaimed)
        try:
            done, _ = await asyncio.wait({answer},
                                         timeout=max(0.0, job.deadline - time.monotonic()))
        except asyncio.CancelledError:
            self._abandon(job)
            raise
        if not done:
            self._abandon(job)
            raise RenderTimeout()
        result = _unwrap(answer.result())
        assert result is not None
        if "failed" in result:
            raise RuntimeError(f"the render failed in its worker ({result['failed']})")
        return Rendered(result["pdf"], result["pages"], result["seconds"])

    def _abandon(self, job: _Job) -> None:
        """The caller stopped waiting: a job still queued is dropped; one that is
        rendering finishes (or is stopped at its own limit) and its result is lost."""
        with self._free:
            job.abandoned = True
            self._free.notify_all()

    def _dispatch_floor(self, timeout: float) -> float:
        """The time a job must have left to be sent to a worker."""
        return min(max(MIN_DISPATCH_SECONDS, self._last_seconds), timeout / 2)

    def _take(self, job: _Job) -> _Worker:
        """The next idle worker, waiting for one while the job still has time for a
        render; RenderTimeout (nothing to stop) when it has not, or its caller left."""
        while True:
            with self._free:
                while True:
                    if self._closed.is_set():
                        raise RuntimeError("the render pool is closed")
                    left = job.deadline - time.monotonic() - self._dispatch_floor(job.timeout)
                    if job.abandoned or left <= 0:
                        if self._idle:  # this wake-up was meant for a job that can use it
                            self._free.notify()
                        raise RenderTimeout()  # still queued: dropped, nothing to stop
                    if self._idle:
                        break
                    self._free.wait(left)
                worker = self._idle.pop(0)
                alive = worker.process.is_alive()
                worker.busy = alive
            if alive:
                return worker
            self._lost(worker)  # died while idle, before the watcher saw it

    def _run(self, job: _Job) -> dict[str, Any]:
        """In a waiting thread: one job, start to end (also when its caller stopped
        waiting). Frees the admission slot."""
        try:
            while True:
                worker = self._take(job)
                ends = time.monotonic() + job.timeout  # the render's own limit
                receipt = None
                try:
                    try:
                        worker.conn.send((job.kind, job.payload))
                    except (EOFError, OSError):
                        raise
                    except Exception:  # could not pickle the job: the worker never saw it
                        worker.jobs -= 1
                        self._done(worker)
                        raise
                    receipt = self._receive(worker, ends, job.timeout)
                    result: dict[str, Any] = self._receive(worker, ends, job.timeout)
                except (EOFError, OSError):
                    self._lost(worker)
                    if receipt is None:
                        continue  # it died idle, before taking the job: another worker
                    raise WorkerLost() from None
                if isinstance(result, dict) and "seconds" in result:
                    self._last_seconds = result["seconds"]
                self._done(worker)
                return result
        finally:
            self._release()

    def _receive(self, worker: _Worker, ends: float, timeout: float) -> Any:
        """The worker's next message; past ``ends`` the worker is stopped and
        RenderTimeout raised. EOFError/OSError when the worker died."""
        if not worker.conn.poll(max(0.0, ends - time.monotonic())):
            self._stop(worker, timeout)
            raise RenderTimeout()
        return worker.conn.recv()

    def _stop(self, worker: _Worker, timeout: float) -> None:
        """Kill a worker whose render passed its time limit, and replace it."""
        worker.process.kill()
        worker.process.join(5)
        worker.conn.close()
        self._replace(worker, f"passed the time limit ({timeout:g} s) and was stopped")

    def _done(self, worker: _Worker) -> None:
        """A worker finished its job: back to the idle list, or out if it was replaced;
        after ``recycle_after`` jobs a fresh worker starts to take its place."""
        recycle = False
        with self._lock:
            worker.busy = False
            worker.jobs += 1
            slot = self._slots[worker.slot]
            leave = worker.retire or self._closed.is_set()
            if not leave:
                self._idle.append(worker)
                self._free.notify()
                if (worker.jobs >= self.recycle_after and not slot.warming
                        and self._replacing and time.monotonic() >= slot.recycle_from):
                    slot.warming = recycle = True
        if leave:
            self._leave(worker)
        if recycle:
            threading.Thread(target=self._warm_start, args=(worker.slot,),
                             name="render-warm-start", daemon=True).start()
