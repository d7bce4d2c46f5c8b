"""FHIR the way an integration engineer meets it: a US Core DocumentReference, errors as
OperationOutcome on every FHIR route, content negotiation, the CapabilityStatement."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.operationoutcome import OperationOutcome

from conftest import ROOT, flat, pages_text
from myelo_docs.cli.main import main
from myelo_docs.formats.fhir import packet_from_bundle
from myelo_docs.formats.fhir_out import document_id, document_reference, fhirpath, transaction
from myelo_docs.schema.brand import load_brand
from myelo_docs.service import RenderPool, RenderSettings, ServiceSettings, create_app
from myelo_docs.service.fhir_api import negotiate

DATA = ROOT / "tests" / "data" / "fhir"
PDF_BYTES = b"%PDF-1.7 test bytes"
MADE = datetime(2026, 11, 30, 14, 5, 9, tzinfo=UTC)
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-documentreference"
TOKEN = "kq3V9-pXw2Lr7ZtYb0HnCs4FdJg8MeUa"


def bundle(name: str = "lumbar-procedure") -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def reference(record: dict | None = None, **kwargs) -> dict:
    packet = packet_from_bundle(bundle(), record or {"procedure_date": "2026-11-25"})
    return document_reference(PDF_BYTES, packet, load_brand(), created=MADE, **kwargs)


# -- the DocumentReference, rule by rule (US Core 6.1 us-core-documentreference) ----------


def test_document_reference_is_valid_r4_and_claims_the_profile():
    resource = reference()
    DocumentReference.model_validate(resource)
    assert resource["meta"]["profile"] == [US_CORE]


def test_status_and_type_loinc_discharge_instructions():
    resource = reference()
    assert resource["status"] == "current" and resource["docStatus"] == "final"
    assert resource["type"]["coding"] == [{"system": "http://loinc.org", "code": "8653-8",
                                           "display": "Hospital discharge instructions"}]


def test_category_is_us_core_clinical_note():
    [category] = reference()["category"]
    assert category["coding"][0]["system"] == (
        "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category")
    assert category["coding"][0]["code"] == "clinical-note"


def test_subject_is_the_mrn_never_the_clients_own_patient_id():
    subject = reference()["subject"]
    assert "reference" not in subject  # Patient/pat-4471902 is the sender's id, not the server's
    assert subject["identifier"]["system"] == "urn:oid:2.16.840.1.113883.19.5"
    assert subject["identifier"]["value"] == "TST-4471902"
    assert subject["identifier"]["type"]["coding"][0]["code"] == "MR"


def test_subject_refers_to_the_servers_patient_when_given():
    subject = reference(patient_reference="Patient/98765")["subject"]
    assert subject["reference"] == "Patient/98765"
    assert subject["identifier"]["value"] == "TST-4471902"


def test_an_mrn_given_by_hand_takes_the_hospitals_system():
    from myelo_docs.schema.intake import IntakeSettings

    packet = packet_from_bundle(bundle(), {"procedure_date": "2026-11-25", "mrn": "TST-1"},
                                IntakeSettings(mrn_systems=("urn:oid:1.2.3",)))
    identifier = document_reference(PDF_BYTES, packet, load_brand())["subject"]["identifier"]
    assert identifier["system"] == "urn:oid:1.2.3" and identifier["value"] == "TST-1"


def test_date_is_an_instant_even_for_a_date_only_order():
    packet = packet_from_bundle(bundle("cervical-servicerequest"), {"mrn": "TST-5520117"})
    assert packet.performed_instant is None  # the order has a date, no time
    resource = document_reference(PDF_BYTES, packet, load_brand())
    made = datetime.fromisoformat(resource["date"].replace("Z", "+00:00"))
    assert abs(made - datetime.now(UTC)) < timedelta(minutes=1)
    assert reference()["date"] == "2026-11-30T14:05:09Z"


def test_author_and_custodian_are_the_hospital_from_the_brand():
    resource = reference()
    [organization] = resource["contained"]
    assert organization["resourceType"] == "Organization"
    assert organization["name"] == load_brand().hospital_name
    assert resource["author"] == [{"reference": f"#{organization['id']}"}]
    assert resource["custodian"] == {"reference": f"#{organization['id']}"}


def test_attachment_carries_the_pdf_with_every_must_support_element():
    attachment = reference()["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    assert base64.b64decode(attachment["data"]) == PDF_BYTES
    assert attachment["size"] == len(PDF_BYTES)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(PDF_BYTES).digest()).decode()
    assert attachment["language"] == "en"
    assert attachment["title"] == "Going home after your lumbar myelogram"
    assert attachment["creation"] == "2026-11-30T14:05:09Z"
    assert "Rosalind" not in json.dumps(attachment["title"])


def test_content_format_is_ihe_mime_type_sufficient():
    content = reference()["content"][0]
    assert content["format"]["code"] == "urn:ihe:iti:xds:2017:mimeTypeSufficient"


def test_context_period_has_start_and_end_and_the_procedure():
    context = reference()["context"]
    assert context["period"] == {"start": "2026-11-25", "end": "2026-11-25"}
    assert "related" not in context  # the Procedure has no identifier; its id is the sender's
    data = bundle()
    data["entry"][1]["resource"]["identifier"] = [{"value": "ACC-1"},
                                                  {"system": "urn:oid:1.2.9", "value": "ACC-2"}]
    packet = packet_from_bundle(data, {"procedure_date": "2026-11-25"})
    related = document_reference(PDF_BYTES, packet, load_brand())["context"]["related"]
    assert related == [{"type": "Procedure",
                        "identifier": {"system": "urn:oid:1.2.9", "value": "ACC-2"}}]
    assert context["event"][0]["coding"][0]["code"] == "62304"


def test_identifiers_are_the_same_for_a_retry_and_differ_for_another_packet():
    first, again = reference(), reference()
    assert first["masterIdentifier"] == again["masterIdentifier"]
    assert first["identifier"] == again["identifier"]
    assert first["masterIdentifier"]["value"].startswith("urn:uuid:")
    other = reference({"procedure_date": "2026-11-25", "instructions": ["Rest two days."]})
    assert other["masterIdentifier"] != first["masterIdentifier"]
    assert other["identifier"] != first["identifier"]
    # The same record printed differently (new text, a new brand) is a new version of
    # the same document: masterIdentifier is version-specific, identifier is not.
    packet = packet_from_bundle(bundle(), {"procedure_date": "2026-11-25"})
    reprinted = document_reference(PDF_BYTES + b" new text", packet, load_brand(), created=MADE)
    assert reprinted["identifier"] == first["identifier"]
    assert reprinted["masterIdentifier"] != first["masterIdentifier"]


def test_texts_are_in_the_packets_language():
    resource = reference({"procedure_date": "2026-11-25", "language": "es"})
    assert resource["content"][0]["attachment"]["language"] == "es"
    assert "mielografía" in resource["type"]["text"].lower()
    assert "mielografía" in resource["description"].lower()
    english = reference()
    assert resource["type"]["text"] != english["type"]["text"]


def test_transaction_puts_the_pdf_in_a_binary_and_posts_once():
    packet = packet_from_bundle(bundle(), {"procedure_date": "2026-11-25"})
    result = transaction(PDF_BYTES, packet, load_brand(), patient_reference="Patient/98765",
                         created=MADE)
    Bundle.model_validate(result)
    assert result["type"] == "transaction"
    binary, docref = (entry["resource"] for entry in result["entry"])
    assert binary["resourceType"] == "Binary"
    assert base64.b64decode(binary["data"]) == PDF_BYTES
    # The Binary is put under an id of its own: posted twice, one PDF, no orphan copy.
    assert result["entry"][0]["request"] == {"method": "PUT", "url": f"Binary/{binary['id']}"}
    assert binary["securityContext"] == {"reference": document_id(packet)}
    attachment = docref["content"][0]["attachment"]
    assert attachment["url"] == f"Binary/{binary['id']}" and "data" not in attachment
    assert attachment["size"] == len(PDF_BYTES)
    assert docref["subject"]["reference"] == "Patient/98765"
    request = result["entry"][1]["request"]
    assert request["method"] == "POST" and request["url"] == "DocumentReference"
    assert request["ifNoneExist"] == \
        f"identifier=urn:ietf:rfc:3986|{docref['masterIdentifier']['value']}"
    assert result["entry"][1]["fullUrl"] == document_id(packet)
    assert result == transaction(PDF_BYTES, packet, load_brand(),
                                 patient_reference="Patient/98765", created=MADE)


def test_without_the_patient_a_transaction_names_it_by_a_conditional_reference():
    packet = packet_from_bundle(bundle(), {"procedure_date": "2026-11-25"})
    result = transaction(PDF_BYTES, packet, load_brand(), created=MADE)
    subject = result["entry"][1]["resource"]["subject"]
    assert subject["reference"] == \
        "Patient?identifier=urn:oid:2.16.840.1.113883.19.5|TST-4471902"


def test_an_mrn_without_a_system_and_no_patient_is_refused():
    from myelo_docs import RecordError

    data = bundle()
    del data["entry"][0]["resource"]["identifier"][1]["system"]
    packet = packet_from_bundle(data, {"procedure_date": "2026-11-25"})
    with pytest.raises(RecordError) as caught:
        document_reference(PDF_BYTES, packet, load_brand())
    assert "--mrn-system" in caught.value.problems[0].fix
    assert document_reference(PDF_BYTES, packet, load_brand(),
                              patient_reference="Patient/1")["subject"]["reference"]


@pytest.mark.parametrize(("ours", "paths"), [
    ("Bundle.entry[Patient].birthDate", ["Bundle.entry.resource.ofType(Patient).birthDate"]),
    ("Bundle.entry[Procedure or ServiceRequest]",
     ["Bundle.entry.resource.where(is(Procedure) or is(ServiceRequest))"]),
    ("Bundle.entry[Procedure #2].performedDateTime",
     ["Bundle.entry.resource.ofType(Procedure)[1].performedDateTime"]),
    ("Bundle.entry[Patient].birthDate and Bundle.entry[Procedure].performedDateTime",
     ["Bundle.entry.resource.ofType(Patient).birthDate",
      "Bundle.entry.resource.ofType(Procedure).performedDateTime"]),
    ("Bundle.entry[2].resource.code", ["Bundle.entry[2].resource.code"]),
    ("record.mrn", []), ("Authorization", []),
])
def test_our_paths_become_fhirpath(ours, paths):
    assert fhirpath(ours) == paths


# -- over HTTP ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool():
    pool = RenderPool(RenderSettings(), workers=1, queue=2).start()
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def client(pool):
    return TestClient(create_app(pool), base_url="http://127.0.0.1")


def post(client, body, accept: str | None = None, **params):
    headers = {"content-type": "application/fhir+json"}
    if accept is not None:
        headers["accept"] = accept
    return client.post("/v1/fhir/packets", content=json.dumps(body).encode(), headers=headers,
                       params=params)


GOOD = {"bundle": bundle(), "record": {"procedure_date": "2026-11-25"}}


@pytest.mark.parametrize(("accept", "format_", "wanted"), [
    (None, None, "application/pdf"),
    ("*/*", None, "application/pdf"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", None,
     "application/pdf"),  # a browser
    ("application/fhir+json", None, "application/fhir+json"),
    ("application/json", None, "application/json"),
    ("application/fhir+json; fhirVersion=4.0", None, "application/fhir+json"),
    ("application/pdf;q=0.5, application/fhir+json", None, "application/fhir+json"),
    ("application/fhir+json;q=0, */*;q=0.1", None, "application/pdf"),
    ("application/pdf", "json", "application/fhir+json"),  # _format wins
    (None, "application/json", "application/json"),
    ("application/fhir+json", "pdf", "application/pdf"),
    ("application/fhir+json, */*", None, "application/fhir+json"),  # named beats */*
    ("application/json, text/plain, */*", None, "application/json"),  # axios's default
    ("application/fhir+json;q=0.9, application/pdf;q=0.9", None, "application/pdf"),
    ("application/json+fhir", None, "application/fhir+json"),  # the DSTU2 name
    (None, "application/fhir json", "application/fhir+json"),  # "+" sent unescaped
])
def test_content_negotiation(client, accept, format_, wanted):
    params = {"_format": format_} if format_ else {}
    response = post(client, GOOD, accept, **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == wanted
    if wanted == "application/pdf":
        assert response.content.startswith(b"%PDF")
    else:
        resource = response.json()
        DocumentReference.model_validate(resource)
        assert "Rosalind Maria Fhirpatient" in flat(pages_text(
            base64.b64decode(resource["content"][0]["attachment"]["data"]))[0])


def test_fhir_answers_say_their_charset_and_vary_by_accept(client):
    response = post(client, GOOD, "application/fhir+json")
    assert response.headers["content-type"] == "application/fhir+json; charset=utf-8"
    assert response.headers["vary"] == "Accept"
    error = post(client, {"bundle": bundle(), "extra": 1}, "application/fhir+json")
    assert error.headers["content-type"] == "application/fhir+json; charset=utf-8"


@pytest.mark.parametrize("content_type", [
    "application/fhir+json; charset=iso-8859-1", "application/fhir+json; fhirVersion=3.0"])
def test_a_body_in_another_charset_or_fhir_version_is_415(client, content_type):
    response = client.post("/v1/fhir/packets", content=json.dumps(GOOD).encode(),
                           headers={"content-type": content_type})
    assert response.status_code == 415
    assert outcome(response)["issue"][0]["code"] == "not-supported"


def test_negotiation_rules():
    offered = ("application/pdf", "application/fhir+json", "application/json")
    assert negotiate("application/fhir+json;q=0", offered) is None
    assert negotiate("application/*;q=0.3, application/pdf;q=0", offered) == \
        "application/fhir+json"
    assert negotiate("text/html", offered) is None
    assert negotiate("application/fhir+json;fhirVersion=3.0", offered) is None
    assert negotiate("application/fhir+json; fhirVersion=4.0", offered) == \
        "application/fhir+json"
    assert negotiate("APPLICATION/FHIR+JSON", offered) == "application/fhir+json"
    assert negotiate("application/json;q=abc, application/pdf;q=0.1", offered) == \
        "application/pdf"


def outcome(response) -> dict:
    assert response.headers["content-type"].startswith("application/fhir+json"), response.text
    body = response.json()
    OperationOutcome.model_validate(body)
    assert body["resourceType"] == "OperationOutcome"
    return body


def test_nothing_acceptable_is_406_as_operation_outcome(client):
    for accept, params in (("application/fhir+json;q=0", {}), ("text/html", {}),
                           (None, {"_format": "xml"})):
        response = post(client, GOOD, accept, **params)
        assert response.status_code == 406
        [issue] = outcome(response)["issue"]
        assert issue["code"] == "not-supported"


def test_record_problems_are_422_with_the_fhirpath(client):
    broken = bundle()
    del broken["entry"][0]["resource"]["birthDate"]
    response = post(client, {"bundle": broken, "record": {"procedure_date": "2026-11-25"}},
                    "application/fhir+json")
    assert response.status_code == 422
    [issue] = outcome(response)["issue"]
    assert issue["severity"] == "error" and issue["code"] == "required"
    assert issue["expression"] == ["Bundle.entry.resource.ofType(Patient).birthDate"]
    assert "Fix:" in issue["details"]["text"] and "1958" not in response.text
    response = post(client, {"bundle": bundle(), "record": {"procedure_date": "2026-13-45"}})
    assert response.status_code == 422
    [issue] = outcome(response)["issue"]
    assert "expression" not in issue
    assert issue["details"]["text"].startswith("record.procedure_date")


def test_every_error_on_the_fhir_routes_is_an_operation_outcome(client, pool):
    cases = [
        (post(client, {"bundle": bundle(), "extra": 1}), 422, "invalid"),
        (post(client, {"bundle": bundle(), "patient": "Practitioner/1"}), 422, "invalid"),
        (client.post("/v1/fhir/packets", content=b"{nope",
                     headers={"content-type": "application/fhir+json"}), 400, "structure"),
        (client.post("/v1/fhir/packets", content=b"<Bundle/>",
                     headers={"content-type": "application/fhir+xml"}), 415, "not-supported"),
        (client.get("/v1/fhir/packets"), 405, "not-supported"),
        (client.get("/v1/fhir/Patient/1"), 404, "not-found"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        [issue] = outcome(response)["issue"]
        assert issue["code"] == code, issue
    unsupported = cases[3][0].json()["issue"][0]["details"]["text"]
    assert "application/fhir+json" in unsupported  # not "is not application/json"
    small = TestClient(create_app(pool, ServiceSettings(fhir_max_body=1024)),
                       base_url="http://127.0.0.1")
    too_big = post(small, GOOD)
    assert too_big.status_code == 413 and outcome(too_big)["issue"][0]["code"] == "too-long"
    secured = TestClient(create_app(pool, ServiceSettings(token=TOKEN)),
                         base_url="http://127.0.0.1")
    refused = post(secured, GOOD)
    assert refused.status_code == 401 and outcome(refused)["issue"][0]["code"] == "login"
    assert refused.headers["www-authenticate"] == "Bearer"
    # The JSON API keeps its own error shape.
    plain = client.post("/v1/packets", json={})
    assert plain.status_code == 422 and plain.json()["error"] == "RecordError"


def test_binary_true_answers_a_transaction_bundle(client):
    response = post(client, {**GOOD, "patient": "Patient/98765"}, "application/fhir+json",
                    binary="true")
    assert response.status_code == 200
    result = response.json()
    Bundle.model_validate(result)
    binary, docref = (entry["resource"] for entry in result["entry"])
    assert docref["subject"]["reference"] == "Patient/98765"
    assert "Rosalind Maria Fhirpatient" in flat(pages_text(base64.b64decode(binary["data"]))[0])


@pytest.mark.parametrize("path", ["/metadata", "/v1/fhir/metadata"])
def test_capability_statement_says_what_we_take_and_give(pool, path):
    secured = TestClient(create_app(pool, ServiceSettings(token=TOKEN)),
                         base_url="http://127.0.0.1")
    response = secured.get(path)  # no token: FHIR clients read it first
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = response.json()
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1" and statement["kind"] == "instance"
    assert set(statement["format"]) == {"application/fhir+json", "json"}
    [rest] = statement["rest"]
    assert "POST http://127.0.0.1/v1/fhir/packets" in rest["documentation"]
    assert statement["implementation"]["url"] == "http://127.0.0.1/v1/fhir"  # absolute
    [resource] = rest["resource"]  # nothing else can be read at [base]/<type>
    assert resource["supportedProfile"] == [US_CORE]
    assert any("hl7.fhir.us.core" in ig for ig in statement["implementationGuide"])
    assert secured.get(path, params={"_format": "json"}).status_code == 200
    assert secured.head(path).status_code == 200
    assert secured.get(path, params={"mode": "terminology"}).status_code == 400


# -- the command line ----------------------------------------------------------------


def test_cli_document_reference_carries_the_same_pdf(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [
        "packet", "--fhir", str(DATA / "lumbar-procedure.json"), "--procedure-date",
        "2026-11-25", "--fhir-out", "docref.json", "--fhir-subject", "Patient/98765",
        "-o", "packet.pdf"])
    assert result.exit_code == 0, result.output
    pdf = (tmp_path / "packet.pdf").read_bytes()
    resource = json.loads((tmp_path / "docref.json").read_text())
    DocumentReference.model_validate(resource)
    assert base64.b64decode(resource["content"][0]["attachment"]["data"]) == pdf
    assert resource["subject"]["reference"] == "Patient/98765"
    assert all("Rosalind Maria Fhirpatient" in flat(t) for t in pages_text(pdf))


def test_cli_binary_and_subject_checks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["packet", "--fhir", str(DATA / "lumbar-procedure.json"), "--procedure-date",
            "2026-11-25"]
    result = CliRunner().invoke(main, [*base, "--fhir-out", "tx.json", "--fhir-binary"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "tx.json").read_text())["type"] == "transaction"
    result = CliRunner().invoke(main, [*base, "--fhir-out", "d.json", "--fhir-subject", "123"])
    assert result.exit_code == 3 and "--fhir-subject" in result.output
    assert re.search(r"Patient/", result.output)
    result = CliRunner().invoke(main, [*base, "--fhir-binary"])
    assert result.exit_code == 2 and "--fhir-out" in result.output
