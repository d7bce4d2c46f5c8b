"""The patient record: one model, one set of field names for every front end.

The field names are a public contract shared by JSON keys, CSV headers, HTTP
bodies and this model. Limits are documented in the README.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from myelo_docs.schema import intake
from myelo_docs.schema.damaged import FIX as DAMAGE_FIX
from myelo_docs.schema.damaged import damage
from myelo_docs.schema.errors import Problem, RecordError
from myelo_docs.schema.intake import IntakeSettings
from myelo_docs.schema.problems import Code, problems_from, user_error

MAX_NAME = 120
MAX_MRN = 40
MAX_FREE_TEXT = 300
MAX_FOLLOW_UP = 500
MAX_INSTRUCTIONS = 15
MAX_MEDICATIONS = 25

# Characters that reorder or hide text. A patient name drawn backwards is a
# wrong identifier, so these are refused rather than drawn.
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Invisible, but where a line breaks at it a hyphen is drawn that is not in the
# value ("Smith-" / "Jones" for "SmithJones"): refused in every text.
_SOFT_HYPHEN = "\u00ad"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# What Excel does to a long number it thinks is numeric: 1.23457E+11, 123456.0
_EXCEL_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+")
_EXCEL_DECIMAL = re.compile(r"\d+[.,]0+")


class MyelogramType(StrEnum):
    cervical = "cervical"
    thoracic = "thoracic"
    lumbar = "lumbar"


EXCEL_MRN_FIX = ("in the spreadsheet, format the MRN column as Text, fill in the MRNs again "
                 "from the source system and export again")


_custom = user_error


def language_code(value: str) -> str:
    """The one rule for a language everywhere (record, flags, FHIR): a BCP-47 tag
    in any case, trimmed, with or without a region: es-MX, ' ES', es_US -> es."""
    return value.strip().lower().replace("_", "-").split("-")[0]


def clean_text(value: Any, name: bool = False) -> Any:
    """Normalise text and refuse characters that must never be printed.

    ``name``: a name or identifier, where any question mark is damage.
    """
    if not isinstance(value, str):
        return value
    value = unicodedata.normalize("NFC", value).strip()
    if value and unicodedata.category(value[0]).startswith("M"):
        raise _custom(
            f"starts with an accent or mark (U+{ord(value[0]):04X}) that has no letter",
            "type the letter and its accent together, or remove the mark",
            code=Code.starts_with_mark,
        )
    for i, ch in enumerate(value):
        category = unicodedata.category(ch)
        if i and category.startswith("M") and value[i - 1] == ch:
            # Drawn twice at one place: the text layer keeps one, or a wrong letter.
            raise _custom(
                f"has the same accent or mark (U+{ord(ch):04X}) twice in a row",
                "type the accent once", code=Code.mark_twice,
            )
        if ch in _BIDI_CONTROLS:
            raise _custom(
                f"contains a hidden direction-override character (U+{ord(ch):04X})",
                "retype the value without copying it from another program",
                code=Code.direction_override,
            )
        if ch == _SOFT_HYPHEN:
            raise _custom(
                "contains a soft hyphen (U+00AD), an invisible character that prints as "
                "a hyphen where a line breaks",
                "remove it, or retype the value without copying it from another program",
                code=Code.soft_hyphen,
            )
        if category in ("Cc", "Cs", "Co", "Cn"):
            raise _custom(
                f"contains a control or unassigned character (U+{ord(ch):04X})",
                "remove line breaks, tabs and invisible characters",
                code=Code.control_character,
            )
    found = damage(value, name=name)
    if found is not None:
        raise _custom(found.value, DAMAGE_FIX, code=Code.damaged_text)
    return value


def clean_name(value: Any) -> Any:
    return clean_text(value, name=True)


def parse_iso_date(value: Any) -> Any:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value.strip()):
        raise _custom(
            "is not a date in the form YYYY-MM-DD",
            "write the date like 1961-03-24 (year-month-day)", code=Code.not_a_date,
        )
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise _custom(
            "is not a real calendar date", "check the month and the day",
            code=Code.not_real_date,
        ) from None


Text = Annotated[str, BeforeValidator(clean_text)]
Name = Annotated[str, BeforeValidator(clean_name)]  # names and identifiers
IsoDate = Annotated[date, BeforeValidator(parse_iso_date)]


class Medication(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name = Field(min_length=1, max_length=MAX_NAME)
    instruction: Text = Field(min_length=1, max_length=MAX_FREE_TEXT)


class PacketRecord(BaseModel):
    """Everything the discharge packet says about one patient."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: MyelogramType
    patient_name: Name = Field(min_length=1, max_length=MAX_NAME)
    date_of_birth: IsoDate
    mrn: Name = Field(min_length=1, max_length=MAX_MRN)
    procedure_date: IsoDate
    physician: Annotated[Name, Field(max_length=MAX_NAME)] | None = None
    nurse: Annotated[Name, Field(max_length=MAX_NAME)] | None = None
    follow_up: Annotated[Text, Field(max_length=MAX_FOLLOW_UP)] | None = None
    instructions: list[Annotated[Text, Field(min_length=1, max_length=MAX_FREE_TEXT)]] = Field(
        default_factory=list, max_length=MAX_INSTRUCTIONS
    )
    medications: list[Medication] = Field(default_factory=list, max_length=MAX_MEDICATIONS)
    language: str = "en"
    large_print: bool = False

    @field_validator("type", mode="before")
    @classmethod
    def _type_any_case(cls, value: Any) -> Any:
        if isinstance(value, MyelogramType):
            return value
        if not isinstance(value, str) or value.strip().lower() not in MyelogramType.__members__:
            close = difflib.get_close_matches(str(value).strip().lower(),
                                              MyelogramType.__members__, n=1, cutoff=0.75)
            raise _custom(  # the value is not echoed: a shifted CSV column could be a name
                "is not a myelogram type",
                (f"did you mean {close[0]}? " if close else "")
                + "use cervical, thoracic or lumbar",
                code=Code.not_a_type,
            )
        return value.strip().lower()

    @field_validator("mrn", mode="after")
    @classmethod
    def _mrn_all_visible(cls, value: str) -> str:
        # "123<zero-width space>456" prints as 123456 but is another MRN to a
        # chart system reading the page's code or a nurse typing what they see.
        if any(unicodedata.category(ch) == "Cf" for ch in value):
            raise _custom("contains an invisible character",
                          "type the MRN again instead of copying it from another program",
                          code=Code.invisible_character)
        if _EXCEL_SCIENTIFIC.fullmatch(value):
            raise _custom("was changed by Excel into a rounded number in scientific notation "
                          "(like 1.23E+11), so the real MRN is lost", EXCEL_MRN_FIX,
                          code=Code.mrn_excel_scientific)
        if _EXCEL_DECIMAL.fullmatch(value):
            raise _custom("ends in a decimal part (like .0) that Excel adds when it treats "
                          "the MRN as a number", EXCEL_MRN_FIX, code=Code.mrn_decimal)
        return value

    @field_validator("physician", "nurse", "follow_up", mode="after")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("language", mode="before")
    @classmethod
    def _known_language(cls, value: Any) -> Any:
        from myelo_docs.content.loader import available_languages

        if not isinstance(value, str):
            return value
        value = language_code(value) or "en"
        languages = available_languages()
        if value not in languages:
            raise _custom(
                "is not a language we have patient text for",
                "use one of: " + ", ".join(sorted(languages)),
                code=Code.bad_language,
            )
        return value

    @field_validator("date_of_birth", mode="after")
    @classmethod
    def _not_future(cls, value: date) -> date:
        if value > intake.today():
            raise _custom("is in the future", "check the year of birth", code=Code.future_date)
        if value.year < 1900:
            raise _custom("is before 1900", "check the year of birth", code=Code.before_1900)
        return value

    @model_validator(mode="after")
    def _born_before_test(self) -> PacketRecord:
        if self.procedure_date < self.date_of_birth:
            raise _custom(
                "procedure_date is before date_of_birth",
                "check both dates (year-month-day)", code=Code.test_before_birth,
            )
        return self


