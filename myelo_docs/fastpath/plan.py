"""Lays out a patient's plan (medicines, the nurse's instructions, follow-up)
the way WeasyPrint lays out the same part of packet.html.j2 with print.css.

The model is small on purpose: headings, paragraphs, a two-column table with
fixed column widths and bullet lists, in sections that never break across
pages. Sizes come from print.css (kept in step by the fast-path tests, which
compare every page's text with the full render). When a line break or page
break is too close to call, ``layout`` returns None and the caller renders
the packet in full instead: a near miss must never change a page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from myelo_docs.fastpath.pdffont import EmbeddedFace
from myelo_docs.fastpath.template import MM

# Break opportunities we model, as Unicode line breaking (UAX #14) gives them
# for our text: after a space, and after a hyphen, dash or slash followed by a
# letter ("Fernández-O'Brien" may break after the hyphen; "2026-12-09" never does).
_AFTER_DASH = re.compile(r"(?<=[-/\u2010\u2012-\u2014])(?=[^\W\d_])")
TEXT = (0.066667, 0.066667, 0.066667)  # #111
RULE = (0.333333, 0.333333, 0.333333)  # #555, the table borders
HEAD_FILL = (0.933333, 0.945098, 0.956863)  # #EEF1F4
SLACK = 0.001  # widths within 0.1% either way count as too close to call
PAGE_SLACK = 0.25  # px: a section ending this close to the page bottom, either way


@dataclass(frozen=True)
class Style:
    size: float  # body font size, px
    line: float  # body line height, px
    h2_size: float
    h2_line: float

    @classmethod
    def for_print(cls, large_print: bool) -> Style:
        size = 24.0 if large_print else 12.5 / 0.75  # 18 pt or 12.5 pt
        factor = 1.5 if large_print else 1.35
        return cls(size, size * factor, size * 1.25, size * 1.25 * 1.25)


@dataclass(frozen=True)
class Fonts:
    regular: EmbeddedFace
    bold: EmbeddedFace
    ascent: float  # per em
    descent: float  # per em, positive

    def baseline(self, size: float, line: float) -> float:
        """Baseline offset from the top of a line box (CSS half-leading model)."""
        return (line - (self.ascent + self.descent) * size) / 2 + self.ascent * size


@dataclass
class Geometry:
    left: float  # content box, px
    width: float
    bottom: float  # last usable y on a page
    top: float  # where the plan starts on its first page
    next_top: float  # where it continues on the next page


@dataclass
class Node:
    """A structure element (PDF/UA tag) and, for a leaf, what it draws.

    ``ops`` are drawn ``dy`` px below the top of whatever holds the node;
    offsets add up from a section down to its leaves.
    """

    role: str
    ops: bytes = b""
    children: list[Node] = field(default_factory=list)
    dy: float = 0.0
    attributes: str = ""


@dataclass
class Box:
    """A laid-out block or section: its tagged content, its artifacts
    (borders, fills; drawn relative to its top) and its height."""

    height: float
    nodes: list[Node] = field(default_factory=list)
    art: list[bytes] = field(default_factory=list)


class Unsure(Exception):
    """A line or page break is too close to call: render in full."""


def wrap(face: EmbeddedFace, text: str, size: float, width: float) -> list[str]:
    """Greedy lines, like Pango for plain text; Unsure when within SLACK of the edge."""
    return wrap_measured(lambda line: face.advance(line, size), text, width)


def wrap_measured(measure: Callable[[str], float], text: str, width: float) -> list[str]:
    """wrap() for text whose width is not one face's (a label and a value)."""
    pieces: list[tuple[str, str]] = []  # (piece, what joins it to the next: " " or "")
    for word in re.split(r"[ \t\r\n\f]+", text.strip()):
        parts = _AFTER_DASH.split(word)
        pieces += [(part, "" if i < len(parts) - 1 else " ") for i, part in enumerate(parts)]
    results = [_greedy(measure, pieces, width * scale) for scale in (1 - SLACK, 1.0, 1 + SLACK)]
    if not (results[0] == results[1] == results[2]):
        raise Unsure("a line break is too close to call")
    return results[1]


