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
import html
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from myelo_docs.about import __version__
from myelo_docs.content.loader import load_content
from myelo_docs.formats.fhir import CPT_SYSTEM, CPT_TWO_OR_MORE_REGIONS, CPT_TYPES, FhirPacket
from myelo_docs.schema.brand import Brand
from myelo_docs.schema.errors import Problem, RecordError
from myelo_docs.schema.messages import error
from myelo_docs.schema.record import ExamType

FHIR_VERSION = "4.0.1"
DISCHARGE_INSTRUCTIONS = {"system": "http://loinc.org", "code": "8653-8",
                          "display": "Hospital discharge instructions"}
US_CORE_DOCUMENT_REFERENCE = ("http://hl7.org/fhir/us/core/StructureDefinition/"
                              "us-core-documentreference")
US_CORE_IG = "http://hl7.org/fhir/us/core/ImplementationGuide/hl7.fhir.us.core|6.1.0"
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


def event_codes(kind: ExamType) -> list[str]:
    """The CPT code of the myelogram: 62302-62304 for one part, 62305 for several."""
    if len(kind.regions) > 1:
        return [CPT_TWO_OR_MORE_REGIONS]
    return [code for code, part in CPT_TYPES.items() if part == kind]


def check_patient_reference(reference: str, where: str) -> None:
    """RecordError unless ``reference`` is Patient/<id> (optionally with the server's
    base URL in front)."""
    if not re.fullmatch(PATIENT_REFERENCE, reference):
        raise error(RecordError, "fhir_patient_reference", where)


def document_id(packet: FhirPacket) -> str:
    """``urn:uuid:…`` of the document: derived from the whole record (not the clock),
    so the same packet asked for again is the same document (``identifier``)."""
    return f"urn:uuid:{uuid.uuid5(DOCUMENT_NAMESPACE, packet.record.model_dump_json())}"


def version_id(packet: FhirPacket, pdf: bytes) -> str:
    """``urn:uuid:…`` of this version of the document (``masterIdentifier``): the record
    and the PDF's bytes, so new text or a new brand makes a new version."""
    digest = hashlib.sha256(pdf).hexdigest()
    return f"urn:uuid:{uuid.uuid5(DOCUMENT_NAMESPACE, document_id(packet) + digest)}"


def _subject(packet: FhirPacket, patient_reference: str | None,
             conditional: bool = False) -> dict[str, Any]:
    """The Patient: a resolvable reference when the caller knows the server's id; in a
    transaction, a conditional one by the MRN (the server resolves it); always the
    MRN identifier too. The Bundle's own ids may not exist on the server, so they
    are never used. RecordError when neither an id nor the MRN's system is known:
    an MRN without its system matches nothing on a server."""
    identifier: dict[str, Any] = {"type": MRN_TYPE, "value": packet.record.mrn}
    if packet.mrn_system:
        identifier["system"] = packet.mrn_system
    subject: dict[str, Any] = {"identifier": identifier}
    if patient_reference:
        subject["reference"] = patient_reference
    elif not packet.mrn_system:
        raise error(RecordError, "fhir_subject_unknown", "patient")
    elif conditional:
        subject["reference"] = f"Patient?identifier={packet.mrn_system}|{packet.record.mrn}"
    return subject


def _website(address: str) -> str:
    return address if "://" in address else f"https://{address}"


def _organization(brand: Brand) -> dict[str, Any]:
    organization: dict[str, Any] = {
        "resourceType": "Organization", "id": ORGANIZATION_ID, "active": True,
        "name": brand.hospital_name,
        "telecom": [{"system": "phone", "value": brand.department_phone, "use": "work"}]}
    if brand.address:
        organization["address"] = [{"text": brand.address}]
    if brand.website:
        organization["telecom"].append({"system": "url", "value": _website(brand.website)})
    return organization


