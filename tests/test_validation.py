"""Every field's bad value gets a message naming the field, the problem and the fix."""

from __future__ import annotations

import pytest

from conftest import BASE_RECORD, record
from myelo_docs import RecordError, validate_record

CASES = [
    ("type", "spine", "is not a myelogram type"),
    ("type", None, "is not a myelogram type"),
    ("patient_name", "", "is empty"),
    ("patient_name", "x" * 121, "longer than 120"),
    ("patient_name", "Ann\nLee", "control"),
    ("patient_name", "Ann \u202eeeL", "direction-override"),
    ("date_of_birth", "24/03/1961", "YYYY-MM-DD"),
    ("date_of_birth", "1961-02-30", "not a real calendar date"),
    ("date_of_birth", "2999-01-01", "in the future"),
    ("date_of_birth", "1850-01-01", "before 1900"),
    ("mrn", "", "is empty"),
    ("mrn", "1" * 41, "longer than 40"),
    ("procedure_date", "yesterday", "YYYY-MM-DD"),
    ("physician", "d" * 121, "longer than 120"),
    ("nurse", 42, "must be text"),
    ("follow_up", "f" * 501, "longer than 500"),
    ("instructions", "rest", "must be a list"),
    ("instructions", ["ok"] * 16, "more than 15"),
    ("medications", [{"name": "Warfarin"}], "required but missing"),
    ("medications", [{"name": "A", "instruction": "B", "dose": "5"}], "not a known field"),
    ("language", "xx", "not a language"),
    ("large_print", "maybe", "true or false"),
]


@pytest.mark.parametrize(("field", "value", "problem"), CASES)
def test_bad_field_is_named_with_problem_and_fix(field, value, problem):
    with pytest.raises(RecordError) as caught:
        validate_record(record(**{field: value}))
    problems = caught.value.problems
    assert len(problems) == 1, problems
    assert problems[0].field.startswith(field)
    assert problem in problems[0].problem
    assert problems[0].fix


@pytest.mark.parametrize("field", ["type", "patient_name", "date_of_birth", "mrn",
                                   "procedure_date"])
def test_required_fields(field):
    data = {k: v for k, v in BASE_RECORD.items() if k != field}
    with pytest.raises(RecordError) as caught:
        validate_record(data)
    assert [(p.field, p.problem) for p in caught.value.problems] == [
        (field, "is required but missing")
    ]


def test_every_problem_listed_at_once_and_values_not_echoed():
    with pytest.raises(RecordError) as caught:
        validate_record({"type": "lumbar", "patient_name": "Zebulon Secretname",
                         "date_of_birth": "2999-01-01", "mrn": "", "procdure_date": "2026-01-01"})
    fields = [p.field for p in caught.value.problems]
    assert fields == ["date_of_birth", "mrn", "procedure_date", "procdure_date"]
    assert "did you mean 'procedure_date'" in str(caught.value)
    assert "Zebulon" not in str(caught.value)


def test_procedure_before_birth():
    with pytest.raises(RecordError, match="procedure_date is before date_of_birth"):
        validate_record(record(procedure_date="1950-01-01"))


def test_type_any_case_and_text_trimmed():
    parsed = validate_record(record(type=" CERVICAL ", patient_name="  Ann Lee "))
    assert parsed.type.value == "cervical"
    assert parsed.patient_name == "Ann Lee"


def test_blank_optional_text_is_absent():
    assert validate_record(record(physician="  ")).physician is None
