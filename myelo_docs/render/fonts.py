"""Bundled fonts: which characters they cover, and the CSS that loads them.

WeasyPrint would quietly fall back to any system font (or a box) for a
character our fonts lack, so every field is checked against these fonts
before rendering, and the CSS names only our own files.
"""

from __future__ import annotations

import bisect
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fontTools.ttLib import TTCollection, TTFont
from fontTools.unicodedata import Blocks, script_name
from fontTools.unicodedata import script as unicode_script

from myelo_docs.assets import fonts_dir
from myelo_docs.schema.errors import MissingGlyphError
from myelo_docs.schema.messages import problem, title
from myelo_docs.schema.problems import Code

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


IDENTIFIER_FIELDS = ("patient_name", "mrn")
# What a person calls the writing of a character, by its Unicode script
# (ISO 15924 code), where the script's own name would not say it.
_SCRIPT_WORDS = {
    "Hani": ("a Chinese, Japanese or Korean character", "Chinese, Japanese or Korean characters"),
    "Hira": ("a Japanese hiragana character", "Japanese hiragana characters"),
    "Kana": ("a Japanese katakana character", "Japanese katakana characters"),
    "Hang": ("a Korean Hangul letter", "Korean Hangul letters"),
    "Bopo": ("a Chinese bopomofo letter", "Chinese bopomofo letters"),
    "Brai": ("a braille pattern", "braille patterns"),
}
_SYMBOL = ("an emoji or symbol", "emoji or symbols")
_BY_CATEGORY = {"M": ("an accent or mark", "accents or marks"),
                "N": ("a number sign", "number signs"),
                "P": ("a punctuation mark", "punctuation marks")}


def _emoji_part(ch: str) -> bool:
    """A variation selector, keycap or skin tone: drawn as part of an emoji."""
    code = ord(ch)
    return (0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF or code == 0x20E3
            or 0x1F3FB <= code <= 0x1F3FF)


def kind_of_character(ch: str) -> tuple[str, str]:
    """(one, many): what a person calls a character, from its Unicode script and
    category: ("an emoji or symbol", "emoji or symbols"), ("a Devanagari letter", ...)."""
    script = unicode_script(ch)
    if script in _SCRIPT_WORDS:
        return _SCRIPT_WORDS[script]
    category = unicodedata.category(ch)
    if category.startswith("S") or _emoji_part(ch):
        return _SYMBOL
    if script in ("Zyyy", "Zinh", "Zzzz"):  # common to many scripts, or unknown
        return _BY_CATEGORY.get(category[0], ("a character", "characters"))
    name = script_name(script)
    word = "letter" if category[0] in "LM" else "character"  # a vowel sign is a letter's
    article = "an" if name[0].lower() in "aeiou" else "a"
    return f"{article} {name} {word}", f"{name} {word}s"


def _block(ch: str) -> str:
    """The Unicode block of a character and its range: what a font's coverage is
    described by (CJK Unified Ideographs U+4E00-U+9FFF)."""
    i = bisect.bisect_right(Blocks.RANGES, ord(ch)) - 1
    last = Blocks.RANGES[i + 1] - 1 if i + 1 < len(Blocks.RANGES) else 0x10FFFF
    return f"{Blocks.VALUES[i]} U+{Blocks.RANGES[i]:04X}-U+{last:04X}"


def describe_missing(field: str, missing: list[str]) -> str:
    """What the characters are, in words ("3 Chinese, Japanese or Korean
    characters"), with, for whoever adds a font, their code points and names,
    except in identifiers: the code points of a short name spell the name, and
    errors land in manifests and logs. There, only the Unicode blocks are given."""
    bases = [ch for ch in missing if not _style_mark(ch)]
    if not bases:  # "Ann ©️": the © prints, the emoji-style mark after it does not
        detail = ", ".join(f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')}"
                           for ch in missing)
        return f"an emoji style mark after a symbol ({detail})"
    groups: dict[tuple[str, str], list[str]] = {}
    for ch in bases:  # ❤️ is one emoji: its style mark or skin tone is not counted
        groups.setdefault(kind_of_character(ch), []).append(ch)
    parts = []
    for (one, many), chars in groups.items():
        words = one if len(chars) == 1 else f"{len(chars)} {many}"
        if field in IDENTIFIER_FIELDS:
            blocks = sorted({_block(ch) for ch in chars})
            detail = "Unicode block " + ", ".join(blocks) if len(blocks) == 1 else \
                "Unicode blocks " + ", ".join(blocks)
        else:
            detail = ", ".join(f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')}"
                               for ch in chars[:5]) + (", ..." if len(chars) > 5 else "")
        parts.append(f"{words} ({detail})")
    return "; ".join(parts)


def _style_mark(ch: str) -> bool:
    """A variation selector or skin-tone modifier: part of the emoji before it."""
    return unicodedata.name(ch, "").startswith("VARIATION SELECTOR") or \
        0x1F3FB <= ord(ch) <= 0x1F3FF


def _fix(missing: list[str]) -> str:
    """The message (messages.toml) whose fix fits these characters."""
    if all(_style_mark(ch) for ch in missing):
        return "glyph_style_mark"
    kinds = {kind_of_character(ch) for ch in missing if not _style_mark(ch)}
    if kinds == {_SYMBOL}:
        return "glyph_symbol"
    if kinds & {_SCRIPT_WORDS[s] for s in ("Hani", "Hira", "Kana", "Hang", "Bopo")}:
        return "glyph_cjk"
    return "glyph_other"


def check_glyphs(fields: dict[str, str], fonts: FontSet) -> None:
    """Raise MissingGlyphError naming each field and character no font can draw."""
    problems = []
    for field, text in fields.items():
        missing = fonts.missing(text)
        if missing:
            problems.append(problem(_fix(missing), field, what=describe_missing(field, missing),
                                    code=Code.no_font))
    if problems:
        raise MissingGlyphError(title("glyph_unprintable"), problems)
