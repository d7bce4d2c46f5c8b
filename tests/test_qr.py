"""Every page carries a scannable code for its own patient and page, and the
self-check refuses a packet with a page that belongs to someone else."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
import zxingcpp
from click.testing import CliRunner
from PIL import Image
from pypdf import PdfReader, PdfWriter

from conftest import BASE_RECORD, record
from myelo_docs import SelfCheckError, validate_record
from myelo_docs.cli.main import main
from myelo_docs.render import engine as render
from myelo_docs.render.document import display_identifiers
from myelo_docs.render.fastpath import packet as fast_packet
from myelo_docs.render.stamp import code_matrix, code_payload, payloads_for, stamp_pages
from myelo_docs.verify.selfcheck import shows, squash, verify_pdf

OTHER = record(patient_name="Bartholomew Otherperson", date_of_birth="1970-01-02",
               mrn="OTH-0000017")


def decode_pages(pdf: bytes, folder: Path, dpi: int = 150) -> list[tuple[list[str], list]]:
    """Rasterise with poppler (a third engine) and decode each page with zxing-cpp."""
    path = folder / "packet.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(path), str(folder / "page")],
                   check=True, timeout=120)
    pages = []
    for png in sorted(folder.glob("page-*.png"), key=lambda p: int(p.stem.split("-")[1])):
        image = Image.open(png)
        found = zxingcpp.read_barcodes(image)
        pages.append(([code.text for code in found], [(code, image.size) for code in found]))
    return pages


def test_every_page_code_decodes_to_kind_page_and_mrn(packets, tmp_path):
    document = packets["lumbar"]
    pages = decode_pages(document.pdf, tmp_path)
    assert len(pages) == document.pages
    total = document.pages
    for number, (texts, found) in enumerate(pages, start=1):
        assert texts == [f"MYELO|packet|{number}/{total}|{BASE_RECORD['mrn']}"], number
        code, (width, height) = found[0]
        assert code.format == zxingcpp.BarcodeFormat.QRCode
        # At least 12 mm square, in the bottom-right corner, clear of the page edge.
        xs = [p.x for p in (code.position.top_left, code.position.bottom_right)]
        ys = [p.y for p in (code.position.top_left, code.position.bottom_right)]
        mm = 25.4 / 150
        assert (max(xs) - min(xs)) * mm >= 11.5 and (max(ys) - min(ys)) * mm >= 11.5
        assert min(xs) > width / 2 and min(ys) > height - 25 / mm
        assert (height - max(ys)) * mm >= 4.5 and (width - max(xs)) * mm >= 4.5


def test_unusual_mrn_is_carried_exactly(renderer, tmp_path):
    """Non-ASCII and a '|' in the MRN: UTF-8 with an ECI marker, MRN last in the payload."""
    mrn = "Ñ-ÄÖ|42/ß Ж"
    document = renderer.packet(record(mrn=mrn))
    pages = decode_pages(document.pdf, tmp_path)
    for number, (texts, _) in enumerate(pages, start=1):
        assert texts == [f"MYELO|packet|{number}/{document.pages}|{mrn}"]
        assert texts[0].split("|", 3)[3] == mrn


def test_handout_has_no_code(renderer, tmp_path):
    pages = decode_pages(renderer.handout("cervical").pdf, tmp_path, dpi=100)
    assert all(texts == [] for texts, _ in pages)


def test_code_is_an_artifact_and_the_document_stays_tagged(packets):
    reader = PdfReader(io.BytesIO(packets["cervical"].pdf))
    root = reader.trailer["/Root"]
    assert "/StructTreeRoot" in root and root["/MarkInfo"]["/Marked"]
    for page in reader.pages:
        content = page.get_contents().get_data()
        tail = content[content.rindex(b"/Artifact"):]
        # the code is drawn last, as rectangles only, inside one artifact sequence
        assert tail.startswith(b"/Artifact BMC") and tail.rstrip().endswith(b"EMC")
        assert b" re" in tail and b"Tj" not in tail and b"Do" not in tail


def swap_page(pdf: bytes, other: bytes, index: int) -> bytes:
    mine, theirs = PdfReader(io.BytesIO(pdf)), PdfReader(io.BytesIO(other))
    writer = PdfWriter()
    for i, page in enumerate(mine.pages):
        writer.add_page(theirs.pages[i] if i == index else page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_self_check_finds_another_patients_page(renderer, packets):
    mine = packets["lumbar"]
    theirs = renderer.packet(OTHER)
    mixed = swap_page(mine.pdf, theirs.pdf, 2)
    ids = display_identifiers(validate_record(BASE_RECORD))
    with pytest.raises(SelfCheckError) as caught:
        verify_pdf(mixed, ids, codes=payloads_for("packet", BASE_RECORD["mrn"]))
    problems = caught.value.problems
    assert {p.field for p in problems} == {"page 3"}
    found = " ".join(p.problem for p in problems)
    for what in ("name", "date of birth", "MRN", "scannable code"):
        assert what in found
    # the unchanged packet passes the same check
    assert verify_pdf(mine.pdf, ids, codes=payloads_for("packet", BASE_RECORD["mrn"])) \
        == mine.pages


@pytest.mark.parametrize("path", ["full", "fast"])
def test_self_check_reads_the_code_back(renderer, monkeypatch, path):
    """A code for the wrong patient, with every printed identifier right, is still refused,
    whether WeasyPrint (full) or the template path (fast) drew it."""
    if path == "full":
        wrong = payloads_for("packet", OTHER["mrn"])
        monkeypatch.setattr(render, "stamp_pages", lambda pdf, codes: stamp_pages(pdf, wrong))
    else:
        mine, theirs = BASE_RECORD["mrn"], OTHER["mrn"]
        monkeypatch.setattr(fast_packet, "code_matrix",
                            lambda payload: code_matrix(payload.replace(mine, theirs)))
    with pytest.raises(SelfCheckError) as caught:
        if path == "full":
            renderer.packet(record(), full_render=True)
        else:  # (renderer.packet would then fall back to the full render)
            renderer.fast_packets().packet(validate_record(record()))
    problems = caught.value.problems
    assert problems and all("scannable code" in p.problem for p in problems)
    assert len(problems) == len({p.field for p in problems})  # one per page


@pytest.mark.parametrize("path", ["full", "fast"])
def test_cli_writes_nothing_when_a_page_is_corrupted(tmp_path, monkeypatch, path):
    """Page 2 of the packet is replaced by another patient's page inside the pipeline
    (WeasyPrint's, or the template path's): exit 6, no file, no temporary file, no
    patient details in the message."""
    other_pdf = render.get_renderer().packet(OTHER).pdf
    if path == "full":
        real_write = render.Renderer._write

        def corrupted(self, template, context, language, **options):
            pdf = real_write(self, template, context, language, **options)
            return swap_page(pdf, other_pdf, 1) if template == "packet.html.j2" else pdf

        monkeypatch.setattr(render.Renderer, "_write", corrupted)
    else:  # the slots of page 2 filled with the other patient's identifiers
        real_draw = fast_packet.FastPackets._draw_slots
        other = validate_record(OTHER)
        ids = display_identifiers(other)
        theirs = {"name": ids.name, "dob": ids.dob, "mrn": ids.mrn,
                  "procedure_date": "November 25, 2026", "physician": "", "nurse": ""}

        def mixed(self, template, styles, lines):
            pieces = real_draw(self, template, styles, lines)
            wrong = real_draw(self, template, styles,
                              self._slot_lines(template, styles, theirs))
            for number, (page, _) in template.dynamic.items():
                if page == 1 and number in wrong:
                    pieces[number] = wrong[number]
            return pieces

        monkeypatch.setattr(fast_packet.FastPackets, "_draw_slots", mixed)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [
        "packet", "--type", "lumbar", "--patient-name", BASE_RECORD["patient_name"],
        "--date-of-birth", BASE_RECORD["date_of_birth"], "--mrn", BASE_RECORD["mrn"],
        "--procedure-date", BASE_RECORD["procedure_date"], "-o", "p.pdf",
        *(["--full-render"] if path == "full" else [])])
    if path == "fast":  # the fast packet failed its check: the full render's is written
        assert result.exit_code == 0, result.output
        written = " ".join(p.extract_text() for p in PdfReader(tmp_path / "p.pdf").pages)
        assert BASE_RECORD["mrn"] in written and OTHER["mrn"] not in written
        return
    assert result.exit_code == 6, result.output
    assert "page 2" in result.stderr and "page 1:" not in result.stderr
    assert list(tmp_path.iterdir()) == []
    for secret in (BASE_RECORD["patient_name"], BASE_RECORD["mrn"], OTHER["patient_name"],
                   OTHER["mrn"], "1958"):
        assert secret not in result.output


@pytest.mark.parametrize(("value", "page", "shown"), [
    ("Ana Lee", "Name: Ana Lee", True),
    ("Ana Lee", "Name: Ana Li", False),
    ("José García", "Name: Jose Garcia", False),  # accents count in left-to-right text
    ("Ana\u200bLee", "Name: AnaLee", True),  # invisible characters are not drawn
    ("Ana (محمد)", "Name: Ana (محمد(", True),  # a mirrored bracket, as PDFium gives it
    ("محمد 2", "Name: 2 محمد", True),  # a digit on the other side
    ("Ana (محمد)", "Name: Ana (علي)", False),  # another right-to-left name
    ("מרים כהן", "Name: מרים לוי", False),
])
def test_self_check_text_comparison(value, page, shown):
    assert shows(value, squash(page)) is shown


def test_code_matrix_reads_back_as_its_payload():
    """Every code a payload can make (short and long MRNs, UTF-8 ones behind an
    ECI marker) decodes to exactly that payload, with its quiet zone added."""
    payloads = [code_payload("packet", mrn, page, total)
                for mrn in ("7", "TST-4471902", "A" * 40, "Ñ-ÄÖ|42/ß Ж", "MÜLLER-1", "ЖК-42",
                            "7" * 300)
                for page, total in ((1, 1), (7, 12))]
    for payload in payloads:
        matrix = code_matrix(payload)
        side = len(matrix)
        assert all(len(row) == side for row in matrix)
        quiet, scale = 4, 4
        image = Image.new("L", (side + 2 * quiet, side + 2 * quiet), 255)
        for y, row in enumerate(matrix):
            for x, dark in enumerate(row):
                if dark:
                    image.putpixel((x + quiet, y + quiet), 0)
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
        found = zxingcpp.read_barcode(image)
        assert found is not None and found.text == payload
        # In UTF-8 (behind its ECI marker), not Latin-1 or Shift JIS for a scanner to guess.
        assert found.bytes == payload.encode("utf-8")
