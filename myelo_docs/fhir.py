"""FHIR R4 in and out.

In: a Bundle with a Patient and a Procedure or ServiceRequest for the
myelogram becomes a packet record. Out: the packet PDF becomes a
DocumentReference. Parsing uses the ``fhir.resources`` R4B models (R4B only
differs from R4 in resources we do not use). Problems name the FHIR path, for
example ``Bundle.entry[Patient].birthDate``, and never quote the values.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from .errors import Problem, RecordError
from .output import default_packet_name
from .record import MyelogramType, PacketRecord, validate_record

CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"
CPT_TYPES = {
    "62302": MyelogramType.cervical,
    "62303": MyelogramType.thoracic,
    "62304": MyelogramType.lumbar,
}
CPT_TWO_OR_MORE_REGIONS = "62305"
REGION_WORDS = {
    MyelogramType.cervical: ("cervical", "neck"),
    MyelogramType.thoracic: ("thoracic",),
    MyelogramType.lumbar: ("lumbar", "lumbosacral"),
}
LOINC_SYSTEM = "http://loinc.org"
DISCHARGE_INSTRUCTIONS = {"system": LOINC_SYSTEM, "code": "8653-8",
                          "display": "Hospital Discharge instructions"}
MRN_TYPE_CODE = "MR"  # v2-0203 identifier type "Medical record number"
UNUSABLE_STATUS = {"entered-in-error", "not-done", "revoked"}
PATIENT = "Bundle.entry[Patient]"
FIX_CODE = ("code it with CPT 62302 (cervical), 62303 (thoracic) or 62304 (lumbar), "
            f"system {CPT_SYSTEM}, or say e.g. 'Lumbar myelogram' in code.text")


@dataclass(frozen=True)
class FhirPacket:
    """What a Bundle says about one packet, and where each field came from."""

    record: PacketRecord
    subject: dict[str, Any]  # a FHIR Reference to the Patient
    procedure_reference: str | None
    performed_instant: str | None  # the procedure time, when the source gave one with its zone
    paths: dict[str, str] = field(default_factory=dict)

    def explain(self, exc: RecordError) -> RecordError:
        """The same error with record field names replaced by FHIR paths."""
        return _with_paths(exc, self.paths)


def _with_paths(exc: RecordError, paths: dict[str, str]) -> RecordError:
    problems = [Problem(paths.get(p.field, p.field), p.problem, p.fix) for p in exc.problems]
    return type(exc)(exc.message, problems)


def _fail(problems: list[Problem]) -> RecordError:
    return RecordError("The FHIR bundle cannot be used for a packet", problems)


def _load(data: dict[str, Any] | str | bytes) -> dict[str, Any]:
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _fail([Problem("Bundle", "is not UTF-8 text", "send the Bundle as UTF-8 JSON")]
                        ) from None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise _fail([Problem("Bundle", f"is not valid JSON (line {exc.lineno} column "
                                 f"{exc.colno}: {exc.msg})", "fix the JSON at that place")]
                        ) from None
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise _fail([Problem("Bundle.resourceType", "is not 'Bundle'",
                             "send a FHIR R4 Bundle holding the Patient and the myelogram")])
    return data


def _model_problems(exc: ValidationError, raw: dict[str, Any]) -> list[Problem]:
    """fhir.resources' complaints, with entry numbers turned into resource names."""
    entries = raw.get("entry") if isinstance(raw.get("entry"), list) else []
    kinds = [str((e.get("resource") or {}).get("resourceType", "resource"))
             if isinstance(e, dict) else "resource" for e in entries]
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        path = "Bundle"
        if len(loc) >= 3 and loc[0] == "entry" and isinstance(loc[1], int) and loc[2] == "resource":
            kind = kinds[loc[1]]
            same = [i for i, k in enumerate(kinds) if k == kind]
            path += (f".entry[{kind}]" if len(same) == 1 else
                     f".entry[{kind} #{same.index(loc[1]) + 1}]")
            loc = loc[3:]
        for part in loc:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        message = err["msg"].removeprefix("Value error, ").rstrip(".")
        problems.append(Problem(path, f"is not valid FHIR R4 ({message})",
                                "correct it to match the FHIR R4 specification"))
    return problems


