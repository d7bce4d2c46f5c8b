"""Batch throughput and memory: full renders against packets from cached templates.

Run:  .venv/bin/python benchmarks/bench_batch.py               (1,000 and 10,000 rows)
      .venv/bin/python benchmarks/bench_batch.py --rows 200 --big 0 --jobs 2

Builds one CSV of made-up patients mixed like a real list (types, Spanish,
large print, medicines, instructions, long and accented names, a few names
the fast path leaves to the full render) and, in one run with the same
--jobs, runs `myelo-docs batch` on it:

1. naive: every packet rendered in full with WeasyPrint (--full-render);
2. fast, cold: packets from templates, starting from an empty template cache
   (the templates' own renders are part of the time);
3. fast, warm: the same again with the templates already cached;
4. fast on --big rows (the CSV repeated with new MRNs), for memory.

Then it compares, for a sample of rows of every type, language and print
size, the text of every page of the naive and the fast packet (pypdf, in
layout mode), and prints packets/s, the ratios, the share of rows the fast
path drew, and peak RSS (batch process, largest worker). Last, the peer:
the same packet set by Typst (benchmarks/typst_peer.py, warm compilers, the
same --jobs) beside the warm fast path's ms/packet; it needs the optional
`bench` extra (`pip install -e '.[bench]'`) and is skipped, saying so,
without it. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

RUNNER = """
import json, resource, sys, time
from myelo_docs.batch.run import run_batch
start = time.perf_counter()
summary = run_batch(sys.argv[1], sys.argv[2], jobs=int(sys.argv[3]),
                    full_render=sys.argv[4] == "full")