RECORD_FIELDS: tuple[str, ...] = tuple(PacketRecord.model_fields)


def text_fields(record: PacketRecord) -> dict[str, str]:
    """Every printed free-text value, keyed by the name errors should use."""
    fields = {"patient_name": record.patient_name, "mrn": record.mrn}
    for key in ("physician", "nurse", "follow_up"):
        value = getattr(record, key)
        if value:
            fields[key] = value
    for i, item in enumerate(record.instructions, start=1):
        fields[f"instructions #{i}"] = item
    for i, med in enumerate(record.medications, start=1):
        fields[f"medications #{i} name"] = med.name
        fields[f"medications #{i} instruction"] = med.instruction
    return fields


def validate_record(data: Any, intake: IntakeSettings | None = None) -> PacketRecord:
    """Validate raw data (a dict from JSON, CSV, HTTP...) into a record.

    Then the hospital's intake checks (``intake``, default: our defaults): the
    procedure date window and the MRN pattern. Raises RecordError listing
    every problem at once.
    """
    record = record_model(data)
    problems = (intake or IntakeSettings()).problems(record)
    if problems:
        raise RecordError("The patient record has problems", problems)
    return record


def record_model(data: Any) -> PacketRecord:
    """The model's checks only, without the intake settings' (for a record that was
    accepted by validate_record in another process). Raises RecordError."""
    if isinstance(data, PacketRecord):
        return data
    if not isinstance(data, dict):
        raise RecordError(
            "The record must be an object of fields",
            [Problem("record", "is not a JSON object", "give the fields as {\"type\": ...}")],
        )
    try:
        return PacketRecord.model_validate(data)
    except ValidationError as exc:
        raise RecordError("The patient record has problems",
                          problems_from(exc, RECORD_FIELDS, model=PacketRecord)) from None
