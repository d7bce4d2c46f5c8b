"""The hospital brand: name, logo, colours, the phone numbers patients call, and
the country whose way of writing numbers and dates the packets follow.

Its words (``TRANSLATED``) may be given again per language, in a
``[languages.<code>]`` table; a word a language leaves out is the main one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    create_model,
    field_validator,
    model_validator,
)

from myelo_docs.assets import builtin_brands_dir
from myelo_docs.schema.errors import ConfigError
from myelo_docs.schema.messages import did_you_mean, error, invalid, phrase
from myelo_docs.schema.settings_file import read_toml, validate_settings

_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
_LOGO_TYPES = {".svg", ".png"}
MIN_CONTRAST = 4.5  # WCAG AA for normal text on white paper
DEFAULT_COUNTRY = "US"


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_on_white(hex_colour: str) -> float:
    return 1.05 / (_luminance(hex_colour) + 0.05)


def _country_codes() -> frozenset[str]:
    from babel import Locale

    return frozenset(code for code in Locale("en").territories
                     if len(code) == 2 and code.isalpha() and code != "ZZ")


class BrandWords(BaseModel):
    """The brand's words a patient reads: the ones a language may give again."""

    hospital_name: str = Field(min_length=1, max_length=100)
    department: str = Field(default="", max_length=100)
    logo_alt: str = Field(min_length=1, max_length=200)
    address: str = Field(default="", max_length=200)
    website: str = Field(default="", max_length=100)


TRANSLATED = tuple(BrandWords.model_fields)

# One language's words: the same fields and limits, each optional (left out: the main one).
LanguageWords = create_model(
    "LanguageWords",
    __config__=ConfigDict(extra="forbid", frozen=True),
    **{name: (Annotated[(str, *BrandWords.model_fields[name].metadata)] | None, None)
       for name in TRANSLATED},
)


class Brand(BrandWords):
    model_config = ConfigDict(extra="forbid", frozen=True)

    primary_colour: str
    accent_colour: str
    department_phone: str = Field(min_length=3, max_length=40)
    after_hours_phone: str = Field(min_length=3, max_length=40)
    emergency_number: str = Field(min_length=2, max_length=20)
    logo: str = Field(min_length=1, max_length=200)
    paper: Literal["letter", "a4"] = "letter"
    # ISO 3166 alpha-2: with the packet's language, how numbers and dates are
    # written (content/loader.py locale_for: es + US -> es_US, 100.0 °F).
    country: str = DEFAULT_COUNTRY
    # Language code -> its words ([languages.es] in brand.toml).
    languages: dict[str, LanguageWords] = Field(default_factory=dict)
    # Set by load_brand, not by the file: the folder the logo must live in.
    _folder: Path = PrivateAttr(default=Path("."))

    @property
    def folder(self) -> Path:
        return self._folder

    @model_validator(mode="before")
    @classmethod
    def _language_at_top(cls, data: Any) -> Any:
        """[es] instead of [languages.es]: say where it goes."""
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields and key in _languages():
                    raise invalid("brand_language_at_top", field=key, tag=key)
        return data

    @field_validator("languages", mode="before")
    @classmethod
    def _known_languages(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise invalid("brand_languages_not_tables")
        known = _languages()
        for tag, words in value.items():
            if tag not in known:
                base = tag.strip().lower().replace("_", "-").split("-")[0]
                hint = (phrase("brand_language_with_country", base=base)
                        if base in known and base != tag else did_you_mean(tag, known))
                raise invalid("brand_language_unknown", field=f"languages {tag}", tag=tag,
                              hint=hint, known=", ".join(known))
            if not isinstance(words, dict):
                raise invalid("brand_language_not_table", field=f"languages {tag}", tag=tag)
            for key in words:
                if key not in TRANSLATED:
                    hint = (phrase("brand_key_same_everywhere", key=key)
                            if key in cls.model_fields else did_you_mean(key, TRANSLATED))
                    raise invalid("brand_language_key_unknown", field=f"languages {tag} {key}",
                                  hint=hint, known=", ".join(TRANSLATED))
        return value

    @field_validator("country", mode="before")
    @classmethod
    def _known_country(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        code = value.strip().upper()
        if code not in _country_codes():
            raise invalid("brand_country_uk" if code == "UK" else "brand_country_unknown",
                          value=value)
        return code

    @field_validator("primary_colour", "accent_colour", mode="before")
    @classmethod
    def _readable_colour(cls, value: str) -> str:
        if not isinstance(value, str) or not _HEX.match(value.strip()):
            raise invalid("brand_colour_not_hex")
        value = value.strip().upper()
        if contrast_on_white(value) < MIN_CONTRAST:
            raise invalid("brand_colour_light", contrast=f"{contrast_on_white(value):.1f}",
                          needed=MIN_CONTRAST)
        return value

    @field_validator("paper", mode="before")
    @classmethod
    def _paper_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def logo_path(self) -> Path:
        return (self.folder / self.logo).resolve()

    def for_language(self, language: str) -> Brand:
        """This brand with the words of ``language`` (a content code, "es") in place of
        the main ones, where its [languages] table gives them; itself when none."""
        given = self.languages.get(language)
        if given is None:
            return self
        words = {k: v for k, v in given.model_dump().items() if v is not None}
        return self.model_copy(update=words)  # keeps the logo folder

    def strings(self) -> dict[str, str]:
        """Every string of the brand, keyed by where it is in brand.toml
        ("department", "languages es department"): for the glyph check."""
        found = {k: v for k, v in self.model_dump().items() if isinstance(v, str)}
        found.update({f"languages {tag} {name}": value
                      for tag, given in self.languages.items()
                      for name, value in given.model_dump().items() if value is not None})
        return found


def _languages() -> list[str]:
    from myelo_docs.schema.languages import available_languages

    return available_languages()


def load_brand(path: str | Path | None = None) -> Brand:
    """Load a brand file; None means the built-in demo brand."""
    brand_file = Path(path) if path is not None else builtin_brands_dir() / "demo" / "brand.toml"
    data = read_toml(brand_file, "brand")
    folder = brand_file.resolve().parent
    brand = validate_settings(Brand, data, "brand")
    brand._folder = folder
    logo = brand.logo_path
    if not logo.is_relative_to(folder):
        raise error(ConfigError, "brand_logo_outside", "brand logo")
    if logo.suffix.lower() not in _LOGO_TYPES:
        raise error(ConfigError, "brand_logo_type", "brand logo", suffix=logo.suffix)
    if not logo.is_file():
        raise error(ConfigError, "brand_logo_missing", "brand logo", name=brand.logo)
    return brand
