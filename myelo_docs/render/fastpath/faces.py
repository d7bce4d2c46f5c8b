"""Our TrueType faces embedded in a PDF, for the text the fast path draws.

Each face is embedded once per template as a Type0 / CIDFontType2 font
(Identity-H: two-byte glyph ids, the ids Pango's shaping gives) with a /W
array and a /ToUnicode CMap, subset to the characters the fast path draws
(REPERTOIRE) with glyph ids kept. Which face draws what, and how far apart,
is Pango's business (shaping.py); this module only makes the font objects and
answers what a glyph id stands for.
"""

from __future__ import annotations

import functools
import hashlib
import io
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path

import pikepdf
from fontTools import subset
from fontTools.ttLib import TTFont

from myelo_docs.assets import fonts_dir
from myelo_docs.render.fonts import BUNDLED_FACES


def _repertoire() -> frozenset[int]:
    blocks = (
        (0x0020, 0x007E),  # printable Basic Latin
        (0x00A0, 0x00FF),  # Latin-1 Supplement
        (0x0100, 0x024F),  # Latin Extended-A and -B
        (0x1E00, 0x1EFF),  # Latin Extended Additional (Vietnamese)
        (0x0370, 0x03FF),  # Greek and Coptic
        (0x0400, 0x04FF),  # Cyrillic
        (0x2010, 0x2027),  # General Punctuation: dashes, quotes, bullets
        (0x2030, 0x205E),  # General Punctuation: per mille, primes, guillemets
    )
    codes = {code for first, last in blocks for code in range(first, last + 1)}
    codes |= {ord(ch) for ch in "€№™"}
    # Combining marks (M*) and controls, format characters, unassigned (C*) are out.
    return frozenset(c for c in codes if unicodedata.category(chr(c))[0] not in "MC")


# What the embedded subsets hold; a glyph outside them sends the packet to the full render.
REPERTOIRE: frozenset[int] = _repertoire()
SPACES = frozenset(" \u00a0")


@dataclass(frozen=True)
class _Metrics:
    units_per_em: int
    widths: dict[int, float]  # glyph id -> advance, in 1000ths of the font size
    text_of: dict[int, str]  # glyph id -> the character text extraction gives


@dataclass(frozen=True)
class _Embedding:
    """The PDF objects' contents, per font file."""

    base_font: str  # "ABCDEF+MD-PostScriptName"
    font_file: bytes  # Flate-compressed subset
    font_file_length: int  # uncompressed, /Length1
    to_unicode: bytes  # Flate-compressed CMap
    descriptor: dict[str, object]
    widths_array: bytes  # /W, as PDF syntax
    default_width: float  # /DW


def _open(path: Path) -> TTFont:
    return TTFont(str(path), recalcTimestamp=False)  # no timestamp: same input, same bytes


@functools.cache
def _metrics(path: Path) -> _Metrics:
    font = _open(path)
    scale = 1000 / font["head"].unitsPerEm
    cmap = font.getBestCmap() or {}
    gid = font.getReverseGlyphMap()
    hmtx = font["hmtx"].metrics
    chars_of: dict[str, list[str]] = {}
    for code in sorted(REPERTOIRE & cmap.keys()):
        chars_of.setdefault(cmap[code], []).append(chr(code))
    # One character per glyph for text extraction: the lowest, but a real
    # space over a no-break space sharing its glyph.
    return _Metrics(
        units_per_em=font["head"].unitsPerEm,
        widths={gid[g]: round(hmtx[g][0] * scale, 3) for g in chars_of},
        text_of={gid[g]: chr(min((ch != " " and ch in SPACES, ord(ch)) for ch in chars)[1])
                 for g, chars in chars_of.items()},
    )


@functools.cache
def _subset_bytes(path: Path) -> bytes:
    font = _open(path)
    options = subset.Options()
    options.retain_gids = True  # content streams use the original glyph ids
    options.hinting = False
    options.layout_features = []
    options.drop_tables = [*options.drop_tables, "GSUB", "GPOS", "GDEF", "BASE", "JSTF",
                           "MATH", "DSIG", "kern", "gasp"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=REPERTOIRE & (font.getBestCmap() or {}).keys())
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


@functools.cache
def _embedding(path: Path) -> _Embedding:
    metrics = _metrics(path)
    data = _subset_bytes(path)
    font = TTFont(io.BytesIO(data))
    scale = 1000 / metrics.units_per_em
    name = str(font["name"].getDebugName(6) or path.stem)
    postscript = "".join(ch for ch in name if ch.isascii() and (ch.isalnum() or ch in "-_"))
    tag = "".join(chr(ord("A") + byte % 26) for byte in hashlib.sha256(data).digest()[:6])
    return _Embedding(
        base_font=f"{tag}+MD-{postscript}",  # "MD-": ours, like WeasyPrint's names for them
        font_file=zlib.compress(data, 9),
        font_file_length=len(data),
        to_unicode=zlib.compress(_to_unicode_cmap(metrics.text_of), 9),
        descriptor=_descriptor_values(font, scale),
        widths_array=_widths_array(metrics.widths),
        default_width=round(font["hmtx"].metrics[font.getGlyphOrder()[0]][0] * scale, 3),
    )