def document_reference(pdf: bytes, packet: FhirPacket, brand: Brand, *,
                       patient_reference: str | None = None, created: datetime | None = None,
                       pdf_url: str | None = None, in_transaction: bool = False
                       ) -> dict[str, Any]:
    """A US Core DocumentReference for the packet PDF.

    ``patient_reference``: the Patient's id on the receiving server
    ("Patient/123"), when the caller knows it; ``created``: when the document
    was made (default: now, UTC; ``date`` and ``attachment.creation``);
    ``pdf_url``: where the PDF is (e.g. a Binary's ``urn:uuid:`` in the same
    transaction) instead of inline ``data``; ``in_transaction``: the subject may
    be a conditional reference by the MRN. Texts are in the packet's
    language. Raises RecordError when the patient cannot be named (see
    _subject); pydantic's ValidationError if the result is not valid FHIR R4
    (a bug).
    """
    from fhir.resources.R4B.documentreference import DocumentReference

    record = packet.record
    text = load_content(record.language).data
    words, type_name = text["labels"]["labels"], text["types"][record.type.value]["type_name"]
    title = words["packet_title"].format(type_name=type_name)
    created_at = (created or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    instant = created_at.isoformat().replace("+00:00", "Z")
    identifier = {"system": URI_SYSTEM, "value": document_id(packet)}
    version = {"system": URI_SYSTEM, "value": version_id(packet, pdf)}
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
        "language": record.language,
        "text": {"status": "generated", "div": (
            f'<div xmlns="http://www.w3.org/1999/xhtml" lang="{record.language}">'
            f"{html.escape(title)}</div>")},
        "contained": [_organization(brand)],
        "masterIdentifier": version,
        "identifier": [identifier],
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [DISCHARGE_INSTRUCTIONS],
                 "text": words["packet_subject"].format(type_name=type_name)},
        "category": [{"coding": [US_CORE_CATEGORY]}],
        "subject": _subject(packet, patient_reference, conditional=in_transaction),
        "date": instant,
        "author": [{"reference": f"#{ORGANIZATION_ID}"}],
        "custodian": {"reference": f"#{ORGANIZATION_ID}"},
        "description": title,
        "content": [{"attachment": attachment, "format": FORMAT_CODE}],
        "context": {"period": {"start": day, "end": day},
                    "event": [{"coding": [{"system": CPT_SYSTEM, "code": code}]}
                              for code in event_codes(record.type)]},
    }
    if packet.procedure_identifier:  # never the sender's own Procedure/<id>
        resource["context"]["related"] = [packet.procedure_identifier]
    DocumentReference.model_validate(resource)
    return resource


def transaction(pdf: bytes, packet: FhirPacket, brand: Brand, *,
                patient_reference: str | None = None,
                created: datetime | None = None) -> dict[str, Any]:
    """A transaction Bundle: the PDF as a Binary, and the DocumentReference pointing at it
    (``attachment.url``), for servers that refuse large inline data.

    Posted twice, it makes one document and one PDF: the Binary has an id of its
    own made from this version (``PUT Binary/<id>``, and ``attachment.url`` is
    ``Binary/<id>``, which needs no rewriting by the server), and the
    DocumentReference is created only if none has this version's
    masterIdentifier (``ifNoneExist``). Without ``patient_reference`` the
    subject is a conditional reference by the MRN (``Patient?identifier=``),
    which the server resolves.
    """
    from fhir.resources.R4B.bundle import Bundle

    version = version_id(packet, pdf)
    binary_id = version.removeprefix("urn:uuid:")
    reference = document_reference(pdf, packet, brand, patient_reference=patient_reference,
                                   created=created, pdf_url=f"Binary/{binary_id}",
                                   in_transaction=True)
    binary = {"resourceType": "Binary", "id": binary_id, "contentType": "application/pdf",
              "securityContext": {"reference": document_id(packet)},
              "data": base64.b64encode(pdf).decode("ascii")}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": binary, "request": {"method": "PUT", "url": f"Binary/{binary_id}"}},
        {"fullUrl": document_id(packet), "resource": reference,
         "request": {"method": "POST", "url": "DocumentReference",
                     "ifNoneExist": f"identifier={URI_SYSTEM}|{version}"}}]}
    Bundle.model_validate(bundle)
    return bundle


# -- errors --------------------------------------------------------------------

ISSUE_CODES = {400: "structure", 401: "login", 403: "forbidden", 404: "not-found",
               405: "not-supported", 406: "not-supported", 408: "timeout", 413: "too-long",
               415: "not-supported", 422: "invalid", 429: "throttled", 500: "exception",
               503: "transient", 504: "timeout"}


