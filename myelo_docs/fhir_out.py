"""FHIR R4 out: the packet as a US Core DocumentReference, errors as OperationOutcome,
and the CapabilityStatement that says what the service takes and gives.

Every resource built here is checked with the ``fhir.resources`` R4B models
before it leaves. Sources: FHIR R4 (hl7.org/fhir/R4) DocumentReference,
OperationOutcome, CapabilityStatement, Bundle (transaction); US Core 6.1
DocumentReference profile (us-core-documentreference): status, type,
category, subject, date, author, content.attachment (contentType, data or
url), content.format, context.period, identifier.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from . import __version__
from .brand import Brand
from .content import load_content
from .errors import Problem, RecordError
from .fhir import CPT_SYSTEM, CPT_TYPES, FhirPacket

FHIR_VERSION = "4.0.1"
DISCHARGE_INSTRUCTIONS = {"system": "http://loinc.org", "code": "8653-8",
                          "display": "Hospital Discharge instructions"}
US_CORE_DOCUMENT_REFERENCE = ("http://hl7.org/fhir/us/core/StructureDefinition/"
                              "us-core-documentreference")
US_CORE_CATEGORY = {"system": "http://hl7.org/fhir/us/core/CodeSystem/"
                              "us-core-documentreference-category",
                    "code": "clinical-note", "display": "Clinical Note"}
FORMAT_CODE = {"system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
               "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient",
               "display": "mimeType Sufficient"}
MRN_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                        "code": "MR", "display": "Medical record number"}]}
URI_SYSTEM = "urn:ietf:rfc:3986"
# The namespace of myelo-docs document ids (uuid5 of the record): the same
# record gives the same id on every machine, so a retry is the same document.
DOCUMENT_NAMESPACE = uuid.UUID("5d0c3c55-8a3e-4f0e-9a55-6d7965c0d0c5")
ORGANIZATION_ID = "organization"
PATIENT_REFERENCE = r"^(https?://\S+/)?Patient/[A-Za-z0-9\-.]{1,64}$"


def check_patient_reference(reference: str, where: str) -> None:
    """RecordError unless ``reference`` is Patient/<id> (optionally with the server's
    base URL in front)."""
    if not re.fullmatch(PATIENT_REFERENCE, reference):
        raise RecordError("The Patient reference is not one a FHIR server takes", [
            Problem(where, "is not Patient/<id>",
                    "give the Patient's id on your FHIR server, like Patient/123")])


def document_id(packet: FhirPacket) -> str:
    """``urn:uuid:…`` derived from the whole record (not the clock, not the PDF bytes)."""
    return f"urn:uuid:{uuid.uuid5(DOCUMENT_NAMESPACE, packet.record.model_dump_json())}"


def _subject(packet: FhirPacket, patient_reference: str | None) -> dict[str, Any]:
    """A resolvable reference when the caller knows the server's Patient id; else a
    logical one by the MRN (the Bundle's own ids may not exist on the server)."""
    identifier: dict[str, Any] = {"type": MRN_TYPE, "value": packet.record.mrn}
    if packet.mrn_system:
        identifier["system"] = packet.mrn_system
    subject: dict[str, Any] = {"identifier": identifier}
    if patient_reference:
        subject["reference"] = patient_reference
    return subject


def _organization(brand: Brand) -> dict[str, Any]:
    organization: dict[str, Any] = {
        "resourceType": "Organization", "id": ORGANIZATION_ID, "name": brand.hospital_name,
        "telecom": [{"system": "phone", "value": brand.department_phone, "use": "work"}]}
    if brand.address:
        organization["address"] = [{"text": brand.address}]
    if brand.website:
        organization["telecom"].append({"system": "url", "value": brand.website})
    return organization


def document_reference(pdf: bytes, packet: FhirPacket, brand: Brand, *,
                       patient_reference: str | None = None, created: datetime | None = None,
                       pdf_url: str | None = None) -> dict[str, Any]:
    """A US Core DocumentReference for the packet PDF.

    ``patient_reference``: the Patient's id on the receiving server
    ("Patient/123"), when the caller knows it; ``created``: when the document
    was made (default: now, UTC; ``date`` and ``attachment.creation``);
    ``pdf_url``: where the PDF is (e.g. a Binary's ``urn:uuid:`` in the same
    transaction) instead of inline ``data``. Texts are in the packet's
    language. Raises pydantic's ValidationError if the result is not valid
    FHIR R4 (a bug).
    """
    from fhir.resources.R4B.documentreference import DocumentReference

    record = packet.record
    text = load_content(record.language).data
    words, type_name = text["labels"]["labels"], text["types"][record.type.value]["type_name"]
    title = words["packet_title"].format(type_name=type_name)
    created_at = (created or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    instant = created_at.isoformat().replace("+00:00", "Z")
    identifier = {"system": URI_SYSTEM, "value": document_id(packet)}
    attachment: dict[str, Any] = {
        "contentType": "application/pdf", "language": record.language,
        "size": len(pdf), "hash": base64.b64encode(hashlib.sha1(pdf).digest()).decode("ascii"),
        "title": title, "creation": instant}
    if pdf_url:
        attachment["url"] = pdf_url
    else:
        attachment["data"] = base64.b64encode(pdf).decode("ascii")
    day = record.procedure_date.isoformat()
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "meta": {"profile": [US_CORE_DOCUMENT_REFERENCE]},
        "contained": [_organization(brand)],
        "masterIdentifier": identifier,
        "identifier": [identifier],
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [DISCHARGE_INSTRUCTIONS],
                 "text": words["packet_subject"].format(type_name=type_name)},
        "category": [{"coding": [US_CORE_CATEGORY]}],
        "subject": _subject(packet, patient_reference),
        "date": instant,
        "author": [{"reference": f"#{ORGANIZATION_ID}"}],
        "custodian": {"reference": f"#{ORGANIZATION_ID}"},
        "description": title,
        "content": [{"attachment": attachment, "format": FORMAT_CODE}],
        "context": {"period": {"start": day, "end": day},
                    "event": [{"coding": [{"system": CPT_SYSTEM, "code": code}]}
                              for code, kind in CPT_TYPES.items() if kind == record.type]},
    }
    if packet.procedure_identifier:  # never the sender's own Procedure/<id>
        resource["context"]["related"] = [packet.procedure_identifier]
    DocumentReference.model_validate(resource)
    return resource


