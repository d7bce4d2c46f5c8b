"""FHIR R4 in and out: Bundles become records, packets become DocumentReferences."""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import ROOT, flat, pages_text
from myelo_docs import RecordError
from myelo_docs.cli.main import main
from myelo_docs.formats.fhir import packet_from_bundle
from myelo_docs.schema.intake import IntakeSettings

DATA = ROOT / "tests" / "data" / "fhir"


def bundle(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def problems_of(data: object) -> dict[str, str]:
    with pytest.raises(RecordError) as caught:
        packet_from_bundle(data)
    return {p.field: p.problem for p in caught.value.problems}


def test_lumbar_procedure_with_cpt():
    packet = packet_from_bundle(bundle("lumbar-procedure"))
    record = packet.record
    assert record.type.value == "lumbar"
    assert record.patient_name == "Rosalind Maria Fhirpatient"  # the official name
    assert record.mrn == "TST-4471902"  # the MR identifier, not the first one
    assert record.date_of_birth.isoformat() == "1958-07-14"
    assert record.procedure_date.isoformat() == "2026-11-25"  # the day as written
    assert record.physician == "Dr. Imogen Fieldwork"
    assert record.language == "en"  # from en-US
    assert packet.subject == {"reference": "Patient/pat-4471902"}
    assert packet.procedure_reference == "Procedure/proc-1"
    assert packet.performed_instant == "2026-11-25T09:40:00-05:00"


def test_cervical_service_request_with_cpt_and_urn_subject():
    text = (DATA / "cervical-servicerequest.json").read_text()
    # Its only identifier has no type: never taken as the MRN without the hospital's system.
    assert problems_of(text) == {"Bundle.entry[Patient].identifier": (
        "has no identifier that is clearly the medical record number "
        "(found: system urn:oid:2.16.840.1.113883.19.5)")}
    packet = packet_from_bundle(text, intake_settings=IntakeSettings(
        mrn_systems=("urn:oid:2.16.840.1.113883.19.5",)))
    assert packet.record.type.value == "cervical"
    assert packet.record.patient_name == "Cedric Servicerequest"
    assert packet.record.mrn == "TST-5520117"  # the identifier with the hospital's MRN system
    assert packet.record.procedure_date.isoformat() == "2026-12-02"
    assert packet.subject == {"reference": "urn:uuid:1f2e3d4c-5b6a-4798-8a9b-0c1d2e3f4a5b"}
    assert packet.performed_instant is None  # a date without a time


def test_thoracic_from_text_and_body_site():
    data = bundle("thoracic-text")
    packet = packet_from_bundle(data)
    assert packet.record.type.value == "thoracic"
    assert packet.record.procedure_date.isoformat() == "2026-11-28"  # performedPeriod.start
    assert packet.subject == {"reference": "Patient/p-3"}
    # A Patient with neither id nor fullUrl is referred to by its MRN.
    del data["entry"][0]["resource"]["id"]
    data["entry"][1]["resource"]["subject"] = {"identifier": {"value": "TST-6610042"}}
    assert packet_from_bundle(data).subject == {"identifier": {"value": "TST-6610042"}}


def test_preferred_communication_sets_the_language():
    data = bundle("lumbar-procedure")
    patient = data["entry"][0]["resource"]
    patient["communication"] = [
        {"language": {"coding": [{"code": "de"}]}},
        {"language": {"coding": [{"code": "en-GB"}]}, "preferred": True},
    ]
    assert packet_from_bundle(data).record.language == "en"
    patient["communication"][0]["preferred"] = True
    patient["communication"][1]["preferred"] = False
    found = problems_of(data)
    assert found == {"Bundle.entry[Patient].communication":
                     "is German, a language we have no patient text for"}
    # A flag given with --fhir replaces what the Bundle says.
    assert packet_from_bundle(data, overrides={"language": "en"}).record.language == "en"


def _without(path: list[object]):
    def change(data: dict) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


def _set(path: list[object], value: object):
    def change(data: dict) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


PATIENT = ["entry", 0, "resource"]
PROCEDURE = ["entry", 1, "resource"]


@pytest.mark.parametrize(("change", "field", "problem"), [
    (_without(["entry", 0]), "Bundle.entry[Patient]", "is missing"),
    (_without([*PATIENT, "name"]), "Bundle.entry[Patient].name",
     "has no current name (official or usual, without an end date)"),
    (_without([*PATIENT, "birthDate"]), "Bundle.entry[Patient].birthDate", "is missing"),
    (_set([*PATIENT, "birthDate"], "1958-07"), "Bundle.entry[Patient].birthDate",
     "is not a full date"),
    (_set([*PATIENT, "birthDate"], "2099-01-01"), "Bundle.entry[Patient].birthDate",
     "is in the future"),
    (_without([*PATIENT, "identifier"]), "Bundle.entry[Patient].identifier",
     "has no identifier that is clearly the medical record number (found: none)"),
    (_without(["entry", 1]), "Bundle.entry[Procedure or ServiceRequest]", "has no myelogram"),
    (_set([*PROCEDURE, "code"], {"text": "Myelogram"}), "Bundle.entry[Procedure].code",
     "is a myelogram but does not say which part of the spine"),
    (_set([*PROCEDURE, "code"], {"coding": [{"system": "http://www.ama-assn.org/go/cpt",
                                             "code": "62305"}]}),
     "Bundle.entry[Procedure].bodySite",
     "is CPT 62305, a myelogram of two or more parts of the spine, but does not say which parts"),
    (_without([*PROCEDURE, "performedDateTime"]), "Bundle.entry[Procedure].performedDateTime",
     "is missing"),
    (_set([*PROCEDURE, "performedDateTime"], "2026"), "Bundle.entry[Procedure].performedDateTime",
     "is not a full date"),
    (_set([*PATIENT, "birthDate"], "2026-11-26"),
     "Bundle.entry[Patient].birthDate and Bundle.entry[Procedure].performedDateTime",
     "procedure_date is before date_of_birth"),
    (_set([*PROCEDURE, "subject"], {"reference": "Patient/someone-else"}),
     "Bundle.entry[Procedure].subject", "refers to a different patient"),
    (_set([*PATIENT, "birthDate"], "14/07/1958"), "Bundle.entry[Patient].birthDate",
     "is not valid FHIR R4 (Date value string does not match spec regex)"),
])
def test_a_bundle_missing_what_we_need_names_the_fhir_path(change, field, problem):
    data = bundle("lumbar-procedure")
    change(data)
    assert problems_of(data) == {field: problem}


def test_two_patients_or_a_non_bundle_are_refused():
    data = bundle("lumbar-procedure")
    data["entry"].append(copy.deepcopy(data["entry"][0]))
    assert problems_of(data) == {"Bundle.entry[Patient]": "appears 2 times"}
    assert problems_of({"resourceType": "Patient"}) == {"Bundle.resourceType": "is not 'Bundle'"}
    assert set(problems_of("{oops")) == {"Bundle"}


def test_problems_never_quote_the_values():
    data = bundle("lumbar-procedure")
    data["entry"][0]["resource"]["birthDate"] = "1958-13-45"
    with pytest.raises(RecordError) as caught:
        packet_from_bundle(data)
    assert "1958-13-45" not in str(caught.value)


def test_cli_fhir_errors_exit_3_with_paths(tmp_path):
    data = bundle("lumbar-procedure")
    del data["entry"][0]["resource"]["birthDate"]
    (tmp_path / "b.json").write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["packet", "--fhir", str(tmp_path / "b.json"),
                                       "--fhir-out", str(tmp_path / "d.json")])
    assert result.exit_code == 3
    assert "Bundle.entry[Patient].birthDate: is missing" in result.output
    assert not (tmp_path / "d.json").exists()
    result = CliRunner().invoke(main, ["packet", "--fhir-out", "d.json", "--type", "lumbar"])
    assert result.exit_code == 2


def test_readme_fhir_example_runs(tmp_path):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## FHIR\n"):]
    command = re.search(r"```sh\n(myelo-docs packet --fhir .*?)\n```", section).group(1)
    args = command.split()[1:]
    args = [str(ROOT / a) if a.startswith("tests/") else a for a in args]
    done = subprocess.run([sys.executable, "-m", "myelo_docs", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    reference = json.loads((tmp_path / "docref.json").read_text())
    pdf = base64.b64decode(reference["content"][0]["attachment"]["data"])
    assert "Rosalind Maria Fhirpatient" in flat(pages_text(pdf)[0])
    assert list(tmp_path.glob("*.pdf")) == []  # --fhir-out without -o writes only the JSON
