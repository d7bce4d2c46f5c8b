"""Render speed: cold CLI time for one packet, warm render time per packet.

Run:  .venv/bin/python benchmarks/bench_render.py [--runs N]
Prints its figures; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from myelo_docs import get_renderer
from myelo_docs.cli.demo import DEMO_RECORD


def harfbuzz_subsetting() -> bool:
    from weasyprint.text.ffi import harfbuzz, harfbuzz_subset

    return bool(harfbuzz_subset) and bool(harfbuzz.hb_version_atleast(4, 1, 0))


def cold_cli(runs: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "record.json"
        record.write_text(json.dumps(DEMO_RECORD))
        for i in range(runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "myelo_docs", "packet", "--input", str(record),
                            "-o", str(Path(tmp) / f"p{i}.pdf")], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    return times


def warm_render(runs: int) -> tuple[list[float], int]:
    renderer = get_renderer()
    renderer.packet(DEMO_RECORD)  # first render loads fonts and fills caches
    times = []
    pages = 0
    for i in range(runs):
        record = {**DEMO_RECORD, "mrn": f"BENCH-{i:05d}"}
        start = time.perf_counter()
        pages = renderer.packet(record).pages
        times.append(time.perf_counter() - start)
    return times, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"HarfBuzz font subsetting: {'yes' if harfbuzz_subsetting() else 'NO (fontTools)'}")
    cold = cold_cli(max(3, args.runs // 2))
    print(f"cold CLI, one packet:      median {statistics.median(cold):.2f} s "
          f"(min {min(cold):.2f}, max {max(cold):.2f}, {len(cold)} runs)")
    warm, pages = warm_render(args.runs)
    print(f"warm render per packet:    median {statistics.median(warm) * 1000:.0f} ms "
          f"(min {min(warm) * 1000:.0f}, max {max(warm) * 1000:.0f}, {len(warm)} runs, "
          f"{pages} pages)")


if __name__ == "__main__":
    main()
