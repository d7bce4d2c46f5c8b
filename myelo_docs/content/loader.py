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

from babel import localedata
from babel.dates import format_date
from babel.lists import format_list
from babel.numbers import format_decimal
from babel.units import format_unit
from markupsafe import Markup, escape

from myelo_docs.schema.brand import Brand
from myelo_docs.schema.errors import ConfigError, Problem
from myelo_docs.schema.languages import language_folders
from myelo_docs.schema.messages import error, problem, title
from myelo_docs.schema.protocol import Protocol, choices, local_name
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
    # A site's text files applied over ours (content/overrides.py), and their folder.
    overrides: tuple[Path, ...] = ()
    overrides_root: Path | None = None

    @property
    def last_reviewed(self) -> date:
        return self.data["labels"]["meta"]["last_reviewed"]


@cache
def load_content(language: str, extra_dir: Path | None = None) -> Content:
    """One language's text as we ship it (or from ``extra_dir``, a hospital's folder
    for check-content). A site's text layered over ours: content/overrides.py
    ``content_for``. ConfigError names the file and key of any problem."""
    folders = language_folders(extra_dir)
    if language not in folders:
        raise error(ConfigError, "content_no_language", "language", language=language,
                    known=", ".join(sorted(folders)))
    folder = folders[language]
    data = {name: read_toml(folder / f"{name}.toml", f"content {language}/{name}")
            for name in CONTENT_FILES}
    problems = _check_types(data["types"], language)
    if problems:
        raise ConfigError(title("content_problems", language=language), problems)
    return Content(language=language, folder=folder, data=data)


def _check_types(types: dict[str, Any], language: str) -> list[Problem]:
    problems = []
    from myelo_docs.schema.record import ALL_TYPES

    for type_name in (t.value for t in ALL_TYPES):  # the parts, then their combinations
        table = types.get(type_name)
        if table is None:
            problems.append(problem("content_type_missing", f"content {language}/types.toml",
                                    type=type_name, keys=", ".join(TYPE_KEYS)))
            continue
        for key in TYPE_KEYS:
            if key not in table:
                problems.append(problem("content_type_key_missing",
                                        f"content {language}/types.toml [{type_name}]",
                                        key=key, type=type_name))
    return problems


def locale_for(language: str, country: str) -> str:
    """The CLDR locale a packet's numbers and dates are written in: its language as
    written in the hospital's country (es + US -> "es_US": 100.0 °F) when CLDR has
    that, else the language alone (es + GB -> "es")."""
    both = f"{language}_{country}"
    return both if localedata.exists(both) else language


def number(value: float, locale: str, decimals: int = 0) -> str:
    """A number as ``locale`` writes it, with exactly ``decimals`` decimals:
    100.0 (es_US), 100,0 (es_ES), 1,000 (en_US)."""
    return format_decimal(value, "#,##0" + ("." + "0" * decimals if decimals else ""),
                          locale=locale)


def long_date(day: date, locale: str) -> str:
    """A date with the month in words, so day and month cannot be confused:
    "July 14, 1958" (en_US), "14 July 1958" (en_GB), "14 de julio de 1958" (es_US)."""
    return format_date(day, format="long", locale=locale)


