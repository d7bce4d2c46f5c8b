"""Bundled fonts: which characters they cover, and the CSS that loads them.

WeasyPrint would quietly fall back to any system font (or a box) for a
character our fonts lack, so every field is checked against these fonts
before rendering, and the CSS names only our own files.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fontTools.ttLib import TTCollection, TTFont

from .assets import fonts_dir
from .errors import MissingGlyphError, Problem

# (family used in CSS, regular file, bold file), first match wins per character.
BUNDLED_FACES = (
    ("MD Atkinson", "AtkinsonHyperlegible-Regular.ttf", "AtkinsonHyperlegible-Bold.ttf"),
    ("MD Noto", "NotoSans-Regular.ttf", "NotoSans-Bold.ttf"),
    ("MD Noto Arabic", "NotoSansArabic-Regular.ttf", "NotoSansArabic-Bold.ttf"),
    ("MD Noto Hebrew", "NotoSansHebrew-Regular.ttf", "NotoSansHebrew-Bold.ttf"),
)
FONT_SUFFIXES = {".ttf", ".otf", ".ttc", ".otc"}


@dataclass(frozen=True)
class Face:
    family: str
    regular: Path
    bold: Path


@dataclass(frozen=True)
class FontSet:
    faces: tuple[Face, ...]
    covered: frozenset[int]

    @property
    def families(self) -> list[str]:
        return [face.family for face in self.faces]

    @property
    def folders(self) -> list[Path]:
        return sorted({face.regular.parent for face in self.faces})

    def font_face_css(self) -> str:
        rules = []
        for face in self.faces:
            for weight, path in (("normal", face.regular), ("bold", face.bold)):
                rules.append(
                    f'@font-face {{ font-family: "{face.family}"; font-weight: {weight}; '
                    f'src: url("{path.as_uri()}"); }}'
                )
        return "\n".join(rules)

    def css_stack(self) -> str:
        return ", ".join(f'"{family}"' for family in self.families)

    def missing(self, text: str) -> list[str]:
        """Characters in text that no font of this set can draw."""
        out: list[str] = []
        for ch in unicodedata.normalize("NFC", text):
            if ch.isspace() or unicodedata.category(ch) == "Cf":
                continue  # not drawn: spaces, joiners, direction marks
            if ord(ch) not in self.covered and ch not in out:
                out.append(ch)
        return out


def _cmap(path: Path) -> set[int]:
    if path.suffix.lower() in {".ttc", ".otc"}:
        collection = TTCollection(str(path), lazy=True)
        codes: set[int] = set()
        for font in collection.fonts:
            codes |= set(font.getBestCmap() or {})
        return codes
    with TTFont(str(path), lazy=True) as font:
        return set(font.getBestCmap() or {})


def _extra_faces(folder: Path) -> list[Face]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FONT_SUFFIXES)
    return [Face(f"MD Extra {i}", path, path) for i, path in enumerate(files, start=1)]


@cache
def font_set(extra_dir: Path | None = None) -> FontSet:
    base = fonts_dir()
    faces = [Face(family, base / regular, base / bold) for family, regular, bold in BUNDLED_FACES]
    if extra_dir is not None:
        faces.extend(_extra_faces(extra_dir))
    covered: set[int] = set()
    for face in faces:
        covered |= _cmap(face.regular)
    return FontSet(tuple(faces), frozenset(covered))


@cache
def _bold_advances() -> tuple[dict[int, float], float]:
    """Advance widths (in em) of the header's bold face, and its widest glyph."""
    with TTFont(str(fonts_dir() / BUNDLED_FACES[0][2])) as font:
        units = font["head"].unitsPerEm
        metrics = font["hmtx"].metrics
        advances = {code: metrics[glyph][0] / units
                    for code, glyph in (font.getBestCmap() or {}).items()}
    return advances, max(advances.values())


def header_lines(text: str, size_pt: float, width_pt: float) -> int:
    """Lines text takes when wrapped at spaces (and inside over-long words)
    in a column of width_pt, in the header's bold face. Characters from
    other fonts count as the widest glyph, so the estimate errs long."""
    advances, widest = _bold_advances()
    space = advances.get(32, 0.25) * size_pt
    lines, used = 1, 0.0
    for word in text.split():
        width = sum(advances.get(ord(ch), widest) for ch in word) * size_pt
        needed = width if used == 0 else used + space + width
        if needed <= width_pt:
            used = needed
            continue
        if used:
            lines += 1
        extra, used = divmod(width, width_pt)
        lines += int(extra)
    return lines


IDENTIFIER_FIELDS = ("patient_name", "mrn")


def _describe_missing(field: str, missing: list[str]) -> str:
    """Characters named by code point, except in identifiers: the code points
    of a short name spell the name, and errors land in manifests and logs.
    There, only the kind of writing is given (from the Unicode name)."""
    if field in IDENTIFIER_FIELDS:
        kinds = sorted({unicodedata.name(ch, "UNNAMED").split()[0] for ch in missing})
        return f"{len(missing)} of them: {', '.join(kinds)}"
    return ", ".join(f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')}" for ch in missing[:5])


def check_glyphs(fields: dict[str, str], fonts: FontSet) -> None:
    """Raise MissingGlyphError naming each field and character no font can draw."""
    problems = []
    for field, text in fields.items():
        missing = fonts.missing(text)
        if missing:
            shown = _describe_missing(field, missing)
            problems.append(Problem(
                field,
                f"has characters no installed font can print ({shown})",
                "add a font that has them with --font-dir, or type the value in Latin letters",
            ))
    if problems:
        raise MissingGlyphError("Some characters cannot be printed", problems)
