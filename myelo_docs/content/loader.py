"""Patient text: data files per language, filled with protocol and brand values.

Each language is a folder (``content/<code>/``) of TOML files a clinician can
review: ``labels.toml`` (headings, table and form words, meta), ``handout.toml``
(the education sections), ``discharge.toml`` (recovery and warning signs) and
``types.toml`` (the parts that differ by myelogram type). Text may contain
``{placeholders}`` for settings and ``**bold**``; nothing else is markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from babel.numbers import format_decimal
from babel.units import format_unit
from markupsafe import Markup, escape

from myelo_docs.assets import content_dir
from myelo_docs.schema.brand import Brand
from myelo_docs.schema.errors import ConfigError, Problem
from myelo_docs.schema.protocol import Protocol
from myelo_docs.schema.settings_file import read_toml

CONTENT_FILES = ("labels", "handout", "discharge", "types")
TYPE_KEYS = ("type_name", "title", "region", "numbness_where", "spine_alt", "during", "home_note")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


@dataclass(frozen=True)
class Content:
    language: str
    folder: Path
    data: dict[str, Any]

    @property
    def last_reviewed(self) -> date:
        return self.data["labels"]["meta"]["last_reviewed"]


def language_folders(extra_dir: Path | None = None) -> dict[str, Path]:
    """Language code -> folder; a hospital's folder overrides ours."""
    folders: dict[str, Path] = {}
    for root in (content_dir(), extra_dir):
        if root is None or not root.is_dir():
            continue
        for sub in sorted(root.iterdir()):
            if (sub / "labels.toml").is_file():
                folders[sub.name] = sub
    return folders


def available_languages(extra_dir: Path | None = None) -> list[str]:
    return sorted(language_folders(extra_dir))


@cache
def load_content(language: str, extra_dir: Path | None = None) -> Content:
    folders = language_folders(extra_dir)
    if language not in folders:
        raise ConfigError(
            "No patient text for that language",
            [Problem("language", f"'{language}' has no content folder",
                     "use one of: " + ", ".join(sorted(folders)))],
        )
    folder = folders[language]
    data = {name: read_toml(folder / f"{name}.toml", f"content {language}/{name}")
            for name in CONTENT_FILES}
    problems = _check_types(data["types"], language)
    if problems:
        raise ConfigError(f"The {language} content files have problems", problems)
    return Content(language=language, folder=folder, data=data)


def _check_types(types: dict[str, Any], language: str) -> list[Problem]:
    problems = []
    for type_name in ("cervical", "thoracic", "lumbar"):
        table = types.get(type_name, {})
        for key in TYPE_KEYS:
            if key not in table:
                problems.append(Problem(f"content {language}/types.toml [{type_name}]",
                                        f"has no '{key}'", f"add {key} to [{type_name}]"))
    return problems


def _hours(value: int, locale: str) -> str:
    if value % 24 == 0 and value >= 48:
        return format_unit(value // 24, "duration-day", length="long", locale=locale)
    return format_unit(value, "duration-hour", length="long", locale=locale)


def setting_values(protocol: Protocol, brand: Brand, locale: str) -> dict[str, str]:
    """Formatted setting values, keyed by the placeholder names content may use."""
    one_decimal = "0.0"
    fever = (f"{format_decimal(protocol.fever_f, one_decimal, locale=locale)} °F "
             f"({format_decimal(protocol.fever_c, one_decimal, locale=locale)} °C)")
    minutes = protocol.recovery_minutes
    recovery = (format_unit(minutes // 60, "duration-hour", length="long", locale=locale)
                if minutes % 60 == 0 else
                format_unit(minutes, "duration-minute", length="long", locale=locale))
    return {
        "fever": fever,
        "rest_time": _hours(protocol.rest_hours, locale),
        "no_driving_time": _hours(protocol.no_driving_hours, locale),
        "fasting_time": _hours(protocol.fasting_hours, locale),
        "head_raised_time": _hours(protocol.head_raised_hours, locale),
        "no_lifting_time": _hours(protocol.no_lifting_hours, locale),
        "no_alcohol_time": _hours(protocol.no_alcohol_hours, locale),
        "bandage_time": _hours(protocol.bandage_hours, locale),
        "headache_call_time": _hours(protocol.headache_call_hours, locale),
        "recovery_time": recovery,
        "fluid_time": format_unit(protocol.fluid_days, "duration-day", length="long",
                                  locale=locale),
        "test_minutes_low": str(protocol.test_minutes_low),
        "test_minutes_high": str(protocol.test_minutes_high),
        "pillows": str(protocol.head_pillows),
        "head_degrees": str(protocol.head_degrees),
        "fluid_glasses_low": str(protocol.fluid_glasses_low),
        "fluid_glasses_high": str(protocol.fluid_glasses_high),
        "hospital": brand.hospital_name,
        "department_phone": brand.department_phone,
        "after_hours_phone": brand.after_hours_phone,
        "emergency_number": brand.emergency_number,
    }


class Localiser:
    """Turns content strings into safe markup with every placeholder filled."""

    def __init__(self, values: dict[str, str], where: str):
        self.values = values
        self.where = where

    def text(self, raw: str) -> Markup:
        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in self.values:
                raise ConfigError(
                    "Patient text uses an unknown placeholder",
                    [Problem(self.where, f"'{{{key}}}' is not a known placeholder",
                             "use one of: " + ", ".join(sorted(self.values)))],
                )
            return self.values[key]

        filled = _PLACEHOLDER.sub(fill, raw)
        return Markup(_BOLD.sub(r"<strong>\1</strong>", str(escape(filled))))

    def tree(self, node: Any, type_name: str) -> Any:
        """Localise a nested structure; drop blocks not meant for this type."""
        if isinstance(node, str):
            return self.text(node)
        if isinstance(node, list):
            return [self.tree(item, type_name) for item in node
                    if not (isinstance(item, dict) and "only" in item
                            and type_name not in item["only"])]
        if isinstance(node, dict):
            return {key: (value if key == "only" else self.tree(value, type_name))
                    for key, value in node.items()}
        return node


def localised(content: Content, type_name: str, protocol: Protocol, brand: Brand) -> dict[str, Any]:
    """The content for one type, language, protocol and brand, ready for templates."""
    values = setting_values(protocol, brand, content.language)
    type_table = content.data["types"][type_name]
    values.update({k: v for k, v in type_table.items() if isinstance(v, str)})
    localiser = Localiser(values, f"content {content.language}")
    return {name: localiser.tree(content.data[name], type_name) for name in CONTENT_FILES}
