"""Cost of the safety steps on one packet: the QR stamp, the self-check, encryption.

Run:  .venv/bin/python benchmarks/bench_safety.py [--runs N]
Prints its figures (median of N runs, warm); nothing here is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import myelo_docs.render.engine as render
from myelo_docs import get_renderer, validate_record
from myelo_docs.cli.demo import DEMO_RECORD
from myelo_docs.output.encrypt import encrypt_pdf
from myelo_docs.render.stamp import check_codes, payloads_for
from myelo_docs.verify.selfcheck import check_pages, page_texts


def median_ms(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    stamp_times: list[float] = []
    real_stamp = render.stamp_pages

    def timed_stamp(pdf: object, codes: render.PayloadFor) -> None:
        start = time.perf_counter()
        real_stamp(pdf, codes)
        stamp_times.append(time.perf_counter() - start)

    render.stamp_pages = timed_stamp
    renderer = get_renderer()
    record = validate_record(DEMO_RECORD)
    renderer.packet(record)  # warm: fonts, caches
    stamp_times.clear()
    whole = median_ms(lambda: renderer.packet(record), args.runs)
    document = renderer.packet(record)
    codes = payloads_for("packet", record.mrn)
    ids = render.display_identifiers(record)

    print(f"packet: {document.pages} pages, {len(document.pdf) / 1024:.0f} KiB")
    print(f"whole packet (render + stamp + self-check): median {whole:.0f} ms")
    print(f"QR stamp, all pages (in WeasyPrint's writer): "
          f"median {statistics.median(stamp_times) * 1000:.1f} ms")
    text_check = median_ms(lambda: check_pages(page_texts(document.pdf), ids), args.runs)
    code_check = median_ms(lambda: check_codes(document.pdf, codes), args.runs)
    encryption = median_ms(lambda: encrypt_pdf(document.pdf, "benchmark-pw"), args.runs)
    print(f"self-check, identifiers in the text layer:   median {text_check:.1f} ms")
    print(f"self-check, QR code read back per page:      median {code_check:.1f} ms")
    print(f"AES-256 encryption with its read-back check: median {encryption:.0f} ms")

if __name__ == "__main__":
    main()