def _greedy(measure: Callable[[str], float], pieces: Sequence[tuple[str, str]],
            width: float) -> list[str]:
    lines: list[str] = []
    current, joiner = "", ""
    for piece, after in pieces:
        if measure(piece) > width:
            raise Unsure("a word wider than its column")
        trial = current + joiner + piece
        if current and measure(trial) > width:
            lines.append(current)
            current = piece
        else:
            current = trial
        joiner = after
    lines.append(current)
    return lines


def _rgb(colour: tuple[float, float, float], op: bytes = b"rg") -> bytes:
    return b"%.6f %.6f %.6f %s\n" % (*colour, op)


def show(face: EmbeddedFace, text: str, size: float, x: float, y: float) -> bytes:
    """One line of text, baseline at (x, y) in WeasyPrint's flipped pixel space."""
    return (b"BT\n1 0 0 -1 %.3f %.3f Tm\n/%s %.3f Tf\n%s\nET\n"
            % (x, y, face.resource_name.encode(), size, face.show_operator(text).encode()))


def hex_colour(value: str) -> tuple[float, float, float]:
    value = value.lstrip("#")
    if len(value) == 3:
        value = "".join(ch * 2 for ch in value)
    r, g, b = (int(value[i:i + 2], 16) / 255 for i in (0, 2, 4))
    return (r, g, b)


class Typesetter:
    def __init__(self, fonts: Fonts, style: Style, geometry: Geometry,
                 heading_colour: tuple[float, float, float]):
        self.fonts, self.style, self.geo = fonts, style, geometry
        self.heading_colour = heading_colour

    # Each block returns (box, margin_top, margin_bottom), in px.

    def heading(self, text: str, lines: list[str] | None = None) -> tuple[Box, float, float]:
        s, f = self.style, self.fonts
        lines = lines or wrap(f.bold, text, s.h2_size, self.geo.width)
        ops = [_rgb(self.heading_colour)]
        for i, line in enumerate(lines):
            y = i * s.h2_line + f.baseline(s.h2_size, s.h2_line)
            ops.append(show(f.bold, line, s.h2_size, self.geo.left, y))
        return Box(len(lines) * s.h2_line, [Node("H2", b"".join(ops))]), 4 * MM, 1.5 * MM

    def paragraph(self, text: str, lines: list[str] | None = None) -> tuple[Box, float, float]:
        """A paragraph; lines as WeasyPrint broke them, when known (fixed text)."""
        s, f = self.style, self.fonts
        lines = lines or wrap(f.regular, text, s.size, self.geo.width)
        return Box(len(lines) * s.line, [Node("P", self._lines(f.regular, lines, self.geo.left))]
                   ), 0.0, 2.5 * MM

    def _lines(self, face: EmbeddedFace, lines: Sequence[str], x: float,
               top: float = 0.0) -> bytes:
        s = self.style
        first = top + self.fonts.baseline(s.size, s.line)
        return _rgb(TEXT) + b"".join(show(face, line, s.size, x, first + i * s.line)
                                     for i, line in enumerate(lines))

    def bullets(self, items: Sequence[str]) -> tuple[Box, float, float]:
        s, f = self.style, self.fonts
        indent = 6 * MM
        left = self.geo.left + indent
        marker = "\u2022 "
        marker_x = left - f.regular.advance(marker, s.size)
        items_out = []
        y = 0.0
        for n, item in enumerate(items):
            if n:
                y += 1 * MM  # li margin-bottom; the last one collapses into the list's
            lines = wrap(f.regular, item, s.size, self.geo.width - indent)
            items_out.append(Node("LI", children=[
                Node("Lbl", self._lines(f.regular, [marker], marker_x, y)),
                Node("LBody", self._lines(f.regular, lines, left, y))]))
            y += len(lines) * s.line
        box = Box(y, [Node("L", children=items_out)])
        return box, 0.0, 3 * MM

    def table(self, head: tuple[str, str], rows: Sequence[tuple[str, str]]) -> tuple[
            Box, float, float]:
        s, f = self.style, self.fonts
        pad_x, pad_y, rule = 3 * MM, 2 * MM, 1.0
        width = self.geo.width
        split = rule / 2 + 0.35 * width + 2 * pad_x + rule / 2  # centre of the middle rule
        cells = ((self.geo.left + rule + pad_x, 0.35 * width),
                 (self.geo.left + split + rule / 2 + pad_x,
                  width - split - rule / 2 - 2 * pad_x - rule))
        groups = [Node("THead"), Node("TBody")]
        art = [b"q\n", _rgb(RULE, b"RG"), b"1 w\n"]
        fills = []
        y = 0.0
        for r, row in enumerate([head, *rows]):
            face = f.bold if r == 0 else f.regular
            wrapped = [wrap(face, text, s.size, w) for text, (_, w) in zip(row, cells, strict=True)]
            height = rule + 2 * pad_y + max(len(lines) for lines in wrapped) * s.line
            if r == 0:
                fills.append(b"%.3f %.3f %.3f %.3f re\n"
                             % (self.geo.left + rule / 2, y + rule / 2,
                                width - rule, height - rule / 2))
            row_node = Node("TR")
            for lines, (x, _) in zip(wrapped, cells, strict=True):
                row_node.children.append(Node(
                    "TH" if r == 0 else "TD", self._lines(face, lines, x, y + rule + pad_y),
                    attributes="/A << /O /Table /Scope /Column >>" if r == 0 else ""))
            groups[min(r, 1)].children.append(row_node)
            art.append(b"%.3f %.3f m %.3f %.3f l S\n"
                       % (self.geo.left, y + rule / 2, self.geo.left + width, y + rule / 2))
            for x in (self.geo.left + rule / 2, self.geo.left + split,
                      self.geo.left + width - rule / 2):
                art.append(b"%.3f %.3f m %.3f %.3f l S\n" % (x, y, x, y + height + rule / 2))
            y += height
        art.append(b"%.3f %.3f m %.3f %.3f l S\n"
                   % (self.geo.left, y + rule / 2, self.geo.left + width, y + rule / 2))
        art.append(b"Q\n")
        box = Box(y + rule, [Node("Table", children=[g for g in groups if g.children])])
        box.art = [b"q\n", _rgb(HEAD_FILL), *fills, b"f\nQ\n", *art] if fills else art
        return box, 0.0, 3 * MM


