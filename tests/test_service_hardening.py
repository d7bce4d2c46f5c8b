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
    assert log.count("new connections get 503") == 1  # one warning, not one per connection


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


def test_a_client_that_does_not_read_its_answer_is_let_go(tmp_path):
    """Pipelined requests whose answers are never read must not hold a connection
    (and so a place under the cap) for ever."""
    with running_server(tmp_path, "--max-connections", "4", "--read-timeout", "1") as server, \
            sockets(4) as greedy:
        request = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for _ in range(4):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(tuple_of(server.url))
            sock.sendall(request * 2000)  # and never read
            greedy.append(sock)
        deadline = time.monotonic() + 20
        status = 0
        while time.monotonic() < deadline:
            try:
                status = httpx.get(server.url + "/healthz", timeout=5).status_code
            except httpx.TransportError:
                status = 0
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200  # the greedy ones were let go, the place is free again
    log = server.log_text()
    assert "(answer not read)" in log and "Traceback" not in log


def test_a_pipelined_request_is_not_cut_off_while_it_renders(tmp_path):
    with running_server(tmp_path, "--read-timeout", "1") as server:
        sock = connect(server.url)
        slow = json.dumps({"type": "lumbar", "language": "es", "large_print": True}).encode()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                     b"POST /v1/handouts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(slow) + slow)
        answer = read_all(sock, 60)
        sock.close()
    assert answer.count(b"HTTP/1.1 200") == 2, answer[:300]
    assert b"%PDF" in answer


def test_forwarded_for_is_trusted_only_from_a_named_proxy(tmp_path):
    env = {**os.environ, "MYELO_DOCS_TOKEN": TOKEN}
    forged = {"authorization": "Bearer wrong-guess", "x-forwarded-for": "10.1.1.1"}
    with running_server(tmp_path, env=env) as server:
        statuses = []
        for n in range(7):  # a new "address" per guess: it must not reset the limit
            forged["x-forwarded-for"] = f"10.1.1.{n}"
            statuses.append(httpx.get(server.url + "/v1/types", headers=forged,
                                      timeout=10).status_code)
        assert statuses == [401] * 5 + [429] * 2
    log = server.log_text()
    assert "10.1.1." not in log and "127.0.0.1 GET /v1/types 429" in log
    with running_server(tmp_path, "--trusted-proxy", "127.0.0.1", env=env) as server:
        forged["x-forwarded-for"] = "10.1.1.77"
        assert httpx.get(server.url + "/v1/types", headers=forged, timeout=10
                         ).status_code == 401
    assert "10.1.1.77 GET /v1/types 401" in server.log_text()


def test_one_address_cannot_take_every_connection(tmp_path):
    with running_server(tmp_path, "--max-connections", "50", "--max-connections-per-client",
                        "5", "--read-timeout", "3") as server, sockets(8) as idle:
        for _ in range(8):
            idle.append(connect(server.url))
            idle[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answers = [status_of(read_all(sock, 1)) for sock in idle[5:]]
        assert answers == [503, 503, 503]
    assert "--max-connections-per-client" in server.log_text()


def tuple_of(url: str) -> tuple[str, int]:
    host, port = url.split("://")[1].split(":")
    return host, int(port)


def self_signed(folder) -> tuple[str, str]:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=2))
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_https_connections_are_capped_before_their_handshake(tmp_path):
    """Sockets that never say hello must neither pass the cap nor hold file handles."""
    cert, key = self_signed(tmp_path)
    with running_server(tmp_path, "--ssl-certfile", cert, "--ssl-keyfile", key,
                        "--max-connections", "100", "--read-timeout", "2",
                        "--max-connections-per-client", "1000",
                        preexec_fn=_low_file_limit) as server, sockets(300) as silent:
        assert server.url.startswith("https://")
        for _ in range(300):
            silent.append(socket.create_connection(tuple_of(server.url), timeout=10))
        time.sleep(0.5)
        closed_at_once = sum(read_all(sock, 0.2) == b"" for sock in silent[150:])
        assert closed_at_once == 150  # over the cap: closed without a handshake
        time.sleep(3)  # the handshakes run out of time
        response = httpx.post(server.url + "/v1/packets", json=BASE_RECORD, timeout=60,
                              verify=False)
        assert response.status_code == 200 and response.content.startswith(b"%PDF")
    log = server.log_text()
    assert "HTTPS" in log
    assert "Too many open files" not in log and "Traceback" not in log


def test_a_bad_certificate_is_a_clear_error(tmp_path):
    (tmp_path / "cert.pem").write_text("not a certificate")
    import subprocess

    from test_service import serve_command

    done = subprocess.run([*serve_command(), "serve", "--ssl-certfile",
                           str(tmp_path / "cert.pem")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 4, done.stderr
    assert "--ssl-certfile" in done.stderr and "Traceback" not in done.stderr


def test_serve_refuses_a_token_that_can_be_guessed(tmp_path):
    import subprocess

    from test_service import serve_command

    env = {**os.environ, "MYELO_DOCS_TOKEN": "letmein-letmein"}
    done = subprocess.run([*serve_command(), "serve", "--host", "127.0.0.1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 4, done.stderr
    assert "MYELO_DOCS_TOKEN" in done.stderr and "32" in done.stderr
    assert "letmein" not in done.stderr and "Traceback" not in done.stderr
