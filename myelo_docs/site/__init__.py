"""A hospital's site folder: one folder that makes myelo-docs that hospital's.

Layout (``myelo-docs site init DIR`` writes it, commented)::

    DIR/site.toml        identity, CSV, languages, output defaults, pointers
    DIR/brand.toml       name, logo, colours, phone numbers (+ the logo file)
    DIR/protocol.toml    the numbers and choices of the hospital's protocol
    DIR/content/<lang>/<file>.toml   text overrides, key by key (content/overrides.py)

``load_site(folder)`` reads and checks ``site.toml`` strictly: an unknown key
is an error with a "did you mean" among the keys of its own table; a pointer
to a file that is not there is an error naming the key. Every path in a
``Site`` is absolute, or None when the site does not have that part.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from myelo_docs.content.overrides import SITE_FILE, ContentTable
from myelo_docs.schema.errors import ConfigError, Problem
from myelo_docs.schema.problems import user_error
from myelo_docs.schema.settings_file import read_toml, validate_settings

_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


# -- site.toml, as written ----------------------------------------------------------

class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FilesTable(_Table):
    """[files]: the site's other files, relative to the site folder."""

    brand: str | None = None        # default: brand.toml if present, else our demo brand
    protocol: str | None = None     # default: protocol.toml if present, else our defaults
    fonts: str | None = None        # a folder of extra .ttf/.otf fonts


class IdentityTable(_Table):
    """[identity]: how the hospital's MRNs look (intake.py)."""

    mrn_systems: tuple[str, ...] = Field(default=(), max_length=10)
    mrn_pattern: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("mrn_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise user_error(f"is not a valid regular expression ({exc.msg})",
                                 'write one such as "[0-9]{8}"') from None
        return value


class CsvTable(_Table):
    """[csv]: how the hospital's CSV exports are read (batch, validate)."""

    encoding: str | None = Field(default=None, min_length=1, max_length=40)
    columns: str | None = None      # a column map file (see README, "Column maps")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise user_error(f"'{value}' is not an encoding Python knows",
                                 'use one such as "utf-8", "cp1252" or "latin-1"') from None
        return value


class OutputTable(_Table):
    """[output]: defaults for what is printed."""

    paper: Literal["letter", "a4"] | None = None
    large_print: StrictBool = False  # "yes" is not read as true
    file_name_pattern: str | None = Field(default=None, min_length=1, max_length=120)

    @field_validator("paper", mode="before")
    @classmethod
    def _paper_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("file_name_pattern")
    @classmethod
    def _pattern_fields(cls, value: str | None) -> str | None:
        if value is not None:
            from myelo_docs.output.filenames import check_pattern
            from myelo_docs.schema.errors import RecordError

            try:
                check_pattern(value)
            except RecordError as exc:
                raise user_error(exc.problems[0].problem, exc.problems[0].fix) from None
        return value


class SiteFile(_Table):
    """The whole of site.toml."""

    name: str = Field(min_length=1, max_length=100)
    languages: tuple[str, ...] = Field(default=(), max_length=40)
    files: FilesTable = FilesTable()
    content: ContentTable = ContentTable()
    identity: IdentityTable = IdentityTable()
    csv: CsvTable = CsvTable()
    output: OutputTable = OutputTable()

    @field_validator("languages")
    @classmethod
    def _codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for code in value:
            if not _LANGUAGE.match(code):
                raise user_error(f"'{code}' is not a language code",
                                 'use lower-case codes like "en", "es"')
        if len(set(value)) != len(value):
            raise user_error("names a language twice", "give each language once")
        return value


# -- the site, resolved -------------------------------------------------------------