def _parse_bundle(raw: dict[str, Any]) -> Any:
    from fhir.resources.R4B.bundle import Bundle

    try:
        return Bundle.model_validate(raw)
    except ValidationError as exc:
        raise _fail(_model_problems(exc, raw)) from None


def _codings(concepts: Any) -> list[Any]:
    if concepts is None:
        return []
    concepts = concepts if isinstance(concepts, list) else [concepts]
    return [coding for concept in concepts for coding in (concept.coding or [])]


def _texts(concepts: Any) -> list[str]:
    if concepts is None:
        return []
    concepts = concepts if isinstance(concepts, list) else [concepts]
    texts = [c.text for c in concepts if c.text]
    return texts + [coding.display for coding in _codings(concepts) if coding.display]


def _regions(texts: list[str]) -> set[MyelogramType]:
    lowered = " ".join(texts).lower()
    return {kind for kind, words in REGION_WORDS.items() if any(w in lowered for w in words)}


def _full_date(value: Any) -> date | None:
    """A FHIR date or dateTime as a calendar date (as written, in its own zone)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return None  # a partial date such as "2026" or "2026-11"


@dataclass
class _Found:
    kind: str  # "Procedure" or "ServiceRequest"
    label: str  # its FHIR path, e.g. Bundle.entry[Procedure]
    resource: Any
    reference: str | None
    type: MyelogramType | None = None


class _Reader:
    """Reads one Bundle, collecting every problem before giving up."""

    def __init__(self, bundle: Any):
        self.problems: list[Problem] = []
        self.entries: dict[str, list[tuple[Any, Any]]] = {}
        self.subject: dict[str, Any] = {}
        for entry in bundle.entry or []:
            if entry.resource is not None:
                kind = entry.resource.get_resource_type()
                self.entries.setdefault(kind, []).append((entry, entry.resource))

    def problem(self, where: str, problem: str, fix: str) -> None:
        self.problems.append(Problem(where, problem, fix))

    def label(self, kind: str, index: int) -> str:
        return f"Bundle.entry[{kind}]" if len(self.entries[kind]) == 1 else \
            f"Bundle.entry[{kind} #{index + 1}]"

    # -- Patient --------------------------------------------------------------

    def patient(self) -> tuple[Any, set[str]]:
        patients = self.entries.get("Patient", [])
        if len(patients) != 1:
            problem = "is missing" if not patients else f"appears {len(patients)} times"
            self.problem(PATIENT, problem, "send exactly one Patient in the Bundle")
            return None, set()
        entry, patient = patients[0]
        references = {f"Patient/{patient.id}"} if patient.id else set()
        if entry.fullUrl:
            references.add(str(entry.fullUrl))
        if references:  # "Patient/<id>" first; without id or fullUrl, the MRN (see mrn())
            self.subject = {"reference": f"Patient/{patient.id}" if patient.id
                            else str(entry.fullUrl)}
        return patient, references

    def name(self, patient: Any) -> str | None:
        names = patient.name or []
        ranked = sorted(names, key=lambda n: {"official": 0, "usual": 1}.get(n.use or "", 2))
        for name in ranked:
            text = name.text or " ".join([*(name.given or []), name.family or ""]).strip()
            if text:
                return text
        self.problem(f"{PATIENT}.name", "is missing",
                     "add a name with given and family (or text)")
        return None

    def birth_date(self, patient: Any) -> str | None:
        if patient.birthDate is None:
            self.problem(f"{PATIENT}.birthDate", "is missing", "add the date of birth")
            return None
        born = _full_date(patient.birthDate)
        if born is None:
            self.problem(f"{PATIENT}.birthDate", "is not a full date",
                         "give year, month and day, like 1961-03-24")
            return None
        return born.isoformat()

    def mrn(self, patient: Any) -> str | None:
        identifiers = patient.identifier or []
        marked = [i for i in identifiers
                  if any(c.code == MRN_TYPE_CODE for c in _codings(i.type))]
        chosen = (marked or identifiers or [None])[0]
        if chosen is None or not chosen.value:
            self.problem(f"{PATIENT}.identifier", "has no medical record number",
                         "add an identifier with type code MR and the MRN as its value")
            return None
        if not self.subject:
            found = {"system": chosen.system, "value": chosen.value}
            self.subject = {"identifier": {k: str(v) for k, v in found.items() if v}}
        return chosen.value

    def language(self, patient: Any) -> str | None:
        spoken = patient.communication or []
        ranked = sorted(spoken, key=lambda c: 0 if c.preferred else 1)
        for item in ranked:
            for coding in _codings(item.language):
                if coding.code:
                    return coding.code.split("-")[0].lower()
        return None

    # -- the myelogram --------------------------------------------------------

    def myelograms(self, patient_refs: set[str]) -> list[_Found]:
        found = []
        for kind in ("Procedure", "ServiceRequest"):
            for index, (entry, resource) in enumerate(self.entries.get(kind, [])):
                if resource.status in UNUSABLE_STATUS:
                    continue
                label = self.label(kind, index)
                item = _Found(kind, label, resource, _reference(kind, entry, resource))
                if self._identify(item):
                    self._check_subject(item, patient_refs)
                    found.append(item)
        return found

    def _identify(self, item: _Found) -> bool:
        """Is this resource a myelogram? Sets item.type when the region is clear."""
        code = item.resource.code
        cpt = [c.code for c in _codings(code) if c.system == CPT_SYSTEM and c.code]
        if CPT_TWO_OR_MORE_REGIONS in cpt:
            self.problem(f"{item.label}.code", "is CPT 62305, a myelogram of two or more regions",
                         "print one packet per region: " + FIX_CODE)
            return True
        types = {CPT_TYPES[c] for c in cpt if c in CPT_TYPES}
        texts = _texts(code)
        if not types and not any("myelo" in t.lower() for t in texts):
            return False
        if not types:
            types = _regions(texts) or _regions(_texts(item.resource.bodySite))
        if len(types) == 1:
            item.type = types.pop()
        else:
            problem = ("names more than one part of the spine" if types else
                       "is a myelogram but does not say which part of the spine")
            self.problem(f"{item.label}.code", problem, FIX_CODE + ", or add a bodySite")
        return True

    def _check_subject(self, item: _Found, patient_refs: set[str]) -> None:
        subject = item.resource.subject
        if subject is None or not subject.reference or not patient_refs:
            return
        if subject.reference not in patient_refs and not any(
                ref.endswith("/" + subject.reference) for ref in patient_refs):
            self.problem(f"{item.label}.subject", "refers to a different patient",
                         "send the myelogram of the Patient in this Bundle")

    def choose(self, found: list[_Found]) -> _Found | None:
        if not found:
            self.problem("Bundle.entry[Procedure or ServiceRequest]", "has no myelogram",
                         "add a Procedure or ServiceRequest for the myelogram: " + FIX_CODE)
            return None
        kinds = {item.type for item in found if item.type}
        if len(kinds) > 1:
            self.problem("Bundle.entry[Procedure or ServiceRequest]",
                         "name different parts of the spine",
                         "send one myelogram per Bundle, with matching codes")
            return None
        done = [item for item in found if item.kind == "Procedure"] or found
        if len(done) > 1:
            self.problem(f"Bundle.entry[{done[0].kind}]", f"has {len(done)} myelograms",
                         "send one myelogram per Bundle")
            return None
        return done[0]

    def when(self, item: _Found) -> tuple[str | None, str | None, str]:
        """(procedure date, instant with zone if given, FHIR path of the date)."""
        r = item.resource
        if item.kind == "Procedure":
            value, path = (r.performedDateTime, f"{item.label}.performedDateTime")
            if value is None and r.performedPeriod is not None:
                value, path = r.performedPeriod.start, f"{item.label}.performedPeriod.start"
            fix = "add performedDateTime (the day of the myelogram)"
        else:
            value, path = (r.occurrenceDateTime, f"{item.label}.occurrenceDateTime")
            if value is None and r.occurrencePeriod is not None:
                value, path = r.occurrencePeriod.start, f"{item.label}.occurrencePeriod.start"
            fix = "add occurrenceDateTime (the day of the myelogram)"
        if value is None:
            self.problem(path, "is missing", fix)
            return None, None, path
        day = _full_date(value)
        if day is None:
            self.problem(path, "is not a full date", "give year, month and day, like 2026-11-25")
            return None, None, path
        instant = (value.isoformat() if isinstance(value, datetime) and value.tzinfo is not None
                   else None)
        return day.isoformat(), instant, path

    def physician(self, item: _Found) -> str | None:
        for performer in item.resource.performer or []:
            display = getattr(performer, "actor", performer).display
            if display:
                return display
        return None


def _reference(kind: str, entry: Any, resource: Any) -> str | None:
    if resource.id:
        return f"{kind}/{resource.id}"
    return str(entry.fullUrl) if entry.fullUrl else None


def packet_from_bundle(data: dict[str, Any] | str | bytes,
                       overrides: dict[str, Any] | None = None) -> FhirPacket:
    """Read a FHIR R4 Bundle into a packet record.

    ``overrides`` are record fields that replace what the Bundle says (the CLI's
    flags, for example ``{"language": "en"}``). Raises RecordError naming the
    FHIR path of every problem.
    """
    raw = _load(data)
    reader = _Reader(_parse_bundle(raw))
    patient, patient_refs = reader.patient()
    fields: dict[str, Any] = {}
    paths = {"patient_name": f"{PATIENT}.name", "date_of_birth": f"{PATIENT}.birthDate",
             "mrn": f"{PATIENT}.identifier", "language": f"{PATIENT}.communication"}
    if patient is not None:
        fields.update(patient_name=reader.name(patient), date_of_birth=reader.birth_date(patient),
                      mrn=reader.mrn(patient), language=reader.language(patient))
    chosen = reader.choose(reader.myelograms(patient_refs))
    instant = None
    if chosen is not None:
        day, instant, date_path = reader.when(chosen)
        fields.update(type=chosen.type, procedure_date=day, physician=reader.physician(chosen))
        paths.update(type=f"{chosen.label}.code", procedure_date=date_path,
                     physician=f"{chosen.label}.performer",
                     record=f"{PATIENT}.birthDate and {date_path}")
    if reader.problems:
        raise _fail(reader.problems)
    fields = {k: (v.value if isinstance(v, MyelogramType) else v)
              for k, v in fields.items() if v is not None}
    fields.update(overrides or {})
    for key in overrides or {}:
        paths.pop(key, None)
    try:
        record = validate_record(fields)
    except RecordError as exc:
        raise _with_paths(_fail(exc.problems), paths) from None
    return FhirPacket(record=record, subject=reader.subject,
                      procedure_reference=chosen.reference if chosen else None,
                      performed_instant=instant, paths=paths)


def document_reference(pdf: bytes, packet: FhirPacket) -> dict[str, Any]:
    """A FHIR R4 DocumentReference carrying the packet PDF.

    Its dates come from the data, never from the clock: ``context.period.start``
    is the procedure date, and ``date`` (a FHIR instant, which needs a time and
    zone) is given only when the Bundle had the procedure's time with its zone.
    """
    from fhir.resources.R4B.documentreference import DocumentReference

    record = packet.record
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [DISCHARGE_INSTRUCTIONS],
                 "text": f"Discharge instructions after a {record.type.value} myelogram"},
        "subject": packet.subject,
        "description": f"Myelogram discharge packet ({record.type.value})",
        "context": {"period": {"start": record.procedure_date.isoformat()}},
        "content": [{"attachment": {
            "contentType": "application/pdf",
            "language": record.language,
            "data": base64.b64encode(pdf).decode("ascii"),
            "size": len(pdf),
            "hash": base64.b64encode(hashlib.sha1(pdf).digest()).decode("ascii"),
            "title": default_packet_name(record),
        }}],
    }
    if packet.performed_instant:
        resource["date"] = packet.performed_instant
    if packet.procedure_reference:
        resource["context"]["related"] = [{"reference": packet.procedure_reference}]
    DocumentReference.model_validate(resource)  # what we send must be valid R4
    return resource
