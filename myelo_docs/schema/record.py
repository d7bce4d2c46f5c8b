"""The patient record: one model, one set of field names for every front end.

The field names are a public contract shared by JSON keys, CSV headers, HTTP
bodies and this model. Limits are documented in the README.
"""

from __future__ import annotations

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
    WithJsonSchema,
    field_validator,
    model_validator,
)

from myelo_docs.schema import intake
from myelo_docs.schema.damaged import damage
from myelo_docs.schema.errors import RecordError
from myelo_docs.schema.intake import IntakeSettings
from myelo_docs.schema.messages import did_you_mean, error, invalid, phrase, title
from myelo_docs.schema.problems import Code, problems_from

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
    """One part of the spine, and the type of a myelogram of that part alone."""

    cervical = "cervical"
    thoracic = "thoracic"
    lumbar = "lumbar"

    @property
    def regions(self) -> tuple[MyelogramType, ...]:
        return (self,)


REGION_JOIN = "+"


class MultiRegionType(StrEnum):
    """A myelogram of two or more parts of the spine in one test (CPT 62305).

    The value is the canonical key, the parts in spine order joined by ``+``
    ("cervical+lumbar"): what file names, content tables (types.toml), the
    drawing (images/spine-<value>.svg), provenance and template caches key on,
    as they key on a single type's value.
    """

    cervical_thoracic = "cervical+thoracic"
    cervical_lumbar = "cervical+lumbar"
    thoracic_lumbar = "thoracic+lumbar"
    cervical_thoracic_lumbar = "cervical+thoracic+lumbar"

    @property
    def regions(self) -> tuple[MyelogramType, ...]:
        return tuple(MyelogramType(part) for part in self.value.split(REGION_JOIN))


ExamType = MyelogramType | MultiRegionType
# Every value a record's type can take: the single parts first, in spine order.
ALL_TYPES: tuple[ExamType, ...] = (*MyelogramType, *MultiRegionType)


def exam_type(regions: Any) -> ExamType:
    """The type for a set of parts of the spine, in any order: {lumbar, cervical} ->
    MultiRegionType.cervical_lumbar, {lumbar} -> MyelogramType.lumbar.
    Raises ValueError for no part."""
    parts = [r for r in MyelogramType if r in set(regions)]
    if not parts:
        raise ValueError("no part of the spine")
    if len(parts) == 1:
        return parts[0]
    return MultiRegionType(REGION_JOIN.join(parts))


def parse_type(value: Any) -> ExamType:
    """A record's type from what a user gave: a type, "Lumbar", "lumbar + cervical"
    (flags, CSV) or a JSON list ["lumbar", "cervical"]; the parts are put in spine
    order (cervical, thoracic, lumbar). A part named twice is refused, not folded:
    "lumbar+lumbar" is more likely a slip for another part than meant.
    Raises a PydanticCustomError (Code.not_a_type) naming the fix; never echoes the value."""
    if isinstance(value, MyelogramType | MultiRegionType):
        return value
    if isinstance(value, str):
        parts: list[Any] = value.split(REGION_JOIN)
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        raise invalid("type_unknown", hint="", code=Code.not_a_type)
    if not parts or (len(parts) == 1 and not str(parts[0]).strip()):
        raise invalid("type_no_part", code=Code.not_a_type)
    found: list[MyelogramType] = []
    for number, part in enumerate(parts, start=1):
        word = part.strip().lower() if isinstance(part, str) else ""
        if word not in MyelogramType.__members__:
            # the value is not echoed: a shifted CSV column could be a name
            hint = did_you_mean(word, MyelogramType.__members__, cutoff=0.75)
            if len(parts) > 1:
                raise invalid("type_unknown_part", number=number, hint=hint,
                              code=Code.not_a_type)
            raise invalid("type_unknown", hint=hint, code=Code.not_a_type)
        region = MyelogramType(word)
        if region in found:
            raise invalid("type_part_twice", part=region.value, code=Code.not_a_type)
        found.append(region)
    return exam_type(found)


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
        raise invalid("text_starts_with_mark", codepoint=f"{ord(value[0]):04X}",
                      code=Code.starts_with_mark)
    for i, ch in enumerate(value):
        category = unicodedata.category(ch)
        if i and category.startswith("M") and value[i - 1] == ch:
            # Drawn twice at one place: the text layer keeps one, or a wrong letter.
            raise invalid("text_mark_twice", codepoint=f"{ord(ch):04X}", code=Code.mark_twice)
        if ch in _BIDI_CONTROLS:
            raise invalid("text_direction_override", codepoint=f"{ord(ch):04X}",
                          code=Code.direction_override)
        if ch == _SOFT_HYPHEN:
            raise invalid("text_soft_hyphen", code=Code.soft_hyphen)
        if category in ("Cc", "Cs", "Co", "Cn"):
            raise invalid("text_control_character", codepoint=f"{ord(ch):04X}",
                          code=Code.control_character)
    found = damage(value, name=name)
    if found is not None:
        raise invalid("text_damaged", damage=phrase(found.value), code=Code.damaged_text)
    return value


