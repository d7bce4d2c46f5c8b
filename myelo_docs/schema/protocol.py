"""Hospital protocol settings: the numbers and choices hospitals set differently.

A choice is a ``Literal`` field; patient text may print a sentence only for
one choice (``when = { position = "raised" }`` in the content files), and
``choices()`` lists them for that check.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from myelo_docs.assets import default_protocol_file
from myelo_docs.schema.errors import ConfigError
from myelo_docs.schema.messages import invalid, problem, title
from myelo_docs.schema.problems import counted
from myelo_docs.schema.settings_file import read_toml, validate_settings

# A medicine's name: the same text in every language, or one per language
# ({"en": ..., "es": ...}; "en" is used for a language not given).
LocalName = str | dict[str, str]
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

# Keys of older protocol files: renamed ones are read under their new name,
# retired ones are an error that says why (key -> its entry in messages.toml).
RENAMED = {"head_raised_hours": "position_hours"}
RETIRED = {"head_degrees": "protocol_head_degrees"}


class Protocol(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, max_length=80)
    fever_f: float = counted("°F", ge=99.0, le=102.5)  # Fahrenheit; °C is worked out
    rest_hours: int = counted("hours", ge=1, le=168)
    recovery_minutes: int = counted("minutes", ge=10, le=480)
    test_minutes_low: int = counted("minutes", ge=5, le=240)
    test_minutes_high: int = counted("minutes", ge=5, le=480)
    no_driving_hours: int = counted("hours", ge=1, le=168)
    fasting: Literal["hours", "midnight", "none"]
    fasting_hours: int = counted("hours", ge=1, le=24)  # used when fasting = "hours"
    position: Literal["raised", "flat", "none"]
    position_hours: int = counted("hours", ge=1, le=168)  # how long the position rule lasts
    head_pillows: int = counted("pillows", ge=1, le=5)
    no_lifting_hours: int = counted("hours", ge=1, le=336)
    fluid_glasses_low: int = counted("glasses", ge=1, le=20)
    fluid_glasses_high: int = counted("glasses", ge=1, le=20)
    fluid_days: int = counted("days", ge=1, le=7)
    no_alcohol_hours: int = counted("hours", ge=1, le=168)
    bandage_hours: int = counted("hours", ge=1, le=168)
    shower: Literal["after_bandage", "hours"]
    shower_hours: int = counted("hours", ge=1, le=168)  # used when shower = "hours"
    no_soaking_hours: int = counted("hours", ge=1, le=336)
    headache_call_hours: int = counted("hours", ge=1, le=168)
    metformin: Literal["keep", "hold"]
    metformin_hold_hours: int = counted("hours", ge=1, le=168)  # used when metformin = "hold"
    seizure_medicine_plan: Literal["list", "ask"]
    seizure_stop_hours: int = counted("hours", ge=1, le=336)
    seizure_restart_hours: int = counted("hours", ge=1, le=336)
    seizure_medicines: tuple[LocalName, ...] = Field(max_length=12)
    safe_pain_medicine: LocalName
    cervical_route: Literal["lower_back", "neck"]

    @field_validator("seizure_medicines", mode="before")
    @classmethod
    def _medicine_names(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise invalid("protocol_medicines_not_list")
        return tuple(_local_name(item, f"seizure_medicines #{n}")
                     for n, item in enumerate(value, start=1))

    @field_validator("safe_pain_medicine", mode="before")
    @classmethod
    def _pain_medicine(cls, value: Any) -> Any:
        return _local_name(value, "safe_pain_medicine")

    @model_validator(mode="after")
    def _consistent(self) -> Protocol:
        for low, high in (("test_minutes_low", "test_minutes_high"),
                          ("fluid_glasses_low", "fluid_glasses_high")):
            if getattr(self, low) > getattr(self, high):
                raise invalid("protocol_range_reversed", field=low, low=low, high=high)
        if self.shower == "hours" and self.shower_hours < self.bandage_hours:
            raise invalid("protocol_shower_before_bandage", field="shower_hours",
                          bandage_hours=self.bandage_hours)
        if self.seizure_medicine_plan == "list" and not self.seizure_medicines:
            raise invalid("protocol_no_seizure_medicines", field="seizure_medicines")
        return self

    @property
    def fever_c(self) -> float:
        return round((self.fever_f - 32) * 5 / 9, 1)


def _local_name(value: Any, field: str) -> str | dict[str, str]:
    """A name as given, checked: non-empty text, or a table of language -> text with "en"."""
    if isinstance(value, str):
        if not value.strip() or len(value) > 80:
            raise invalid("medicine_name_empty" if not value.strip() else "medicine_name_long",
                          field=field)
        return value.strip()
    if isinstance(value, dict):
        for language, name in value.items():
            if not _LANGUAGE.match(str(language)):
                raise invalid("medicine_language_code", field=field, language=language)
            if not isinstance(name, str) or not name.strip() or len(name) > 80:
                raise invalid("medicine_name_not_short", field=field, language=language)
        if "en" not in value:
            raise invalid("medicine_no_en", field=field)
        return {language: name.strip() for language, name in value.items()}
    raise invalid("medicine_name_shape", field=field)


def local_name(name: LocalName, language: str) -> str:
    """The name in ``language`` (its base language, then English)."""
    if isinstance(name, str):
        return name
    return name.get(language) or name.get(re.split(r"[-_]", language)[0]) or name["en"]


def choices() -> dict[str, tuple[str, ...]]:
    """Each choice setting and its choices: {"position": ("raised", "flat", "none"), ...}."""
    hints = typing.get_type_hints(Protocol)
    return {name: typing.get_args(hint) for name, hint in hints.items()
            if typing.get_origin(hint) is Literal}


def load_protocol(path: str | Path | None = None) -> Protocol:
    """The built-in defaults, overridden by the keys of a hospital's file.

    Raises ConfigError naming the file's key, the problem and the fix.
    """
    data = read_toml(default_protocol_file(), "protocol")
    if path is not None:
        data.update(_renamed(read_toml(Path(path), "protocol")))
    return validate_settings(Protocol, data, "protocol")


def _renamed(data: dict[str, Any]) -> dict[str, Any]:
    problems = [problem(message, f"protocol {key}")
                for key, message in RETIRED.items() if key in data]
    for old, new in RENAMED.items():
        if old in data and new in data:
            problems.append(problem("protocol_renamed_both", f"protocol {old}", new=new))
        elif old in data:
            data = {(new if key == old else key): value for key, value in data.items()}
    if problems:
        raise ConfigError(title("settings_invalid", what="protocol"), problems)
    return data
