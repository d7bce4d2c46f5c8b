"""The FHIR identity rule (identity.py) against Bundles shaped like real EHR exports.

The shapes follow public examples (US Core's Patient example, Synthea's
Patients, Epic- and Cerner-style identifiers, search-set and transaction
Bundles); every patient, number and name here is made up. Each test builds
its Bundle in Python and reads it with ``packet_from_bundle`` only: no PDF.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from myelo_docs import RecordError
from myelo_docs.formats.fhir import FhirPacket, packet_from_bundle
from myelo_docs.schema.intake import IntakeSettings

V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V2_OLD = "http://hl7.org/fhir/v2/0203"
CPT = "http://www.ama-assn.org/go/cpt"
BCP47 = "urn:ietf:bcp:47"
HOSPITAL = "http://hospital.smarthealthit.org"
HOSPITAL_OID = "urn:oid:2.16.840.1.113883.19.5"
EPIC_OID = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384"  # Epic-style OIDs, made up below the root
EPI_SYSTEM = f"{EPIC_OID}.14"
INTERNAL_SYSTEM = f"{EPIC_OID}.0"
EXTERNAL_SYSTEM = f"{EPIC_OID}.1"
EPIC_MRN_SYSTEM = f"{EPIC_OID}.27"
EPIC_LANGUAGE_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.10.999"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
BASE_URL = "https://ehr.example.org/fhir"

PATIENT_ID = "pat-4471"
MRN = "TST-4471902"
SSN = "999-41-2087"

PATIENT = "Bundle.entry[Patient]"
IDENTIFIER = f"{PATIENT}.identifier"
NAME = f"{PATIENT}.name"
COMMUNICATION = f"{PATIENT}.communication"
MYELOGRAMS = "Bundle.entry[Procedure or ServiceRequest]"


# -- a small builder for real-world-shaped Bundles --------------------------------


def kind_of(code: str, text: str | None = None, system: str = V2) -> dict[str, Any]:
    """An identifier type: a v2-0203 coding, with an optional text."""
    concept: dict[str, Any] = {"coding": [{"system": system, "code": code}]}
    if text:
        concept["text"] = text
    return concept


def ident(value: str | None, system: str | None = None, type_: dict[str, Any] | None = None,
          **more: Any) -> dict[str, Any]:
    found: dict[str, Any] = {k: v for k, v in (("system", system), ("value", value),
                                                 ("type", type_)) if v is not None}
    return {**found, **more}


def mr(value: str = MRN, system: str = HOSPITAL_OID, **more: Any) -> dict[str, Any]:
    return ident(value, system, kind_of("MR", "Medical Record Number"), **more)


def official(given: list[str], family: str, **more: Any) -> dict[str, Any]:
    return {"use": "official", "given": given, "family": family, **more}


def patient(**fields: Any) -> dict[str, Any]:
    """A living, active Patient with an MR identifier, an official name and a birth date.
    A field given as None is left out."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "identifier": [mr()],
        "active": True,
        "name": [official(["Rosalind"], "Testpatient")],
        "gender": "female",
        "birthDate": "1958-07-14",
    }
    resource.update(fields)
    return {k: v for k, v in resource.items() if v is not None}