def stack(blocks: Sequence[tuple[Box, float, float]]) -> Box:
    """Blocks one under another with collapsed margins, as one section (Sect)."""
    section = Node("Sect")
    out = Box(0.0, [section])
    y, previous_bottom = 0.0, None
    for box, top, bottom in blocks:
        if previous_bottom is not None:
            y += max(previous_bottom, top)
        for node in box.nodes:
            node.dy += y
            section.children.append(node)
        if box.art:
            out.art.append(b"q\n1 0 0 1 0 %.3f cm\n" % y)
            out.art.extend(box.art)
            out.art.append(b"Q\n")
        y += box.height
        previous_bottom = bottom
    out.height = y
    return out


def paginate(sections: Sequence[Box], geo: Geometry) -> list[list[tuple[float, Box]]]:
    """Sections placed on the plan's first page and, when needed, the next one.

    Each section stays whole (break-inside: avoid); one that does not fit
    moves to the next page, where its top margin is dropped. Unsure when a
    section ends within PAGE_SLACK of the page bottom, either way.
    """
    pages: list[list[tuple[float, Box]]] = [[]]
    y = geo.top
    gap = 4 * MM  # every section opens with a heading; the first gap is in geo.top
    for n, section in enumerate(sections):
        top = y + (gap if n and pages[-1] else 0.0)
        room = geo.bottom - (top + section.height)
        if abs(room) < PAGE_SLACK:
            raise Unsure("a page break is too close to call")
        if room < 0:
            if len(pages) == 2:
                raise Unsure("the plan needs more than one extra page")
            pages.append([])
            top = geo.next_top
            if geo.bottom - (top + section.height) < PAGE_SLACK:
                raise Unsure("a section longer than a page")
        pages[-1].append((top, section))
        y = top + section.height
    return pages
