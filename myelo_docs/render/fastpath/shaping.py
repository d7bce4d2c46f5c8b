"""Per-patient text broken into lines and shaped by WeasyPrint's own Pango
code, then drawn with the faces a template embeds.

Line breaking is ``weasyprint.text.line_break.split_first_line``, called with
the computed style WeasyPrint gave the same element when it laid out the
template: the breaker, the font fallback (fontconfig through Pango) and the
shaping (HarfBuzz through Pango) are the full render's own. Drawing follows
``weasyprint.draw.text.draw_first_line``: the glyphs and advances Pango gives,
with a TJ adjustment wherever an advance differs from the embedded width.

A style is kept as the plain values of the properties text layout reads
(STYLE_KEYS), so that a template cached on disk can be used by a process that
never laid it out. Anything outside what is drawn here exactly (right-to-left
runs, glyphs the embedded subset lacks or that stand for more than one
character, vertical offsets) raises Unsure: the packet is rendered in full.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from myelo_docs.render.fastpath.faces import EmbeddedFace, bundled_faces
from myelo_docs.render.fastpath.unsure import Unsure

# What split_first_line, its Pango layout and the drawing read from a style.
STYLE_KEYS = (
    "direction", "font_family", "font_feature_settings", "font_kerning",
    "font_language_override", "font_size", "font_stretch", "font_style",
    "font_variant_alternates", "font_variant_caps", "font_variant_east_asian",
    "font_variant_ligatures", "font_variant_numeric", "font_variant_position",
    "font_variation_settings", "font_weight", "hyphenate_character", "hyphenate_limit_chars",
    "hyphenate_limit_zone", "hyphens", "lang", "letter_spacing", "line_height",
    "overflow_wrap", "tab_size", "text_decoration_line", "white_space", "word_break",
    "word_spacing",
)


class Style(dict):
    """A computed style reduced to STYLE_KEYS, with the font configuration
    split_first_line expects on it. A key outside STYLE_KEYS raises KeyError."""

    font_config: Any = None


def capture(style: Any) -> dict[str, Any]:
    """The STYLE_KEYS of a WeasyPrint computed style, as JSON-ready values."""
    return {key: _encode(style[key]) for key in STYLE_KEYS}


def restore(values: dict[str, Any], font_config: Any) -> Style:
    style = Style({key: _decode(value) for key, value in values.items()})
    style.font_config = font_config
    return style


def _encode(value: Any) -> Any:
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # Dimension(value, unit)
        if type(value).__name__ != "Dimension":
            raise TypeError(f"cannot keep a {type(value).__name__} in a template")
        return {"dimension": [_encode(v) for v in value]}
    if isinstance(value, tuple | list):
        return {"tuple": [_encode(v) for v in value]}
    if value is None or isinstance(value, str | int | float):
        return value
    raise TypeError(f"cannot keep a {type(value).__name__} in a template")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "dimension" in value:
            from weasyprint.css.properties import Dimension

            return Dimension(*(_decode(v) for v in value["dimension"]))
        return tuple(_decode(v) for v in value["tuple"])
    return value


@dataclass
class Line:
    """One line as WeasyPrint would lay it out: its text, its width in px and the
    Pango layout holding it as its first line (for drawing)."""

    text: str
    width: float
    layout: Any
    style: Any
    glyphs: Any = None  # Shaper.runs, once known
    shown: bytes | None = None  # Shaper.draw's text operators, once known


class _Context:
    """What split_first_line reads from WeasyPrint's layout context."""

    def __init__(self, font_config: Any):
        self.font_config = font_config