def transaction(pdf: bytes, packet: FhirPacket, brand: Brand, *,
                patient_reference: str | None = None,
                created: datetime | None = None) -> dict[str, Any]:
    """A transaction Bundle: the PDF as a Binary, and the DocumentReference pointing at it
    (``attachment.url``), for servers that refuse large inline data. Posted twice, it
    makes one document: the DocumentReference is created only if none has its
    identifier (``ifNoneExist``)."""
    from fhir.resources.R4B.bundle import Bundle

    document = document_id(packet)
    binary_url = f"urn:uuid:{uuid.uuid5(DOCUMENT_NAMESPACE, document + '/pdf')}"
    reference = document_reference(pdf, packet, brand, patient_reference=patient_reference,
                                   created=created, pdf_url=binary_url)
    binary = {"resourceType": "Binary", "contentType": "application/pdf",
              "data": base64.b64encode(pdf).decode("ascii")}
    if patient_reference:
        binary["securityContext"] = {"reference": patient_reference}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": binary_url, "resource": binary,
         "request": {"method": "POST", "url": "Binary"}},
        {"fullUrl": document, "resource": reference,
         "request": {"method": "POST", "url": "DocumentReference",
                     "ifNoneExist": f"identifier={URI_SYSTEM}|{document}"}}]}
    Bundle.model_validate(bundle)
    return bundle


# -- errors --------------------------------------------------------------------

ISSUE_CODES = {400: "structure", 401: "login", 403: "forbidden", 404: "not-found",
               405: "not-supported", 406: "not-supported", 408: "timeout", 413: "too-costly",
               415: "not-supported", 422: "invalid", 429: "throttled", 500: "exception",
               503: "transient", 504: "timeout"}