def myelogram(*, kind: str = "Procedure", id_: str = "proc-1", cpt: str | None = "62304",
              text: str | None = None, day: str | None = "2026-11-25", status: str | None = None,
              subject: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A Procedure (done) or a ServiceRequest (an order) for a myelogram."""
    code: dict[str, Any] = {}
    if cpt:
        code["coding"] = [{"system": CPT, "code": cpt}]
    if text:
        code["text"] = text
    resource: dict[str, Any] = {"resourceType": kind, "id": id_,
                                "subject": subject or {"reference": f"Patient/{PATIENT_ID}"},
                                "code": code}
    if kind == "Procedure":
        resource["status"] = status or "completed"
        if day:
            resource["performedDateTime"] = day
    else:
        resource.update(status=status or "active", intent="order")
        if day:
            resource["occurrenceDateTime"] = day
    resource.update(fields)
    return resource


def order(**fields: Any) -> dict[str, Any]:
    return myelogram(kind="ServiceRequest", **{"id_": "order-1", **fields})


def uuid_of(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://example.org/{name}"))


def bundle(patient: dict[str, Any] | None = None, procedures: list[dict[str, Any]] | None = None,
           kind: str = "collection", extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A Bundle of the given type, with entries the way such Bundles carry them:

    - collection: ``fullUrl`` urn:uuid, resources keep their ids;
    - searchset: absolute ``fullUrl`` on the server and ``search.mode``
      (match for the myelograms, include for the rest);
    - transaction: ``fullUrl`` urn:uuid, no resource ids (the server assigns
      them), and a ``request`` per entry.
    """
    resources = [r for r in [patient, *(procedures or []), *(extra or [])] if r is not None]
    entries = []
    for resource in copy.deepcopy(resources):
        kind_name, rid = resource["resourceType"], resource.get("id", "")
        entry: dict[str, Any] = {}
        if kind == "searchset":
            entry["fullUrl"] = f"{BASE_URL}/{kind_name}/{rid}"
            mode = "match" if kind_name in ("Procedure", "ServiceRequest") else "include"
            entry["resource"] = resource
            entry["search"] = {"mode": mode}
        elif kind == "transaction":
            entry["fullUrl"] = f"urn:uuid:{uuid_of(rid)}"
            resource.pop("id", None)
            entry["resource"] = resource
            entry["request"] = {"method": "POST", "url": kind_name}
        else:
            entry["fullUrl"] = f"urn:uuid:{uuid_of(rid)}"
            entry["resource"] = resource
        entries.append(entry)
    found: dict[str, Any] = {"resourceType": "Bundle", "id": "b-1", "type": kind,
                             "entry": entries}
    if kind == "searchset":
        found["total"] = sum(e["search"]["mode"] == "match" for e in entries)
    return found


def identifier_values(data: dict[str, Any]) -> list[str]:
    return [i["value"] for e in data["entry"] if e["resource"]["resourceType"] == "Patient"
            for i in e["resource"].get("identifier", []) if i.get("value")]


def read(data: dict[str, Any], **kwargs: Any) -> FhirPacket:
    return packet_from_bundle(data, **kwargs)


def refused(data: dict[str, Any], **kwargs: Any) -> RecordError:
    """The RecordError the Bundle gives; it never quotes one of the Patient's identifiers."""
    with pytest.raises(RecordError) as caught:
        packet_from_bundle(data, **kwargs)
    error = caught.value
    shown = str(error) + repr(error.as_dict())
    for value in identifier_values(data):
        assert value not in shown, f"an identifier value is quoted in the error: {shown}"
    return error


def problems(error: RecordError) -> dict[str, str]:
    return {p.field: p.problem for p in error.problems}


def the_problem(error: RecordError, field: str):
    found = [p for p in error.problems if p.field == field]
    assert len(found) == 1, f"no single problem at {field}: {error.problems}"
    return found[0]


def everything_printed(packet: FhirPacket) -> str:
    """Every value the packet carries onward: the record, the subject, the references."""
    return " ".join([packet.record.model_dump_json(), repr(packet.subject),
                     str(packet.procedure_reference), repr(packet.paths)])


def one_patient(**fields: Any) -> dict[str, Any]:
    """A collection Bundle: this Patient and a recent completed lumbar myelogram."""
    return bundle(patient(**fields), [myelogram()])


# -- MRN --------------------------------------------------------------------------


@pytest.mark.parametrize("mr_system", [V2_OLD, V2])
def test_mrn_typed_mrn_is_chosen_over_a_social_security_number_listed_first(mr_system):
    data = one_patient(identifier=[
        ident(SSN, SSN_SYSTEM, kind_of("SS", "Social Security Number")),
        ident(MRN, HOSPITAL_OID, {"coding": [{"system": mr_system, "code": "MRN"}]}),
    ])
    packet = read(data)
    assert packet.record.mrn == MRN
    assert SSN not in everything_printed(packet)


def test_mrn_social_security_number_never_appears_in_errors():
    data = one_patient(identifier=[
        ident(SSN, SSN_SYSTEM, kind_of("SS", "Social Security Number")),
        ident(MRN, HOSPITAL_OID, kind_of("MR")),
    ], birthDate=None)
    error = refused(data)  # refused() checks that neither value is quoted
    assert problems(error) == {f"{PATIENT}.birthDate": "is missing"}


def epic_identifiers(*type_texts: str) -> list[dict[str, Any]]:
    systems = {"EPI": EPI_SYSTEM, "INTERNAL": INTERNAL_SYSTEM, "EXTERNAL": EXTERNAL_SYSTEM,
               "MRN": EPIC_MRN_SYSTEM, "CEID": f"{EPIC_OID}.58", "FHIR": f"{EPIC_OID}.99"}
    values = {"EPI": "E7710231", "INTERNAL": "Z4471902", "EXTERNAL": "ext-0c9a77f3",
              "MRN": "771023", "CEID": "CEID-88F2", "FHIR": "eFhirIdQ8xw3"}
    return [ident(values[t], systems[t], {"text": t}, use="usual") for t in type_texts]


def test_mrn_epic_identifiers_typed_only_by_text_choose_the_one_typed_mrn():
    data = one_patient(identifier=epic_identifiers("INTERNAL", "EXTERNAL", "CEID", "FHIR",
                                                   "MRN"))
    packet = read(data)
    assert packet.record.mrn == "771023"


def test_mrn_epic_identifiers_without_an_mrn_type_are_an_error_naming_systems_and_types():
    data = one_patient(identifier=epic_identifiers("EPI", "INTERNAL"))
    error = refused(data)
    problem = the_problem(error, IDENTIFIER)
    assert problem.problem.startswith(
        "has no identifier that is clearly the medical record number")
    for shown in (EPI_SYSTEM, INTERNAL_SYSTEM, "type EPI", "type INTERNAL"):
        assert shown in problem.problem
    assert "--mrn-system" in problem.fix
    assert "--mrn" in problem.fix.replace("--mrn-system", "")
    assert set(problems(error)) == {IDENTIFIER}


def test_mrn_epic_identifier_with_the_hospitals_configured_system_is_chosen():
    data = one_patient(identifier=epic_identifiers("EPI", "INTERNAL"))
    packet = read(data, intake_settings=IntakeSettings(mrn_systems=(EPI_SYSTEM,)))
    assert packet.record.mrn == "E7710231"


def test_mrn_configured_system_wins_over_an_mr_typed_identifier_of_another_system():
    data = one_patient(identifier=[mr("TST-0000001", HOSPITAL),
                                   ident("Z4471902", INTERNAL_SYSTEM, {"text": "INTERNAL"})])
    assert read(data).record.mrn == "TST-0000001"
    settings = IntakeSettings(mrn_systems=(INTERNAL_SYSTEM,))
    assert read(data, intake_settings=settings).record.mrn == "Z4471902"


PERSONAL_IDS = {
    "SSN by type code": ident(SSN, None, kind_of("SS")),
    "SSN by system": ident(SSN, SSN_SYSTEM),
    "SSN by OID": ident(SSN, "urn:oid:2.16.840.1.113883.4.1"),
    "SSN by type text": ident(SSN, None, {"text": "Social Security Number"}),
    "driver's licence by type code": ident("S99951234", None, kind_of("DL")),
    "driver's licence by state OID": ident("S99951234", "urn:oid:2.16.840.1.113883.4.3.25"),
    "passport by type code": ident("X12345678", None, kind_of("PPN")),
    "passport by Synthea system": ident(
        "X12345678", "http://standardhealthrecord.org/fhir/StructureDefinition/passportNumber"),
    "passport by HL7 system": ident("X12345678", "http://hl7.org/fhir/sid/passport-USA"),
    "national id by type code": ident("NI-55120934", "urn:oid:2.999.7", kind_of("NI")),
    "NHS number by system": ident("9434765919", "https://fhir.nhs.uk/Id/nhs-number"),
    "Medicare by type text": ident("1EG4TE5MK73", None, {"text": "Medicare Number"}),
}


@pytest.mark.parametrize("identifier", PERSONAL_IDS.values(), ids=PERSONAL_IDS.keys())
def test_mrn_a_personal_id_alone_is_never_the_mrn(identifier):
    error = refused(one_patient(identifier=[identifier]))
    problem = the_problem(error, IDENTIFIER)
    assert problem.problem.startswith(
        "has no identifier that is clearly the medical record number (found: none; 1 Social "
        "Security, licence, passport or national id number(s) were left out")
    assert identifier["value"] not in str(error)


@pytest.mark.parametrize("identifier", PERSONAL_IDS.values(), ids=PERSONAL_IDS.keys())
def test_mrn_a_personal_id_is_not_chosen_even_when_the_mrn_is_there(identifier):
    packet = read(one_patient(identifier=[identifier, mr()]))
    assert packet.record.mrn == MRN
    assert identifier["value"] not in everything_printed(packet)


def test_mrn_a_personal_id_typed_as_mr_as_well_is_still_left_out():
    ssn_typed_mr = ident(SSN, SSN_SYSTEM, {"coding": [{"system": V2, "code": "MR"}],
                                           "text": "Social Security Number"})
    packet = read(one_patient(identifier=[ssn_typed_mr, mr()]))
    assert packet.record.mrn == MRN


def test_mrn_two_different_mr_identifiers_are_an_error():
    data = one_patient(identifier=[mr("TST-0000001", HOSPITAL),
                                   mr("TST-0000002", HOSPITAL_OID)])
    error = refused(data)
    problem = the_problem(error, IDENTIFIER)
    assert problem.problem.startswith("has 2 different medical record numbers (")
    assert HOSPITAL in problem.problem and HOSPITAL_OID in problem.problem
    assert "--mrn-system" in problem.fix and "--mrn " in problem.fix + " "


def test_mrn_the_same_mr_value_twice_is_one_mrn():
    data = one_patient(identifier=[mr(MRN, HOSPITAL), mr(MRN, HOSPITAL_OID),
                                   mr(f"  {MRN} ", HOSPITAL_OID)])
    assert read(data).record.mrn == MRN


@pytest.mark.parametrize("skipped", [
    mr("TST-0000009", use="old"),
    mr("TST-0000009", period={"start": "2001-05-01", "end": "2020-01-01"}),
    mr("TST-0000009", period={"start": "2027-01-01"}),
    mr(None),
], ids=["use old", "ended period", "period not yet begun", "no value"])
def test_mrn_old_ended_future_or_empty_identifiers_are_skipped(skipped):
    for order_ in ([skipped, mr()], [mr(), skipped]):
        packet = read(one_patient(identifier=order_))
        assert packet.record.mrn == MRN
        assert "TST-0000009" not in everything_printed(packet)
    error = refused(one_patient(identifier=[skipped]))
    assert the_problem(error, IDENTIFIER).problem.startswith(
        "has no identifier that is clearly the medical record number")


@pytest.mark.parametrize("period", [{"end": "2020"}, {"start": "2001-05", "end": "2020-01"},
                                    {"start": "2027"}],
                         ids=["ended 2020", "ended 2020-01", "starts 2027"])
def test_mrn_identifier_whose_period_is_a_partial_date_out_of_force_is_skipped(period):
    packet = read(one_patient(identifier=[mr("TST-0000009", period=period), mr()]))
    assert packet.record.mrn == MRN


def test_mrn_ended_with_a_partial_date_is_not_chosen_alone():
    error = refused(one_patient(identifier=[mr("TST-0000009", period={"end": "2020"})]))
    assert the_problem(error, IDENTIFIER).problem.startswith(
        "has no identifier that is clearly the medical record number")


def test_mrn_cerner_style_mr_coding_with_mrn_text_and_a_period_start():
    cerner = ident("4471902", "urn:oid:2.16.840.1.113883.3.13.6",
                   {"coding": [{"system": V2, "code": "MR", "display": "Medical record number",
                                "userSelected": False}], "text": "MRN"},
                   use="usual", period={"start": "2019-03-04T17:06:27.000Z"})
    federated = ident("22334455", "urn:oid:2.16.840.1.113883.3.13.6.1",
                      {"coding": [{"system": "https://fhir.cerner.com/ec2458f2-1e24-41c8-b71b-"
                                             "0e701af7583d/codeSet/4", "code": "2553236771"}],
                       "text": "Federated Person Principal"}, use="usual")
    packet = read(one_patient(identifier=[federated, cerner]))
    assert packet.record.mrn == "4471902"


def synthea_patient() -> dict[str, Any]:
    """The identifiers, names and language of a Synthea Patient (values made up)."""
    return patient(
        identifier=[
            ident("5f2c1d3e-8a9b-4c7d-9e0f-1a2b3c4d5e6f",
                  "https://github.com/synthetichealth/synthea"),
            ident("5f2c1d3e-8a9b-4c7d-9e0f-1a2b3c4d5e6f", HOSPITAL,
                  {"coding": [{"system": V2, "code": "MR", "display": "Medical Record Number"}],
                   "text": "Medical Record Number"}),
            ident("999-63-7420", SSN_SYSTEM,
                  {"coding": [{"system": V2, "code": "SS", "display": "Social Security Number"}],
                   "text": "Social Security Number"}),
            ident("S99932176", "urn:oid:2.16.840.1.113883.4.3.25",
                  {"coding": [{"system": V2, "code": "DL", "display": "Driver's license number"}],
                   "text": "Driver's license number"}),
            ident("X35914082X",
                  "http://standardhealthrecord.org/fhir/StructureDefinition/passportNumber",
                  {"coding": [{"system": V2, "code": "PPN", "display": "Passport Number"}],
                   "text": "Passport Number"}),
        ],
        name=[{"use": "official", "family": "Testwell", "given": ["Robert", "James"],
               "prefix": ["Mr."]}],
        communication=[{"language": {"coding": [{"system": BCP47, "code": "en-US",
                                                  "display": "English"}],
                                     "text": "English"}}],
    )


def test_mrn_synthea_shape_chooses_the_mr_identifier():
    procedure = myelogram(subject={"reference": f"urn:uuid:{uuid_of(PATIENT_ID)}"})
    packet = read(bundle(synthea_patient(), [procedure], kind="transaction"))
    assert packet.record.mrn == "5f2c1d3e-8a9b-4c7d-9e0f-1a2b3c4d5e6f"
    assert packet.record.patient_name == "Robert James Testwell"
    printed = everything_printed(packet)
    for personal in ("999-63-7420", "S99932176", "X35914082X"):
        assert personal not in printed


def us_core_patient() -> dict[str, Any]:
    """The shape of US Core's Patient example (a name change in 2020), values made up."""
    return patient(
        id="example",
        identifier=[{"use": "usual",
                     "type": {"coding": [{"system": V2, "code": "MR",
                                          "display": "Medical Record Number"}],
                              "text": "Medical Record Number"},
                     "system": HOSPITAL, "value": "1032799"}],
        name=[
            {"use": "old", "family": "Shaw", "given": ["Amy", "V."],
             "period": {"start": "2016-12-06", "end": "2020-07-22"}},
            {"family": "Baxter", "given": ["Amy", "V."], "suffix": ["PharmD"],
             "period": {"start": "2020-07-22"}},
        ],
        birthDate="1987-02-20",
        communication=[{"language": {"coding": [{"system": BCP47, "code": "en-US",
                                                  "display": "English (United States)"}],
                                     "text": "English"}}],
    )


def test_us_core_shape_gives_mrn_and_the_name_after_the_name_change():
    packet = read(bundle(us_core_patient(), [myelogram(subject={"reference": "Patient/example"})]))
    assert packet.record.mrn == "1032799"
    assert packet.record.patient_name == "Amy V. Baxter PharmD"
    assert packet.record.language == "en"
    assert "Shaw" not in everything_printed(packet)


def test_us_core_shape_without_use_old_still_skips_the_ended_name():
    data = us_core_patient()
    del data["name"][0]["use"]
    packet = read(bundle(data, [myelogram(subject={"reference": "Patient/example"})]))
    assert packet.record.patient_name == "Amy V. Baxter PharmD"


def test_mrn_override_fills_a_missing_identifier():
    data = one_patient(identifier=None)
    assert the_problem(refused(data), IDENTIFIER).problem == (
        "has no identifier that is clearly the medical record number (found: none)")
    assert read(data, overrides={"mrn": "X123"}).record.mrn == "X123"


def test_mrn_override_replaces_the_one_found():
    packet = read(one_patient(), overrides={"mrn": "X123"})
    assert packet.record.mrn == "X123"
    assert MRN not in packet.record.model_dump_json()


def test_mrn_override_also_settles_two_different_mrns():
    data = one_patient(identifier=[mr("TST-0000001", HOSPITAL), mr("TST-0000002")])
    assert read(data, overrides={"mrn": "X123"}).record.mrn == "X123"


# -- name -------------------------------------------------------------------------


def test_name_ended_official_name_listed_first_gives_way_to_the_current_one():
    data = one_patient(name=[
        official(["Rosalind"], "Oldsurname", period={"start": "1980-06-01", "end": "2019-09-14"}),
        official(["Rosalind"], "Testpatient", period={"start": "2019-09-14"}),
    ])
    packet = read(data)
    assert packet.record.patient_name == "Rosalind Testpatient"
    assert "Oldsurname" not in everything_printed(packet)


def test_name_official_name_ended_with_a_partial_date_gives_way_to_the_usual_one():
    data = one_patient(name=[
        official(["Rosalind"], "Oldsurname", period={"start": "1980", "end": "2019"}),
        {"use": "usual", "given": ["Rosalind"], "family": "Testpatient"},
    ])
    packet = read(data)  # today: "Rosalind Oldsurname", the official name that ended in 2019
    assert packet.record.patient_name == "Rosalind Testpatient"


@pytest.mark.parametrize(("name", "written"), [
    (official(["Robert", "James"], "Testwell", suffix=["Jr."]), "Robert James Testwell Jr."),
    (official(["Robert", "James"], "Testwell", suffix=["Jr."], prefix=["Mr."]),
     "Robert James Testwell Jr."),
    (official(["Robert"], "Testwell", text="TESTWELL, ROBERT"), "Robert Testwell"),
    ({"use": "official", "text": "Robert Testwell"}, "Robert Testwell"),
    (official(["Robert ", " James"], "  Testwell  "), "Robert James Testwell"),
], ids=["given family suffix", "prefix left out", "text ignored with parts",
        "text without parts", "spaces tidied"])
def test_name_written_as_given_family_suffix(name, written):
    assert read(one_patient(name=[name])).record.patient_name == written


@pytest.mark.parametrize("use", ["old", "maiden", "nickname", "anonymous"])
def test_name_old_maiden_nickname_and_anonymous_are_skipped(use):
    data = one_patient(name=[{"use": use, "given": ["Roz"], "family": "Otherly"},
                             official(["Rosalind"], "Testpatient")])
    packet = read(data)
    assert packet.record.patient_name == "Rosalind Testpatient"
    assert "Otherly" not in everything_printed(packet)


def test_name_only_a_nickname_is_an_error():
    error = refused(one_patient(name=[{"use": "nickname", "given": ["Roz"]}]))
    assert problems(error) == {
        NAME: "has no current name (official or usual, without an end date)"}
    assert "Roz" not in str(error)
    assert "--patient-name" in the_problem(error, NAME).fix


def test_name_official_beats_usual():
    data = one_patient(name=[{"use": "usual", "given": ["Bob"], "family": "Testwell"},
                             official(["Robert"], "Testwell")])
    assert read(data).record.patient_name == "Robert Testwell"


def test_name_usual_is_used_when_there_is_no_official():
    data = one_patient(name=[{"given": ["R."], "family": "Testwell"},
                             {"use": "usual", "given": ["Robert"], "family": "Testwell"}])
    assert read(data).record.patient_name == "Robert Testwell"


def test_name_two_different_current_official_names_are_an_error():
    data = one_patient(name=[official(["Robert"], "Testwell"), official(["Roberto"], "Pruebas")])
    error = refused(data)
    assert problems(error) == {
        NAME: "has 2 different current names of the same kind (official)"}
    assert "Testwell" not in str(error) and "Pruebas" not in str(error)
    assert read(data, overrides={"patient_name": "Robert Testwell"}).record.patient_name == (
        "Robert Testwell")


def test_name_the_same_official_name_twice_is_one_name():
    data = one_patient(name=[official(["Robert"], "Testwell"),
                             official(["Robert"], "Testwell", prefix=["Mr."])])
    assert read(data).record.patient_name == "Robert Testwell"


# -- language ---------------------------------------------------------------------


def speaks(*entries: dict[str, Any]) -> dict[str, Any]:
    return one_patient(communication=list(entries))


@pytest.mark.parametrize(("text", "code"), [
    ("Spanish", "es"), ("Español", "es"), ("spanish (Mexico)", "es"), ("SPANISH", "es"),
    ("English", "en"),
])
def test_language_from_text_only(text, code):
    assert read(speaks({"language": {"text": text}})).record.language == code


def test_language_bcp47_coding_wins_over_a_proprietary_coding_listed_first():
    data = speaks({"language": {"coding": [{"system": EPIC_LANGUAGE_SYSTEM, "code": "1"},
                                           {"system": BCP47, "code": "en-US"}]}})
    assert read(data).record.language == "en"


def test_language_proprietary_coding_with_a_display():
    data = speaks({"language": {"coding": [{"system": EPIC_LANGUAGE_SYSTEM, "code": "2",
                                            "display": "Spanish"}]}})
    assert read(data).record.language == "es"


def test_language_preferred_entry_wins_over_the_first():
    data = speaks({"language": {"coding": [{"system": BCP47, "code": "en"}]}},
                  {"language": {"coding": [{"system": BCP47, "code": "es-MX"}]},
                   "preferred": True})
    assert read(data).record.language == "es"


def test_language_we_have_no_text_for_is_an_error_fixed_by_an_override():
    data = speaks({"language": {"coding": [{"system": BCP47, "code": "de"}]}})
    error = refused(data)
    assert problems(error) == {
        COMMUNICATION: "is German, a language we have no patient text for"}
    assert "--language" in the_problem(error, COMMUNICATION).fix
    assert read(data, overrides={"language": "en"}).record.language == "en"


def test_language_that_cannot_be_recognised_is_an_error_fixed_by_an_override():
    data = speaks({"language": {"text": "Klingon-ish 42"}})
    error = refused(data)
    assert problems(error) == {COMMUNICATION: "does not name a language we can recognise"}
    assert read(data, overrides={"language": "en"}).record.language == "en"


def test_language_proprietary_code_alone_is_not_taken_as_english():
    data = speaks({"language": {"coding": [{"system": EPIC_LANGUAGE_SYSTEM, "code": "1"}]}})
    assert problems(refused(data)) == {
        COMMUNICATION: "does not name a language we can recognise"}


def test_language_defaults_to_english_without_communication():
    assert read(one_patient()).record.language == "en"


# -- deceased and status ----------------------------------------------------------

EVERY_PATIENT_FIELD = {"patient_name": "Rosalind Testpatient", "mrn": "X123",
                       "date_of_birth": "1958-07-14"}


@pytest.mark.parametrize("deceased", [{"deceasedBoolean": True},
                                      {"deceasedDateTime": "2026-11-29T04:10:00-05:00"},
                                      {"deceasedDateTime": "2026"}])
def test_deceased_patient_is_refused_even_with_every_field_given(deceased):
    data = one_patient(**deceased)
    for overrides in (None, EVERY_PATIENT_FIELD):
        error = refused(data, overrides=overrides)
        assert problems(error) == {f"{PATIENT}.deceased[x]": "says the patient has died"}


def test_deceased_false_is_fine():
    assert read(one_patient(deceasedBoolean=False)).record.mrn == MRN


def test_inactive_patient_is_refused():
    for overrides in (None, EVERY_PATIENT_FIELD):
        error = refused(one_patient(active=False), overrides=overrides)
        assert problems(error) == {
            f"{PATIENT}.active": "is false: this patient record is not in use"}


def test_patient_replaced_by_another_record_is_refused():
    link = [{"other": {"reference": "Patient/pat-9001"}, "type": "replaced-by"}]
    for overrides in (None, EVERY_PATIENT_FIELD):
        error = refused(one_patient(link=link), overrides=overrides)
        assert problems(error) == {
            f"{PATIENT}.link": "says this record was replaced by another (merged)"}


def test_patient_that_replaces_another_record_is_fine():
    link = [{"other": {"reference": "Patient/pat-0007"}, "type": "replaces"},
            {"other": {"reference": "RelatedPerson/rp-1"}, "type": "seealso"}]
    assert read(one_patient(link=link)).record.mrn == MRN


# -- the myelogram ----------------------------------------------------------------


@pytest.mark.parametrize("old_day", ["2019-04-02", "2024-05-10T10:15:00-05:00"])
def test_myelogram_todays_order_wins_over_an_old_completed_procedure(old_day):
    data = bundle(patient(), [myelogram(cpt="62304", day=old_day),
                              order(cpt="62302", day="2026-11-30")])
    packet = read(data)
    assert packet.record.type.value == "cervical"
    assert packet.record.procedure_date.isoformat() == "2026-11-30"
    assert packet.procedure_reference == "ServiceRequest/order-1"


def test_myelogram_only_an_old_completed_one_needs_the_date():
    data = bundle(patient(), [myelogram(cpt="62304", day="2025-06-01")])
    error = refused(data)
    problem = the_problem(error, MYELOGRAMS)
    assert problem.problem == (
        "has only myelograms from more than 30 days ago and no current order")
    assert "--procedure-date" in problem.fix
    packet = read(data, overrides={"procedure_date": "2025-06-01"})
    assert packet.record.type.value == "lumbar"
    assert packet.record.procedure_date.isoformat() == "2025-06-01"
    assert packet.procedure_reference == "Procedure/proc-1"


def test_myelogram_window_is_the_hospitals_setting():
    data = bundle(patient(), [myelogram(cpt="62304", day="2025-06-01")])
    settings = IntakeSettings(recent_procedure_days=600)
    assert read(data, intake_settings=settings).record.procedure_date.isoformat() == (
        "2025-06-01")


def test_myelogram_a_recent_completed_one_alone_is_chosen():
    packet = read(bundle(patient(), [myelogram(cpt="62304", day="2026-11-25")]))
    assert packet.record.type.value == "lumbar"
    assert packet.record.procedure_date.isoformat() == "2026-11-25"


@pytest.mark.parametrize("text", ["Myelopathy evaluation", "Myeloma panel",
                                  "Bone marrow aspiration (myeloid)", "MYELOPROLIFERATIVE PANEL"])
def test_myelogram_myelo_in_other_names_is_not_a_myelogram(text):
    data = bundle(patient(), [myelogram(cpt=None, text=text, day="2026-11-30"),
                              order(cpt=None, text=text, day="2026-11-30")])
    error = refused(data)
    assert problems(error) == {MYELOGRAMS: "has no myelogram"}


@pytest.mark.parametrize(("text", "body_site", "kind"), [
    ("CT MYELOGRAM L-SPINE", None, "lumbar"),
    ("MYELOGRAM C-SPINE", None, "cervical"),
    ("Myelogram T-spine", None, "thoracic"),
    ("MYELOGRAPHY LS", None, "lumbar"),
    ("Mielografía cervical", None, "cervical"),
    ("mielograma lumbar", None, "lumbar"),
    ("Myelogram", "Lumbosacral spine", "lumbar"),
    ("Myelogram", "Cervical spine structure", "cervical"),
])
def test_myelogram_region_from_words(text, body_site, kind):
    extra = {"bodySite": [{"text": body_site}]} if body_site else {}
    for make in (myelogram, order):
        data = bundle(patient(), [make(cpt=None, text=text, day="2026-11-30", **extra)])
        assert read(data).record.type.value == kind, (make.__name__, text)


def test_myelogram_without_a_region_is_an_error_fixed_by_the_type():
    data = bundle(patient(), [myelogram(cpt=None, text="Myelogram", day="2026-11-30")])
    error = refused(data)
    assert problems(error) == {"Bundle.entry[Procedure].code":
                               "is a myelogram but does not say which part of the spine"}
    assert "--type" in the_problem(error, "Bundle.entry[Procedure].code").fix
    assert read(data, overrides={"type": "lumbar"}).record.type.value == "lumbar"


def test_myelogram_two_current_ones_on_different_days_need_the_date():
    data = bundle(patient(), [order(id_="order-1", cpt="62304", day="2026-12-02"),
                              order(id_="order-2", cpt="62302", day="2026-12-09")])
    error = refused(data)
    problem = the_problem(error, MYELOGRAMS)
    assert problem.problem == (
        "has 2 myelograms that could be this one: Bundle.entry[ServiceRequest #1] "
        "(2026-12-02); Bundle.entry[ServiceRequest #2] (2026-12-09)")
    assert "--procedure-date" in problem.fix
    packet = read(data, overrides={"procedure_date": "2026-12-09"})
    assert packet.record.type.value == "cervical"
    assert packet.procedure_reference == "ServiceRequest/order-2"


@pytest.mark.parametrize(("order_status", "procedure_status", "day"), [
    ("active", "in-progress", "2026-11-30"),
    ("active", "completed", "2026-11-30"),
    ("completed", "completed", "2026-11-25"),
])
def test_myelogram_an_order_and_its_procedure_make_one_packet(order_status, procedure_status,
                                                               day):
    the_order = order(cpt="62304", day=day, status=order_status)
    done = myelogram(cpt="62304", day=day, status=procedure_status,
                     basedOn=[{"reference": "ServiceRequest/order-1"}])
    for listed in ([the_order, done], [done, the_order]):
        packet = read(bundle(patient(), listed))
        assert packet.record.type.value == "lumbar"
        assert packet.record.procedure_date.isoformat() == day
        assert packet.procedure_reference == "Procedure/proc-1"


def test_myelogram_an_active_order_and_its_earlier_completed_procedure_refer_to_the_procedure():
    the_order = order(cpt="62304", day="2026-11-25", status="active")
    done = myelogram(cpt="62304", day="2026-11-25", status="completed",
                     basedOn=[{"reference": "ServiceRequest/order-1"}])
    packet = read(bundle(patient(), [the_order, done]))
    assert packet.record.procedure_date.isoformat() == "2026-11-25"
    assert packet.procedure_reference == "Procedure/proc-1"


@pytest.mark.parametrize(("kind", "when"), [
    ("ServiceRequest", {"occurrenceTiming": {"event": ["2026-11-30T08:00:00-05:00",
                                                       "2026-12-30T08:00:00-05:00"]}}),
    ("ServiceRequest", {"occurrenceTiming": {"repeat": {"boundsPeriod": {
        "start": "2026-11-30", "end": "2026-12-31"}}}}),
    ("ServiceRequest", {"occurrencePeriod": {"start": "2026-11-30T07:30:00-05:00",
                                             "end": "2026-11-30T12:00:00-05:00"}}),
    ("Procedure", {"performedPeriod": {"start": "2026-11-30T09:40:00-05:00",
                                       "end": "2026-11-30T10:20:00-05:00"}}),
], ids=["occurrenceTiming.event", "occurrenceTiming.boundsPeriod", "occurrencePeriod",
        "performedPeriod"])
def test_myelogram_date_from_timing_and_periods(kind, when):
    data = bundle(patient(), [myelogram(kind=kind, cpt="62303", day=None, **when)])
    packet = read(data)
    assert packet.record.type.value == "thoracic"
    assert packet.record.procedure_date.isoformat() == "2026-11-30"


@pytest.mark.parametrize(("kind", "status"), [
    ("Procedure", "entered-in-error"), ("ServiceRequest", "entered-in-error"),
    ("ServiceRequest", "revoked"), ("ServiceRequest", "cancelled"), ("Procedure", "cancelled"),
    ("Procedure", "not-done"), ("Procedure", "stopped"),
])
def test_myelogram_withdrawn_ones_are_ignored(kind, status):
    withdrawn = myelogram(kind=kind, id_="withdrawn-1", cpt="62302", day="2026-11-30",
                          status=status)
    data = bundle(patient(), [withdrawn, myelogram(cpt="62304", day="2026-11-25")])
    packet = read(data)
    assert packet.record.type.value == "lumbar"
    assert packet.procedure_reference == "Procedure/proc-1"
    assert problems(refused(bundle(patient(), [withdrawn]))) == {MYELOGRAMS: "has no myelogram"}


# -- Bundle shapes ----------------------------------------------------------------


def test_bundle_with_resources_we_do_not_know_or_do_not_read_still_works():
    strangers = [
        {"resourceType": "SomethingNew", "id": "x-1", "whatever": {"deep": [1, 2, 3]}},
        {"resourceType": "Observation", "id": "obs-1", "status": "final",
         "code": {"text": "Pain score"}, "garbageField": True, "valueQuantity": "seven"},
        {"resourceType": "Encounter", "id": "enc-1", "status": "not-a-status"},
    ]
    packet = read(bundle(patient(), [myelogram()], extra=strangers))
    assert packet.record.mrn == MRN
    assert packet.record.type.value == "lumbar"


@pytest.mark.parametrize("reference", [
    f"{BASE_URL}/Patient/{PATIENT_ID}",
    f"Patient/{PATIENT_ID}/_history/4",
    f"{BASE_URL}/Patient/{PATIENT_ID}/_history/4",
    f"Patient/{PATIENT_ID}",
])
def test_searchset_subject_written_absolute_or_versioned_is_the_same_patient(reference):
    outcome = {"resourceType": "OperationOutcome", "id": "oo-1",
               "issue": [{"severity": "information", "code": "informational"}]}
    data = bundle(patient(), [myelogram(subject={"reference": reference})], kind="searchset",
                  extra=[outcome])
    data["entry"][-1]["search"] = {"mode": "outcome"}
    assert data["entry"][0]["fullUrl"] == f"{BASE_URL}/Patient/{PATIENT_ID}"
    packet = read(data)
    assert packet.record.mrn == MRN
    assert packet.subject == {"reference": f"Patient/{PATIENT_ID}"}
    assert packet.procedure_reference == "Procedure/proc-1"


@pytest.mark.parametrize("reference", ["Patient/999", f"{BASE_URL}/Patient/999",
                                       "Patient/999/_history/1"])
def test_searchset_subject_of_another_patient_is_refused(reference):
    data = bundle(patient(), [myelogram(subject={"reference": reference})], kind="searchset")
    error = refused(data)
    assert problems(error) == {"Bundle.entry[Procedure].subject": "refers to a different patient"}
    # The wrong patient's myelogram is never printed, whatever fields are given.
    error = refused(data, overrides={**EVERY_PATIENT_FIELD, "type": "lumbar",
                                     "procedure_date": "2026-11-25"})
    assert "Bundle.entry[Procedure].subject" in problems(error)


def test_transaction_bundle_with_urn_uuid_references():
    patient_url = f"urn:uuid:{uuid_of(PATIENT_ID)}"
    practitioner = {"resourceType": "Practitioner", "id": "prac-1",
                    "name": [{"prefix": ["Dr."], "given": ["Imogen"], "family": "Fieldwork"}]}
    procedure = myelogram(subject={"reference": patient_url},
                          performer=[{"actor": {"reference": f"urn:uuid:{uuid_of('prac-1')}"}}])
    data = bundle(patient(), [procedure], kind="transaction", extra=[practitioner])
    assert all("request" in e and "id" not in e["resource"] for e in data["entry"])
    packet = read(data)
    assert packet.record.mrn == MRN
    assert packet.record.physician == "Dr. Imogen Fieldwork"
    assert packet.subject == {"reference": patient_url}
    assert packet.procedure_reference == f"urn:uuid:{uuid_of('proc-1')}"
    other = myelogram(subject={"reference": f"urn:uuid:{uuid_of('someone-else')}"})
    assert problems(refused(bundle(patient(), [other], kind="transaction"))) == {
        "Bundle.entry[Procedure].subject": "refers to a different patient"}


@pytest.mark.parametrize("subject", [{"system": HOSPITAL_OID, "value": MRN}, {"value": MRN}])
def test_subject_given_by_the_patients_mrn_is_the_same_patient(subject):
    data = bundle(patient(), [myelogram(subject={"identifier": subject})])
    assert read(data).record.mrn == MRN


@pytest.mark.parametrize("subject", [{"system": HOSPITAL_OID, "value": "TST-0000404"},
                                     {"system": "urn:oid:2.999.1", "value": MRN}])
def test_subject_given_by_another_identifier_is_a_different_patient(subject):
    data = bundle(patient(), [myelogram(subject={"identifier": subject})])
    assert problems(refused(data)) == {
        "Bundle.entry[Procedure].subject": "refers to a different patient"}


def test_bundle_with_only_a_patient_prints_with_type_and_date_given():
    data = bundle(patient())
    error = refused(data)
    problem = the_problem(error, MYELOGRAMS)
    assert problem.problem == "has no myelogram"
    assert "--type" in problem.fix and "--procedure-date" in problem.fix
    packet = read(data, overrides={"type": "lumbar", "procedure_date": "2026-11-30"})
    assert packet.record.type.value == "lumbar"
    assert packet.record.procedure_date.isoformat() == "2026-11-30"
    assert packet.record.mrn == MRN
    assert packet.procedure_reference is None


def test_missing_birth_date_filled_by_an_override():
    data = one_patient(birthDate=None)
    assert problems(refused(data)) == {f"{PATIENT}.birthDate": "is missing"}
    packet = read(data, overrides={"date_of_birth": "1961-03-24"})
    assert packet.record.date_of_birth.isoformat() == "1961-03-24"


def test_physician_from_a_practitioner_in_the_bundle():
    practitioner = {"resourceType": "Practitioner", "id": "prac-7",
                    "name": [{"use": "old", "given": ["Imogen"], "family": "Oldname"},
                             {"prefix": ["Dr."], "given": ["Imogen"], "family": "Fieldwork"}]}
    procedure = myelogram(performer=[{"actor": {"reference": "Practitioner/prac-7"}}])
    packet = read(bundle(patient(), [procedure], extra=[practitioner]))
    assert packet.record.physician == "Dr. Imogen Fieldwork"


def test_physician_from_the_requester_of_an_order():
    the_order = order(day="2026-11-30",
                      requester={"display": "Dr.  Theo   Orderwell"})
    assert read(bundle(patient(), [the_order])).record.physician == "Dr. Theo Orderwell"


def test_give_names_fixes_in_the_callers_words():
    data = one_patient(identifier=epic_identifiers("EPI", "INTERNAL"))
    error = refused(data, give=lambda f: f"record.{f}")
    fix = the_problem(error, IDENTIFIER).fix
    assert "record.mrn_system" in fix and "record.mrn" in fix.replace("record.mrn_system", "")
    assert "--mrn" not in fix


def test_bad_override_is_reported_at_the_callers_field():
    data = one_patient()
    error = refused(data, overrides={"procedure_date": "2026-13-45"})
    assert problems(error) == {"--procedure-date": "is not a real calendar date"}
    assert "2026-13-45" not in str(error)
    error = refused(data, overrides={"procedure_date": "2026-13-45"},
                    give=lambda f: f"record.{f}")
    assert problems(error) == {"record.procedure_date": "is not a real calendar date"}


def test_myelogram_with_the_type_given_the_order_of_that_type_is_the_one_referred_to():
    cervical = order(cpt="62302", day="2026-12-02", status="active")
    lumbar = order(cpt="62304", day="2026-12-02", status="active", id_="order-2")
    packet = read(bundle(patient(), [cervical, lumbar]), overrides={"type": "lumbar"})
    assert packet.record.type.value == "lumbar"
    assert packet.procedure_reference == "ServiceRequest/order-2"
