"""The render pool holds: a render past its time limit is stopped, a dead worker fails
only its own request and is replaced, workers are recycled, the queue is bounded.
In-process against the pool, then against a real `myelo-docs serve`."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from test_service import PHI, Server, running_server

from conftest import BASE_RECORD, flat, pages_text
from myelo_docs import ConfigError
from myelo_docs.schema.record import MAX_FREE_TEXT, MAX_INSTRUCTIONS, MAX_MEDICATIONS
from myelo_docs.service import RenderPool, RenderSettings
from myelo_docs.service.pool import Busy, Rendered, RenderTimeout, WorkerLost

# A full large-print handout takes 0.5-1.5 s (0.5 s of CPU): far past a 0.05 s
# limit, and long enough to kill its worker in the middle of it.
SLOW = {"type": "lumbar", "language": "en", "large_print": True}

# The slowest packet there is: large print, Spanish, every list full (36 pages,
# never from a cached template): 1.5 s of CPU warm, 3 s the first time in a worker.
BIG = {**BASE_RECORD, "language": "es", "large_print": True,
       "instructions": [("Camine despacio y beba agua. " * 20)[:MAX_FREE_TEXT - 1]
                        for _ in range(MAX_INSTRUCTIONS)],
       "medications": [{"name": f"Medicamento {n}",
                        "instruction": ("Reanude el medicamento mañana. " * 20)[:MAX_FREE_TEXT - 1]}
                       for n in range(MAX_MEDICATIONS)]}


def wait_until(condition: Callable[[], object], seconds: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.02)


async def wait_until_async(condition: Callable[[], object], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def wait_for_log(caplog, pattern: str, seconds: float = 10) -> None:
    """The pool logs just after it changes its state: wait for the line, briefly."""
    wait_until(lambda: re.search(pattern, caplog.text), seconds, pattern)


def busy_pids(pool: RenderPool) -> set[int]:
    return {pid for pid, state in pool.processes().items() if state == "busy"}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # dead, not yet reaped


@pytest.fixture(scope="module")
def pool():
    pool = RenderPool(RenderSettings(), workers=2, queue=2).start()
    yield pool
    pids = set(pool.processes())
    pool.close()
    assert all(gone(pid) for pid in pids)  # close() leaves no worker behind


@pytest.fixture
def steady(pool):
    """The pool at full strength and idle, before and after each test."""
    def full() -> bool:
        health = pool.health()
        return health["ready"] == 2 and health["starting"] == 0 and health["in_flight"] == 0
    wait_until(full, 60, "a steady pool")
    yield pool
    wait_until(full, 60, "a steady pool")


@pytest.fixture(scope="module")
def solo():
    """One worker and a queue of five: a burst queues behind a single render."""
    pool = RenderPool(RenderSettings(), workers=1, queue=5).start()
    yield pool
    pool.close()


def steady_solo(pool: RenderPool) -> bool:
    health = pool.health()
    return health["ready"] == 1 and health["starting"] == 0 and health["in_flight"] == 0


def assert_packet(rendered) -> None:
    assert rendered.pdf.startswith(b"%PDF") and rendered.pages >= 5
    assert "Rosalind Testpatient" in flat(pages_text(rendered.pdf)[0])


def test_health_reports_capacity(steady):
    assert steady.health() == {"workers": 2, "ready": 2, "starting": 0, "in_flight": 0,
                               "limit": 4}


def test_render_past_its_timeout_is_stopped_and_the_next_is_served(steady, caplog):
    caplog.set_level(logging.INFO, logger="myelo_docs.service")
    before = set(steady.processes())
    with pytest.raises(RenderTimeout):
        asyncio.run(steady.render("handout", SLOW, 0.05))
    # Stopped at its own limit: 0.05 s after it reached the worker, just after the answer.
    wait_until(lambda: len(before - set(steady.processes())) == 1, 10, "the kill")
    killed = before - set(steady.processes())
    assert len(killed) == 1 and gone(killed.pop())  # stopped, not left running
    assert steady.health()["ready"] == 1
    # The next request is served at once by the other worker, not stuck behind it.
    assert_packet(asyncio.run(steady.render("packet", BASE_RECORD, 30)))
    wait_until(lambda: steady.health()["ready"] == 2, 60, "the replacement")
    assert len(set(steady.processes()) - before) == 1
    assert "passed the time limit (0.05 s) and was stopped; starting a new one" in caplog.text
    assert_packet(asyncio.run(steady.render("packet", BASE_RECORD, 30)))


def test_a_job_that_times_out_in_the_queue_is_dropped_without_a_kill(steady):
    before = set(steady.processes())

    async def scenario():
        slow = [asyncio.ensure_future(steady.render("handout", SLOW, 30)) for _ in range(2)]
        await wait_until_async(lambda: len(busy_pids(steady)) == 2)
        with pytest.raises(RenderTimeout):
            await steady.render("packet", BASE_RECORD, 0.05)  # never reaches a worker
        return await asyncio.gather(*slow)

    for rendered in asyncio.run(scenario()):
        assert rendered.pdf.startswith(b"%PDF")
    assert set(steady.processes()) == before
    assert steady.health()["ready"] == 2


def test_a_killed_worker_fails_only_its_own_request(steady, caplog):
    caplog.set_level(logging.INFO, logger="myelo_docs.service")
    seen: dict[str, object] = {}

    async def scenario():
        doomed = asyncio.ensure_future(steady.render("handout", SLOW, 30))
        await wait_until_async(lambda: len(busy_pids(steady)) == 1)
        (victim,) = busy_pids(steady)
        other = asyncio.ensure_future(steady.render("handout", SLOW, 30))
        await wait_until_async(lambda: len(busy_pids(steady)) == 2)
        queued = asyncio.ensure_future(steady.render("packet", BASE_RECORD, 30))
        await wait_until_async(lambda: steady.in_flight == 3)
        os.kill(victim, signal.SIGKILL)  # as the kernel's out-of-memory killer would
        with pytest.raises(WorkerLost):
            await doomed
        seen["health"] = steady.health()
        seen["victim"] = victim
        return await other, await queued

    handout, packet = asyncio.run(scenario())
    assert handout.pdf.startswith(b"%PDF")  # in flight on the healthy worker
    assert_packet(packet)  # queued: served by the next free worker
    assert seen["health"]["ready"] == 1
    wait_until(lambda: steady.health()["ready"] == 2, 60, "the replacement")
    assert seen["victim"] not in steady.processes()
    assert_packet(asyncio.run(steady.render("packet", BASE_RECORD, 30)))
    wait_for_log(caplog, r"render worker \d+ ready \(")
    lines = [r.getMessage() for r in caplog.records if r.name == "myelo_docs.service"]
    assert f"render worker {seen['victim']} stopped (signal 9); starting a new one" in lines
    assert not any(value in caplog.text for value in PHI)


def test_an_idle_worker_that_dies_fails_no_request(steady, caplog):
    caplog.set_level(logging.INFO, logger="myelo_docs.service")
    victim = steady._idle[0].pid  # the worker the next job takes
    os.kill(victim, signal.SIGKILL)
    for _ in range(3):  # sent at once: the job goes to the other worker, whatever the moment
        assert_packet(asyncio.run(steady.render("packet", BASE_RECORD, 30)))
    wait_until(lambda: steady.health()["ready"] == 2, 60, "the replacement")
    assert victim not in steady.processes()
    assert f"render worker {victim} stopped (signal 9); starting a new one" in caplog.text


def test_a_replacement_that_fails_to_start_is_tried_again(steady, caplog):
    caplog.set_level(logging.INFO, logger="myelo_docs.service")
    victim = next(iter(steady.processes()))

    def starting() -> set[int]:
        return {pid for pid, state in steady.processes().items() if state == "starting"}

    # A replacement that is not warm in time (a stuck fontconfig lock, a slow font
    # folder) is killed and logged, and another one tried.
    steady.startup_timeout = 0.1
    try:
        os.kill(victim, signal.SIGKILL)
        wait_for_log(caplog, r"render worker \d+ was not ready within 0\.1 s and was stopped")
    finally:
        steady.startup_timeout = 120.0
    (stuck,) = map(int, re.findall(r"render worker (\d+) was not ready within", caplog.text))
    assert gone(stuck) and stuck not in steady.processes()
    # The next one dies while starting: tried again too.
    wait_until(starting, 10, "a second replacement")
    (replacement,) = starting()
    os.kill(replacement, signal.SIGKILL)
    wait_for_log(caplog, rf"render worker {replacement} stopped while starting \(signal 9\)")
    assert steady.health()["ready"] == 1
    assert_packet(asyncio.run(steady.render("packet", BASE_RECORD, 30)))
    wait_until(lambda: steady.health()["ready"] == 2, 60, "the second replacement")


def test_workers_are_recycled_once_fresh_ones_are_warm(steady, caplog):
    caplog.set_level(logging.INFO, logger="myelo_docs.service")
    before = set(steady.processes())
    # Capacity is watched throughout: a recycle never takes a warm worker away
    # before its fresh one is ready. (How far the fresh one has got when the
    # render returns depends on the machine's load; a warm-up takes about as long
    # as one packet, so it is not asserted.)
    seen: list[dict] = []
    watching = threading.Event()
    watching.set()

    def watch() -> None:
        while watching.is_set():
            seen.append(steady.health())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        steady.recycle_after = 1
        try:
            assert_packet(asyncio.run(steady.render("packet", BASE_RECORD, 30)))
        finally:
            steady.recycle_after = 500
        # Meanwhile the old workers serve: nobody waits for the cold one.
        assert_packet(asyncio.run(steady.render("packet", BASE_RECORD, 30)))
        wait_until(lambda: set(steady.processes()) != before
                   and steady.health()["starting"] == 0, 60, "the fresh worker")
    finally:
        watching.clear()
        watcher.join()
    assert seen and all(h["ready"] == 2 for h in seen)
    assert any(h["starting"] == 1 for h in seen)  # the fresh one warmed up meanwhile
    after = set(steady.processes())
    assert len(after) == 2 and len(before - after) == 1 and len(after - before) == 1
    (old,) = before - after
    wait_for_log(caplog, rf"render worker \d+ ready \([\d.]+ s\); it replaces {old} after "
                         r"\d+ renders")
    assert_packet(asyncio.run(steady.render("packet", BASE_RECORD, 30)))


def test_busy_beyond_workers_and_queue(steady):
    async def scenario():
        admitted = [asyncio.ensure_future(steady.render("handout", SLOW, 30)) for _ in range(4)]
        await wait_until_async(lambda: steady.in_flight == 4)
        with pytest.raises(Busy) as caught:
            await steady.render("packet", BASE_RECORD, 30)
        assert caught.value.retry_after >= 1
        return await asyncio.gather(*admitted)

    assert all(r.pdf.startswith(b"%PDF") for r in asyncio.run(scenario()))
    assert steady.in_flight == 0


# It times one render, then gives five a deadline of 2.5 of them: another worker's
# test starting meanwhile would slow the five and not the one (tests/conftest.py).
@pytest.mark.serial
def test_a_burst_past_the_time_limit_is_answered_without_killing_a_worker(solo, caplog):
    """Queue time is not charged to the render: five renders at once on one worker,
    with time for two or three, get answers or RenderTimeout by their deadline, and
    the worker lives on."""
    caplog.set_level(logging.INFO, logger="myelo_docs.service")
    wait_until(lambda: steady_solo(solo), 60, "a steady pool")
    before = set(solo.processes())
    asyncio.run(solo.render("handout", SLOW, 60))  # the first one loads the handout
    one = asyncio.run(solo.render("handout", SLOW, 60)).seconds
    timeout = 2.5 * one  # longer than one render, far shorter than five

    ready_seen: set[int] = set()

    async def burst():
        started = time.monotonic()
        jobs = asyncio.gather(*(solo.render("handout", SLOW, timeout) for _ in range(5)),
                              return_exceptions=True)
        while not jobs.done():
            ready_seen.add(solo.health()["ready"])
            await asyncio.sleep(0.01)
        return await jobs, time.monotonic() - started

    results, took = asyncio.run(burst())
    assert ready_seen == {1}  # never degraded meanwhile
    assert all(isinstance(r, (Rendered, RenderTimeout)) for r in results), results
    assert any(isinstance(r, Rendered) for r in results)
    assert any(isinstance(r, RenderTimeout) for r in results)
    assert took < timeout + 1  # every caller had its answer by its deadline
    wait_until(lambda: solo.in_flight == 0, 30, "the last render")
    assert set(solo.processes()) == before  # no worker was killed
    assert solo.health() == {"workers": 1, "ready": 1, "starting": 0, "in_flight": 0,
                             "limit": 6}
    assert "passed the time limit" not in caplog.text


def test_a_render_outlives_a_caller_whose_time_ran_out_in_the_queue(solo, caplog,
                                                                    monkeypatch):
    """The caller's time runs out while its render is within the render's own time:
    the caller gets RenderTimeout, the render finishes, its result is dropped, and
    the worker (and its admission slot) is free again only then."""
    caplog.set_level(logging.INFO, logger="myelo_docs.service")
    wait_until(lambda: steady_solo(solo), 60, "a steady pool")
    # Sent to the worker with any time left (the floor is the burst test's business).
    monkeypatch.setattr(solo, "_dispatch_floor", lambda timeout: 0.1)
    (pid,) = before = set(solo.processes())
    seen: dict[str, object] = {}

    async def scenario():
        first = asyncio.ensure_future(solo.render("handout", SLOW, 60))
        await wait_until_async(lambda: busy_pids(solo))
        os.kill(pid, signal.SIGSTOP)  # `first` holds the worker for as long as we say
        try:
            late = asyncio.ensure_future(solo.render("handout", SLOW, 4))
            await asyncio.sleep(1)
            os.kill(pid, signal.SIGCONT)
            await first
            await wait_until_async(lambda: busy_pids(solo))  # `late` reached the worker
            os.kill(pid, signal.SIGSTOP)  # and is held until its caller gives up
            with pytest.raises(RenderTimeout):
                await late
            seen["in_flight"], seen["processes"] = solo.in_flight, solo.processes()
        finally:
            os.kill(pid, signal.SIGCONT)

    asyncio.run(scenario())
    # The render went on past its caller's deadline, still within its own 4 s.
    assert seen == {"in_flight": 1, "processes": {pid: "busy"}}
    wait_until(lambda: solo.in_flight == 0, 30, "the abandoned render")
    assert set(solo.processes()) == before and solo.processes()[pid] == "idle"
    assert solo.health()["ready"] == 1
    assert "passed the time limit" not in caplog.text
    assert_packet(asyncio.run(solo.render("packet", BASE_RECORD, 30)))


def test_a_caller_that_goes_away_leaves_its_render_to_finish(solo):
    wait_until(lambda: steady_solo(solo), 60, "a steady pool")
    before = set(solo.processes())

    async def scenario():
        task = asyncio.ensure_future(solo.render("handout", SLOW, 30))
        await wait_until_async(lambda: busy_pids(solo))
        task.cancel()  # the client hung up
        with pytest.raises(asyncio.CancelledError):
            await task
        return solo.in_flight, busy_pids(solo)

    in_flight, busy = asyncio.run(scenario())
    assert in_flight == 1 and busy == before  # still rendering, still holding its slot
    wait_until(lambda: solo.in_flight == 0, 30, "the abandoned render")
    assert set(solo.processes()) == before and solo.health()["ready"] == 1


def test_after_stop_replacing_a_worker_that_stops_is_not_replaced(solo, caplog):
    """Shutdown: the signal for the whole process group reaches the workers too.
    (This closes the module's one-worker pool for good: keep it its last test.)"""
    caplog.set_level(logging.INFO, logger="myelo_docs.service")
    wait_until(lambda: steady_solo(solo), 60, "a steady pool")
    (victim,) = solo.processes()
    solo.stop_replacing()
    os.kill(victim, signal.SIGTERM)
    wait_for_log(caplog, rf"render worker {victim} stopped \(signal 15\) \(shutting down\)")
    time.sleep(0.5)  # time enough for a (wrong) replacement to show up
    assert solo.processes() == {}
    assert solo.health()["ready"] == 0 and solo.health()["starting"] == 0
    records = [r for r in caplog.records if r.name == "myelo_docs.service"]
    assert records and all(r.levelno <= logging.INFO for r in records)
    assert "starting a new one" not in caplog.text
    solo.close()


def test_start_gives_up_on_a_worker_that_is_not_ready_in_time(caplog):
    caplog.set_level(logging.INFO, logger="myelo_docs.service")
    with pytest.raises(RuntimeError, match=r"not ready within 0\.1 seconds"):
        RenderPool(RenderSettings(), workers=1, queue=0, startup_timeout=0.1).start()
    (pid,) = map(int, re.findall(r"render worker (\d+) was not ready within 0\.1 s "
                                 r"and was stopped", caplog.text))
    assert gone(pid)


def test_a_worker_started_after_close_is_killed_at_once():
    """close() may come while a replacement is being started: that worker must not
    outlive the pool."""
    pool = RenderPool(RenderSettings(), workers=1, queue=0)
    real = pool._context
    started = []

    class CloseWhileStarting:
        """close() comes after _spawn checked that the pool is open, before the
        process starts."""

        def Pipe(self):  # noqa: N802 (multiprocessing's names)
            return real.Pipe()

        def Process(self, **kwargs):  # noqa: N802
            started.append(real.Process(**kwargs))
            pool.close()
            return started[-1]

    pool._context = CloseWhileStarting()
    with pytest.raises(RuntimeError, match="closed"):
        pool._spawn(0)
    (process,) = started
    assert not process.is_alive() and process.exitcode == -signal.SIGKILL
    assert pool.processes() == {}
    with pytest.raises(RuntimeError, match="closed"):
        pool._spawn(0)  # and none is started once closed
    assert len(started) == 1


def test_a_bad_brand_stops_start_with_its_config_error(tmp_path):
    brand = tmp_path / "brand.toml"
    brand.write_text("this is not = = toml\n")
    with pytest.raises(ConfigError):
        RenderPool(RenderSettings(brand=brand), workers=1, queue=0).start()


# -- against the real `myelo-docs serve` -----------------------------------------


def worker_pids(server: Server) -> set[int]:
    """The server's render workers: its spawned children (not the resource tracker)."""
    pids = set()
    for children in Path(f"/proc/{server.process.pid}/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"spawn_main" in command:
                pids.add(int(pid))
    return pids


def cpu_ticks(pid: int) -> int:
    """User and system CPU time of a process, in clock ticks (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rendering(pids: set[int], seconds: float = 30) -> int:
    """The one process of ``pids`` that is using CPU (rendering; idle workers sleep)."""
    deadline = time.monotonic() + seconds
    while True:
        before = {pid: cpu_ticks(pid) for pid in pids}
        time.sleep(0.3)
        busy = {pid for pid in pids if cpu_ticks(pid) - before[pid] >= 3}
        if len(busy) == 1:
            return busy.pop()
        assert time.monotonic() < deadline, f"no single busy worker: {busy}"


def post_in_thread(url: str, body: dict) -> tuple[threading.Thread, list[httpx.Response]]:
    answer: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answer.append(httpx.post(url, json=body,
                                                                      timeout=60)))
    thread.start()
    return thread, answer


def test_serve_replaces_a_worker_killed_while_it_renders(tmp_path):
    with running_server(tmp_path, "--workers", "2") as server:
        wait_until(lambda: len(worker_pids(server)) == 2, 30, "two workers")
        before = worker_pids(server)
        doomed, doomed_answer = post_in_thread(server.url + "/v1/packets", BIG)
        victim = rendering(before)
        (other,) = before - {victim}
        # A render on the other worker, in flight when the victim is killed (the first
        # Spanish handout in a worker: about a second of CPU).
        spared, spared_answer = post_in_thread(server.url + "/v1/handouts",
                                               {**SLOW, "language": "es"})
        assert rendering({other}) == other
        os.kill(victim, signal.SIGKILL)  # as the kernel's out-of-memory killer would
        doomed.join(60)
        (response,) = doomed_answer
        assert response.status_code == 503
        assert response.json()["error"] == "WorkerLost"
        assert int(response.headers["Retry-After"]) >= 1
        health = httpx.get(server.url + "/healthz", timeout=10)
        assert health.status_code == 200  # degraded, not down: one worker serves
        assert health.json()["status"] == "degraded" and health.json()["ready"] == 1
        spared.join(60)
        (response,) = spared_answer
        assert response.status_code == 200 and response.content.startswith(b"%PDF")
        wait_until(lambda: httpx.get(server.url + "/healthz", timeout=10).json()["status"]
                   == "ok", 60, "the replacement")
        health = httpx.get(server.url + "/healthz", timeout=10).json()
        assert health["ready"] == 2 and health["starting"] == 0
        after = worker_pids(server)
        assert victim not in after and other in after and len(after) == 2
        for _ in range(3):
            response = httpx.post(server.url + "/v1/packets", json=BASE_RECORD, timeout=60)
            assert response.status_code == 200
            assert "Rosalind Testpatient" in flat(pages_text(response.content)[0])
    log = server.log_text()
    assert f"render worker {victim} stopped (signal 9); starting a new one" in log
    assert re.search(r"render worker \d+ ready \(", log)
    assert not any(value in log for value in PHI)
    assert "Traceback" not in log


def test_serve_stops_a_render_past_its_timeout(tmp_path):
    # BIG takes 1.5 s of CPU at the least: far past 0.5 s. A packet from a cached
    # template takes some hundredths: well within it, even on a busy machine.
    with running_server(tmp_path, "--workers", "2", "--timeout", "0.5") as server:
        wait_until(lambda: len(worker_pids(server)) == 2, 30, "two workers")
        before = worker_pids(server)
        response = httpx.post(server.url + "/v1/packets", json=BIG, timeout=60)
        assert response.status_code == 504
        assert response.json()["error"] == "Timeout"
        # Stopped at the render's own limit, a moment after the answer.
        wait_until(lambda: len(before - worker_pids(server)) == 1, 10, "the kill")
        response = httpx.post(server.url + "/v1/packets", json=BASE_RECORD, timeout=60)
        assert response.status_code == 200
        wait_until(lambda: "ready (" in server.log_text(), 60, "the replacement")
        assert len(worker_pids(server)) == 2
        for _ in range(2):
            response = httpx.post(server.url + "/v1/packets", json=BASE_RECORD, timeout=60)
            assert response.status_code == 200
    log = server.log_text()
    assert "passed the time limit (0.5 s) and was stopped; starting a new one" in log
    assert not any(value in log for value in PHI)
    assert "Traceback" not in log
