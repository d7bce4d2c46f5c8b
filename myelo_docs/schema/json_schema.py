"""The JSON Schema of a packet record, generated from the model.

Other systems can validate a record before they send it. The schema comes
from ``PacketRecord`` itself, so it cannot drift from what we accept; the
descriptions below only explain the fields (the limits come from the model).
"""

from __future__ import annotations

from typing import Any

from myelo_docs.schema.languages import available_languages
from myelo_docs.schema.record import PacketRecord

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_DESCRIPTIONS = {
    "type": ("Which part of the spine was examined; for a test of several parts, all of "
             "them: a list ([\"cervical\", \"lumbar\"]) or joined with + "
             "(\"cervical+lumbar\"), in any order."),
    "patient_name": "The patient's full name, as on their wristband.",
    "date_of_birth": "Date of birth, YYYY-MM-DD; not in the future, not before 1900.",
    "mrn": "Medical record number, printed as given.",
    "procedure_date": "Date of the myelogram, YYYY-MM-DD; not before the date of birth.",
    "physician": "The doctor who did the test.",
    "nurse": "The discharging nurse.",
    "follow_up": "Follow-up appointment or plan.",
    "instructions": "Extra recovery instructions from the care team.",
    "medications": "Medicines and what to do with each one.",
    "large_print": "true for 18 pt text.",
}


def record_schema(ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the record that /v1/packets and --input take.

    ``ref_template`` places the nested models elsewhere (OpenAPI keeps them
    under ``#/components/schemas/``).
    """
    schema = PacketRecord.model_json_schema(ref_template=ref_template)
    properties = schema["properties"]
    for name, text in _DESCRIPTIONS.items():
        properties[name]["description"] = text
    languages = available_languages()
    properties["language"]["description"] = (
        "Language of the packet; this installation has: " + ", ".join(languages) + "."
    )
    properties["language"]["examples"] = languages
    return {"$schema": SCHEMA_DIALECT, **schema}
