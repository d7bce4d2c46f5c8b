"""Our TrueType faces embedded in a PDF, and plain text runs typeset with them.

The fast path draws a few short strings (name, dates, table cells) straight into
a packet that WeasyPrint rendered once. They must extract exactly (pypdf,
PDFium) and measure as Pango does, so each face is embedded as a Type0 /
CIDFontType2 font (Identity-H: two-byte glyph ids) with a /W array and a
/ToUnicode CMap, widths include the faces' GPOS pair kerning (as HarfBuzz
applies it), and a FaceChain splits text into runs the way Pango's font
fallback does. Everything is computed once per process; measuring and drawing
are dict lookups after that.
"""

from __future__ import annotations

import functools
import hashlib
import io
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import add
from pathlib import Path

import pikepdf
from fontTools import subset
from fontTools.ttLib import TTFont

from myelo_docs.assets import fonts_dir


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


REPERTOIRE: frozenset[int] = _repertoire()

SPACES = frozenset(" \u00a0")  # the space separators (Zs) in REPERTOIRE

# Layout tables go: nothing is shaped at draw time, kerning is applied by us.
_DROPPED_TABLES = ["GSUB", "GPOS", "GDEF", "BASE", "JSTF", "MATH", "DSIG", "kern", "gasp"]


class UncoveredTextError(ValueError):
    """Text has a character the face or chain cannot draw (the text is not repeated here)."""