class Shaper:
    """Lines and glyph runs from Pango, in the faces bundled with myelo-docs."""

    def __init__(self, font_config: Any):
        self.font_config = font_config
        self.context = _Context(font_config)
        self.faces = bundled_faces()
        self._by_digest = {_file_digest(face.path): face for face in self.faces}
        self._face_of: dict[int, tuple[EmbeddedFace, float]] = {}
        # Plan headings, labels and often-used instructions recur in every packet.
        self._lines: dict[tuple[Any, ...], list[Line]] = {}
        self._styles: dict[int, tuple[dict[str, Any], Style]] = {}

    def style(self, values: dict[str, Any]) -> Style:
        """A captured style (capture()) ready for split_first_line, made once."""
        found = self._styles.get(id(values))
        if found is None or found[0] is not values:
            found = self._styles[id(values)] = (values, restore(values, self.font_config))
        return found[1]

    def lines(self, text: str, style: Style, width: float | None,
              is_line_start: bool = True) -> list[Line]:
        """text (white space already collapsed) broken as WeasyPrint breaks it in a
        block ``width`` px wide (None: on one line)."""
        key = (text, id(style), width, is_line_start)
        found = self._lines.get(key)
        if found is None:
            if len(self._lines) > 4000:  # mostly recurring text; a line holds a Pango layout
                self._lines.clear()
            found = self._lines[key] = self._break(text, style, width, is_line_start)
        return found

    def _break(self, text: str, style: Style, width: float | None,
               is_line_start: bool) -> list[Line]:
        from weasyprint.text.line_break import split_first_line

        if "\u00ad" in text:
            raise Unsure("a soft hyphen")
        out: list[Line] = []
        rest = text
        while rest:
            layout, length, resume, line_width, _, _ = split_first_line(
                rest, style, self.context, width, 0, is_line_start)
            data = rest.encode()
            line = data[:length].decode().rstrip(" ")
            if width is not None and line_width > width + 0.01:
                raise Unsure("a word wider than its column")
            out.append(Line(line, line_width, layout, style))
            if resume is None:
                break
            rest = data[resume:].decode()
            is_line_start = True
        return out

    def family(self, face: EmbeddedFace) -> int:
        """The face's font family: its index in fonts.BUNDLED_FACES."""
        return self.faces.index(face) // 2

    def families_of(self, line: Line) -> tuple[int, ...]:
        """The families beyond the first that a line is drawn in."""
        return tuple(sorted({self.family(face) for face, _, _ in self.runs(line)} - {0}))

    def marker_char(self, family: int) -> str:
        """A letter Pango draws in this family: the first one no earlier family has."""
        earlier = {ch for face in self.faces[:2 * family] for ch in face.characters()}
        mine = set(self.faces[2 * family].characters()) & set(
            self.faces[2 * family + 1].characters())
        letters = sorted(ch for ch in mine - earlier if ch.isalpha())
        if not letters:
            raise Unsure("a font family without letters of its own")
        return letters[0]

    def face(self, pango_font: Any) -> tuple[EmbeddedFace, float]:
        """The bundled face Pango picked, and the font size it was set at."""
        from weasyprint.text.ffi import ffi
        from weasyprint.text.fonts import (
            get_hb_object_data,
            get_pango_font_hb_face,
            get_pango_font_key,
        )

        pointer = int(ffi.cast("uintptr_t", pango_font))
        if pointer not in self._face_of:
            _, _, size = get_pango_font_key(pango_font)
            data = get_hb_object_data(get_pango_font_hb_face(pango_font))
            face = self._by_digest.get(hashlib.sha256(data).hexdigest())
            if face is None:
                raise Unsure("a font outside the bundled ones")
            self._face_of[pointer] = (face, size)
        return self._face_of[pointer]

    def runs(self, line: Line) -> list[tuple[EmbeddedFace, float, list[tuple[int, float]]]]:
        """The line's glyph runs in drawing order: (face, font size, [(glyph id,
        advance in px)]), each glyph checked to stand for exactly the one
        character the face's ToUnicode map gives it."""
        if line.glyphs is None:
            line.layout.reactivate(line.style)  # split_first_line let its Pango layout go
            try:
                line.glyphs = self._runs(line)
            finally:
                line.layout.deactivate()
        return line.glyphs

    def _runs(self, line: Line) -> list[tuple[EmbeddedFace, float, list[tuple[int, float]]]]:
        from weasyprint.text.ffi import FROM_UNITS, ffi, pango

        pango.pango_layout_set_single_paragraph_mode(line.layout.layout, True)
        first_line, _ = line.layout.get_first_line()
        text = line.layout.text.encode()
        out = []
        run = first_line.runs[0] if first_line.runs != ffi.NULL else ffi.NULL
        while run != ffi.NULL:
            glyph_item = run.data
            run = run.next
            item = glyph_item.item
            if item.analysis.level % 2:
                raise Unsure("right-to-left text")
            face, size = self.face(item.analysis.font)
            glyphs = glyph_item.glyphs
            count = glyphs.num_glyphs
            clusters = glyphs.log_clusters
            drawn = []
            for i in range(count):
                info = glyphs.glyphs[i]
                glyph = info.glyph
                if glyph == pango.PANGO_GLYPH_EMPTY or glyph & pango.PANGO_GLYPH_UNKNOWN_FLAG:
                    raise Unsure("a character no bundled font draws")
                if info.geometry.x_offset or info.geometry.y_offset:
                    raise Unsure("a glyph placed off its baseline")
                start = item.offset + clusters[i]
                end = item.offset + (item.length if i == count - 1 else clusters[i + 1])
                if face.text_of(glyph) != text[start:end].decode():
                    raise Unsure("a glyph that is not one character")
                drawn.append((glyph, info.geometry.width * FROM_UNITS))
            out.append((face, size, drawn))
        return out

    def draw(self, line: Line, x: float, y: float) -> tuple[bytes, set[EmbeddedFace]]:
        """One text object drawing the line with its baseline starting at (x, y)
        in WeasyPrint's y-down pixel space; and the faces it uses."""
        if line.shown is None:
            line.shown = self._show(line)
        return b"BT\n1 0 0 -1 %s %s Tm\n%sET\n" % (_num(x), _num(y), line.shown), set()

    def _show(self, line: Line) -> bytes:
        parts = []
        for face, size, glyphs in self.runs(line):
            parts.append(b"/%s %s Tf\n" % (face.resource_name.encode(), _num(size)))
            items = [b"[<"]
            for glyph, advance in glyphs:
                items.append(b"%04x" % glyph)
                # As WeasyPrint writes it: its own rounded width, less a whole
                # number of 1000ths, ends where Pango put the next glyph.
                width = face.width(glyph)
                logical = round(width)
                kerning = width - logical + int(logical - advance * 1000 / size)
                if kerning:
                    items.append(b">%s<" % _num(kerning))
            items.append(b">] TJ\n")
            parts.append(b"".join(items))
        return b"".join(parts)


def _num(value: float) -> bytes:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return (text if text not in ("", "-0") else "0").encode()


def _file_digest(path: Any) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
