"""The hospital brand: name, logo, colours and the phone numbers patients call."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from myelo_docs.assets import builtin_brands_dir
from myelo_docs.schema.errors import ConfigError, Problem
from myelo_docs.schema.problems import user_error
from myelo_docs.schema.settings_file import read_toml, validate_settings

_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
_LOGO_TYPES = {".svg", ".png"}
MIN_CONTRAST = 4.5  # WCAG AA for normal text on white paper


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_on_white(hex_colour: str) -> float:
    return 1.05 / (_luminance(hex_colour) + 0.05)


class Brand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hospital_name: str = Field(min_length=1, max_length=100)
    department: str = Field(default="", max_length=100)
    logo: str = Field(min_length=1, max_length=200)
    logo_alt: str = Field(min_length=1, max_length=200)
    primary_colour: str
    accent_colour: str
    department_phone: str = Field(min_length=3, max_length=40)
    after_hours_phone: str = Field(min_length=3, max_length=40)
    emergency_number: str = Field(min_length=2, max_length=20)
    address: str = Field(default="", max_length=200)
    website: str = Field(default="", max_length=100)
    paper: Literal["letter", "a4"] = "letter"
    # Set by load_brand, not by the file: the folder the logo must live in.
    _folder: Path = PrivateAttr(default=Path("."))

    @property
    def folder(self) -> Path:
        return self._folder

    @field_validator("primary_colour", "accent_colour", mode="before")
    @classmethod
    def _readable_colour(cls, value: str) -> str:
        if not isinstance(value, str) or not _HEX.match(value.strip()):
            raise user_error("is not a colour written as #RRGGBB",
                             "write it as # and six hex digits, like #1F4E79")
        value = value.strip().upper()
        if contrast_on_white(value) < MIN_CONTRAST:
            raise user_error(
                f"is too light to read on white paper (contrast "
                f"{contrast_on_white(value):.1f}:1, needs {MIN_CONTRAST}:1)",
                "pick a darker colour, like #1F4E79",
            )
        return value

    @field_validator("paper", mode="before")
    @classmethod
    def _paper_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def logo_path(self) -> Path:
        return (self.folder / self.logo).resolve()


def load_brand(path: str | Path | None = None) -> Brand:
    """Load a brand file; None means the built-in demo brand."""
    brand_file = Path(path) if path is not None else builtin_brands_dir() / "demo" / "brand.toml"
    data = read_toml(brand_file, "brand")
    folder = brand_file.resolve().parent
    brand = validate_settings(Brand, data, "brand")
    brand._folder = folder
    logo = brand.logo_path
    if not logo.is_relative_to(folder):
        raise ConfigError(
            "The brand logo is outside the brand's folder",
            [Problem("brand logo", "points outside the folder of brand.toml",
                     "copy the logo next to brand.toml and give its file name")],
        )
    if logo.suffix.lower() not in _LOGO_TYPES:
        raise ConfigError(
            "The brand logo has an unsupported type",
            [Problem("brand logo", f"'{logo.suffix}' files are not supported",
                     "use an .svg or .png file")],
        )
    if not logo.is_file():
        raise ConfigError(
            "The brand logo was not found",
            [Problem("brand logo", f"no file named {brand.logo} next to brand.toml",
                     "check the file name in brand.toml")],
        )
    return brand
