"""Fast-path fonts: text drawn with our embedded faces extracts exactly, measures
like the font files say, and renders."""

from __future__ import annotations

import ctypes
import functools
import io
import re
import subprocess

import pikepdf
import pypdfium2
import pypdfium2.raw as pdfium_raw
import pytest
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTFont
from PIL import Image
from pypdf import PdfReader

from conftest import flat
from myelo_docs.fastpath.pdffont import (
    REPERTOIRE,
    EmbeddedFace,
    FaceChain,
    UncoveredTextError,
    bundled_chain,
)

NAMES = [
    "José Müller-Øster",
    "Nguyễn Thị Ánh",
    "Ελένη",
    "Дмитрий",
    "O'Brien – 12/03",
    "AVAWAY Tomorrow: 50 мг № 3 ™ € ‰ «µ»",
]
SUBSET_NAME = re.compile(r"^[A-Z]{6}\+MD-(AtkinsonHyperlegible|NotoSans)-(Regular|Bold)$")


def _one_page(chains: list[FaceChain], lines: list[str], size: float = 14) -> bytes:
    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=(595, 842))
    fonts = pikepdf.Dictionary()
    operators = []
    y = 800.0
    for chain in chains:
        for face in chain.faces:
            fonts[f"/{face.resource_name}"] = face.add_to(pdf)
        for line in lines:
            operators.append(chain.show(line, size, 40.5, y))
            y -= 1.6 * size
    page.Resources = pikepdf.Dictionary(Font=fonts)
    page.Contents = pdf.make_stream(b"\n".join(operators))
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def page_pdf() -> bytes:
    return _one_page([bundled_chain(True), bundled_chain(False)], NAMES)


def _lines(text: str) -> list[str]:
    return [flat(line) for line in text.splitlines() if line.strip()]


def test_pypdf_extracts_every_string_exactly(page_pdf):
    text = PdfReader(io.BytesIO(page_pdf)).pages[0].extract_text()
    assert _lines(text) == NAMES * 2


def test_pdfium_extracts_every_string_exactly(page_pdf):
    page = pypdfium2.PdfDocument(page_pdf)[0]
    assert _lines(page.get_textpage().get_text_range()) == NAMES * 2


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
    dark = sum(image.histogram()[:128])
    assert dark > 2000  # twelve lines of 14 pt text, not a blank page


@pytest.mark.parametrize("text", ["李", "שלום", "e\u0301", "Ana\u200b", "soft\u00adhyphen"])
def test_runs_refuses_characters_outside_the_repertoire(text):
    for bold in (False, True):
        chain = bundled_chain(bold)
        assert chain.runs(text) is None
        with pytest.raises(UncoveredTextError):
            chain.show(text, 10, 0, 0)


def test_combining_mark_is_not_covered_though_the_font_has_it():
    atkinson = bundled_chain(False).faces[0]
    assert ord("\u0301") in TTFont(atkinson.path).getBestCmap()
    assert not atkinson.covers("\u0301")
    assert 0x0301 not in REPERTOIRE and ord("ễ") in REPERTOIRE and ord("№") in REPERTOIRE


@functools.cache
def _font(path) -> TTFont:
    return TTFont(path)


def _hmtx_units(face: EmbeddedFace, text: str) -> int:
    font = _font(face.path)
    cmap, metrics = font.getBestCmap(), font["hmtx"].metrics
    return sum(metrics[cmap[ord(ch)]][0] for ch in text)


def _gpos_kern_units(face: EmbeddedFace, left: str, right: str) -> int:
    """The 'kern' PairPos adjustment of one pair, looked up directly."""
    font = _font(face.path)
    cmap, table = font.getBestCmap(), font["GPOS"].table
    first, second = cmap[ord(left)], cmap[ord(right)]
    lookups = {i for r in table.FeatureList.FeatureRecord if r.FeatureTag == "kern"
               for i in r.Feature.LookupListIndex}
    total = 0
    for index in sorted(lookups):
        lookup = table.LookupList.Lookup[index]
        for sub in lookup.SubTable if lookup.LookupType == 2 else []:
            if first not in sub.Coverage.glyphs:
                continue
            if sub.Format == 1:
                pairs = sub.PairSet[sub.Coverage.glyphs.index(first)].PairValueRecord
                match = [p.Value1 for p in pairs if p.SecondGlyph == second]
                if not match:
                    continue
                value = match[0]
            else:
                row = sub.Class1Record[sub.ClassDef1.classDefs.get(first, 0)]
                value = row.Class2Record[sub.ClassDef2.classDefs.get(second, 0)].Value1
            total += getattr(value, "XAdvance", 0) or 0
            break
    return total


