"""What every route group shares: the error type and shape, the JSON body reader,
the PDF answer and the OpenAPI description of those answers."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel

from myelo_docs.formats.json_input import parse_json
from myelo_docs.schema.errors import InvalidJSON, Problem
from myelo_docs.schema.messages import phrase, problem, title

JSON = "application/json"
FHIR_JSON = "application/fhir+json"
JSON_TYPES = (JSON, FHIR_JSON)
LEGACY_FHIR_JSON = "application/json+fhir"  # the DSTU2 name, still sent by some clients
PDF = "application/pdf"
REF = "#/components/schemas/{model}"


class ApiError(Exception):
    """An HTTP error answer: status, a short error name, a message, the problems."""

    def __init__(self, status: int, error: str, message: str, problems: list[Problem],
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.problems, self.headers = problems, headers or {}


class ProblemOut(BaseModel):
    field: str
    problem: str
    fix: str


class ErrorOut(BaseModel):
    error: str
    message: str
    problems: list[ProblemOut]


def error_body(error: str, message: str, problems: list[Problem]) -> dict[str, Any]:
    return {"error": error, "message": message, "problems": [p.as_dict() for p in problems]}


def pdf_response(pdf: bytes, name: str) -> Response:
    return Response(pdf, media_type=PDF,
                    headers={"Content-Disposition": f'inline; filename="{name}"'})


async def json_body(request: Request, kinds: tuple[str, ...] = (JSON,)) -> Any:
    """The request body as JSON data (parse_json: strict). ``kinds``: the content types
    to name in the 415 answer (any JSON type is read). Raises ApiError 415 or 400."""
    kind, *params = (p.strip().lower() for p in
                     request.headers.get("content-type", "").split(";"))
    named = dict((k.strip(), v.strip().strip('"')) for k, _, v in
                 (p.partition("=") for p in params))
    if kind not in JSON_TYPES and kind != LEGACY_FHIR_JSON:
        raise ApiError(415, "UnsupportedMediaType", title("body_not_json"),
                       [problem("body_not_json", "Content-Type", said=" or ".join(kinds),
                                kind=kinds[0])])
    if named.get("charset", "utf-8") not in ("utf-8", "utf8"):
        raise ApiError(415, "UnsupportedMediaType", title("body_charset"),
                       [problem("body_charset", "Content-Type", kind=kinds[0])])
    if named.get("fhirversion", "4.0") not in ("4.0", "4.0.1"):
        raise ApiError(415, "UnsupportedMediaType", title("body_fhir_version"),
                       [problem("body_fhir_version", "Content-Type")])
    try:
        return parse_json(await request.body(), "body", phrase("json_fix_body"))
    except InvalidJSON as exc:
        raise ApiError(400, "InvalidJSON", exc.message, exc.problems) from None


PDF_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The PDF, self-checked",
          "content": {PDF: {"schema": {"type": "string", "format": "binary"}}}},
    400: {"model": ErrorOut, "description": "The body is not JSON"},
    401: {"model": ErrorOut, "description": "The server has a token and it was not sent"},
    408: {"model": ErrorOut, "description": "The body did not arrive within the read timeout"},
    413: {"model": ErrorOut, "description": "The body is larger than the limit (256 KB; "
                                                "for FHIR Bundles 16 MB by default)"},
    415: {"model": ErrorOut, "description": "The body is not sent as JSON"},
    422: {"model": ErrorOut, "description": "The record has problems; each names its field"},
    429: {"model": ErrorOut, "description": "Too many wrong tokens from this address; "
                                                "retry after Retry-After s"},
    503: {"model": ErrorOut, "description": "Every worker is busy, or a worker stopped during "
                                                "this render; retry after Retry-After s"},
    504: {"model": ErrorOut, "description": "The render took longer than the time limit"},
}