def fhirpath(field: str) -> str | None:
    """Our Bundle path as FHIRPath: Bundle.entry[Patient].name ->
    Bundle.entry.resource.ofType(Patient).name; None for what is not in the Bundle
    (a header, ``record.mrn``, the body as a whole)."""
    if not field.startswith("Bundle"):
        return None
    field = field.replace("[x]", "")  # deceased[x] is deceasedBoolean or deceasedDateTime
    head, bracket, rest = field.partition(".entry[")
    if not bracket:
        return field
    inside, _, tail = rest.partition("]")
    kinds = [k.strip() for k in inside.split(" or ")]
    if inside.isdigit():
        return field
    if len(kinds) == 1:
        path = f"{head}.entry.resource.ofType({kinds[0]})"
    else:
        path = f"{head}.entry.resource.where({' or '.join(f'is({k})' for k in kinds)})"
    return path + tail


def operation_outcome(status: int, message: str, problems: list[Problem]) -> dict[str, Any]:
    """An OperationOutcome for an error answered with HTTP ``status``: one issue per
    problem, ``expression`` the FHIRPath when the problem is in the Bundle,
    ``diagnostics`` the problem and its fix in plain words."""
    from fhir.resources.R4B.operationoutcome import OperationOutcome

    code = ISSUE_CODES.get(status, "processing")
    issues = []
    for problem in problems or [Problem("", message, "")]:
        where = fhirpath(problem.field)
        said = problem.problem if where or not problem.field else \
            f"{problem.field} {problem.problem}"
        issue: dict[str, Any] = {
            "severity": "error",
            "code": "required" if code == "invalid" and problem.problem == "is missing" else code,
            "details": {"text": message},
            "diagnostics": f"{said}. Fix: {problem.fix}" if problem.fix else said}
        if where:
            issue["expression"] = [where]
        issues.append(issue)
    outcome = {"resourceType": "OperationOutcome", "issue": issues}
    OperationOutcome.model_validate(outcome)
    return outcome


def capability_statement(base: str, released: str, max_bundle_mb: float) -> dict[str, Any]:
    """What the service takes and gives, as a FHIR R4 CapabilityStatement.

    ``base``: the FHIR base path (``/v1/fhir``); ``released``: the date of
    this version (a FHIR dateTime, from the data, not the clock).
    """
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    reads = ("It reads the Patient (identifier, name, birthDate, communication, deceased, "
             "active, link), the myelogram Procedure or ServiceRequest (CPT 62302, 62303, "
             "62304, or code text naming a myelogram) and its Practitioner; other resources "
             "are ignored.")
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": released,
        "publisher": "myelo-docs",
        "kind": "instance",
        "software": {"name": "myelo-docs", "version": __version__},
        "implementation": {"description": "myelo-docs: myelogram patient packets",
                           "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": (
                f"POST {base}/packets with a Bundle (or {{\"bundle\": <Bundle>, \"record\": "
                "{<fields to fill or replace>}}), at most "
                f"{max_bundle_mb:g} MB. {reads} Answers the packet PDF (Accept: "
                "application/pdf, the default), or a US Core DocumentReference carrying it "
                "(Accept or _format: application/fhir+json or json); with ?binary=true a "
                "transaction Bundle of a Binary and the DocumentReference. Errors are "
                "OperationOutcome resources."),
            "security": {"description": "When the server has a token: 'Authorization: "
                                        "Bearer <token>'. Nothing is stored."},
            "resource": [
                {"type": "DocumentReference", "profile": US_CORE_DOCUMENT_REFERENCE,
                 "documentation": "Made for each packet; not stored, so no interactions."},
                *({"type": kind, "documentation": "Read from the posted Bundle."}
                  for kind in ("Patient", "Procedure", "ServiceRequest", "Practitioner")),
            ],
        }],
    }
    CapabilityStatement.model_validate(statement)
    return statement

