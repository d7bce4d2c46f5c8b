"""The HTTP service under load: concurrent clients posting packets on loopback.

Run:  .venv/bin/python benchmarks/bench_service.py [--clients 8] [--requests 200]

Starts `myelo-docs serve` as its own process with an empty template cache
(its workers render the everyday templates while starting: that is in the
"server ready" time), warms it, then has every client
post --requests packets (each a different made-up patient, so nothing can be
served from a cache) and prints latency percentiles, throughput, errors and
the memory (RSS) of the server and its workers before, during and after.
Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from myelo_docs.cli.demo import DEMO_RECORD


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    found = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += descendants(int(child))
    except OSError:
        pass
    return found


def rss_mb(pid: int) -> float:
    total = 0
    for each in descendants(pid):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def wait_until_ready(server: subprocess.Popen[bytes], url: str, seconds: float = 120) -> None:
    """Until /healthz answers 200; exits the benchmark if the server stops or takes too long."""
    started = time.perf_counter()
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
        if server.poll() is not None or time.perf_counter() - started > seconds:
            sys.exit("the server did not start")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="per client")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue", type=int, default=8)
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    script = Path(sys.executable).parent / "myelo-docs"
    # The server's log goes to a file: a pipe nobody reads would fill up and stall it.
    fd, log_name = tempfile.mkstemp(prefix="bench-service-", suffix=".log")
    # An empty template cache: the workers render their templates while starting.
    cache = tempfile.mkdtemp(prefix="bench-service-cache-")
    with os.fdopen(fd, "wb") as log:
        server = subprocess.Popen(
            [str(script), "serve", "--port", str(port), "--workers", str(args.workers),
             "--queue", str(args.queue)], stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "MYELO_DOCS_TOKEN": "", "MYELO_DOCS_CACHE_DIR": cache})
    started = time.perf_counter()
    try:
        wait_until_ready(server, url)
        print(f"server ready in {time.perf_counter() - started:.1f} s "
              f"({args.workers} workers, queue {args.queue})")
        with httpx.Client(base_url=url, timeout=120) as client:
            for i in range(args.workers * 2):  # first renders per worker fill the caches
                client.post("/v1/packets", json={**DEMO_RECORD, "mrn": f"WARM-{i}"})
        rss_start = rss_mb(server.pid)
        load_start = os.getloadavg()[0]

        latencies: list[float] = []
        statuses: Counter[str] = Counter()
        lock = threading.Lock()
        peak = [rss_start]
        stop = threading.Event()

        def client_loop(n: int) -> None:
            with httpx.Client(base_url=url, timeout=120) as client:
                for i in range(args.requests):
                    record = {**DEMO_RECORD, "mrn": f"BENCH-{n:02d}-{i:05d}",
                              "patient_name": f"Bench Patient {n}-{i}"}
                    t = time.perf_counter()
                    try:
                        response = client.post("/v1/packets", json=record)
                    except httpx.HTTPError as exc:
                        with lock:
                            statuses[type(exc).__name__] += 1
                        continue
                    elapsed = time.perf_counter() - t
                    ok = response.status_code == 200 and response.content.startswith(b"%PDF-")
                    with lock:
                        statuses[str(response.status_code) if ok or response.status_code != 200
                                 else "200 but not a PDF"] += 1
                        if ok:
                            latencies.append(elapsed)

        def sample_memory() -> None:
            while not stop.wait(2):
                peak[0] = max(peak[0], rss_mb(server.pid))

        sampler = threading.Thread(target=sample_memory, daemon=True)
        sampler.start()
        threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(args.clients)]
        t0 = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - t0
        stop.set()
        rss_end = rss_mb(server.pid)
        time.sleep(10)  # workers replaced near the end finish starting or stopping
        rss_settled = rss_mb(server.pid)

        total = args.clients * args.requests
        errors = total - statuses["200"]
        print(f"{args.clients} clients x {args.requests} requests = {total} packets "
              f"in {wall:.1f} s ({statuses['200'] / wall:.2f} packets/s)")
        print(f"status counts: {dict(sorted(statuses.items()))}  errors: {errors}")
        if latencies:
            print(f"latency: p50 {statistics.median(latencies) * 1000:.0f} ms, "
                  f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms, "
                  f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, "
                  f"max {max(latencies) * 1000:.0f} ms")
        print(f"RSS server + workers: {rss_start:.0f} MB after warm-up, peak {peak[0]:.0f} MB, "
              f"{rss_end:.0f} MB at the end, {rss_settled:.0f} MB 10 s later")
        print(f"machine: {os.cpu_count()} cores, 1-minute load {load_start:.1f} at the start, "
              f"{os.getloadavg()[0]:.1f} at the end (other work competing for the cores "
              "slows every figure)")
        print(f"server log: {log_name}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            print("the server did not stop within 60 s of SIGTERM; killed it")
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
