"""Hospital protocol settings: the numbers hospitals set differently."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from myelo_docs.assets import default_protocol_file
from myelo_docs.schema.problems import counted, user_error
from myelo_docs.schema.settings_file import read_toml, validate_settings


class Protocol(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, max_length=80)
    fever_f: float = counted("°F", ge=99.0, le=102.5)  # Fahrenheit; °C is worked out
    rest_hours: int = counted("hours", ge=1, le=168)
    recovery_minutes: int = counted("minutes", ge=10, le=480)
    test_minutes_low: int = counted("minutes", ge=5, le=240)
    test_minutes_high: int = counted("minutes", ge=5, le=480)
    no_driving_hours: int = counted("hours", ge=1, le=168)
    fasting_hours: int = counted("hours", ge=1, le=24)  # the text says "do not eat for N hours"
    head_raised_hours: int = counted("hours", ge=1, le=168)
    head_pillows: int = counted("pillows", ge=1, le=5)
    head_degrees: int = counted("degrees", ge=10, le=60)
    no_lifting_hours: int = counted("hours", ge=1, le=336)
    fluid_glasses_low: int = counted("glasses", ge=1, le=20)
    fluid_glasses_high: int = counted("glasses", ge=1, le=20)
    fluid_days: int = counted("days", ge=1, le=7)
    no_alcohol_hours: int = counted("hours", ge=1, le=168)
    bandage_hours: int = counted("hours", ge=1, le=168)
    headache_call_hours: int = counted("hours", ge=1, le=168)

    @model_validator(mode="after")
    def _ranges_in_order(self) -> Protocol:
        for low, high in (("test_minutes_low", "test_minutes_high"),
                          ("fluid_glasses_low", "fluid_glasses_high")):
            if getattr(self, low) > getattr(self, high):
                raise user_error(f"is more than {high}",
                                 f"make {low} at most {high} (a range: low, then high)",
                                 field=low)
        return self

    @property
    def fever_c(self) -> float:
        return round((self.fever_f - 32) * 5 / 9, 1)


def load_protocol(path: str | Path | None = None) -> Protocol:
    """The built-in defaults, overridden by the keys of a hospital's file."""
    data = read_toml(default_protocol_file(), "protocol")
    if path is not None:
        data.update(read_toml(Path(path), "protocol"))
    return validate_settings(Protocol, data, "protocol")
