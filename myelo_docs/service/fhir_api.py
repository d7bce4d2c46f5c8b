"""The FHIR routes: a packet from a Bundle, the CapabilityStatement, and every error
on them as an OperationOutcome.

Content negotiation follows RFC 9110 (Accept with q-values, the most specific
range deciding) and FHIR's ``_format`` (which wins over Accept). The PDF is
the default, for browsers and scripts; ``application/fhir+json`` (or
``application/json``, or ``_format=json``) gives the DocumentReference.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from myelo_docs.about import RELEASE_DATE
from myelo_docs.formats.fhir_out import PATIENT_REFERENCE
from myelo_docs.output.files import default_packet_name
from myelo_docs.schema.brand import Brand
from myelo_docs.schema.errors import Problem, RecordError
from myelo_docs.schema.messages import phrase, problem, title
from myelo_docs.service.common import (
    FHIR_JSON,
    JSON,
    LEGACY_FHIR_JSON,
    PDF,
    PDF_RESPONSES,
    REF,
    ApiError,
    json_body,
    pdf_response,
)
from myelo_docs.service.middleware import ASGIApp, Message, Receive, Scope, Send

FHIR_BASE = "/v1/fhir"
FHIR_PACKETS = f"{FHIR_BASE}/packets"
METADATA_PATHS = ("/metadata", f"{FHIR_BASE}/metadata")
FORMATS = {"json": FHIR_JSON, FHIR_JSON: FHIR_JSON, JSON: JSON, "pdf": PDF, PDF: PDF}
LEGACY = {LEGACY_FHIR_JSON: FHIR_JSON}


class FhirPacketRequest(BaseModel):
    """A Bundle with record fields that fill in or replace what it says (e.g. language,
    nurse, instructions, medications, or type and procedure_date for a Bundle with only
    a Patient), and the Patient's id on the server the DocumentReference goes to. The
    body may also be the Bundle alone."""

    model_config = ConfigDict(extra="forbid")

    bundle: dict[str, Any]
    record: dict[str, Any] = {}
    patient: str | None = Field(
        default=None, pattern=PATIENT_REFERENCE,
        description="The Patient on the server the DocumentReference goes to (Patient/123): "
                    "its subject then refers to it. Without it, the subject is the MRN "
                    "identifier (the Bundle's own ids may not exist on that server).")


def record_path(name: str) -> str:
    """How an HTTP caller gives a record field (errors name it so): record.mrn."""
    return phrase("fhir_mrn_system_setting") if name == "mrn_system" else f"record.{name}"


def read_request(body: Any) -> FhirPacketRequest:
    """The body as a FhirPacketRequest: a Bundle alone, or the Bundle with overrides."""
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        return FhirPacketRequest(bundle=body)
    try:
        return FhirPacketRequest.model_validate(body)
    except ValidationError as exc:
        raise RecordError(title("fhir_body_shape"),
                          [_body_problem(e) for e in exc.errors()]) from None


def _body_problem(err: Any) -> Problem:
    field = ".".join(str(p) for p in err["loc"]) or "body"
    if err["type"] == "extra_forbidden":
        return problem("fhir_body_unknown_key", field)
    if err["loc"] == ("patient",):
        return problem("fhir_body_patient", field)
    return problem("fhir_body_not_object", field)


FHIR_VERSIONS = ("4.0", "4.0.1")  # R4: what a fhirVersion parameter may say


def _quality(kind: str, ranges: list[tuple[str, float]]) -> tuple[float, int]:
    """(q, how specific) of the most specific range matching ``kind``: 3 the type
    itself, 2 type/*, 1 */*; (0, 0) when none does."""
    major = kind.split("/")[0]
    best, rank = 0.0, 0
    for media, q in ranges:
        this = 3 if media == kind else 2 if media == f"{major}/*" else 1 if media == "*/*" else 0
        if this > rank:
            best, rank = q, this
    return best, rank


def _ranges(accept: str) -> list[tuple[str, float]]:
    """The media ranges of an Accept header with their q (RFC 9110 12.5.1); a FHIR type
    for another fhirVersion than R4 counts as not accepted."""
    ranges = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = (x.strip().strip('"') for x in param.partition("="))
            if name.lower() == "q":
                try:
                    q = min(1.0, max(0.0, float(value)))
                except ValueError:
                    q = 0.0
            elif name.lower() == "fhirversion" and value not in FHIR_VERSIONS:
                q = 0.0
        if media:
            ranges.append((LEGACY.get(media.lower(), media.lower()), q))
    return ranges


def negotiate(accept: str | None, offered: tuple[str, ...]) -> str | None:
    """The offered media type the Accept header prefers: the highest q; on equal q the
    one named most specifically (application/fhir+json beats */*), then the first
    offered. None when the header accepts none of them; no header: the first."""
    if not accept or not accept.strip():
        return offered[0]
    ranges = _ranges(accept)
    chosen, best = None, (0.0, 0)
    for kind in offered:
        q, rank = _quality(kind, ranges)
        if q > 0 and (q, rank) > best:
            chosen, best = kind, (q, rank)
    return chosen


def choose_format(accept: str | None, format_: str | None, offered: tuple[str, ...]) -> str:
    """``_format`` if given, else the Accept header's choice; ApiError 406 if neither
    names a type offered."""
    if format_ is not None:
        # "+" in a query string is a space: _format=application/fhir+json arrives so.
        given = format_.strip().lower().replace(" ", "+")
        wanted = FORMATS.get(LEGACY.get(given, given))
        if wanted in offered:
            return wanted
        names = " or ".join(f"_format={k}" for k, v in FORMATS.items() if v in offered)
        raise ApiError(406, "NotAcceptable", title("fhir_format_not_offered"), [
            problem("fhir_format_not_offered", "_format", names=names)])
    chosen = negotiate(accept, offered)
    if chosen is None:
        raise ApiError(406, "NotAcceptable", title("fhir_accept_none"), [
            problem("fhir_accept_none", "Accept", types=", ".join(offered))])
    return chosen


def fhir_response(body: Any, kind: str) -> Response:
    """JSON in UTF-8, said so (FHIR asks for the charset), varying by Accept."""
    return Response(json.dumps(body), headers={
        "content-type": f"{kind}; charset=utf-8", "vary": "Accept"})


def is_fhir_path(path: str) -> bool:
    return path in METADATA_PATHS or path.startswith(f"{FHIR_BASE}/")


class FhirErrors:
    """On the FHIR paths, every JSON error answer (from the door, the body limit, the
    record checks or the framework) becomes an OperationOutcome (fhir_out)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_fhir_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def convert(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                kind = dict(message.get("headers", [])).get(b"content-type", b"")
                if message["status"] >= 400 and kind.startswith(JSON.encode()):
                    held = message
                    return
            if held is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                await self._send_outcome(send, held, b"".join(chunks))

        await self.app(scope, receive, convert)

    @staticmethod
    async def _send_outcome(send: Send, start: Message, body: bytes) -> None:
        from myelo_docs.formats.fhir_out import operation_outcome

        status = start["status"]
        try:
            said = json.loads(body)
        except ValueError:
            said = {}
        message = said.get("message") or str(said.get("detail") or title("fhir_request_failed"))
        problems = [Problem(**p) for p in said.get("problems", []) if isinstance(p, dict)]
        data = json.dumps(operation_outcome(status, message, problems)).encode()
        headers = [(k, v) for k, v in start.get("headers", [])
                   if k not in (b"content-type", b"content-length")]
        await send({"type": "http.response.start", "status": status, "headers": [
            *headers, (b"content-type", f"{FHIR_JSON}; charset=utf-8".encode()),
            (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})


Render = Callable[[str, dict[str, Any]], Awaitable[Any]]


def add_fhir_routes(app: FastAPI, render: Render, intake: Any, brand: Brand,
                    max_bundle: int) -> None:
    """POST /v1/fhir/packets and GET /metadata (also under /v1/fhir) on ``app``.

    ``render``: renders a record in the pool (its errors are the app's);
    ``intake``: the hospital's IntakeSettings; ``max_bundle``: bytes.
    """
    from myelo_docs.formats.fhir import packet_from_bundle
    from myelo_docs.formats.fhir_out import capability_statement, document_reference, transaction

    # GET and HEAD as two routes: one route with both gives both one OpenAPI
    # operationId, which client generators refuse.
    @app.get(METADATA_PATHS[0], tags=["FHIR"], summary="The FHIR CapabilityStatement",
             response_class=Response)
    @app.head(METADATA_PATHS[0], tags=["FHIR"], summary="The CapabilityStatement's headers",
              response_class=Response)
    @app.api_route(METADATA_PATHS[1], methods=["GET", "HEAD"], include_in_schema=False,
                   response_class=Response)
    async def metadata(request: Request, format_: str | None = Query(None, alias="_format"),
                       mode: str | None = Query(None)) -> Response:
        """What the FHIR interface takes and gives (FHIR R4 CapabilityStatement)."""
        if mode not in (None, "full"):
            raise ApiError(400, "NotSupported", title("fhir_capability_mode"), [
                problem("fhir_capability_mode", "mode")])
        kind = choose_format(request.headers.get("accept"), format_, (FHIR_JSON, JSON))
        base = str(request.base_url).rstrip("/") + FHIR_BASE
        return fhir_response(capability_statement(base, RELEASE_DATE,
                                                  max_bundle / 1024 / 1024), kind)

    @app.post(FHIR_PACKETS, summary="The packet for a FHIR R4 Bundle", tags=["FHIR"],
              response_class=Response,
              responses={**PDF_RESPONSES, 200: {
                  "description": "The PDF (the default); with Accept or _format "
                                 "application/fhir+json or application/json a US Core "
                                 "DocumentReference carrying it; with binary=true a "
                                 "transaction Bundle of a Binary and the DocumentReference",
                  "content": {PDF: {}, FHIR_JSON: {}, JSON: {}}},
                  406: {"description": "Accept or _format names no type this route gives"}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  kind: {"schema": {"oneOf": [
                      {"type": "object", "description": "A FHIR R4 Bundle"},
                      {"$ref": REF.format(model="FhirPacketRequest")}]}}
                  for kind in (FHIR_JSON, JSON)}}})
    async def fhir_packets(request: Request,
                           format_: str | None = Query(None, alias="_format"),
                           binary: bool = Query(False, description=(
                               "Answer a transaction Bundle: the PDF as a Binary and the "
                               "DocumentReference pointing at it (attachment.url)"))
                           ) -> Response:
        """Send a Bundle with a Patient and a Procedure or ServiceRequest for the
        myelogram (CPT 62302/62303/62304), or `{"bundle": <Bundle>, "record": {...},
        "patient": "Patient/<id>"}` where `record` holds PacketRecord fields that fill in
        or replace what the Bundle says. Takes whole patient Bundles (16 MB by default).
        Errors are OperationOutcome resources whose `expression` is the FHIRPath of the
        problem (or whose diagnostics name `record.<field>` for an override)."""
        offered = (FHIR_JSON, JSON) if binary else (PDF, FHIR_JSON, JSON)
        kind = choose_format(request.headers.get("accept"), format_, offered)
        wanted = read_request(await json_body(request, (FHIR_JSON, JSON)))
        source = packet_from_bundle(wanted.bundle, wanted.record, intake, give=record_path)
        try:
            rendered = await render("packet", source.record.model_dump(mode="json"))
        except RecordError as exc:
            raise source.explain(exc) from None
        if kind == PDF:
            return pdf_response(rendered.pdf, default_packet_name(source.record))
        build = transaction if binary else document_reference
        resource = build(rendered.pdf, source, brand, patient_reference=wanted.patient)
        return fhir_response(resource, kind)
