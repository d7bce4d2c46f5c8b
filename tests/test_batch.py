"""Batch from CSV, as staff use it: every bad row explained, every good row printed."""

from __future__ import annotations

import csv
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import flat, pages_text
from myelo_docs.batch.run import validate_csv
from myelo_docs.cli.main import main
from myelo_docs.formats.csv_input import CsvError, open_csv, record_to_row, row_to_data
from myelo_docs.output.filenames import check_pattern, file_name, sanitise
from myelo_docs.schema.record import validate_record

HEADER = "type,patient_name,date_of_birth,mrn,procedure_date,medications,instructions\n"
GOOD = [
    'lumbar,Ann Batchrow,1960-01-01,B-001,2026-11-25,"Warfarin: Restart Friday\nMetformin: '
    'Restart in 2 days","Rest today.\nDrink water."\n',
    "cervical,Bob Batchrow,1961-02-02,B-002,2026-11-25,,\n",
]
BAD = {
    4: ("thoracic,Cat Batchrow,1961-02-30,B-003,2026-11-25,,\n",
        "date_of_birth: is not a real calendar date"),
    5: ("spinal,Dan Batchrow,1961-02-03,B-004,2026-11-25,,\n", "type: is not a myelogram type"),
    6: ("lumbar,,1961-02-03,B-005,2026-11-25,,\n", "patient_name: is required but missing"),
    7: ("lumbar,Eve 王,1961-02-03,B-006,2026-11-25,,\n", "patient_name: has characters no"),
    8: ("lumbar,Fay Batchrow,1961-02-03,B-007,2026-11-25,Warfarin,\n",
        "medications #1: has no colon"),
    9: ('lumbar,Ann Batchrow,1960-01-01,B-001,2026-11-25,,\n', "duplicate of row 2"),
}


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def read_manifest(folder: Path) -> list[dict[str, str]]:
    with (folder / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def run(args: list[str]):
    return CliRunner().invoke(main, args)


def test_mixed_csv_every_bad_row_explained_every_good_row_printed(tmp_path):
    source = write_csv(tmp_path / "list.csv",
                       HEADER + "".join(GOOD) + "".join(text for text, _ in BAD.values()))
    out = tmp_path / "out"
    result = run(["batch", str(source), "--out", str(out), "--jobs", "2", "--quiet"])
    assert result.exit_code == 7, result.output
    manifest = read_manifest(out)
    assert [int(line["row"]) for line in manifest] == list(range(2, 10))
    by_row = {int(line["row"]): line for line in manifest}
    for row in (2, 3):
        line = by_row[row]
        assert line["status"] == "ok" and line["error"] == ""
        pdf = (out / line["file"]).read_bytes()
        assert hashlib.sha256(pdf).hexdigest() == line["sha256"]
        assert len(pages_text(pdf)) == int(line["pages"])
    assert "Ann Batchrow" in flat(pages_text((out / by_row[2]["file"]).read_bytes())[0])
    for row, (_, message) in BAD.items():
        assert by_row[row]["status"] in ("error", "skipped")
        assert message in by_row[row]["error"], (row, by_row[row]["error"])
        assert f"row {row}:" in result.stderr
    assert by_row[9]["status"] == "skipped"
    # only the two good packets (and the manifest) are in the folder; no names in it
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [by_row[2]["file"], by_row[3]["file"], "manifest.csv"])
    text = (out / "manifest.csv").read_text()
    assert "Batchrow" not in text and "B-001" not in text
    assert "2 ok, 5 failed, 1 skipped" in result.stdout


def test_all_good_exit_0_and_dry_run_renders_nothing(tmp_path):
    source = write_csv(tmp_path / "list.csv", HEADER + GOOD[1])
    result = run(["batch", str(source), "--out", str(tmp_path / "dry"), "--dry-run"])
    assert result.exit_code == 0 and "1 ready, 0 with problems" in result.stdout
    assert not (tmp_path / "dry").exists()
    result = run(["batch", str(source), "--out", str(tmp_path / "out"), "--jobs", "1", "--quiet"])
    assert result.exit_code == 0, result.output


def test_validate_lists_every_problem_with_spreadsheet_rows(tmp_path):
    source = write_csv(tmp_path / "list.csv",
                       HEADER + "".join(GOOD) + "".join(text for text, _ in BAD.values()))
    result = run(["validate", str(source)])
    assert result.exit_code == 7
    for row, (_, message) in BAD.items():
        assert f"row {row}:" in result.stderr and message in result.stderr
    assert "8 rows: 2 ready, 6 with problems" in result.stdout