def clean_name(value: Any) -> Any:
    return clean_text(value, name=True)


def parse_iso_date(value: Any) -> Any:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value.strip()):
        raise invalid("date_not_iso", code=Code.not_a_date)
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise invalid("date_not_real", code=Code.not_real_date) from None


Text = Annotated[str, BeforeValidator(clean_text)]
Name = Annotated[str, BeforeValidator(clean_name)]  # names and identifiers
IsoDate = Annotated[date, BeforeValidator(parse_iso_date)]


# One part, several joined in spine order, or a JSON list of parts.
_TYPE_SCHEMA: dict[str, Any] = {"anyOf": [
    {"type": "string", "enum": [t.value for t in ALL_TYPES]},
    {"type": "array", "items": {"type": "string", "enum": [t.value for t in MyelogramType]},
     "minItems": 1, "maxItems": len(MyelogramType), "uniqueItems": True},
]}


class Medication(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name = Field(min_length=1, max_length=MAX_NAME)
    instruction: Text = Field(min_length=1, max_length=MAX_FREE_TEXT)


class PacketRecord(BaseModel):
    """Everything the discharge packet says about one patient."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Annotated[ExamType, WithJsonSchema(_TYPE_SCHEMA)]
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
        return parse_type(value)

    @field_validator("mrn", mode="after")
    @classmethod
    def _mrn_all_visible(cls, value: str) -> str:
        # "123<zero-width space>456" prints as 123456 but is another MRN to a
        # chart system reading the page's code or a nurse typing what they see.
        if any(unicodedata.category(ch) == "Cf" for ch in value):
            raise invalid("mrn_invisible", code=Code.invisible_character)
        if _EXCEL_SCIENTIFIC.fullmatch(value):
            raise invalid("mrn_excel_scientific", code=Code.mrn_excel_scientific)
        if _EXCEL_DECIMAL.fullmatch(value):
            raise invalid("mrn_excel_decimal", code=Code.mrn_decimal)
        return value

    @field_validator("physician", "nurse", "follow_up", mode="after")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("language", mode="before")
    @classmethod
    def _known_language(cls, value: Any) -> Any:
        from myelo_docs.schema.languages import available_languages

        if not isinstance(value, str):
            return value
        value = language_code(value) or "en"
        languages = available_languages()
        if value not in languages:
            raise invalid("language_no_text", known=", ".join(sorted(languages)),
                          code=Code.bad_language)
        return value

    @field_validator("date_of_birth", mode="after")
    @classmethod
    def _not_future(cls, value: date) -> date:
        if value > intake.today():
            raise invalid("birth_in_future", code=Code.future_date)
        if value.year < 1900:
            raise invalid("birth_before_1900", code=Code.before_1900)
        return value

    @model_validator(mode="after")
    def _born_before_test(self) -> PacketRecord:
        if self.procedure_date < self.date_of_birth:
            raise invalid("test_before_birth", code=Code.test_before_birth)
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
    procedure date window, the MRN pattern and the offered languages; its
    large-print default fills a record that does not say. Raises RecordError listing
    every problem at once.
    """
    intake = intake or IntakeSettings()
    if intake.large_print:  # the site's default, for a record that does not say
        if isinstance(data, dict) and "large_print" not in data:
            data = {**data, "large_print": True}
        elif isinstance(data, PacketRecord) and "large_print" not in data.model_fields_set:
            data = data.model_copy(update={"large_print": True})
    record = record_model(data)
    problems = intake.problems(record)
    if problems:
        raise RecordError(title("record_problems"), problems)
    return record


def record_model(data: Any) -> PacketRecord:
    """The model's checks only, without the intake settings' (for a record that was
    accepted by validate_record in another process). Raises RecordError."""
    if isinstance(data, PacketRecord):
        return data
    if not isinstance(data, dict):
        raise error(RecordError, "record_not_object", "record")
    try:
        return PacketRecord.model_validate(data)
    except ValidationError as exc:
        raise RecordError(title("record_problems"),
                          problems_from(exc, RECORD_FIELDS, model=PacketRecord)) from None
