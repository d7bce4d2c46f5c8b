"""One strict JSON reader for every JSON a user gives us (--input, --fhir, the service).

Stricter than ``json.loads``: an object with the same key twice is an error
(json.loads keeps the last value silently, which for ``mrn`` chooses an
identifier), and so are ``NaN`` and ``Infinity`` (not JSON). Messages name
the place, the line and column or the key, never a value.

A key is shown in a message only if it is a name we know (see shown_key):
JSON lets anything be a key, and a key can be patient data (a medicine name
used as a key).
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from typing import Any

from myelo_docs.schema.errors import InvalidJSON
from myelo_docs.schema.messages import error

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
HIDDEN_KEY = "?"  # a key a message does not show, in a path like body.?[0]

# The elements of the FHIR R4 resources and data types a Bundle for us carries
# (Bundle, Patient, Encounter, ServiceRequest, Procedure, Practitioner,
# Medication*, OperationOutcome; Meta, Extension, Identifier, HumanName,
# CodeableConcept, Coding, Reference, Period, ContactPoint, Address, Annotation).
_FHIR_ELEMENTS = """
    resourceType id meta implicitRules language text div contained extension
    modifierExtension url versionId lastUpdated source profile security tag
    identifier type timestamp total link relation entry fullUrl resource search mode
    score request method ifNoneMatch ifModifiedSince ifMatch ifNoneExist response
    status location etag lastModified outcome signature
    valueString valueCode valueBoolean valueInteger valueDecimal valueDate
    valueDateTime valueCoding valueCodeableConcept valueReference valueIdentifier
    valuePeriod valueQuantity valueUri
    active name telecom gender birthDate deceasedBoolean deceasedDateTime address
    maritalStatus multipleBirthBoolean multipleBirthInteger photo contact
    relationship communication preferred generalPractitioner managingOrganization other
    use family given prefix suffix period system value assigner coding version code
    display userSelected reference start end rank line city district state
    postalCode country
    instantiatesCanonical instantiatesUri basedOn replaces requisition intent
    category priority doNotPerform orderDetail subject encounter occurrenceDateTime
    occurrencePeriod occurrenceTiming authoredOn requester performerType performer
    locationCode locationReference reasonCode reasonReference insurance
    supportingInfo specimen bodySite note patientInstruction relevantHistory
    authorString authorReference time partOf statusReason performedDateTime
    performedPeriod performedString recorder asserter function actor onBehalfOf
    report complication followUp focalDevice usedReference usedCode
    class serviceType participant individual hospitalization dischargeDisposition
    qualification medicationCodeableConcept medicationReference dosageInstruction
    dosage sequence timing route doseAndRate effectiveDateTime
    issue severity diagnostics expression details
"""
FHIR_NAMES = frozenset(_FHIR_ELEMENTS.split())


@functools.cache
def _known_names() -> frozenset[str]:
    from myelo_docs.schema.record import Medication, PacketRecord

    return FHIR_NAMES | set(PacketRecord.model_fields) | set(Medication.model_fields)


def shown_key(key: str) -> str | None:
    """``key`` if a message may show it, else None.

    The rule: a key is shown only if it is a plain name (``[A-Za-z_]`` then
    at most 40 of ``[A-Za-z0-9_]``) and a name we know: a field of the packet
    record or of its medications (``mrn``, ``instruction``), or an element of
    the FHIR resources a Bundle for us carries (FHIR_NAMES: ``birthDate``,
    ``resource``). Anything else may be a value used as a key (a medicine
    name, a patient's name), so it is never echoed.
    """
    return key if _PLAIN_NAME.fullmatch(key) and key in _known_names() else None


class _Twice(dict):  # type: ignore[type-arg]
    """An object that had a key twice (``key``: the first such key)."""

    key = ""


def _constant(name: str) -> Any:
    raise ValueError(name)


def _doubled(data: Any) -> tuple[str, str]:
    """(path like ``.entry[0].resource``, key) of the first object with a key twice.

    A key in the path that shown_key hides is written ``?``.
    """
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _Twice):
            return path, value.key
        if isinstance(value, dict):
            stack += reversed([(f"{path}.{shown_key(k) or HIDDEN_KEY}", v)
                               for k, v in value.items()])
        elif isinstance(value, list):
            stack += reversed([(f"{path}[{i}]", v) for i, v in enumerate(value)])
    raise AssertionError("no object with a key twice")


def parse_json(data: str | bytes, where: str, fix: str) -> Any:
    """JSON text (str, or UTF-8 bytes; a byte-order mark is allowed) as Python data.

    ``where``: how the user names the input in a message (``--input``,
    ``Bundle``, ``body``); ``fix``: what to give instead when the input is
    not UTF-8, too deep or has a number too long, a phrase of messages.toml
    (``phrase("json_fix_input")``: "give one JSON object of the record's fields, in UTF-8").

    Raises InvalidJSON (a RecordError, exit 3) with one Problem: not UTF-8;
    not valid JSON (line and column); NaN or Infinity; nesting deeper than
    Python's parser allows or a number of more than 4300 digits; an object
    with the same key twice (the path of that object and the key, e.g.
    ``Bundle.entry[0].resource`` has the key "birthDate" twice; a key
    shown_key hides is not named: ``body.?[1]`` has a key twice).
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise error(InvalidJSON, "json_not_utf8", where, fix=fix) from None
    twice: list[_Twice] = []

    def pairs_to_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        marked = _Twice(obj)
        marked.key = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        twice.append(marked)
        return marked

    try:
        value = json.loads(data.removeprefix("\ufeff"), object_pairs_hook=pairs_to_object,
                           parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise error(InvalidJSON, "json_invalid", where, line=exc.lineno, column=exc.colno,
                    detail=exc.msg) from None
    except (ValueError, RecursionError) as exc:  # NaN; a 5000-digit number; 100000 [
        if isinstance(exc, ValueError) and str(exc) in ("NaN", "Infinity", "-Infinity"):
            raise error(InvalidJSON, "json_not_a_number", where, constant=exc) from None
        raise error(InvalidJSON, "json_too_deep", where, fix=fix) from None
    if twice:
        path, key = _doubled(value)
        place = f"{where} {path.lstrip('.')}" if where.startswith("-") and path else where + path
        if shown_key(key) is None:
            raise error(InvalidJSON, "json_key_twice_hidden", place)
        raise error(InvalidJSON, "json_key_twice", place, key=key)
    return value