@pytest.mark.parametrize("bold", [False, True])
def test_advance_is_the_hmtx_sum_plus_gpos_kerning(bold):
    face = bundled_chain(bold).faces[0]
    assert face.units_per_em == 1000
    for text in ("Hello", "AVAWAY To", "Testpatient"):
        kern = sum(_gpos_kern_units(face, a, b) for a, b in zip(text, text[1:], strict=False))
        expected = (_hmtx_units(face, text) + kern) * 10 / 1000
        assert face.advance(text, 10) == pytest.approx(expected, abs=1e-9)
        assert bundled_chain(bold).advance(text, 10) == pytest.approx(expected, abs=1e-9)
    assert face.advance("AVAWAY", 10) < _hmtx_units(face, "AVAWAY") * 10 / 1000


def test_glyphs_are_drawn_where_advance_says(tmp_path):
    """PDFium's origin of every character matches our measured positions,
    across kerning and face changes."""
    chain = bundled_chain(True)
    text = "AVAWAY To Дмитрий Иванов, Nguyễn Thị"
    page = pypdfium2.PdfDocument(_one_page([chain], [text], size=12))[0]
    textpage = page.get_textpage()
    assert textpage.count_chars() == len(text)
    x, y = ctypes.c_double(), ctypes.c_double()
    position, index = 40.5, 0
    for face, run in chain.runs(text):
        for j in range(len(run)):
            pdfium_raw.FPDFText_GetCharOrigin(textpage.raw, index, ctypes.byref(x), ctypes.byref(y))
            expected = position + face.advance(run[:j + 1], 12) - face.advance(run[j], 12)
            assert x.value == pytest.approx(expected, abs=0.01)
            index += 1
        position += face.advance(run, 12)
    assert position == pytest.approx(40.5 + chain.advance(text, 12))


def test_runs_fall_back_per_character_and_spaces_join_runs_as_in_pango():
    chain = bundled_chain(True)

    def named(text):
        return [(face.resource_name, run) for face, run in chain.runs(text)]

    assert named("José Müller") == [("MDAB", "José Müller")]
    assert named("Nguyễn Thị Ánh") == [
        ("MDAB", "Nguy"), ("MDNB", "ễ"), ("MDAB", "n Th"), ("MDNB", "ị"), ("MDAB", " Ánh"),
    ]
    # Pango keeps a space with the run before it, so a Cyrillic name is one Noto run.
    assert named("Дмитрий Иванов") == [("MDNB", "Дмитрий Иванов")]
    assert named("Smith Ана") == [("MDAB", "Smith "), ("MDNB", "Ана")]
    assert chain.runs("") == []


def test_show_writes_operators_with_three_decimals():
    chain = bundled_chain(False)
    operators = chain.show("Hello", 9.87654, 72.123456, 700.0004).decode("ascii")
    assert operators.startswith("BT ") and operators.endswith(" ET")
    assert "1 0 0 1 72.123 700 Tm" in operators and "/MDAR 9.877 Tf" in operators
    assert chain.faces[0].hex_glyphs("Hello").decode() in operators
    assert not re.search(r"\d\.\d{4}", operators)
    assert " rg" not in operators and " RG" not in operators


def test_add_to_makes_the_font_objects_once_per_pdf():
    face = bundled_chain(True).faces[0]
    pdf = pikepdf.new()
    first, again = face.add_to(pdf), face.add_to(pdf)
    assert first.objgen == again.objgen and first.objgen != (0, 0)
    other = pikepdf.new()
    assert face.add_to(other).is_owned_by(other)


def _shared_glyph_font(path):
    """A tiny font where U+00A0 shares the space glyph and U+0391 shares 'A'."""
    names = [".notdef", "space", "A"]
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap({0x20: "space", 0xA0: "space", 0x41: "A", 0x391: "A"})
    glyphs = {}
    for name in names:
        pen = TTGlyphPen(None)
        if name != "space":
            pen.moveTo((50, 0))
            pen.lineTo((300, 700))
            pen.lineTo((550, 0))
            pen.closePath()
        glyphs[name] = pen.glyph()
    builder.setupGlyf(glyphs)
    builder.setupHorizontalMetrics({"space": (250, 0), "A": (600, 50), ".notdef": (600, 50)})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": "Shared Test", "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200)
    builder.setupPost()
    builder.save(str(path))


def test_shared_glyph_extracts_as_lowest_code_point_and_plain_space(tmp_path):
    _shared_glyph_font(tmp_path / "Shared.ttf")
    chain = FaceChain([EmbeddedFace(tmp_path / "Shared.ttf", "SHT")])
    assert chain.advance("\u0391\u00a0A", 10) == pytest.approx(14.5)
    pdf = _one_page([chain], ["\u0391\u00a0A"])
    assert PdfReader(io.BytesIO(pdf)).pages[0].extract_text().strip() == "A A"
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        cmap = doc.pages[0].Resources.Font.SHT.ToUnicode.read_bytes()
    assert b"<0001> <0020>" in cmap and b"<0002> <0041>" in cmap
