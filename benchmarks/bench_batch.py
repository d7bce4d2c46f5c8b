"""Batch throughput and memory: packets per second and peak RSS for N rows.

Run:  .venv/bin/python benchmarks/bench_batch.py --rows 200 1000 --jobs 2
Builds a CSV of made-up patients (all three types, some with medicines and
instructions), runs `myelo-docs batch` on it in a fresh process per size, and
prints rows, seconds, packets/s, and peak RSS of the batch process and of its
largest worker. Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

RUNNER = """
import json, resource, sys, time
from myelo_docs.batch import run_batch
start = time.perf_counter()
summary = run_batch(sys.argv[1], sys.argv[2], jobs=int(sys.argv[3]))
seconds = time.perf_counter() - start
print(json.dumps({"ok": summary.ok, "failed": summary.failed, "seconds": seconds,
    "parent_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""

TYPES = ("cervical", "thoracic", "lumbar")


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["type", "patient_name", "date_of_birth", "mrn", "procedure_date",
                         "physician", "instructions", "medications"])
        for i in range(rows):
            writer.writerow([
                TYPES[i % 3], f"Bench Patient {i:05d}", f"19{40 + i % 50}-0{1 + i % 9}-1{i % 9}",
                f"BENCH-{i:06d}", "2026-11-27", "Dr. Bench",
                "Wear your brace.\nNo baths for 3 days." if i % 2 else "",
                "Warfarin: Restart on Friday.\nMetformin: Restart in 2 days." if i % 3 else "",
            ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[100])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    print(f"{'rows':>6} {'ok':>6} {'seconds':>8} {'packets/s':>10} {'batch RSS MB':>13} "
          f"{'worker RSS MB':>14}")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "rows.csv"
            write_csv(source, rows)
            out = subprocess.run([sys.executable, "-c", RUNNER, str(source),
                                  str(Path(tmp) / "out"), str(args.jobs)],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"{rows:>6} {r['ok']:>6} {r['seconds']:>8.1f} {r['ok'] / r['seconds']:>10.2f} "
                  f"{r['parent_rss_mb']:>13.0f} {r['worker_rss_mb']:>14.0f}")


if __name__ == "__main__":
    main()
