"""The real-shaped inputs in ../shared/cases/intake/ (FHIR and JSON), run as a user
would, and the HTTP FHIR endpoint with a whole patient Bundle and overrides.

The CSV cases are in test_csv_intake.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from test_qr import decode_pages

from conftest import ROOT, flat, pages_text, record
from myelo_docs import RecordError, validate_record
from myelo_docs.cli.main import main
from myelo_docs.schema.intake import IntakeSettings
from myelo_docs.service import RenderPool, RenderSettings, ServiceSettings, create_app

CASES = ROOT.parent / "shared" / "cases" / "intake"


def case(name: str) -> Path:
    path = CASES / name
    if not path.is_file():
        pytest.skip(f"{path} is not here (the shared cases live beside the checkout)")
    return path


def run_packet(tmp_path: Path, *args: str) -> tuple[int, str, Path]:
    out = tmp_path / "packet.pdf"
    result = CliRunner().invoke(main, ["packet", *args, "-o", str(out)])
    return result.exit_code, result.output, out


def test_f01b_the_mrn_coded_MRN_is_printed_and_the_ssn_nowhere(tmp_path):
    code, output, out = run_packet(tmp_path, "--fhir", str(case("f01b-identifier-code-MRN.json")))
    assert code == 0, output
    pdf = out.read_bytes()
    pages = [flat(t) for t in pages_text(pdf)]
    assert all("00123456" in page for page in pages)
    assert not any("999-00-1234" in page or "999001234" in page for page in pages)
    assert b"999-00-1234" not in pdf
    codes = decode_pages(pdf, tmp_path)
    assert codes and all(texts[0].endswith("|00123456") for texts, _ in codes)


def test_f02_the_current_name_is_printed_and_the_old_surname_nowhere(tmp_path):
    code, output, out = run_packet(
        tmp_path, "--fhir", str(case("f02-expired-official-name-first.json")))
    assert code == 0, output
    pages = [flat(t) for t in pages_text(out.read_bytes())]
    assert all("Mara Testwell" in page for page in pages)
    assert not any("Oldsurname" in page for page in pages)


def test_f05_the_name_suffix_is_part_of_the_printed_name(tmp_path):
    code, output, out = run_packet(tmp_path, "--fhir", str(case("f05-name-suffix.json")))
    assert code == 0, output
    assert all("Robert James Testwell Jr." in flat(page)
               for page in pages_text(out.read_bytes()))


def test_f06b_language_given_only_as_text_gives_a_spanish_packet(tmp_path):
    code, output, out = run_packet(tmp_path, "--fhir",
                                   str(case("f06b-language-text-only.json")))
    assert code == 0, output
    first = flat(pages_text(out.read_bytes())[0])
    assert "Fecha de nacimiento" in first and "Date of birth" not in first


def test_h03_a_replacement_character_is_refused_on_every_path(tmp_path):
    path = case("h03-body-replacement-char.json")
    code, output, out = run_packet(tmp_path, "--input", str(path))
    assert code == 3
    assert "patient_name" in output and "UTF-8" in output
    assert "\ufffd" not in output.split("(shown as")[0]  # the value is never echoed
    assert not out.exists()


@pytest.mark.parametrize("field", ["patient_name", "physician", "nurse"])
@pytest.mark.parametrize("damaged", [
    "Garc\ufffda Ana",  # a letter lost in transit
    "Garc?a Ana",  # a code page without the letter
    "???? ???",  # a whole name in a script the export could not write
    "Siobh\u00c3\u00a1n Testwell",  # UTF-8 read as Windows-1252
    "J\u00c3\u00bcrgen M\u00c3\u00bcller",  # the same, other letters
    "\u00d0\u02dc\u00d0\u00b2\u00d0\u00b0\u00d0\u00bd",  # Cyrillic as Windows-1252
])
def test_damaged_names_are_refused_naming_the_field(field, damaged):
    with pytest.raises(RecordError) as caught:
        validate_record(record(**{field: damaged}))
    assert [p.field for p in caught.value.problems] == [field]
    assert damaged not in str(caught.value)


@pytest.mark.parametrize("fine", ["Siobhán Ní Bhriain", "Zoë Ørsted-Müller", "Nguyễn Văn Anh",
                                  "Ελένη Παπαδοπούλου", "Иван Петров", "O’Brien", "Ñúñez Ağaoğlu"])
def test_real_names_with_accents_are_not_taken_for_damage(fine):
    assert validate_record(record(patient_name=fine)).patient_name == fine


def test_a_question_in_free_text_is_fine_but_question_marks_for_letters_are_not():
    assert validate_record(record(follow_up="Questions? Call the clinic.")).follow_up
    with pytest.raises(RecordError, match="follow_up: has question marks"):
        validate_record(record(follow_up="See Dr. Garc?a on Monday"))


@pytest.mark.parametrize("mrn", ["1.23457E+11", "1,23457E+11", "4.5e+10", "123456.0", "00123.00"])
def test_an_mrn_excel_changed_is_refused_on_every_path(mrn):
    with pytest.raises(RecordError) as caught:
        validate_record(record(mrn=mrn))
    assert caught.value.problems[0].field == "mrn"
    assert "Excel" in caught.value.problems[0].problem
    assert mrn not in str(caught.value)


def test_the_mrn_pattern_names_the_pattern_never_the_value(tmp_path):
    settings = IntakeSettings(mrn_pattern=r"[0-9]{8}")
    assert validate_record(record(mrn="00123456"), settings).mrn == "00123456"
    with pytest.raises(RecordError) as caught:
        validate_record(record(mrn="123456"), settings)
    assert "[0-9]{8}" in str(caught.value) and "123456." not in str(caught.value)
    result = CliRunner().invoke(main, ["packet", "--fhir", str(case(
        "f01b-identifier-code-MRN.json")), "--mrn-pattern", "[0-9]{6}", "-o",
        str(tmp_path / "p.pdf")])
    assert result.exit_code == 3
    assert "does not match the hospital's MRN pattern [0-9]{6}" in result.output
    assert "00123456" not in result.output
    result = CliRunner().invoke(main, ["packet", "--mrn-pattern", "[0-9"])
    assert result.exit_code == 4 and "--mrn-pattern" in result.output


@pytest.mark.parametrize(("day", "problem"), [
    ("2021-11-29", "is more than 5 years ago"),
    ("2027-12-01", "is more than a year ahead"),
])
def test_a_procedure_date_far_away_is_a_typo(day, problem):
    with pytest.raises(RecordError, match=f"procedure_date: {problem}"):
        validate_record(record(procedure_date=day))
    wide = IntakeSettings(procedure_years_back=10, procedure_years_ahead=2)
    assert validate_record(record(procedure_date=day), wide)


def test_cli_flags_fill_a_bundle_with_only_a_patient(tmp_path):
    data = json.loads(case("f01b-identifier-code-MRN.json").read_text())
    data["entry"] = [e for e in data["entry"] if e["resource"]["resourceType"] == "Patient"]
    del data["entry"][0]["resource"]["birthDate"]
    (tmp_path / "b.json").write_text(json.dumps(data))
    code, output, _ = run_packet(tmp_path, "--fhir", str(tmp_path / "b.json"))
    assert code == 3
    assert "--date-of-birth" in output and "--procedure-date" in output
    code, output, out = run_packet(tmp_path, "--fhir", str(tmp_path / "b.json"), "--type",
                                   "cervical", "--procedure-date", "2026-11-30",
                                   "--date-of-birth", "1961-03-24")
    assert code == 0, output
    first = flat(pages_text(out.read_bytes())[0])
    assert "cervical myelogram" in first.lower() and "00123456" in first


def test_cli_mrn_system_chooses_among_two_mrns(tmp_path):
    data = json.loads(case("f01b-identifier-code-MRN.json").read_text())
    patient = data["entry"][0]["resource"]
    patient["identifier"].append({"type": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
        "system": "urn:oid:9.8.7.6", "value": "77700001"})
    (tmp_path / "b.json").write_text(json.dumps(data))
    code, output, _ = run_packet(tmp_path, "--fhir", str(tmp_path / "b.json"))
    assert code == 3
    assert "has 2 different medical record numbers" in output and "urn:oid:9.8.7.6" in output
    assert "77700001" not in output and "00123456" not in output
    code, output, out = run_packet(tmp_path, "--fhir", str(tmp_path / "b.json"),
                                   "--mrn-system", "urn:oid:9.8.7.6")
    assert code == 0, output
    assert "77700001" in flat(pages_text(out.read_bytes())[0])


# -- the HTTP FHIR endpoint ----------------------------------------------------------


@pytest.fixture(scope="module")
def fhir_client():
    pool = RenderPool(RenderSettings(), workers=1, queue=4).start()
    try:
        yield TestClient(create_app(pool, ServiceSettings(fhir_max_body=6 * 1024 * 1024)),
                         base_url="http://127.0.0.1")
    finally:
        pool.close()


def big_bundle(base: dict, target_bytes: int) -> dict:
    """A patient Bundle the size real EHRs send: hundreds of Observations and other
    resources we do not read, one of a type the FHIR library does not know."""
    data = copy.deepcopy(base)
    data["type"] = "searchset"
    observation = {"resourceType": "Observation", "status": "final",
                   "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4",
                                        "display": "Heart rate"}]},
                   "subject": {"reference": "Patient/pat-1"},
                   "valueQuantity": {"value": 72, "unit": "beats/minute"},
                   "note": [{"text": "x" * 900}]}
    data["entry"].append({"resource": {"resourceType": "SomethingNewInR6", "id": "n1"}})
    one = len(json.dumps(observation)) + 120
    for n in range(target_bytes // one + 1):
        data["entry"].append({"fullUrl": f"https://ehr.example.org/fhir/Observation/o{n}",
                              "resource": {**observation, "id": f"o{n}"},
                              "search": {"mode": "include"}})
    assert len(json.dumps(data)) >= target_bytes
    return data


def test_http_takes_a_3_mb_patient_bundle_with_overrides(fhir_client, tmp_path):
    base = json.loads(case("f06b-language-text-only.json").read_text())
    data = big_bundle(base, 3 * 1024 * 1024)
    body = {"bundle": data, "record": {"language": "en", "nurse": "Theo Checkmark, RN",
                                       "instructions": ["Wear your back brace."],
                                       "medications": [{"name": "Warfarin",
                                                        "instruction": "Restart Friday."}]}}
    response = fhir_client.post("/v1/fhir/packets", json=body)
    assert response.status_code == 200, response.text
    pages = [flat(t) for t in pages_text(response.content)]
    assert "Date of birth" in pages[0]  # the override beat the Bundle's Spanish
    assert all("Mara Testwell" in page and "00123456" in page for page in pages)
    text = " ".join(pages)
    assert "Theo Checkmark, RN" in text and "Wear your back brace." in text
    assert "Warfarin" in text


def test_http_fhir_errors_stay_4xx_with_the_path(fhir_client):
    base = json.loads(case("f01b-identifier-code-MRN.json").read_text())
    data = big_bundle(base, 400 * 1024)
    data["entry"][0]["resource"]["deceasedBoolean"] = True
    response = fhir_client.post("/v1/fhir/packets", json={"bundle": data, "record": {}})
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == [  # an OperationOutcome
        "Bundle.entry.resource.ofType(Patient).deceased"]
    response = fhir_client.post("/v1/fhir/packets",
                                json={"bundle": base, "record": {"procedure_date": "2026-13-45",
                                                                 "colour": "blue"}})
    assert response.status_code == 422
    said = {i["details"]["text"].split(" ")[0] for i in response.json()["issue"]}
    assert said == {"record.procedure_date", "record.colour"}
    response = fhir_client.post("/v1/fhir/packets", json={"bundle": base, "extra": 1})
    assert response.status_code == 422
    assert response.json()["issue"][0]["details"]["text"].startswith("extra ")
    too_big = big_bundle(base, 7 * 1024 * 1024)
    response = fhir_client.post("/v1/fhir/packets", json=too_big)
    assert response.status_code == 413
    assert "6 MB" in response.json()["issue"][0]["details"]["text"]
    # The record endpoint keeps its small limit.
    response = fhir_client.post("/v1/packets", json={**record(), "follow_up": "x" * 300_000})
    assert response.status_code == 413