def fhirpath(field: str) -> list[str]:
    """Our Bundle paths as FHIRPath expressions: Bundle.entry[Patient].name ->
    Bundle.entry.resource.ofType(Patient).name; Bundle.entry[Procedure #2].code ->
    Bundle.entry.resource.ofType(Procedure)[1].code; two places joined by " and "
    are two expressions. Empty for what is not in the Bundle (a header,
    ``record.mrn``, the body as a whole)."""
    return [path for part in field.split(" and ") if (path := _one_path(part.strip()))]


def _one_path(field: str) -> str | None:
    if not field.startswith("Bundle"):
        return None
    field = field.replace("[x]", "")  # deceased[x] is deceasedBoolean or deceasedDateTime
    head, bracket, rest = field.partition(".entry[")
    if not bracket:
        return field
    inside, _, tail = rest.partition("]")
    if inside.isdigit():
        return field
    kind, _, number = inside.partition(" #")
    kinds = [k.strip() for k in kind.split(" or ")]
    if len(kinds) == 1:
        path = f"{head}.entry.resource.ofType({kinds[0]})"
    else:
        path = f"{head}.entry.resource.where({' or '.join(f'is({k})' for k in kinds)})"
    if number.isdigit():
        path += f"[{int(number) - 1}]"
    return path + tail


def operation_outcome(status: int, message: str, problems: list[Problem]) -> dict[str, Any]:
    """An OperationOutcome for an error answered with HTTP ``status``: one issue per
    problem; ``details.text`` the place, the problem and its fix in plain words
    (what an engine's screen shows), ``expression`` the FHIRPath when the
    problem is in the Bundle, ``diagnostics`` the message of the whole answer."""
    from fhir.resources.R4B.operationoutcome import OperationOutcome

    code = ISSUE_CODES.get(status, "processing")
    issues = []
    for problem in problems or [Problem("", message, "")]:
        where = fhirpath(problem.field)
        said = f"{problem.field} {problem.problem}" if problem.field else problem.problem
        issue: dict[str, Any] = {
            "severity": "error",
            "code": "required" if code == "invalid" and problem.problem == "is missing" else code,
            "details": {"text": f"{said}. Fix: {problem.fix}" if problem.fix else said},
            "diagnostics": message}
        if where:
            issue["expression"] = where
        issues.append(issue)
    outcome = {"resourceType": "OperationOutcome", "issue": issues}
    OperationOutcome.model_validate(outcome)
    return outcome


def capability_statement(base: str, released: str, max_bundle_mb: float) -> dict[str, Any]:
    """What the service takes and gives, as a FHIR R4 CapabilityStatement.

    ``base``: the FHIR base URL, absolute (``https://host/v1/fhir``);
    ``released``: the date of this version (a FHIR dateTime, from the data, not
    the clock). The packet route is not a FHIR interaction, so it is described
    in ``rest.documentation``; no resource is stored or read back, so only the
    DocumentReference (its profile) is listed.
    """
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    reads = ("It reads from the Bundle the Patient (identifier, name, birthDate, "
             "communication, deceased, active, link), the myelogram Procedure or "
             "ServiceRequest (CPT 62302, 62303, 62304, or code text naming a myelogram) and "
             "its Practitioner; other resources are ignored.")
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
        "implementationGuide": [US_CORE_IG],
        "rest": [{
            "mode": "server",
            "documentation": (
                f"POST {base}/packets with a Bundle (or {{\"bundle\": <Bundle>, \"record\": "
                "{<fields to fill or replace>}, \"patient\": \"Patient/<id>\"}), at most "
                f"{max_bundle_mb:g} MB. {reads} Answers the packet PDF (Accept: "
                "application/pdf, the default), or a US Core DocumentReference carrying it "
                "(Accept or _format: application/fhir+json or json); with ?binary=true a "
                "transaction Bundle of a Binary and the DocumentReference. Errors are "
                "OperationOutcome resources."),
            "security": {"description": "When the server has a token: 'Authorization: "
                                        "Bearer <token>'. Nothing is stored."},
            "resource": [
                {"type": "DocumentReference", "supportedProfile": [US_CORE_DOCUMENT_REFERENCE],
                 "documentation": "Made for each packet and returned; not stored, so no "
                                  "interactions."}],
        }],
    }
    CapabilityStatement.model_validate(statement)
    return statement
