"""Fast-path fonts and shaping: text broken and shaped by WeasyPrint's Pango code
(fastpath/shaping.py), drawn with our embedded faces (fastpath/faces.py),
extracts exactly and renders; what they cannot draw exactly is refused."""

from __future__ import annotations

import io
import re
import subprocess

import pikepdf
import pypdfium2
import pytest
from fontTools.ttLib import TTFont
from PIL import Image
from pypdf import PdfReader

from conftest import flat
from myelo_docs import get_renderer
from myelo_docs.render.fastpath.faces import REPERTOIRE, bundled_faces
from myelo_docs.render.fastpath.unsure import Unsure

NAMES = [
    "José Müller-Øster",
    "Nguyễn Thị Ánh",
    "Ελένη",
    "Дмитрий",
    "O'Brien – 12/03",
    "AVAWAY Tomorrow: 50 мг № 3 ™ € ‰ «µ»",
]
SUBSET_NAME = re.compile(r"^[A-Z]{6}\+MD-(AtkinsonHyperlegible|NotoSans)-(Regular|Bold)$")


@pytest.fixture(scope="module")
def fast():
    return get_renderer().fast_packets()


@pytest.fixture(scope="module")
def styles(fast):
    calibration = fast.cache.calibration("lumbar", "en", False)
    return {name: fast.shaper.style(calibration["styles"][name]) for name in ("name", "id_label")}


def _one_page(fast, styles, lines: list[str]) -> bytes:
    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=(595, 842))
    fonts = pikepdf.Dictionary()
    for face in bundled_faces()[:4]:
        fonts[f"/{face.resource_name}"] = face.add_to(pdf)
    operators = [b"1 0 0 -1 0 842 cm 0.75 0 0 0.75 0 0 cm"]
    y = 60.0
    for style in styles.values():
        for text in lines:
            for line in fast.shaper.lines(text, style, None):
                drawn, _ = fast.shaper.draw(line, 50.5, y)
                operators.append(drawn)
                y += 30
    page.Resources = pikepdf.Dictionary(Font=fonts)
    page.Contents = pdf.make_stream(b"\n".join(operators))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def page_pdf(fast, styles) -> bytes:
    return _one_page(fast, styles, NAMES)


def _lines(text: str) -> list[str]:
    return [flat(line) for line in text.splitlines() if line.strip()]


def test_pypdf_extracts_every_string_exactly(page_pdf):
    text = PdfReader(io.BytesIO(page_pdf)).pages[0].extract_text()
    assert _lines(text) == NAMES * 2


def test_pdfium_extracts_every_string_exactly(page_pdf):
    page = pypdfium2.PdfDocument(page_pdf)[0]
    assert _lines(page.get_textpage().get_text_range()) == NAMES * 2


def test_pango_picks_the_fallback_face_for_what_the_main_one_lacks(fast, styles):
    line = fast.shaper.lines("Ann Дмитрий", styles["name"], None)[0]
    assert fast.shaper.families_of(line) == (1,)  # Noto Sans, after Atkinson Hyperlegible
    assert fast.shaper.families_of(fast.shaper.lines("Ann Lee", styles["name"], None)[0]) == ()


def test_lines_break_where_weasyprint_breaks_them(fast, styles):
    """A column narrower than the text: split_first_line's lines, no word lost."""
    text = "Restart on Friday unless your doctor tells you otherwise"
    lines = fast.shaper.lines(text, styles["name"], 150)
    assert len(lines) > 1 and " ".join(line.text for line in lines) == text
    assert all(line.width <= 150 for line in lines)


def test_faces_are_embedded_subsets_without_layout_tables(page_pdf):
    fonts = PdfReader(io.BytesIO(page_pdf)).pages[0]["/Resources"]["/Font"]
    names = set()
    for font in fonts.values():
        font = font.get_object()
        assert font["/Subtype"] == "/Type0" and font["/Encoding"] == "/Identity-H"
        assert "/ToUnicode" in font
        cid_font = font["/DescendantFonts"][0].get_object()
        assert cid_font["/CIDToGIDMap"] == "/Identity"
        descriptor = cid_font["/FontDescriptor"].get_object()
        assert SUBSET_NAME.match(descriptor["/FontName"][1:])
        assert descriptor["/FontName"] == font["/BaseFont"]
        stream = descriptor["/FontFile2"].get_object()
        assert stream["/Filter"] == "/FlateDecode"
        data = stream.get_data()
        assert stream["/Length1"] == len(data)
        subset = TTFont(io.BytesIO(data))
        assert not {"GSUB", "GPOS", "fpgm", "prep"} & set(subset.keys())
        assert ord("€") in subset.getBestCmap() and ord("李") not in subset.getBestCmap()
        names.add(descriptor["/FontName"][11:])  # after "/ABCDEF+MD-"
    assert names == {
        "AtkinsonHyperlegible-Bold", "AtkinsonHyperlegible-Regular", "NotoSans-Bold",
        "NotoSans-Regular",
    }


def test_pdftoppm_renders_the_page(page_pdf, tmp_path):
    (tmp_path / "page.pdf").write_bytes(page_pdf)
    done = subprocess.run(
        ["pdftoppm", "-r", "60", "-png", "-singlefile", "page.pdf", "page"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0 and done.stderr == ""
    image = Image.open(tmp_path / "page.png").convert("L")
    assert sum(image.histogram()[:128]) > 2000  # twelve lines of text, not a blank page


@pytest.mark.parametrize("text", ["李", "שלום", "سارة", "soft\u00adhyphen"])
def test_what_cannot_be_drawn_exactly_is_unsure(fast, styles, text):
    with pytest.raises(Unsure):
        for line in fast.shaper.lines(text, styles["name"], None):
            fast.shaper.draw(line, 0, 0)


def test_combining_marks_are_outside_the_repertoire():
    atkinson = bundled_faces()[0]
    assert ord("\u0301") in TTFont(atkinson.path).getBestCmap()
    assert "\u0301" not in atkinson.characters()
    assert 0x0301 not in REPERTOIRE and ord("ễ") in REPERTOIRE and ord("№") in REPERTOIRE


def test_add_to_makes_the_font_objects_once_per_pdf():
    face = bundled_faces()[1]
    pdf = pikepdf.new()
    first, again = face.add_to(pdf), face.add_to(pdf)
    assert first.objgen == again.objgen and first.objgen != (0, 0)
    other = pikepdf.new()
    assert face.add_to(other).is_owned_by(other)
