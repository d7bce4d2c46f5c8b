"""The nurse's page: a plain HTML form that works without JavaScript.

The form posts to ``/``. A good form answers with the packet PDF; a form with
problems comes back with every typed value kept and each problem next to its
field. "Add a row" buttons are ordinary submit buttons, so adding medicine
rows needs no script either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from babel import Locale

from .. import __version__
from ..brand import Brand
from ..content import available_languages, load_content
from ..errors import Problem
from ..record import MAX_INSTRUCTIONS, MAX_MEDICATIONS

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
TYPES = ("cervical", "thoracic", "lumbar")
TEXT_FIELDS = ("patient_name", "date_of_birth", "mrn", "procedure_date", "physician", "nurse",
               "follow_up")
START_MEDICINE_ROWS = 3
START_INSTRUCTION_ROWS = 2

LABELS = {
    "type": "Type of myelogram",
    "patient_name": "Patient's full name",
    "date_of_birth": "Date of birth",
    "mrn": "Medical record number (MRN)",
    "procedure_date": "Date of the myelogram",
    "physician": "Doctor who did the test",
    "nurse": "Discharging nurse",
    "follow_up": "Follow-up appointment or plan",
    "language": "Language of the packet",
    "large_print": "Large print",
}


def label(form_id: str) -> str:
    if form_id.startswith("instruction_"):
        return f"Extra instruction {form_id.rsplit('_', 1)[1]}"
    if form_id.startswith("med_name_"):
        return f"Medicine {form_id.rsplit('_', 1)[1]} name"
    if form_id.startswith("med_instruction_"):
        return f"Medicine {form_id.rsplit('_', 1)[1]} instruction"
    return LABELS.get(form_id, form_id)


@dataclass
class FormState:
    """What the nurse typed, exactly as typed, and how many rows the form shows."""

    values: dict[str, str] = field(default_factory=dict)
    medicine_rows: int = START_MEDICINE_ROWS
    instruction_rows: int = START_INSTRUCTION_ROWS
    action: str = "print"

    @classmethod
    def from_body(cls, body: bytes) -> FormState:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)

        def one(name: str) -> str:
            return fields.get(name, [""])[0]

        def rows(name: str, start: int, most: int) -> int:
            try:
                return min(max(int(one(name)), 1), most)
            except ValueError:
                return start

        state = cls(medicine_rows=rows("medicine_rows", START_MEDICINE_ROWS, MAX_MEDICATIONS),
                    instruction_rows=rows("instruction_rows", START_INSTRUCTION_ROWS,
                                          MAX_INSTRUCTIONS),
                    action=one("action") or "print")
        names = ["type", "language", "large_print", *TEXT_FIELDS]
        names += [f"instruction_{i}" for i in range(1, state.instruction_rows + 1)]
        for i in range(1, state.medicine_rows + 1):
            names += [f"med_name_{i}", f"med_instruction_{i}"]
        state.values = {name: one(name) for name in names if name in fields}
        if state.action == "add_medicine" and state.medicine_rows < MAX_MEDICATIONS:
            state.medicine_rows += 1
        if state.action == "add_instruction" and state.instruction_rows < MAX_INSTRUCTIONS:
            state.instruction_rows += 1
        return state

    def record_data(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The record to validate, and which form field each record field came from."""
        v = self.values
        data: dict[str, Any] = {k: v[k] for k in ("type", *TEXT_FIELDS) if v.get(k, "").strip()}
        data["language"] = v.get("language") or "en"
        data["large_print"] = bool(v.get("large_print"))
        where = {k: k for k in ("type", "language", *TEXT_FIELDS)}
        where["record"] = "procedure_date"  # the one whole-record check: test before birth
        data["instructions"] = []
        for row in range(1, self.instruction_rows + 1):
            text = v.get(f"instruction_{row}", "")
            if text.strip():
                data["instructions"].append(text)
                where[f"instructions #{len(data['instructions'])}"] = f"instruction_{row}"
        data["medications"] = []
        for row in range(1, self.medicine_rows + 1):
            name, how = v.get(f"med_name_{row}", ""), v.get(f"med_instruction_{row}", "")
            if name.strip() or how.strip():
                data["medications"].append({"name": name, "instruction": how})
                n = len(data["medications"])
                where.update({f"medications #{n}": f"med_name_{row}",
                              f"medications #{n} name": f"med_name_{row}",
                              f"medications #{n} instruction": f"med_instruction_{row}"})
        return data, where


class NursePage:
    """Renders the form for one brand."""

    def __init__(self, brand: Brand):
        self.brand = brand
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                      undefined=jinja2.StrictUndefined, trim_blocks=True,
                                      lstrip_blocks=True)
        types = load_content("en").data["types"]
        self.types = [(t, types[t]["title"], types[t]["region"]) for t in TYPES]
        self.languages = [(code, Locale.parse(code).get_display_name(code).capitalize())
                          for code in available_languages()]

    def html(self, state: FormState, problems: list[Problem] | None = None,
             where: dict[str, str] | None = None, notice: str | None = None,
             focus: str | None = None) -> str:
        errors: dict[str, list[str]] = {}
        summary = []
        for p in problems or []:
            form_id = (where or {}).get(p.field)
            text = f"{p.problem[:1].upper()}{p.problem[1:]}. {p.fix[:1].upper()}{p.fix[1:]}."
            if form_id:
                errors.setdefault(form_id, []).append(text)
                anchor = f"type-{TYPES[0]}" if form_id == "type" else form_id
                summary.append({"anchor": anchor, "text": f"{label(form_id)}: {text}"})
            else:
                summary.append({"anchor": None, "text": text})
        return self.env.get_template("nurse.html.j2").render(
            brand=self.brand, form=state, values=state.values, errors=errors, summary=summary,
            types=self.types, languages=self.languages, label=label, notice=notice,
            focus=focus, max_medicines=MAX_MEDICATIONS, max_instructions=MAX_INSTRUCTIONS,
            version=__version__)

    def brand_css(self) -> str:
        return (f":root {{ --primary: {self.brand.primary_colour}; "
                f"--accent: {self.brand.accent_colour}; }}\n")
