"""The peer for bench_batch.py: the same 9-page packet set by Typst (typst-py).

Run:  .venv/bin/python benchmarks/typst_peer.py [--packets 60] [--jobs 2] [--pdf out.pdf]
      (bench_batch.py calls ``report`` at the end of its run, with its --jobs)

Typst is the fastest typesetting engine a user might pick instead of ours.
benchmarks/typst/packet.typ is our own Typst version of the English lumbar
discharge packet (same Atkinson Hyperlegible fonts from fonts/, the header
with name, date of birth and MRN on every page, a QR code on every page, the
medicines table, lists and the same text). It exists only for this benchmark.

``time_typst(n, jobs)`` keeps one ``typst.Compiler`` per process (warm: fonts
loaded, the document's unchanging parts memoised by Typst between compiles),
then times ``n`` compiles to PDF, each with a fresh made-up patient passed as
JSON in ``sys.inputs`` and that patient's QR codes made by the fast path's
encoder; the time includes making the codes and writing each PDF
to a file. With ``jobs`` processes the packets are shared out as a batch run
shares them, so its ms/packet compares with the batch's at the same --jobs.

Typst is a benchmark-only dependency: ``pip install -e '.[bench]'`` (or
``.venv/bin/pip install typst``). Without it ``time_typst`` returns None.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import zxingcpp

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "benchmarks" / "typst" / "packet.typ"
EXPECTED_PAGES = 9

NAMES = ["Ana Example", "Bert O'Brien", "Chloé Müller", "Dmitri García López", "Émile Nakamura",
         "Fatima Smith", "George Van der Berg", "Søren Øster", "Zoë Abernathy-Whitcombe"]
MEDICINES = [["Warfarin", "Restart on Friday unless your doctor tells you otherwise."],
             ["Metformin", "Restart 48 hours after the test."],
             ["Aspirin", "Keep taking it."],
             ["Clopidogrel", "Restart tomorrow morning with food."],
             ["Apixaban", "Restart in 24 hours if there is no bleeding from the needle site."]]
INSTRUCTIONS = ["Wear your back brace when you walk.", "No baths for 3 days; showers are fine.",
                "Keep the bandage dry until tomorrow."]


@dataclass(frozen=True)
class PeerTiming:
    packets: int
    wall_ms: float  # mean wall time per packet
    cpu_ms: float  # mean process CPU time per packet (all threads)
    pages: int  # pages of the last packet
    reruns: int  # compiles repeated because the page count differed from the codes'


def _asset(pattern: str) -> str:
    """An image path from the project root, as Typst wants it ("/templates/…")."""
    found = sorted(ROOT.glob(pattern))
    if not found:
        raise FileNotFoundError(f"no {pattern} under {ROOT}")
    return "/" + found[0].relative_to(ROOT).as_posix()


def _codes(mrn: str, total: int) -> dict[str, str]:
    """Each page's QR code as SVG, made by the fast path's encoder (zxing-cpp, level M)."""
    codes = {}
    for page in range(1, total + 1):
        payload = f"MYELO|packet|{page}/{total}|{mrn}"
        code = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
        codes[str(page)] = code.to_svg(add_quiet_zones=False)
    return codes


def patient(rng: random.Random, i: int, images: dict[str, str]) -> dict:
    """A made-up patient (fresh MRN, name, date of birth, medicines, instructions)."""
    return {
        "name": rng.choice(NAMES), "mrn": f"TYPST-{i:07d}",
        "dob": f"{rng.choice(['March', 'July', 'October'])} {rng.randint(1, 28)}, "
               f"19{rng.randint(30, 99)}",
        "test": "Lumbar myelogram", "test_date": "November 26, 2026",
        "physician": rng.choice(["Dr. Lee", "Dr. Adaeze Okonkwo-Baptiste"]),
        "nurse": rng.choice(["Sam Park, RN", "Theo Checkmark, RN"]),
        "medicines": rng.sample(MEDICINES, rng.choice([0, 1, 2, 2, 3])),
        "instructions": rng.sample(INSTRUCTIONS, rng.choice([0, 1, 1, 2])),
        "follow_up": rng.choice(["Spine clinic on 2026-12-10 at 9:30.",
                                 "Call the clinic to book a visit in 2 weeks.", ""]),
        **images,
    }


def _worker(n: int, warmup: int, seed: int, barrier, results, keep: Path | None = None) -> None:
    """Warm one compiler, wait for the others, then compile ``n`` packets."""
    import typst

    images = {"logo": _asset("myelo_docs/**/brands/demo/logo.svg"),
              "spine": _asset("templates/images/spine-lumbar.svg"),
              "rest": _asset("templates/images/rest-head-raised.svg")}
    compiler = typst.Compiler(SOURCE, root=ROOT, font_paths=[ROOT / "fonts"],
                              ignore_system_fonts=True)
    stamp = datetime(2026, 11, 26, tzinfo=UTC)
    rng = random.Random(seed)
    reruns = 0

    def one(i: int, out: Path) -> int:
        nonlocal reruns
        data = patient(rng, seed * 1_000_000 + i, images)
        total = EXPECTED_PAGES
        while True:
            data["total"], data["codes"] = total, _codes(data["mrn"], total)
            try:
                pdf = compiler.compile(format="pdf", timestamp=stamp,
                                       sys_inputs={"patient": json.dumps(data)})
                break
            except typst.TypstError as err:  # the codes were made for another page count
                found = re.search(r"pages: (\d+)", str(err))
                if not found:
                    raise
                total, reruns = int(found.group(1)), reruns + 1
        out.write_bytes(pdf)
        return total

    with tempfile.TemporaryDirectory() as tmp:
        for i in range(warmup):
            one(i, Path(tmp) / "warmup.pdf")
        reruns = 0
        if barrier is not None:
            barrier.wait()
        wall, cpu = time.perf_counter(), time.process_time()  # CLOCK_MONOTONIC: system-wide
        pages = 0
        for i in range(n):
            pages = one(warmup + i, Path(tmp) / f"{i}.pdf")
        results.append((wall, time.perf_counter(), time.process_time() - cpu, pages, reruns))
        if keep and n:
            keep.write_bytes((Path(tmp) / f"{n - 1}.pdf").read_bytes())


def _in_process(n, warmup, seed, barrier, queue) -> None:
    results: list = []
    _worker(n, warmup, seed, barrier, results)
    queue.put(results[0])


def time_typst(n: int = 60, jobs: int = 1, warmup: int = 3,
               keep: Path | None = None) -> PeerTiming | None:
    """Time ``n`` warm compiles of benchmarks/typst/packet.typ, a fresh patient each.

    ``jobs`` > 1: that many processes, one warm compiler each, compile ``n``
    packets between them (like ``myelo-docs batch --jobs``); ``wall_ms`` is
    then the run's wall time divided by ``n``. Returns None when the ``typst``
    package is not installed. ``keep`` (jobs 1 only): also write the last
    packet there. Raises typst.TypstError if the document does not compile.
    """
    try:
        import typst  # noqa: F401
    except ImportError:
        return None
    if jobs <= 1:
        results: list = []
        _worker(n, warmup, 1, None, results, keep)
    else:
        context = multiprocessing.get_context("spawn")
        barrier, queue = context.Barrier(jobs), context.Queue()
        shares = [n // jobs + (1 if j < n % jobs else 0) for j in range(jobs)]
        workers = [context.Process(target=_in_process, args=(share, warmup, j + 1, barrier, queue))
                   for j, share in enumerate(shares)]
        for worker in workers:
            worker.start()
        results = [queue.get() for _ in workers]
        for worker in workers:
            worker.join()
    wall = max(r[1] for r in results) - min(r[0] for r in results)
    return PeerTiming(n, wall / n * 1000, sum(r[2] for r in results) / n * 1000,
                      results[-1][3], sum(r[4] for r in results))


def report(fast_ms: float, jobs: int, n: int = 60) -> None:
    """Print the Typst peer beside the fast path's warm ms/packet (wall, same ``jobs``)."""
    peer = time_typst(n, jobs)
    if peer is None:
        print("Typst peer: skipped (the typst package is not installed; "
              "pip install -e '.[bench]')")
        return
    alone = time_typst(max(n // 2, 10))
    print(f"Typst peer: {peer.wall_ms:.1f} ms/packet; fast path warm: {fast_ms:.1f} ms/packet; "
          f"fast is {peer.wall_ms / fast_ms:.1f}× Typst (both wall time over {jobs} "
          f"process(es); Typst {peer.packets} packets, {peer.pages} pages each, "
          f"{peer.reruns} recompiled for the page count)")
    print(f"Typst peer, one warm compiler alone: {alone.wall_ms:.1f} ms/packet wall, "
          f"{alone.cpu_ms:.1f} ms CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--pdf", type=Path, help="write the last packet here (--jobs 1)")
    args = parser.parse_args()
    result = time_typst(args.packets, args.jobs, keep=args.pdf)
    if result is None:
        print("Typst peer skipped: the typst package is not installed "
              "(pip install -e '.[bench]').")
        return
    print(f"Typst peer: {result.wall_ms:.1f} ms/packet wall, {result.cpu_ms:.1f} ms CPU "
          f"({result.packets} warm compiles, --jobs {args.jobs}, {result.pages} pages, "
          f"{result.reruns} reruns)")


if __name__ == "__main__":
    main()
