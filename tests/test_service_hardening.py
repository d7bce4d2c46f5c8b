"""The service under abuse, against a real `myelo-docs serve` on a loopback port:
slow clients, many connections, a token before any body, other sites' names."""

from __future__ import annotations

import json
import os
import resource
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from test_service import TOKEN, running_server

from conftest import BASE_RECORD

BODY = json.dumps(BASE_RECORD).encode()


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_all(sock: socket.socket, seconds: float = 10) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(seconds)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            return data
        if not chunk:
            return data
        data += chunk


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


@contextmanager
def sockets(count: int) -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def test_slow_headers_and_slow_bodies_get_408_and_are_let_go(tmp_path):
    with running_server(tmp_path, "--read-timeout", "1") as server:
        slow_headers = connect(server.url)
        slow_headers.sendall(b"POST /v1/packets HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        slow_body = connect(server.url)
        slow_body.sendall(b"POST /v1/packets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY[:10])
        started = time.monotonic()
        for sock in (slow_headers, slow_body):
            answer = read_all(sock)  # the server closes the connection after its answer
            assert status_of(answer) == 408, answer[:200]
            assert b'"RequestTimeout"' in answer
            sock.close()
        assert time.monotonic() - started < 5
        fine = httpx.post(server.url + "/v1/packets", json=BASE_RECORD, timeout=60)
        assert fine.status_code == 200
    log = server.log_text()  # after the server has stopped: every line is written
    assert "Traceback" not in log
    assert "127.0.0.1 - - 408" in log and "127.0.0.1 POST /v1/packets 408" in log
    assert BASE_RECORD["patient_name"] not in log


def test_connections_over_the_cap_get_503_and_the_service_recovers(tmp_path):
    with running_server(tmp_path, "--max-connections", "20", "--read-timeout", "2") as server, \
            sockets(50) as idle:
        # Headers never finished, as a slow-loris attack sends: 20 are held, 30 refused
        # (up to 32 refused ones linger for their 503 to be read).
        for _ in range(50):
            idle.append(connect(server.url))
            idle[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        refused = httpx.get(server.url + "/healthz", timeout=10)
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"] == "Busy"
        answers = [read_all(sock, 10) for sock in idle]
        statuses = sorted({status_of(a) for a in answers})
        assert statuses == [408, 503], statuses  # the first 20 waited and timed out
        assert sum(status_of(a) == 408 for a in answers) <= 20
        response = httpx.post(server.url + "/v1/packets", json=BASE_RECORD, timeout=60)
        assert response.status_code == 200
    log = server.log_text()  # after the server has stopped: every line is written
    assert "Traceback" not in log and "Too many open files" not in log
    assert log.count("new ones get 503") == 1  # one warning, not one per connection


def _low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_a_low_open_file_limit_lowers_the_cap_instead_of_failing(tmp_path):
    """The reviewer's run: more sockets than file handles. The cap (lowered to fit the
    limit) answers them; nothing runs out; real requests are served again after."""
    with running_server(tmp_path, "--read-timeout", "2", preexec_fn=_low_file_limit) as server, \
            sockets(300) as idle:
        for _ in range(300):
            idle.append(connect(server.url))
            idle[-1].sendall(b"POST /v1/packets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Length: 200000\r\n\r\nx")
        for sock in idle:
            read_all(sock, 10)
        response = httpx.post(server.url + "/v1/packets", json=BASE_RECORD, timeout=60)
        assert response.status_code == 200
    log = server.log_text()  # after the server has stopped: every line is written
    assert "allows 128 connections, not 200" in log
    assert "Too many open files" not in log and "Traceback" not in log
    assert len(log) < 200_000


def test_no_body_is_read_before_the_token(tmp_path):
    env = {**os.environ, "MYELO_DOCS_TOKEN": TOKEN}
    with running_server(tmp_path, env=env) as server:
        sock = connect(server.url)
        # Headers promise 200 KB that never come: the answer must not wait for them.
        sock.sendall(b"POST /v1/packets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n")
        started = time.monotonic()
        answer = read_all(sock, 10)
        assert status_of(answer) == 401, answer[:200]
        assert time.monotonic() - started < 2
        sock.close()
        good = httpx.post(server.url + "/v1/packets", json=BASE_RECORD, timeout=60,
                          headers={"authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200
    log = server.log_text()  # after the server has stopped: every line is written
    assert TOKEN not in log
    assert "127.0.0.1 POST /v1/packets 401" in log and "127.0.0.1 POST /v1/packets 200" in log


def test_a_real_server_refuses_other_host_names(tmp_path):
    with running_server(tmp_path) as server:
        for host in ("evil.example", "rebind.evil.example:8000"):
            response = httpx.post(server.url + "/v1/packets", json=BASE_RECORD, timeout=60,
                                  headers={"host": host, "origin": f"http://{host}"})
            assert response.status_code == 400
            assert response.headers["content-type"] == "application/json"
            assert b"%PDF" not in response.content
            page = httpx.post(server.url + "/", data={"action": "print"}, timeout=60,
                              headers={"host": host})
            assert page.status_code == 400