def _number(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _script(code: int) -> str | None:
    """Unicode Script of a REPERTOIRE character, None for Common (digits,
    punctuation, spaces, symbols). Exact for REPERTOIRE, checked against the
    Unicode Script property."""
    if 0x0370 <= code <= 0x03FF:
        if code in (0x0374, 0x037E, 0x0385, 0x0387):
            return None
        return "Copt" if 0x03E2 <= code <= 0x03EF else "Grek"
    if 0x0400 <= code <= 0x04FF:
        return "Cyrl"
    if unicodedata.category(chr(code))[0] == "L" and code != 0x00B5:  # µ is Common
        return "Latn"
    return None


@dataclass(frozen=True)
class _Metrics:
    """What measuring and drawing need, per font file."""

    units_per_em: int
    widths: dict[str, float]  # char -> advance, in 1000ths of the font size
    hexes: dict[str, str]  # char -> its glyph id as 4 hex digits
    kerning: dict[str, float]  # two chars -> adjustment in 1000ths of the font size; nonzero only
    unicode_of: dict[int, int]  # glyph id -> the code point text extraction gives


@dataclass(frozen=True)
class _Embedding:
    """The PDF objects' contents, per font file."""

    base_font: str  # "ABCDEF+MD-PostScriptName"
    font_file: bytes  # Flate-compressed subset
    font_file_length: int  # uncompressed, /Length1
    to_unicode: bytes  # Flate-compressed CMap
    descriptor: dict[str, object]
    widths_array: bytes  # /W, as PDF syntax: parsing it is faster than building it
    default_width: float  # /DW


def _open(path: Path) -> TTFont:
    return TTFont(str(path), recalcTimestamp=False)  # no timestamp: same input, same bytes


@functools.cache
def _metrics(path: Path) -> _Metrics:
    font = _open(path)
    scale = 1000 / font["head"].unitsPerEm
    cmap = font.getBestCmap() or {}
    covered = {code: cmap[code] for code in sorted(REPERTOIRE & cmap.keys())}
    gid = font.getReverseGlyphMap()
    metrics = font["hmtx"].metrics

    chars_of: dict[str, list[str]] = {}
    for code, glyph in covered.items():
        chars_of.setdefault(glyph, []).append(chr(code))
    kerning = {}
    for (left, right), value in _pair_kerning(font, set(chars_of)).items():
        for a in chars_of[left]:
            for b in chars_of[right]:
                kerning[a + b] = round(value * scale, 3)
    # One code point per glyph for text extraction: the lowest, but a real
    # space over a no-break space sharing its glyph.
    unicode_of = {
        gid[glyph]: min((ch != " " and ch in SPACES, ord(ch)) for ch in chars)[1]
        for glyph, chars in chars_of.items()
    }
    return _Metrics(
        units_per_em=font["head"].unitsPerEm,
        widths={chr(c): round(metrics[g][0] * scale, 3) for c, g in covered.items()},
        hexes={chr(c): f"{gid[g]:04X}" for c, g in covered.items()},
        kerning=kerning,
        unicode_of=unicode_of,
    )


@functools.cache
def _subset_bytes(path: Path) -> bytes:
    font = _open(path)
    options = subset.Options()
    options.retain_gids = True  # content streams use the original glyph ids
    options.hinting = False
    options.layout_features = []
    options.drop_tables = [*options.drop_tables, *_DROPPED_TABLES]
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
    glyph_widths = {int(metrics.hexes[ch], 16): w for ch, w in metrics.widths.items()}
    return _Embedding(
        base_font=f"{tag}+MD-{postscript}",  # "MD-": ours, like WeasyPrint's names for them
        font_file=zlib.compress(data, 9),
        font_file_length=len(data),
        to_unicode=zlib.compress(_to_unicode_cmap(metrics.unicode_of), 9),
        descriptor=_descriptor_values(font, scale),
        widths_array=_widths_array(glyph_widths),
        default_width=round(font["hmtx"].metrics[font.getGlyphOrder()[0]][0] * scale, 3),
    )


def _pair_kerning(font: TTFont, glyphs: set[str]) -> dict[tuple[str, str], int]:
    """Horizontal pair adjustments (font units) of the GPOS 'kern' feature
    among the given glyphs, applied as HarfBuzz does: within a lookup the first
    subtable that matches a pair wins, and a class-based subtable (format 2)
    matches every second glyph once the first is in its coverage. Only
    Value1.XAdvance is read: that is all kerning in our fonts uses. Contextual
    kerning lookups (in our fonts only around combining marks) are skipped."""
    if "GPOS" not in font:
        return {}
    table = font["GPOS"].table
    indices = sorted({
        index
        for record in table.FeatureList.FeatureRecord
        if record.FeatureTag == "kern"
        for index in record.Feature.LookupListIndex
    })
    total: dict[tuple[str, str], int] = {}
    for index in indices:
        lookup = table.LookupList.Lookup[index]
        subtables = [
            sub.ExtSubTable if lookup.LookupType == 9 else sub for sub in lookup.SubTable
        ]
        pair_subtables = [sub for sub in subtables if type(sub).__name__ == "PairPos"]
        for pair, value in _lookup_pairs(pair_subtables, glyphs).items():
            total[pair] = total.get(pair, 0) + value
    return {pair: value for pair, value in total.items() if value}


def _x_advance(value: object) -> int:
    return (getattr(value, "XAdvance", 0) or 0) if value is not None else 0


def _lookup_pairs(subtables: list, glyphs: set[str]) -> dict[tuple[str, str], int]:
    prepared = []
    for sub in subtables:
        coverage = {glyph: i for i, glyph in enumerate(sub.Coverage.glyphs)}
        seconds: dict[int, list[str]] | None = None
        if sub.Format == 2:
            seconds = {}
            for glyph in glyphs:
                seconds.setdefault(sub.ClassDef2.classDefs.get(glyph, 0), []).append(glyph)
        prepared.append((sub, coverage, seconds))
    pairs: dict[tuple[str, str], int] = {}
    for left in glyphs:
        found: dict[str, int] = {}
        for sub, coverage, seconds in prepared:
            index = coverage.get(left)
            if index is None:
                continue
            if seconds is None:  # format 1: listed pairs only
                for record in sub.PairSet[index].PairValueRecord:
                    if record.SecondGlyph in glyphs:
                        found.setdefault(record.SecondGlyph, _x_advance(record.Value1))
                continue
            row = sub.Class1Record[sub.ClassDef1.classDefs.get(left, 0)].Class2Record
            for klass, members in seconds.items():
                value = _x_advance(row[klass].Value1) if klass < len(row) else 0
                if value:
                    for right in members:
                        found.setdefault(right, value)
            break  # format 2 matched every second glyph: later subtables never run
        pairs.update(((left, right), value) for right, value in found.items() if value)
    return pairs


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


def _to_unicode_cmap(unicode_of: dict[int, int]) -> bytes:
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
    items = sorted(unicode_of.items())
    for start in range(0, len(items), 100):  # at most 100 entries per block
        block = items[start:start + 100]
        lines.append(f"{len(block)} beginbfchar")
        lines += [f"<{glyph:04X}> <{code:04X}>" for glyph, code in block]
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
        self.units_per_em = metrics.units_per_em
        self._widths = metrics.widths
        self._hexes = metrics.hexes
        self._kerning = metrics.kerning

    def __repr__(self) -> str:
        return f"EmbeddedFace({self.path.name!r}, {self.resource_name!r})"

    @property
    def base_font(self) -> str:
        """The embedded font's name, "ABCDEF+PostScriptName" (subsets the font once)."""
        return _embedding(self.path).base_font

    def covers(self, ch: str) -> bool:
        """The face has ch, and ch is in REPERTOIRE."""
        return ch in self._widths

    def advance(self, text: str, size: float) -> float:
        """Width of text in PDF points at font size `size`, pair kerning included."""
        try:
            units = sum(map(self._widths.__getitem__, text))
        except KeyError:
            raise UncoveredTextError(f"{self.resource_name} cannot draw this text") from None
        if len(text) > 1:
            units += sum(map(self._kerning.get, map(add, text, text[1:]), repeat(0)))
        return units * size / 1000

    def hex_glyphs(self, text: str) -> bytes:
        """b"<0012004A...>": the text's glyph ids for a Tj operator."""
        try:
            return f"<{''.join(map(self._hexes.__getitem__, text))}>".encode("ascii")
        except KeyError:
            raise UncoveredTextError(f"{self.resource_name} cannot draw this text") from None

    def show_operator(self, text: str) -> str:
        """Tj showing text, or TJ with the kerning adjustments when it has any."""
        glyphs = list(map(self._hexes.__getitem__, text))
        kerns = list(map(self._kerning.get, map(add, text, text[1:])))
        if not any(kerns):
            return f"<{''.join(glyphs)}> Tj"
        parts = ["[<", glyphs[0]]
        for glyph, kern in zip(glyphs[1:], kerns, strict=True):
            if kern:  # a TJ number moves the next glyph left
                parts += [">", _number(-kern), "<"]
            parts.append(glyph)
        parts.append(">] TJ")
        return "".join(parts)

    def add_to(self, pdf: pikepdf.Pdf) -> pikepdf.Object:
        """The indirect Type0 font dict of this face in pdf.

        The objects are made on the first call for a pdf; later calls with the
        same Pdf return the same dict (the cache is an attribute of the Pdf
        object, so it goes away with it)."""
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


class FaceChain:
    """Per-character fallback like Pango: the first face covering a character
    draws it. Spaces (U+0020, U+00A0) choose no face of their own: as in
    Pango's itemizer, they stay in the run before them (leading ones join the
    run after), except trailing spaces before a change to an earlier face of
    the chain within one script, which move to it. Measured against
    WeasyPrint: a space between two Cyrillic words is Noto's, not Atkinson's."""

    def __init__(self, faces: Sequence[EmbeddedFace]):
        self.faces = tuple(faces)
        rank: dict[str, int] = {}
        for position in reversed(range(len(self.faces))):
            rank.update(dict.fromkeys(self.faces[position]._widths, position))
        self._rank = rank
        self._first_only = frozenset(ch for ch, position in rank.items() if position == 0)
        self._script = {ch: _script(ord(ch)) for ch in rank}

    def runs(self, text: str) -> list[tuple[EmbeddedFace, str]] | None:
        """The text cut into (face, text) runs; None if any char is not covered."""
        if not text:
            return []
        if self._first_only.issuperset(text):
            return [(self.faces[0], text)]
        ranks = list(map(self._rank.get, text))
        if None in ranks:
            return None
        chosen = self._choose(text, ranks)
        out = []
        start = 0
        for i in range(1, len(text) + 1):
            if i == len(text) or chosen[i] != chosen[start]:
                out.append((self.faces[chosen[start]], text[start:i]))
                start = i
        return out

    def _choose(self, text: str, ranks: list[int]) -> list[int]:
        """The face position for each character (see the class docstring)."""
        chosen = list(ranks)
        script_start, script = 0, None
        for i, ch in enumerate(text):
            this = self._script[ch]
            if this is not None and script is not None and this != script:
                self._itemize(text, ranks, script_start, i, chosen)
                script_start = i
            script = this or script
        self._itemize(text, ranks, script_start, len(text), chosen)
        # A face that lacks a space it was given hands it to the first that has it.
        for i, ch in enumerate(text):
            if ch in SPACES and not self.faces[chosen[i]].covers(ch):
                chosen[i] = ranks[i]
        return chosen

    @staticmethod
    def _itemize(text: str, ranks: list[int], start: int, end: int, chosen: list[int]) -> None:
        item_start, face = start, None
        for i in range(start, end):
            if text[i] in SPACES or ranks[i] == face:
                continue
            if face is None:  # an item of spaces so far takes the first real face
                face = ranks[i]
                continue
            split = i
            if text[item_start] != " " and text[i - 1] in SPACES and ranks[i] < face:
                while split - 1 > item_start and text[split - 1] in SPACES:
                    split -= 1
            chosen[item_start:split] = [face] * (split - item_start)
            item_start, face = split, ranks[i]
        chosen[item_start:end] = [face or 0] * (end - item_start)

    def advance(self, text: str, size: float) -> float:
        """Width of text in PDF points at font size `size`."""
        runs = self.runs(text)
        if runs is None:
            raise UncoveredTextError("the fast-path fonts cannot draw this text")
        return sum(face.advance(run, size) for face, run in runs)

    def show(self, text: str, size: float, x: float, y: float, flipped: bool = False) -> bytes:
        """PDF operators drawing text with its baseline starting at (x, y) in
        default user space, or with ``flipped`` in a y-down space such as
        WeasyPrint's. One text object; each run sets its font and shows its
        glyphs, and the text position moves on by the /W widths plus the TJ
        kerning: exactly what advance() adds up. No colour is set."""
        runs = self.runs(text)
        if runs is None:
            raise UncoveredTextError("the fast-path fonts cannot draw this text")
        size_text = _number(size)
        parts = [f"BT 1 0 0 {-1 if flipped else 1} {_number(x)} {_number(y)} Tm"]
        for face, run in runs:
            parts.append(f"/{face.resource_name} {size_text} Tf {face.show_operator(run)}")
        parts.append("ET")
        return " ".join(parts).encode("ascii")


@functools.cache
def bundled_chain(bold: bool) -> FaceChain:
    """Atkinson Hyperlegible then Noto Sans: the CSS font stack of the full render."""
    folder = fonts_dir()
    weight = "Bold" if bold else "Regular"
    return FaceChain([
        EmbeddedFace(folder / f"AtkinsonHyperlegible-{weight}.ttf", f"MDA{weight[0]}"),
        EmbeddedFace(folder / f"NotoSans-{weight}.ttf", f"MDN{weight[0]}"),
    ])
