"""Tagged PDF/UA: a structural checker (pdfua) plus our own look at the tree."""

from __future__ import annotations

import io
import re

import pikepdf
import pytest
from pdfua import validate

from myelo_docs.content.loader import load_content
from myelo_docs.schema.brand import load_brand
from myelo_docs.schema.languages import available_languages

LANGUAGES = {"en": "en-US"}


@pytest.fixture(scope="module")
def handout(renderer):
    return renderer.handout("cervical")


def open_pdf(pdf: bytes) -> pikepdf.Pdf:
    return pikepdf.open(io.BytesIO(pdf))


def kids(node) -> list:
    k = node.get("/K") if isinstance(node, pikepdf.Dictionary) else None
    if k is None:
        return []
    return [x for x in (k if isinstance(k, pikepdf.Array) else [k])
            if isinstance(x, pikepdf.Dictionary)]


def walk(node):
    """Structure elements in reading (tree) order."""
    for kid in kids(node):
        if "/S" in kid:
            yield kid
            yield from walk(kid)


def findings(pdf: bytes, tmp_path) -> list[str]:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    return [f"{f.severity.name} {f.rule_id}: {f.message}" for f in validate(str(path)).findings]


def test_packets_and_handout_pass_the_pdfua_checker(packets, handout, tmp_path):
    for name, document in [*packets.items(), ("handout", handout)]:
        assert findings(document.pdf, tmp_path) == [], name


def test_catalog_marks_the_document_as_tagged_titled_and_in_its_language(packets, handout):
    for document in [packets["lumbar"], handout]:
        with open_pdf(document.pdf) as pdf:
            root = pdf.Root
            assert "/StructTreeRoot" in root
            assert bool(root.MarkInfo.Marked) is True
            assert str(root.Lang) == LANGUAGES["en"]
            assert bool(root.ViewerPreferences.DisplayDocTitle) is True
            with pdf.open_metadata() as xmp:
                assert xmp.get("pdfuaid:part") == "1"
                title = xmp.get("dc:title")
    assert title == "Your cervical myelogram: what to expect"


def test_headings_go_in_order(packets):
    with open_pdf(packets["thoracic"].pdf) as pdf:
        levels = [int(str(e.S)[2]) for e in walk(pdf.Root.StructTreeRoot)
                  if re.fullmatch(r"/H[1-6]", str(e.S))]
    assert levels[0] == 1 and levels.count(1) == 3  # going home, about the test, please sign
    assert all(b <= a + 1 for a, b in zip(levels, levels[1:], strict=False)), levels


def test_lists_are_lists_and_the_medicines_table_has_header_cells(packets):
    with open_pdf(packets["lumbar"].pdf) as pdf:
        elements = list(walk(pdf.Root.StructTreeRoot))
        lists = [e for e in elements if e.S == "/L"]
        assert len(lists) >= 15
        assert all(kid.S == "/LI" for lst in lists for kid in kids(lst))
        tables = [e for e in elements if e.S == "/Table"]
        medicines = [t for t in tables if any(k.S == "/THead" for k in kids(t))]
        assert len(medicines) == 1
        head, body = kids(medicines[0])
        header_cells = [c for row in kids(head) for c in kids(row)]
        assert [c.S for c in header_cells] == ["/TH", "/TH"]
        assert all(c.A.Scope == "/Column" for c in header_cells)
        assert len(kids(body)) == 1  # one medicine in the record
        row_headers = [c for t in tables for row in walk(t) if row.S == "/TR"
                       for c in kids(row) if c.S == "/TH" and c.A.Scope == "/Row"]
        assert len(row_headers) >= 7 + 4 + 3  # details, sign page details, phone numbers


def test_logo_and_spine_drawing_have_alt_text(packets):
    brand = load_brand()
    types = load_content("en").data["types"]
    for type_name, document in packets.items():
        with open_pdf(document.pdf) as pdf:
            figures = [e for e in walk(pdf.Root.StructTreeRoot) if e.S == "/Figure"]
        alts = [str(f.get("/Alt", "")) for f in figures]
        assert all(alt.strip() for alt in alts), alts
        assert alts.count(brand.logo_alt) == 1  # announced once, not on every page
        assert types[type_name]["spine_alt"] in alts


def test_running_headers_and_footers_are_artifacts(packets):
    with open_pdf(packets["lumbar"].pdf) as pdf:
        root = pdf.Root.StructTreeRoot
        in_tree = {e.objgen for e in walk(root)}
        first = kids(kids(root)[0])[0]  # the first page's header, read once
        assert any(e.S == "/Figure" for e in walk(first))
        nums = root.ParentTree.Nums
        for index, page in enumerate(pdf.pages):
            elements = next(nums[i + 1] for i in range(0, len(nums), 2)
                            if nums[i] == page.StructParents)
            orphans = [e for e in elements if isinstance(e, pikepdf.Dictionary)
                       and e.objgen not in in_tree]
            assert not orphans, f"page {index + 1}: content tagged outside the tree"
            # One stream, or (a packet from a template) several to read as one.
            marked = {(str(op.operands[1].get("/Type")), str(op.operands[1].get("/Subtype")))
                      for op in pikepdf.parse_content_stream(page)
                      if str(op.operator) == "BDC" and op.operands[0] == "/Artifact"
                      and isinstance(op.operands[1], pikepdf.Dictionary)}
            assert ("/Pagination", "/Footer") in marked
            if index > 0:
                assert ("/Pagination", "/Header") in marked


@pytest.mark.skipif("es" not in available_languages(), reason="no Spanish content yet")
def test_a_spanish_packet_declares_spanish(renderer, packets):
    from conftest import record

    document = renderer.packet(record(language="es"))
    with open_pdf(document.pdf) as pdf:
        assert str(pdf.Root.Lang).lower().startswith("es")


def test_archive_variant_is_pdfa_3u_and_stays_tagged(renderer, tmp_path):
    document = renderer.handout("lumbar", archive=True)
    with open_pdf(document.pdf) as pdf:
        with pdf.open_metadata() as xmp:
            assert (xmp.get("pdfaid:part"), xmp.get("pdfaid:conformance")) == ("3", "U")
            assert xmp.get("pdfuaid:part") is None  # one identification per file
        assert "/OutputIntents" in pdf.Root and not pdf.is_encrypted
        assert "/StructTreeRoot" in pdf.Root and str(pdf.Root.Lang) == "en-US"
    # The tags are all there; only the PDF/UA claim is missing.
    assert [f.split(":")[0] for f in findings(document.pdf, tmp_path)] == ["WARNING UA-28-004"]


def test_archive_refuses_encryption(monkeypatch):
    from click.testing import CliRunner

    from myelo_docs.cli.main import main

    monkeypatch.setenv("MYELO_TEST_PASSWORD", "a long enough password")
    result = CliRunner().invoke(main, [
        "packet", "--type", "lumbar", "--patient-name", "A B", "--date-of-birth", "1960-01-01",
        "--mrn", "1", "--procedure-date", "2026-11-26", "--archive", "--encrypt",
        "--password-env", "MYELO_TEST_PASSWORD", "-o", "-"])
    assert result.exit_code == 2
    assert "PDF/A forbids encryption" in result.output