def test_unknown_column_fails_before_rendering(tmp_path):
    source = write_csv(tmp_path / "list.csv", "type,patient_nam,date_of_birth,mrn,procedure_date\n"
                       "lumbar,Ann,1960-01-01,1,2026-11-25\n")
    result = run(["batch", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 3
    assert "column patient_nam: is not a known field" in result.stderr
    assert "did you mean 'patient_name'" in result.stderr
    assert not (tmp_path / "out").exists()


DIALECT_ROWS = [("lumbar", "José Núñez", "1960-01-01", "D-1", "2026-11-25")]


@pytest.mark.parametrize("variant", ["bom", "cp1252", "semicolon", "crlf", "messy-header",
                                     "tab"])
def test_encodings_and_dialects(tmp_path, variant):
    header = ["type", "patient_name", "date_of_birth", "mrn", "procedure_date", "instructions"]
    rows = [[*DIALECT_ROWS[0], "Line one.\nLine two."]]
    delimiter = {"semicolon": ";", "tab": "\t"}.get(variant, ",")
    newline = "\r\n" if variant in ("crlf", "cp1252") else "\n"
    if variant == "messy-header":
        header = [" Type", "Patient Name ", "DATE_OF_BIRTH", "mrn ", " Procedure Date",
                  "Instructions"]
    lines = [delimiter.join(header)]
    for row in rows:
        cells = [f'"{c}"' if ("\n" in c or delimiter in c) else c for c in row]
        lines.append(delimiter.join(cells))
    text = newline.join(lines) + newline + newline + newline  # blank trailing lines
    encoding = "cp1252" if variant == "cp1252" else "utf-8"
    raw = text.encode(encoding)
    if variant == "bom":
        raw = b"\xef\xbb\xbf" + raw
    path = tmp_path / "list.csv"
    path.write_bytes(raw)
    source, problems = validate_csv(path, encoding="cp1252" if variant == "cp1252" else None)
    assert source.rows == 1 and problems == []
    from myelo_docs.formats.csv_input import iter_rows

    (_, cells), = list(iter_rows(source))
    record = validate_record(row_to_data(cells))
    assert record.patient_name == "José Núñez"
    assert record.instructions == ["Line one.", "Line two."]


def test_windows_1252_without_encoding_suggests_it(tmp_path):
    path = write_csv(tmp_path / "list.csv", HEADER.replace(",medications,instructions", "")
                     + "lumbar,José,1960-01-01,1,2026-11-25\n", encoding="cp1252")
    with pytest.raises(CsvError) as caught:
        open_csv(path)
    assert "--encoding cp1252" in str(caught.value)
    result = run(["batch", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 3 and "--encoding cp1252" in result.stderr


def test_csv_round_trip_is_lossless():
    record = validate_record({
        "type": "thoracic", "patient_name": "Zoë O'Neil, Jr.", "date_of_birth": "1950-05-06",
        "mrn": "X;1,2", "procedure_date": "2026-11-25", "physician": "Dr. A",
        "follow_up": 'Call "Spine clinic": 555', "instructions": ["One, two.", "Three; four"],
        "medications": [{"name": "Vitamin D: 1000 IU", "instruction": "Keep: as before"},
                        {"name": "Aspirin", "instruction": "Restart at 10:30"}],
        "large_print": True, "language": "en"})
    assert validate_record(row_to_data(record_to_row(record))) == record
    plain = record.model_copy(update={"medications": record.medications[1:]})
    row = record_to_row(plain)
    assert not row["medications"].startswith("[")
    assert validate_record(row_to_data(row)) == plain


@pytest.mark.parametrize(("name", "expected"), [
    ("../../x", "x"),
    ("/etc/passwd", "etc_passwd"),
    ("CON", "_CON"),
    ("con.txt", "_con.txt"),
    ("a\x00b\x1fc", "abc"),
    ("", ""),
    ("..", ""),
    ("x" * 500, "x" * 120),
    ("名前" * 100, "名前" * 20),
])
def test_name_sanitising(name, expected):
    assert sanitise(name) == expected


def test_name_pattern_never_escapes_folder_and_empty_falls_back():
    record = validate_record({"type": "lumbar", "patient_name": "../../etc/passwd",
                              "date_of_birth": "1960-01-01", "mrn": "..",
                              "procedure_date": "2026-11-25"})
    name = file_name("{patient_name}", 7, record)
    assert "/" not in name and ".." not in name and name.endswith(".pdf")
    assert file_name("{mrn}", 7, record).startswith("row-7-")
    with pytest.raises(Exception, match="unknown fields"):
        check_pattern("{ssn}")


def test_name_pattern_clash_and_patient_names_only_when_asked(tmp_path):
    text = HEADER + GOOD[1] + "cervical,Bob Batchrow,1971-02-02,B-099,2026-11-26,,\n"
    source = write_csv(tmp_path / "list.csv", text)
    out = tmp_path / "out"
    result = run(["batch", str(source), "--out", str(out), "--jobs", "1", "--quiet",
                  "--name-pattern", "{patient_name}"])
    assert result.exit_code == 0, result.output
    names = sorted(line["file"] for line in read_manifest(out))
    assert names == ["Bob Batchrow-row3.pdf", "Bob Batchrow.pdf"]


def test_existing_batch_needs_resume_or_force(tmp_path):
    source = write_csv(tmp_path / "list.csv", HEADER + GOOD[1])
    out = tmp_path / "out"
    assert run(["batch", str(source), "--out", str(out), "--quiet"]).exit_code == 0
    again = run(["batch", str(source), "--out", str(out), "--quiet"])
    assert again.exit_code == 5 and "--resume" in again.stderr
    resumed = run(["batch", str(source), "--out", str(out), "--quiet", "--resume"])
    assert resumed.exit_code == 0 and "1 already done" in resumed.stdout


def test_combined_print_file_with_duplex_padding(tmp_path):
    rows = [GOOD[1]]
    for count in (6, 12):  # more medicines, more pages: the batch mixes odd and even packets
        meds = "\n".join(f"Med {i}: Take it as before, twice a day with food."
                         for i in range(count))
        rows.append(f'lumbar,Odd Pagecount{count},1962-03-03,B-0{count},2026-11-25,"{meds}",\n')
    source = write_csv(tmp_path / "list.csv", HEADER + "".join(rows))
    out = tmp_path / "out"
    result = run(["batch", str(source), "--out", str(out), "--quiet", "--jobs", "2",
                  "--combined", str(tmp_path / "print.pdf"), "--duplex"])
    assert result.exit_code == 0, result.output
    pages = [int(line["pages"]) for line in read_manifest(out)]
    assert {p % 2 for p in pages} == {0, 1}, pages
    texts = [flat(t) for t in pages_text((tmp_path / "print.pdf").read_bytes())]
    assert len(texts) == sum(p + p % 2 for p in pages)
    names = ["Bob Batchrow", "Odd Pagecount6", "Odd Pagecount12"]
    start = 0
    for name, count in zip(names, pages, strict=True):
        packet = texts[start:start + count + count % 2]
        assert all(name in t for t in packet)
        assert packet[0].count(f"Page 1 of {count}") == 1  # each packet starts a front side
        if count % 2:
            blank = packet[-1]
            assert "This page is blank on purpose." in blank
            assert not re.search(r"Page \d+ of \d+", blank)
        start += count + count % 2
    no_duplex = run(["batch", str(source), "--out", str(out), "--quiet", "--force",
                     "--combined", str(tmp_path / "print2.pdf")])
    assert no_duplex.exit_code == 0
    assert len(pages_text((tmp_path / "print2.pdf").read_bytes())) == sum(pages)
    assert run(["batch", str(source), "--out", str(out), "--duplex"]).exit_code == 2


def test_killed_batch_then_resume_does_every_row_once(tmp_path):
    rows = [f"lumbar,Kill Row{i},1960-01-{i + 1:02d},K-{i:03d},2026-11-25,,\n" for i in range(8)]
    source = write_csv(tmp_path / "list.csv", HEADER + "".join(rows))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "myelo_docs", "batch", str(source), "--out", str(out),
               "--jobs", "1", "--quiet"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(list(out.glob("*.pdf"))) >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the batch and its worker, mid-run
    process.wait()
    written = {p.name for p in out.glob("*.pdf")}
    assert 2 <= len(written) < 8
    # what the kill left: complete PDFs only; every manifest line vouches for a real file
    for pdf in out.glob("*.pdf"):
        assert pdf.read_bytes().rstrip().endswith(b"%%EOF")
    vouched = read_manifest(out)
    for line in vouched:
        assert line["status"] == "ok"
        assert hashlib.sha256((out / line["file"]).read_bytes()).hexdigest() == line["sha256"]

    result = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(out)
    assert [int(line["row"]) for line in manifest] == list(range(2, 10))
    assert all(line["status"] == "ok" for line in manifest)
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([line["file"] for line in manifest] + ["manifest.csv"])
    for line in manifest:
        pdf = (out / line["file"]).read_bytes()
        assert hashlib.sha256(pdf).hexdigest() == line["sha256"]
    assert f"{len(vouched)} already done" in result.stdout
    assert f"{8 - len(vouched)} ok" in result.stdout


def test_print_file_check_refuses_a_page_from_another_packet(tmp_path, renderer):
    """The print file is checked page by page: a swapped page stops it."""
    from pypdf import PdfReader, PdfWriter

    from myelo_docs.batch.print_file import build_combined
    from myelo_docs.schema.errors import SelfCheckError

    first = validate_record({"type": "lumbar", "patient_name": "Pat One",
                             "date_of_birth": "1960-01-01", "mrn": "S-1",
                             "procedure_date": "2026-11-25"})
    second = first.model_copy(update={"patient_name": "Pat Two", "mrn": "S-2"})
    paths = []
    for rec in (first, second):
        path = tmp_path / f"{rec.mrn}.pdf"
        path.write_bytes(renderer.packet(rec).pdf)
        paths.append(path)
    # Put page 2 of the second packet in place of page 2 of the first.
    a, b = PdfReader(paths[0]), PdfReader(paths[1])
    writer = PdfWriter()
    for i, page in enumerate(a.pages):
        writer.add_page(b.pages[i] if i == 1 else page)
    writer.write(paths[0])
    digest = hashlib.sha256(paths[0].read_bytes()).hexdigest()
    with pytest.raises(SelfCheckError) as caught:
        build_combined([(paths[0], digest, first),
                        (paths[1], hashlib.sha256(paths[1].read_bytes()).hexdigest(), second)],
                       tmp_path / "print.pdf", renderer, duplex=False)
    assert "page 2" in str(caught.value)
    assert not (tmp_path / "print.pdf").exists()


def test_manifest_says_how_each_packet_was_made_and_full_render_forces_it(tmp_path):
    """Packets come from templates where they can; a right-to-left name gets the
    full render; --full-render renders all in full. Both runs read the same."""
    rows = HEADER + GOOD[0] + GOOD[1] + "thoracic,سارة أحمد,1962-03-03,B-009,2026-11-25,,\n"
    source = write_csv(tmp_path / "list.csv", rows)
    runs = {}
    for mode, extra in (("mixed", []), ("full", ["--full-render"])):
        out = tmp_path / mode
        result = run(["batch", str(source), "--out", str(out), "--jobs", "1", "--quiet",
                      *extra])
        assert result.exit_code == 0, result.output
        runs[mode] = {line["row"]: line for line in read_manifest(out)}
        for line in runs[mode].values():
            assert line["tagged"] == "yes"
            assert hashlib.sha256((out / line["file"]).read_bytes()).hexdigest() == \
                line["sha256"]
    assert [runs["mixed"][row]["render"] for row in ("2", "3", "4")] == ["fast", "fast", "full"]
    assert {line["render"] for line in runs["full"].values()} == {"full"}
    for row in ("2", "3"):
        fast = pages_text((tmp_path / "mixed" / runs["mixed"][row]["file"]).read_bytes())
        full = pages_text((tmp_path / "full" / runs["full"][row]["file"]).read_bytes())
        assert [sorted(p.split()) for p in fast] == [sorted(p.split()) for p in full]


def test_a_ctrl_c_while_a_task_is_recorded_takes_effect_once_it_is_recorded():
    # CI once met a Ctrl-C between a task's manifest lines and its leaving the
    # pending set: the task was recorded again on the way out, one PDF on two lines.
    from myelo_docs.batch.run import _ctrl_c_held

    steps = []
    with pytest.raises(KeyboardInterrupt), _ctrl_c_held():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the signal is delivered here, and held
        steps.append("recorded")
        steps.append("out of pending")
    assert steps == ["recorded", "out of pending"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with _ctrl_c_held():  # no Ctrl-C: nothing is raised after the block
        steps.append("again")
    assert steps[-1] == "again"
