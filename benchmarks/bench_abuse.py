"""The service under the reviewer's abuse: many slow sockets, then real requests.

Run:  .venv/bin/python benchmarks/bench_abuse.py [--sockets 1100] [--body-kb 255]

Starts `myelo-docs serve` (defaults: 200 connections, 20 s read timeout)
under a 1,024 open-files limit, opens --sockets connections that each send
headers and --body-kb of a body that is never finished, times real packet
requests while they hang on, then after they are answered. Prints the
status counts, the server's memory (RSS) before, at the peak and after, the
size of its log and whether "Too many open files" appears in it. Nothing
here is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from bench_service import free_port, rss_mb, wait_until_ready

from myelo_docs.cli.demo import DEMO_RECORD


def limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=1100)
    parser.add_argument("--body-kb", type=int, default=255)
    parser.add_argument("--read-timeout", default="20")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(
        resource.RLIMIT_NOFILE)[1]))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp()) / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "myelo-docs"), "serve",
             "--port", str(port), "--read-timeout", args.read_timeout],
            stdout=sink, stderr=subprocess.STDOUT, preexec_fn=limit_files)
    try:
        wait_until_ready(server, url)
        record = json.dumps(DEMO_RECORD).encode()
        before = rss_mb(server.pid)
        head = (f"POST /v1/packets HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                f"application/json\r\nContent-Length: {args.body_kb * 1024 + 1}\r\n\r\n").encode()
        part = b" " * (args.body_kb * 1024)
        opened: list[socket.socket] = []
        started = time.perf_counter()
        for _ in range(args.sockets):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.setblocking(False)
                with contextlib.suppress(OSError):
                    sock.send(head + part)
                opened.append(sock)
            except OSError:
                break
        print(f"opened {len(opened)} slow sockets in {time.perf_counter() - started:.1f} s")
        peak = rss_mb(server.pid)
        during = Counter()
        for _ in range(5):
            t = time.perf_counter()
            try:
                r = httpx.post(url + "/v1/packets", content=record, timeout=30,
                               headers={"content-type": "application/json"})
                during[f"{r.status_code}"] += 1
            except httpx.HTTPError as exc:
                during[type(exc).__name__] += 1
            print(f"  real request while they hang on: {time.perf_counter() - t:.2f} s")
        answers: Counter[str] = Counter()
        deadline = time.monotonic() + float(args.read_timeout) + 15
        for sock in opened:
            sock.setblocking(True)
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data = sock.recv(200)
                answers[data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP") else
                        "closed"] += 1
            except (TimeoutError, ConnectionResetError) as exc:
                answers[type(exc).__name__] += 1
            peak = max(peak, rss_mb(server.pid)) if len(answers) % 100 == 0 else peak
            sock.close()
        time.sleep(2)
        after = rss_mb(server.pid)
        t = time.perf_counter()
        ok = httpx.post(url + "/v1/packets", content=record, timeout=30,
                        headers={"content-type": "application/json"}).status_code
        text = log.read_text(errors="replace")
        print(f"slow sockets answered: {dict(answers)}")
        print(f"real requests during: {dict(during)}; after: {ok} in "
              f"{time.perf_counter() - t:.2f} s")
        print(f"server RSS (with workers): before {before:.0f} MB, peak {peak:.0f} MB, "
              f"after {after:.0f} MB")
        print(f"log: {len(text) / 1024:.0f} KB; 'Too many open files': "
              f"{'yes' if 'Too many open files' in text else 'no'}; tracebacks: "
              f"{text.count('Traceback')}")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
