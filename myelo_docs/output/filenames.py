"""File names for batch output: never a path, never a clash, no patient data by default."""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Any

from myelo_docs.output.files import record_key
from myelo_docs.schema.errors import RecordError
from myelo_docs.schema.messages import error
from myelo_docs.schema.record import PacketRecord

DEFAULT_PATTERN = "packet-{procedure_date}-{key}"
MAX_NAME_LENGTH = 120
PATTERN_FIELDS = ("row", "key", "type", "procedure_date", "mrn", "patient_name",
                  "date_of_birth", "language")
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]+')
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}


def check_pattern(pattern: str) -> None:
    """Refuse a --name-pattern with unknown or malformed fields before any work."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None]
    except ValueError as exc:
        raise error(RecordError, "name_pattern_malformed", "--name-pattern", detail=exc) from None
    unknown = [f for f in fields if f.split(":")[0] not in PATTERN_FIELDS]
    if unknown or not fields:
        known = ", ".join("{" + f + "}" for f in PATTERN_FIELDS)
        if unknown:
            raise error(RecordError, "name_pattern_unknown", "--name-pattern", known=known,
                        fields=", ".join("{" + f + "}" for f in unknown))
        raise error(RecordError, "name_pattern_empty", "--name-pattern", known=known)


def sanitise(name: str) -> str:
    """A name that is one plain file inside the output folder on any system."""
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name)
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"\s+", " ", name).strip(" ._")
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        name = "_" + name
    encoded = name.encode("utf-8")[:MAX_NAME_LENGTH]
    return encoded.decode("utf-8", errors="ignore").rstrip(" ._")


def file_name(pattern: str, row: int, record: PacketRecord) -> str:
    values: dict[str, Any] = {
        "row": row,
        "key": record_key(record),
        "type": record.type.value,
        "procedure_date": record.procedure_date.isoformat(),
        "mrn": record.mrn,
        "patient_name": record.patient_name,
        "date_of_birth": record.date_of_birth.isoformat(),
        "language": record.language,
    }
    stem = sanitise(pattern.format(**values))
    if not stem:
        stem = f"row-{row}-{values['key']}"
    return stem + ".pdf"