seconds = time.perf_counter() - start
fast = sum(1 for r in summary.results if r.render == "fast")
print(json.dumps({"ok": summary.ok, "failed": summary.failed, "seconds": seconds, "fast": fast,
    "parent_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""

FIRST = ["Ana", "Bert", "Chloé", "Dmitri", "Émile", "Fatima", "George", "Hana", "Ivan", "José",
         "Kwame", "Laura", "Mary-Ann", "Nils", "Olga", "Patrick", "Quinn", "Rosa", "Søren",
         "Thomas", "Uma", "Victor", "Wen", "Ximena", "Yusuf", "Zoë", "Bartholomew", "Jo"]
LAST = ["Example", "O'Brien", "Müller", "García López", "Nakamura", "Smith", "Van der Berg",
        "Øster", "Kowalczyk", "Nguyen", "Abernathy-Whitcombe", "Li", "Fernández de Córdoba",
        "Johansson", "Dubois", "Rossi", "Okafor", "Hernández"]
OTHER_SCRIPTS = ["Ελένη Παππά", "Дмитрий Иванов", "Nguyễn Thị Ánh"]  # full render
MEDICINES = [("Warfarin", "Restart on Friday unless your doctor tells you otherwise."),
             ("Metformin", "Restart 48 hours after the test."),
             ("Aspirin", "Keep taking it."),
             ("Clopidogrel", "Restart tomorrow morning with food."),
             ("Insulin glargine", "Take your usual evening dose."),
             ("Lisinopril", "No change."),
             ("Apixaban", "Restart in 24 hours if there is no bleeding from the needle site.")]
INSTRUCTIONS = ["Wear your back brace when you walk.", "No baths for 3 days; showers are fine.",
                "Keep the bandage dry until tomorrow.", "Do not lift your grandchildren this week.",
                "Ask your pharmacist before taking any new pain medicine."]
FOLLOW_UP = ["Spine clinic on 2026-12-10 at 9:30.", "Call the clinic to book a visit in 2 weeks.",
             "Dr. Lee will call you with the results within 5 days."]


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["type", "patient_name", "date_of_birth", "mrn", "procedure_date",
                         "physician", "nurse", "follow_up", "instructions", "medications",
                         "language", "large_print"])
        for i in range(rows):
            name = (rng.choice(OTHER_SCRIPTS) if rng.random() < 0.01 else
                    f"{rng.choice(FIRST)} {rng.choice(LAST)}")
            meds = rng.sample(MEDICINES, rng.choice([0, 0, 1, 1, 2, 2, 3, 4]))
            writer.writerow([
                rng.choices(("lumbar", "cervical", "thoracic"), (6, 3, 1))[0], name,
                f"19{rng.randint(30, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                f"BENCH-{i:07d}", "2026-11-27",
                rng.choice(["Dr. Lee", "Dr. Adaeze Okonkwo-Baptiste", ""]),
                rng.choice(["Sam Park RN", "", "Theo Checkmark, RN"]),
                rng.choice(FOLLOW_UP) if rng.random() < 0.8 else "",
                "\n".join(rng.sample(INSTRUCTIONS, rng.choice([0, 1, 1, 2, 3]))),
                "\n".join(f"{n}: {t}" for n, t in meds),
                "es" if rng.random() < 0.15 else "en",
                "true" if rng.random() < 0.05 else "false",
            ])


def run(csv_path: Path, out: Path, jobs: int, mode: str, cache: Path) -> dict:
    env = {**os.environ, "MYELO_DOCS_CACHE_DIR": str(cache)}
    result = subprocess.run([sys.executable, "-c", RUNNER, str(csv_path), str(out), str(jobs),
                             mode], check=True, capture_output=True, text=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare(naive: Path, fast: Path, sample: int) -> tuple[int, int, int]:
    """(packets compared, pages compared, pages whose text differs)."""
    from pypdf import PdfReader

    def manifest(folder: Path) -> dict[str, dict[str, str]]:
        with (folder / "manifest.csv").open(encoding="utf-8") as fh:
            return {line["row"]: line for line in csv.DictReader(fh)}

    def texts(path: Path) -> list[str]:
        reader = PdfReader(io.BytesIO(path.read_bytes()))
        return [" ".join(p.extract_text(extraction_mode="layout").split()) for p in reader.pages]

    left, right = manifest(naive), manifest(fast)
    rows = [row for row, line in right.items() if line["render"] == "fast"]
    random.Random(1).shuffle(rows)
    packets = pages = differ = 0
    for row in rows[:sample]:
        a, b = texts(naive / left[row]["file"]), texts(fast / right[row]["file"])
        packets += 1
        pages += max(len(a), len(b))
        differ += sum(1 for x, y in zip(a, b, strict=False) if x != y) + abs(len(a) - len(b))
    return packets, pages, differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--big", type=int, default=10000, help="rows for the memory run (0: skip)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sample", type=int, default=60, help="packets whose text is compared")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "rows.csv"
        write_csv(source, args.rows)
        cache = tmp / "cache"
        print(f"{args.rows} rows, --jobs {args.jobs}")
        print(f"{'run':<18} {'rows':>6} {'ok':>6} {'fast':>6} {'seconds':>8} {'packets/s':>10} "
              f"{'batch RSS MB':>13} {'worker RSS MB':>14}")

        def show(label: str, rows: int, r: dict) -> float:
            rate = r["ok"] / r["seconds"]
            print(f"{label:<18} {rows:>6} {r['ok']:>6} {r['fast']:>6} {r['seconds']:>8.1f} "
                  f"{rate:>10.2f} {r['parent_rss_mb']:>13.0f} {r['worker_rss_mb']:>14.0f}",
                  flush=True)
            return rate

        naive = show("naive (full)", args.rows, run(source, tmp / "naive", args.jobs, "full",
                                                    tmp / "unused-cache"))
        cold = show("fast, cold cache", args.rows, run(source, tmp / "cold", args.jobs, "fast",
                                                       cache))
        warm_result = run(source, tmp / "warm", args.jobs, "fast", cache)
        warm = show("fast, warm cache", args.rows, warm_result)
        if args.big:
            big = tmp / "big.csv"
            write_csv(big, args.big)
            big_result = run(big, tmp / "big", args.jobs, "fast", cache)
            show("fast, warm cache", args.big, big_result)
        print(f"\nthroughput ratio, fast / naive: cold cache {cold / naive:.1f}x, "
              f"warm cache {warm / naive:.1f}x")
        if args.big:
            print(f"peak RSS {args.big} rows / {args.rows} rows: batch process "
                  f"{big_result['parent_rss_mb'] / warm_result['parent_rss_mb']:.2f}x, "
                  f"largest worker "
                  f"{big_result['worker_rss_mb'] / warm_result['worker_rss_mb']:.2f}x")
        packets, pages, differ = compare(tmp / "naive", tmp / "warm", args.sample)
        print(f"text compared (pypdf, layout mode): {packets} packets, {pages} pages, "
              f"{differ} pages differ")
        from typst_peer import report  # the Typst peer (optional `bench` extra)

        report(warm_result["seconds"] / warm_result["ok"] * 1000, args.jobs)


if __name__ == "__main__":
    main()