def _number(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _descriptor_values(font: TTFont, scale: float) -> dict[str, object]:
    head, hhea, post, os2 = font["head"], font["hhea"], font["post"], font["OS/2"]
    flags = 4  # Symbolic: glyphs beyond the standard Latin set (Greek, Cyrillic)
    if post.isFixedPitch:
        flags |= 1
    if post.italicAngle or os2.fsSelection & 1:
        flags |= 64
    cap_height = getattr(os2, "sCapHeight", 0) or hhea.ascent * 0.7
    stem_v = 50 + (os2.usWeightClass / 65) ** 2  # the usual estimate: TrueType has no stem width
    return {
        "Flags": flags,
        "FontBBox": [round(v * scale) for v in (head.xMin, head.yMin, head.xMax, head.yMax)],
        "ItalicAngle": float(post.italicAngle),
        "Ascent": round(hhea.ascent * scale),
        "Descent": round(hhea.descent * scale),
        "CapHeight": round(cap_height * scale),
        "StemV": round(stem_v),
    }


def _widths_array(glyph_widths: dict[int, float]) -> bytes:
    """/W as runs of consecutive glyph ids: [first [w w w] first [w w] ...]."""
    runs: list[list[int | float]] = []
    for glyph in sorted(glyph_widths):
        if not runs or glyph != runs[-1][0] + len(runs[-1]) - 1:
            runs.append([glyph])
        runs[-1].append(glyph_widths[glyph])
    items = (f"{run[0]} [{' '.join(map(_number, run[1:]))}]" for run in runs)
    return f"[{' '.join(items)}]".encode("ascii")


def _to_unicode_cmap(text_of: dict[int, str]) -> bytes:
    lines = [
        "/CIDInit /ProcSet findresource begin",
        "12 dict begin",
        "begincmap",
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        "/CMapName /Adobe-Identity-UCS def",
        "/CMapType 2 def",
        "1 begincodespacerange",
        "<0000> <FFFF>",
        "endcodespacerange",
    ]
    items = sorted(text_of.items())
    for start in range(0, len(items), 100):  # at most 100 entries per block
        block = items[start:start + 100]
        lines.append(f"{len(block)} beginbfchar")
        lines += [f"<{glyph:04X}> <{ord(ch):04X}>" for glyph, ch in block]
        lines.append("endbfchar")
    lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    return ("\n".join(lines) + "\n").encode("ascii")


class EmbeddedFace:
    """One TrueType face embedded as a Type0 / CIDFontType2 font
    (Identity-H, CIDToGIDMap /Identity)."""

    def __init__(self, path: Path, resource_name: str):
        self.path = Path(path).resolve()
        self.resource_name = resource_name
        metrics = _metrics(self.path)
        self._widths = metrics.widths
        self._text_of = metrics.text_of

    def __repr__(self) -> str:
        return f"EmbeddedFace({self.path.name!r}, {self.resource_name!r})"

    @property
    def base_font(self) -> str:
        """The embedded font's name, "ABCDEF+PostScriptName" (subsets the font once)."""
        return _embedding(self.path).base_font

    def text_of(self, glyph: int) -> str | None:
        """The character a glyph id of the subset stands for (None: not in it)."""
        return self._text_of.get(glyph)

    def characters(self) -> list[str]:
        """The characters of REPERTOIRE the embedded subset draws."""
        return list(self._text_of.values())

    def width(self, glyph: int) -> float:
        """The glyph's /W width, in 1000ths of the font size."""
        return self._widths[glyph]

    def add_to(self, pdf: pikepdf.Pdf) -> pikepdf.Object:
        """The indirect Type0 font dict of this face in pdf (made once per Pdf)."""
        embedding = _embedding(self.path)
        made: dict[str, pikepdf.Object] = pdf.__dict__.setdefault("_myelo_docs_fonts", {})
        if embedding.base_font not in made:
            made[embedding.base_font] = _make_font(pdf, embedding)
        return made[embedding.base_font]


def _flate_stream(pdf: pikepdf.Pdf, compressed: bytes) -> pikepdf.Stream:
    stream = pikepdf.Stream(pdf, b"")
    stream.write(compressed, filter=pikepdf.Name.FlateDecode)  # already compressed
    return stream


def _make_font(pdf: pikepdf.Pdf, embedding: _Embedding) -> pikepdf.Object:
    name = pikepdf.Name("/" + embedding.base_font)
    font_file = _flate_stream(pdf, embedding.font_file)
    font_file.Length1 = embedding.font_file_length
    descriptor = pikepdf.Dictionary(
        Type=pikepdf.Name.FontDescriptor,
        FontName=name,
        FontFile2=pdf.make_indirect(font_file),
        **embedding.descriptor,
    )
    cid_font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font,
        Subtype=pikepdf.Name.CIDFontType2,
        BaseFont=name,
        CIDSystemInfo=pikepdf.Dictionary(
            Registry=pikepdf.String("Adobe"), Ordering=pikepdf.String("Identity"), Supplement=0
        ),
        FontDescriptor=pdf.make_indirect(descriptor),
        CIDToGIDMap=pikepdf.Name.Identity,
        DW=embedding.default_width,
        W=pikepdf.Object.parse(embedding.widths_array),
    )
    return pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Font,
        Subtype=pikepdf.Name.Type0,
        BaseFont=name,
        Encoding=pikepdf.Name("/Identity-H"),
        DescendantFonts=[pdf.make_indirect(cid_font)],
        ToUnicode=pdf.make_indirect(_flate_stream(pdf, embedding.to_unicode)),
    ))


@functools.cache
def bundled_faces() -> tuple[EmbeddedFace, ...]:
    """The regular and bold face of each bundled family (fonts.BUNDLED_FACES), in
    the order of the CSS font stack."""
    folder = fonts_dir()
    return tuple(EmbeddedFace(folder / file, f"MDF{n}{weight}")
                 for n, (_, regular, bold) in enumerate(BUNDLED_FACES)
                 for weight, file in (("R", regular), ("B", bold)))