def _hours(value: int, locale: str) -> str:
    if value % 24 == 0 and value >= 48:
        return format_unit(value // 24, "duration-day", length="long", locale=locale)
    return format_unit(value, "duration-hour", length="long", locale=locale)


def setting_values(protocol: Protocol, brand: Brand, locale: str) -> dict[str, str]:
    """Formatted setting values, keyed by the placeholder names content may use;
    ``brand``: in the packet's language (Brand.for_language); ``locale``: locale_for's."""
    language = locale.split("_")[0]
    fever = (f"{number(protocol.fever_f, locale, 1)} °F "
             f"({number(protocol.fever_c, locale, 1)} °C)")
    minutes = protocol.recovery_minutes
    recovery = (format_unit(minutes // 60, "duration-hour", length="long", locale=locale)
                if minutes % 60 == 0 else
                format_unit(minutes, "duration-minute", length="long", locale=locale))
    return {
        "fever": fever,
        "rest_time": _hours(protocol.rest_hours, locale),
        "no_driving_time": _hours(protocol.no_driving_hours, locale),
        "fasting_time": _hours(protocol.fasting_hours, locale),
        "position_time": _hours(protocol.position_hours, locale),
        "shower_time": _hours(protocol.shower_hours, locale),
        "no_soaking_time": _hours(protocol.no_soaking_hours, locale),
        "metformin_hold_time": _hours(protocol.metformin_hold_hours, locale),
        "seizure_stop_time": _hours(protocol.seizure_stop_hours, locale),
        "seizure_restart_time": _hours(protocol.seizure_restart_hours, locale),
        "seizure_medicines": format_list(
            [local_name(name, language) for name in protocol.seizure_medicines],
            style="or", locale=locale),
        "safe_pain_medicine": local_name(protocol.safe_pain_medicine, language),
        "no_lifting_time": _hours(protocol.no_lifting_hours, locale),
        "no_alcohol_time": _hours(protocol.no_alcohol_hours, locale),
        "bandage_time": _hours(protocol.bandage_hours, locale),
        "headache_call_time": _hours(protocol.headache_call_hours, locale),
        "recovery_time": recovery,
        "fluid_time": format_unit(protocol.fluid_days, "duration-day", length="long",
                                  locale=locale),
        "test_minutes_low": number(protocol.test_minutes_low, locale),
        "test_minutes_high": number(protocol.test_minutes_high, locale),
        "pillows": number(protocol.head_pillows, locale),
        "fluid_glasses_low": number(protocol.fluid_glasses_low, locale),
        "fluid_glasses_high": number(protocol.fluid_glasses_high, locale),
        "hospital": brand.hospital_name,
        "department_phone": brand.department_phone,
        "after_hours_phone": brand.after_hours_phone,
        "emergency_number": brand.emergency_number,
    }


class Localiser:
    """Turns content strings into safe markup with every placeholder filled."""

    def __init__(self, values: dict[str, str], where: str,
                 chosen: dict[str, str] | None = None):
        self.values = values
        self.where = where
        self.chosen = chosen or {}  # the protocol's choices, for `when`

    def text(self, raw: str) -> Markup:
        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in self.values:
                raise error(ConfigError, "content_unknown_placeholder", self.where, key=key,
                            known=", ".join(sorted(self.values)))
            return self.values[key]

        filled = _PLACEHOLDER.sub(fill, raw)
        return Markup(_BOLD.sub(r"<strong>\1</strong>", str(escape(filled))))

    def tree(self, node: Any, type_name: str) -> Any:
        """Localise a nested structure; drop blocks not meant for this type or for
        the protocol's choices (``when``); a list item ``{text, when}`` becomes its text."""
        if isinstance(node, str):
            return self.text(node)
        if isinstance(node, list):
            # `only` names parts of the spine: kept when the test covers any of them.
            parts = set(type_name.split("+"))
            return [self.tree(item, type_name) for item in node
                    if not (isinstance(item, dict) and "only" in item
                            and not parts & set(item["only"])) and self.wanted(item)]
        if isinstance(node, dict):
            if "text" in node and set(node) <= {"text", "when", "only"}:
                return self.text(node["text"])
            return {key: (value if key == "only" else self.tree(value, type_name))
                    for key, value in node.items() if key != "when"}
        return node

    def wanted(self, item: Any) -> bool:
        """False for an item whose ``when`` names other choices than the protocol's."""
        if not isinstance(item, dict) or "when" not in item:
            return True
        known = choices()
        when = item["when"]
        if not isinstance(when, dict):
            raise error(ConfigError, "content_when_not_table", self.where, when=repr(when))
        for key, wanted in when.items():
            options = [wanted] if isinstance(wanted, str) else wanted
            if key not in known:
                raise error(ConfigError, "content_when_unknown", self.where, key=key,
                            known=", ".join(known))
            if (not isinstance(options, list) or not options
                    or any(option not in known[key] for option in options)):
                raise error(ConfigError, "content_when_not_a_choice", self.where, key=key,
                            wanted=repr(wanted), choices=" or ".join(map(repr, known[key])))
            if self.chosen.get(key) not in options:
                return False
        return True


def localised(content: Content, type_name: str, protocol: Protocol, brand: Brand) -> dict[str, Any]:
    """The content for one type, language, protocol and brand, ready for templates."""
    brand = brand.for_language(content.language)
    values = setting_values(protocol, brand, locale_for(content.language, brand.country))
    type_table = content.data["types"][type_name]
    values.update({k: v for k, v in type_table.items() if isinstance(v, str)})
    chosen = {key: getattr(protocol, key) for key in choices()}
    return {name: Localiser(values, f"content {content.language}/{name}.toml", chosen)
            .tree(content.data[name], type_name) for name in CONTENT_FILES}
