"""Large print: measured on the real PDF, the way a reviewer with a ruler would."""

from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from pypdf import PdfReader

from conftest import ROOT, flat, pages_text, record

MM = 72 / 25.4
TOP, BOTTOM, SIDE = 32 * MM, 20 * MM, 16 * MM  # page margins in print.css
LONG_WORD = "Hydroxychloroquinesulfatepentahydrateextendedreleaseformulation"


@pytest.fixture(scope="module")
def large(renderer):
    meds = [{"name": LONG_WORD, "instruction": "Take one tablet each morning with food. " * 7}]
    return renderer.packet(record(type="cervical", large_print=True, medications=meds))


def text_runs(pdf: bytes) -> list[list[tuple[float, float, str]]]:
    """Per page: (size in pt, baseline y from the bottom, text) of every text run."""
    pages = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        runs: list[tuple[float, float, str]] = []

        def visit(text, cm, tm, _font, size, runs=runs):
            if not text.strip():
                return
            a, b, c, d, e, f = tm
            ca, cb, cc, cd, ce, cf = cm
            scale = ((a * cb + b * cd) ** 2 + (c * cb + d * cd) ** 2) ** 0.5
            y = e * cb + f * cd + cf
            runs.append((round(size * scale, 1), y, text))

        page.extract_text(visitor_text=visit)
        pages.append(runs)
    return pages


def zones(pdf: bytes) -> list[tuple[list, list, list]]:
    """Per page: the runs in the header margin, the body, and the footer margin."""
    height = float(PdfReader(io.BytesIO(pdf)).pages[0].mediabox.height)
    return [([r for r in runs if r[1] > height - TOP],
             [r for r in runs if BOTTOM <= r[1] <= height - TOP],
             [r for r in runs if r[1] < BOTTOM]) for runs in text_runs(pdf)]


@pytest.fixture(scope="module")
def large_zones(large):
    return zones(large.pdf)


def test_body_text_is_at_least_18_point_and_headings_larger(large_zones, packets):
    for number, (_head, body, _foot) in enumerate(large_zones, start=1):
        small = [r for r in body if r[0] < 17.95]
        assert not small, f"page {number}: text under 18 pt: {small[:3]}"
    sizes = Counter(r[0] for _h, body, _f in large_zones for r in body for _ in r[2])
    body_size = sizes.most_common(1)[0][0]
    assert body_size >= 18
    assert max(sizes) >= 1.5 * body_size  # the title
    assert any(1.2 * body_size <= s < 1.5 * body_size for s in sizes)  # section headings
    standard = Counter(r[0] for _h, body, _f in zones(packets["lumbar"].pdf) for r in body)
    assert standard.most_common(1)[0][0] < 14  # the flag really changes the size


def test_line_spacing_is_about_one_and_a_half(large_zones):
    gaps = Counter()
    for _head, body, _foot in large_zones:
        lines = sorted({round(y, 1) for size, y, _ in body if size == 18.0}, reverse=True)
        gaps.update(round(a - b) for a, b in zip(lines, lines[1:], strict=False))
    spacing = gaps.most_common(1)[0][0] / 18
    assert 1.4 <= spacing <= 1.6, f"line spacing {spacing:.2f}"


def test_every_page_keeps_identifiers_and_a_readable_page_number(large, large_zones):
    texts = pages_text(large.pdf)
    total = len(texts)
    assert total == large.pages
    for number, ((head, _body, foot), text) in enumerate(zip(large_zones, texts, strict=True),
                                                         start=1):
        page = flat(text)
        assert "Rosalind Testpatient" in page and "TST-4471902" in page, number
        assert f"Page {number} of {total}" in page
        assert min(size for size, _, _ in head) >= 14, f"page {number}: header too small"
        page_number = [size for size, _, t in foot if re.search(r"\d+ of \d+|Page", t)]
        assert page_number and min(page_number) >= 14, f"page {number}: page number too small"
        assert min(size for size, _, _ in foot) >= 12


def test_text_reflows_inside_the_margins(large):
    doc = pdfium.PdfDocument(large.pdf)
    try:
        for index in range(len(doc)):
            page = doc[index]
            width, height = page.get_size()
            chars = page.get_textpage()
            for i in range(chars.count_chars()):
                left, bottom, right, top = chars.get_charbox(i)
                if right <= left or top <= bottom:  # spaces and line breaks
                    continue
                assert left >= SIDE - 1 and right <= width - SIDE + 1, (
                    f"page {index + 1}: text outside the side margins at x={left:.0f}-{right:.0f}")
                assert bottom >= 0 and top <= height
    finally:
        doc.close()
    text = flat(" ".join(pages_text(large.pdf)))
    assert "Take one tablet each morning with food. " * 6 in text + " "
    assert LONG_WORD in text.replace(" ", "")  # broken over lines, not cut off


def test_pictures_carry_no_text():
    images = [*Path(ROOT, "templates", "images").glob("*.svg"),
              *Path(ROOT, "myelo_docs", "brands").glob("*/*.svg")]
    assert len(images) >= 4
    for image in images:
        assert "<text" not in image.read_text("utf-8"), f"{image.name} has text in it"
