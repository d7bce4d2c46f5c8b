"""The render pool holds: a render past its time limit is stopped, a dead worker fails
only its own request and is replaced, workers are recycled, the queue is bounded.
In-process against the pool, then against a real `myelo-docs serve`."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from test_service import PHI, Server, running_server

from conftest import BASE_RECORD, flat, pages_text
from myelo_docs import ConfigError
from myelo_docs.service import RenderPool, RenderSettings
from myelo_docs.service.pool import Busy, RenderTimeout, WorkerLost

# A full large-print handout takes 0.5-1.5 s: far past a 0.05 s limit, and long
# enough to kill its worker in the middle of it.
SLOW = {"type": "lumbar", "language": "en", "large_print": True}


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


def test_a_replacement_that_dies_while_starting_is_tried_again(steady, caplog):
    caplog.set_level(logging.INFO, logger="myelo_docs.service")
    victim = next(iter(steady.processes()))
    os.kill(victim, signal.SIGKILL)

    def starting() -> set[int]:
        return {pid for pid, state in steady.processes().items() if state == "starting"}

    wait_until(starting, 10, "a replacement")
    (replacement,) = starting()
    os.kill(replacement, signal.SIGKILL)
    wait_for_log(caplog, rf"render worker {replacement} stopped while starting \(signal 9\)")
    assert steady.health()["ready"] == 1
    assert_packet(asyncio.run(steady.render("packet", BASE_RECORD, 30)))
    wait_until(lambda: steady.health()["ready"] == 2, 60, "the second replacement")


def test_workers_are_recycled_once_fresh_ones_are_warm(steady, caplog):
    caplog.set_level(logging.INFO, logger="myelo_docs.service")
    before = set(steady.processes())
    steady.recycle_after = 1
    try:
        assert_packet(asyncio.run(steady.render("packet", BASE_RECORD, 30)))
    finally:
        steady.recycle_after = 500
    assert steady.health()["starting"] == 1 and steady.health()["ready"] == 2
    # Meanwhile the old workers serve: nobody waits for the cold one.
    assert_packet(asyncio.run(steady.render("packet", BASE_RECORD, 30)))
    assert steady.health()["starting"] == 1
    wait_until(lambda: steady.health()["starting"] == 0, 60, "the fresh worker")
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


def test_serve_replaces_a_killed_worker(tmp_path):
    with running_server(tmp_path, "--workers", "2") as server:
        wait_until(lambda: len(worker_pids(server)) == 2, 30, "two workers")
        before = worker_pids(server)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        # The other worker serves meanwhile.
        response = httpx.post(server.url + "/v1/packets", json=BASE_RECORD, timeout=60)
        assert response.status_code == 200
        wait_until(lambda: "ready (" in server.log_text(), 60, "the replacement")
        after = worker_pids(server)
        assert victim not in after and len(after) == 2
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
        health = httpx.get(server.url + "/healthz", timeout=10).json()
        if "ready" in health:  # /healthz reports the pool's health()
            assert health["ready"] == 2
        for _ in range(3):
            response = httpx.post(server.url + "/v1/packets", json=BASE_RECORD, timeout=60)
            assert response.status_code == 200
            assert "Rosalind Testpatient" in flat(pages_text(response.content)[0])
    log = server.log_text()
    assert f"render worker {victim} stopped (signal 9); starting a new one" in log
    assert not any(value in log for value in PHI)
    assert "Traceback" not in log


def test_serve_stops_a_render_past_its_timeout(tmp_path):
    with running_server(tmp_path, "--workers", "2", "--timeout", "0.3") as server:
        wait_until(lambda: len(worker_pids(server)) == 2, 30, "two workers")
        before = worker_pids(server)
        response = httpx.post(server.url + "/v1/handouts", json=SLOW, timeout=60)
        assert response.status_code == 504
        assert response.json()["error"] == "Timeout"
        assert len(before - worker_pids(server)) == 1  # its worker is gone already
        response = httpx.post(server.url + "/v1/packets", json=BASE_RECORD, timeout=60)
        assert response.status_code == 200
        wait_until(lambda: "ready (" in server.log_text(), 60, "the replacement")
        assert len(worker_pids(server)) == 2
        for _ in range(2):
            response = httpx.post(server.url + "/v1/packets", json=BASE_RECORD, timeout=60)
            assert response.status_code == 200
    log = server.log_text()
    assert "passed the time limit (0.3 s) and was stopped; starting a new one" in log
    assert not any(value in log for value in PHI)
    assert "Traceback" not in log
