"""Names in many scripts print with our fonts; a character no font has fails clearly."""

from __future__ import annotations

import pytest
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen

from conftest import embedded_fonts, flat, pages_text, record
from myelo_docs import MissingGlyphError, get_renderer

NAMES = {
    "vietnamese": "Nguyễn Thị Ánh Tuyết",
    "cyrillic": "Ђорђе Јовановић",
    "greek": "Αλέξανδρος Παπαδόπουλος",
    "arabic": "محمد عبد الله",
    "hebrew": "דוד כהן",
    "latin accents": "José Ñúñez-Çelik Øster",
}


@pytest.mark.parametrize("script", list(NAMES))
def test_name_in_script_prints_on_every_page_with_bundled_fonts(renderer, script):
    name = NAMES[script]
    document = renderer.packet(record(patient_name=name, type="cervical"))
    compact = name.replace(" ", "")
    for text in pages_text(document.pdf):
        assert compact in "".join(text.split())
    for font in embedded_fonts(document.pdf):
        assert "+MD-" in font


def test_character_no_font_covers_fails_naming_field_and_character(renderer):
    with pytest.raises(MissingGlyphError) as caught:
        renderer.packet(record(physician="Dr. 王小明"))
    message = str(caught.value)
    assert "physician" in message
    assert "U+738B" in message
    assert "--font-dir" in message


def test_emoji_in_instruction_fails_clearly(renderer):
    with pytest.raises(MissingGlyphError, match=r"instructions #1.*U\+1F600"):
        renderer.packet(record(instructions=["Smile 😀"]))


def _tiny_cjk_font(path, characters):
    """A real TrueType font with a square glyph for each character (and a space)."""
    characters = " " + characters
    names = [".notdef"] + [f"uni{ord(c):04X}" for c in characters]
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap({ord(c): f"uni{ord(c):04X}" for c in characters})
    glyphs = {}
    for name in names:
        pen = TTGlyphPen(None)
        pen.moveTo((100, 0))
        pen.lineTo((100, 700))
        pen.lineTo((800, 700))
        pen.lineTo((800, 0))
        pen.closePath()
        glyphs[name] = pen.glyph()
    builder.setupGlyf(glyphs)
    builder.setupHorizontalMetrics({name: (1000, 100) for name in names})
    builder.setupHorizontalHeader(ascent=880, descent=-120)
    builder.setupNameTable({"familyName": "Test CJK", "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=880, sTypoDescender=-120, usWinAscent=880, usWinDescent=120)
    builder.setupPost()
    builder.save(str(path))


def test_font_dir_covers_what_bundled_fonts_lack(tmp_path):
    name = "王小明"
    _tiny_cjk_font(tmp_path / "TestCJK.ttf", name)
    document = get_renderer(font_dir=tmp_path).packet(record(patient_name=name))
    for text in pages_text(document.pdf):
        assert name in flat(text).replace(" ", "")
    assert any("MD-Extra-1" in font for font in embedded_fonts(document.pdf))


def test_font_without_a_needed_glyph_is_caught_after_layout(tmp_path):
    """Second line of defence: a font that lacks the space next to a name."""
    _tiny_cjk_font(tmp_path / "NoSpace.ttf", "王小明")
    from fontTools.ttLib import TTFont

    font = TTFont(tmp_path / "NoSpace.ttf")
    for table in font["cmap"].tables:
        table.cmap.pop(32, None)
    font.save(tmp_path / "NoSpace.ttf")
    with pytest.raises(MissingGlyphError, match="U\\+0020"):
        get_renderer(font_dir=tmp_path).packet(record(patient_name="王小明"))