@dataclass(frozen=True)
class Site:
    """A loaded site: absolute paths (None where the site has no such part) and
    the settings of its site.toml. Picklable and hashable."""

    folder: Path
    brand: Path | None = None            # the brand file (with its logo next to it)
    protocol: Path | None = None         # the protocol file (keys it lacks: our defaults)
    content: Path | None = None          # content overrides folder (content/<lang>/*.toml)
    font_dir: Path | None = None
    paper: str | None = None             # "letter" / "a4"; None: the brand's
    languages: tuple[str, ...] = ()      # offered languages; () = all we ship
    large_print: bool = False            # output default
    file_name_pattern: str | None = None
    mrn_system: str | None = None        # the first of mrn_systems
    mrn_pattern: str | None = None
    csv_encoding: str | None = None
    column_map: Path | None = None
    # Added by SITE (see /tmp/briefs/site-interface-notes.md):
    name: str = ""
    mrn_systems: tuple[str, ...] = ()
    text_reviewed: date | None = None    # the date the site's text overrides were reviewed
    reviewed_by: str = ""

    @property
    def site_file(self) -> Path:
        return self.folder / SITE_FILE


def load_site(folder: Path | str) -> Site:
    """The site in ``folder`` (which holds site.toml).

    Raises ConfigError (exit 4) naming the file and key: a missing folder or
    site.toml, bad TOML, an unknown key (with a "did you mean" among the keys of
    that table), a bad value, or a pointer to a file that is not there.
    """
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError("The site folder was not found", [
            Problem("--site", f"no folder at {folder}",
                    "check the path, or make one with: myelo-docs site init DIR")])
    if not (root / SITE_FILE).is_file():
        raise ConfigError("The site folder has no site.toml", [
            Problem("--site", f"{root} has no {SITE_FILE}",
                    "give the folder made by `myelo-docs site init`, or run it to make one")])
    data = read_toml(root / SITE_FILE, SITE_FILE)
    settings = validate_settings(SiteFile, data, SITE_FILE)
    return resolve(root, settings, data)


def resolve(root: Path, s: SiteFile, data: dict[str, Any]) -> Site:
    """The Site of a validated site.toml in ``root``; ConfigError for a pointer to
    nothing, or text overrides without their review date."""
    problems: list[Problem] = []

    def pointer(table: str, key: str, value: str | None, default: str | None,
                folder: bool) -> Path | None:
        if value is None:
            if default is None:
                return None
            path = root / default
            return path if (path.is_dir() if folder else path.is_file()) else None
        path = (root / value).resolve()
        if not (path.is_dir() if folder else path.is_file()):
            kind = "folder" if folder else "file"
            problems.append(Problem(f"{SITE_FILE} {table} {key}",
                                    f"no {kind} at {value} (in {root})",
                                    f"check the name, or delete the {key} line"))
            return None
        return path

    brand = pointer("files", "brand", s.files.brand, "brand.toml", False)
    protocol = pointer("files", "protocol", s.files.protocol, "protocol.toml", False)
    fonts = pointer("files", "fonts", s.files.fonts, None, True)
    content = pointer("content", "folder", s.content.folder, "content", True)
    columns = pointer("csv", "columns", s.csv.columns, None, False)
    if content is not None and s.content.text_reviewed is None and _has_overrides(content):
        problems.append(Problem(
            f"{SITE_FILE} content text_reviewed", "is missing, but the site changes "
            "patient text", "write the date your clinical reviewer signed the text off, "
            "like text_reviewed = 2026-11-01 (it is printed on every page)"))
    if problems:
        raise ConfigError(f"The site in {root} has problems", problems)
    return Site(
        folder=root, brand=brand, protocol=protocol, content=content, font_dir=fonts,
        paper=s.output.paper, languages=s.languages, large_print=s.output.large_print,
        file_name_pattern=s.output.file_name_pattern,
        mrn_system=s.identity.mrn_systems[0] if s.identity.mrn_systems else None,
        mrn_pattern=s.identity.mrn_pattern, csv_encoding=s.csv.encoding,
        column_map=columns, name=s.name, mrn_systems=s.identity.mrn_systems,
        text_reviewed=s.content.text_reviewed, reviewed_by=s.content.reviewed_by,
    )


def _has_overrides(content: Path) -> bool:
    return any(content.glob("*/*.toml"))


def offered_languages(site: Site | None) -> list[str]:
    """The languages a site offers: its ``languages``, else every one we ship plus
    any the site adds of its own."""
    from myelo_docs.content.overrides import site_languages
    from myelo_docs.schema.languages import available_languages

    if site is None:
        return available_languages()
    if site.languages:
        return list(site.languages)
    return sorted({*available_languages(), *site_languages(site.content)})
