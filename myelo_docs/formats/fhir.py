"""FHIR R4 in and out.

In: a Bundle (collection, search set, transaction, document...) with a
Patient and a Procedure or ServiceRequest for the myelogram becomes a packet
record, by the identity rule of identity.py. Only the resources we use are
parsed, with the ``fhir.resources`` R4B models (R4B only differs from R4 in
resources we do not use): the Patient, myelogram Procedures and
ServiceRequests, and the Practitioner named as their performer or requester.
Anything else in the Bundle is ignored. Out: the packet PDF becomes a
DocumentReference. Problems name the FHIR path, for example
``Bundle.entry[Patient].birthDate``, and never quote the values.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from pydantic import ValidationError

from myelo_docs.assets import content_dir
from myelo_docs.content.loader import available_languages
from myelo_docs.formats.identity import (
    choose_language,
    choose_mrn,
    choose_name,
    patient_status_problems,
)
from myelo_docs.formats.json_input import parse_json
from myelo_docs.schema import intake
from myelo_docs.schema.errors import Problem, RecordError
from myelo_docs.schema.intake import IntakeSettings
from myelo_docs.schema.record import MyelogramType, PacketRecord, validate_record

CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"
CPT_TYPES = {
    "62302": MyelogramType.cervical,
    "62303": MyelogramType.thoracic,
    "62304": MyelogramType.lumbar,
}
CPT_TWO_OR_MORE_REGIONS = "62305"
UNUSABLE_STATUS = {"entered-in-error", "not-done", "revoked", "cancelled", "stopped"}
CURRENT_STATUS = {"ServiceRequest": {"active"}, "Procedure": {"preparation", "in-progress"}}
PATIENT = "Bundle.entry[Patient]"
MYELOGRAMS = "Bundle.entry[Procedure or ServiceRequest]"
FIX_CODE = ("code it with CPT 62302 (cervical), 62303 (thoracic) or 62304 (lumbar), "
            f"system {CPT_SYSTEM}, or say e.g. 'Lumbar myelogram' in code.text")
PATIENT_FIELDS = frozenset({"patient_name", "date_of_birth", "mrn"})
Give = Callable[[str], str]


def cli_flag(name: str) -> str:
    """How a user gives a record field or a setting on the command line: mrn -> --mrn."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class FhirPacket:
    """What a Bundle says about one packet, and where each field came from."""

    record: PacketRecord
    subject: dict[str, Any]  # the Patient as this Bundle refers to it (its ids are the client's)
    procedure_reference: str | None
    performed_instant: str | None  # the procedure time, when the source gave one with its zone
    paths: dict[str, str] = field(default_factory=dict)
    mrn_system: str | None = None  # the printed MRN's identifier system, when known
    # The chosen Procedure or ServiceRequest as a logical reference (its type and
    # identifier), for a receiving server on which the sender's ids mean nothing.
    procedure_identifier: dict[str, Any] | None = None

    def explain(self, exc: RecordError) -> RecordError:
        """The same error with record field names replaced by FHIR paths."""
        return _with_paths(exc, self.paths)


def _with_paths(exc: RecordError, paths: dict[str, str]) -> RecordError:
    problems = [Problem(paths.get(p.field, p.field), p.problem, p.fix) for p in exc.problems]
    return type(exc)(exc.message, problems)


def _fail(problems: list[Problem]) -> RecordError:
    return RecordError("The FHIR bundle cannot be used for a packet", problems)


def load_json(data: dict[str, Any] | str | bytes) -> Any:
    """JSON text or bytes (UTF-8, BOM allowed) as Python data; data already parsed as is.

    Raises InvalidJSON (a RecordError) naming the place: not UTF-8, not valid
    JSON, too deep, or an object with a key twice (its path in the Bundle).
    """
    if isinstance(data, str | bytes):
        return parse_json(data, "Bundle", "send the Bundle as the EHR wrote it, in UTF-8")
    return data


# -- words that name a myelogram (content/order_words.toml) ----------------------


def _plain_words(text: str) -> str:
    """Lower case, no accents, punctuation as spaces, padded: ' ct myelogram l spine '."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    letters = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " " + " ".join(re.sub(r"[^0-9a-z]+", " ", letters).split()) + " "


@cache
def order_words() -> tuple[tuple[str, ...], dict[MyelogramType, tuple[str, ...]]]:
    """(myelogram word stems, region words by type), as plain words."""
    data = tomllib.loads((content_dir() / "order_words.toml").read_text("utf-8"))
    stems = tuple(_plain_words(w).strip() for w in data["myelogram_stems"])
    regions = {MyelogramType(kind): tuple(_plain_words(w) for w in words)
               for kind, words in data["regions"].items()}
    return stems, regions


def names_myelogram(texts: list[str]) -> bool:
    stems, _ = order_words()
    return any(word.startswith(stems) for t in texts for word in _plain_words(t).split())


def regions_named(texts: list[str]) -> set[MyelogramType]:
    _, regions = order_words()
    plain = " ".join(_plain_words(t) for t in texts)
    return {kind for kind, words in regions.items() if any(w in plain for w in words)}


# -- raw JSON, before any model ----------------------------------------------------


def _concept_parts(concept: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """(system, code) pairs and texts of a raw CodeableConcept (or a list of them)."""
    concepts = concept if isinstance(concept, list) else [concept]
    codes: list[tuple[str, str]] = []
    texts: list[str] = []
    for c in concepts:
        if not isinstance(c, dict):
            continue
        if isinstance(c.get("text"), str):
            texts.append(c["text"])
        for coding in c.get("coding") or []:
            if isinstance(coding, dict):
                codes.append((str(coding.get("system") or ""), str(coding.get("code") or "")))
                if isinstance(coding.get("display"), str):
                    texts.append(coding["display"])
    return codes, texts


def _cpt(codes: list[tuple[str, str]]) -> list[str]:
    return [code for system, code in codes if system == CPT_SYSTEM and code]


def _looks_like_myelogram(resource: dict[str, Any]) -> bool:
    codes, texts = _concept_parts(resource.get("code"))
    cpt = _cpt(codes)
    return any(c in CPT_TYPES or c == CPT_TWO_OR_MORE_REGIONS for c in cpt) or \
        names_myelogram(texts)


def reference_key(reference: str) -> str:
    """A reference as 'Type/id' (absolute URLs and _history versions dropped) or as given."""
    reference = reference.strip()
    if reference.startswith(("urn:uuid:", "urn:oid:", "#")):
        return reference
    reference = re.sub(r"/_history/[^/]+$", "", reference)
    parts = reference.rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else reference


@dataclass
class _Entry:
    kind: str
    label: str  # FHIR path, e.g. Bundle.entry[Procedure #2]
    raw: dict[str, Any]
    keys: set[str]  # the references that point at it
    full_url: str | None


@dataclass
class _Issue:
    """A problem and the record fields that, given by the caller, make it moot."""

    problem: Problem
    fields: frozenset[str] = frozenset()


@dataclass
class _Candidate:
    entry: _Entry
    resource: Any
    type: MyelogramType | None = None
    day: date | None = None
    instant: str | None = None
    date_path: str = ""
    issues: list[_Issue] = field(default_factory=list)

    @property
    def current(self) -> bool:
        return str(self.resource.status) in CURRENT_STATUS[self.entry.kind]


def _entries(raw: dict[str, Any]) -> list[_Entry]:
    found = raw.get("entry")
    if found is None:
        return []
    if not isinstance(found, list):
        raise _fail([Problem("Bundle.entry", "is not a list", "send the entries as a JSON list")])
    items = [(e, e.get("resource")) for e in found if isinstance(e, dict)]
    items = [(e, r) for e, r in items if isinstance(r, dict)]
    kinds = [str(r.get("resourceType", "")) for _, r in items]
    entries = []
    for index, (entry, resource) in enumerate(items):
        kind = kinds[index]
        same = [i for i, k in enumerate(kinds) if k == kind]
        label = (f"Bundle.entry[{kind}]" if len(same) == 1 else
                 f"Bundle.entry[{kind} #{same.index(index) + 1}]")
        keys = set()
        if isinstance(resource.get("id"), str):
            keys.add(f"{kind}/{resource['id']}")
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        if full_url:
            keys.update({reference_key(full_url), full_url})
        entries.append(_Entry(kind, label, resource, keys, full_url))
    return entries


def _model(entry: _Entry, issues: list[_Issue] | None) -> Any:
    """The entry as a fhir.resources model; None (with issues added, if a list is given)."""
    import importlib

    module = importlib.import_module(f"fhir.resources.R4B.{entry.kind.lower()}")
    try:
        return getattr(module, entry.kind).model_validate(entry.raw)
    except ValidationError as exc:
        if issues is not None:
            for err in exc.errors():
                path = entry.label + "".join(
                    f"[{part}]" if isinstance(part, int) else f".{part}" for part in err["loc"])
                message = err["msg"].removeprefix("Value error, ").rstrip(".")
                issues.append(_Issue(Problem(path, f"is not valid FHIR R4 ({message})",
                                             "correct it to match the FHIR R4 specification")))
        return None


def _full_date(value: Any) -> date | None:
    """A FHIR date or dateTime as a calendar date (as written, in its own zone)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return None  # a partial date such as "2026" or "2026-11"


def _person_name(practitioner: Any) -> str | None:
    for name in practitioner.name or []:
        if name.use in ("old", "maiden", "anonymous"):
            continue
        if name.text:
            return " ".join(name.text.split())
        parts = [*(name.prefix or []), *(name.given or []), name.family or "",
                 *(name.suffix or [])]
        written = " ".join(p for p in parts if p)
        if written:
            return written
    return None


class _Reader:
    """Reads one Bundle, collecting every problem before giving up."""

    def __init__(self, raw: dict[str, Any], settings: IntakeSettings, give: Give):
        self.settings = settings
        self.give = give
        self.today = intake.today()
        self.entries = _entries(raw)
        self.issues: list[_Issue] = []
        self.subject: dict[str, Any] = {}
        self.patient_keys: set[str] = set()
        self.patient_ids: set[tuple[str, str]] = set()

    def issue(self, where: str, problem: str, fix: str, fields: frozenset[str] = frozenset()
              ) -> None:
        self.issues.append(_Issue(Problem(where, problem, fix), fields))

    def of_kind(self, kind: str) -> list[_Entry]:
        return [e for e in self.entries if e.kind == kind]

    # -- Patient --------------------------------------------------------------

    def patient(self) -> dict[str, Any]:
        """The record fields the Patient gives (missing ones left out, with issues)."""
        patients = self.of_kind("Patient")
        if len(patients) != 1:
            problem = "is missing" if not patients else f"appears {len(patients)} times"
            self.issue(PATIENT, problem, "send exactly one Patient in the Bundle",
                       PATIENT_FIELDS if not patients else frozenset())
            return {}
        entry = patients[0]
        patient = _model(entry, self.issues)
        if patient is None:
            return {}
        self.patient_keys = entry.keys
        self.patient_ids = {(str(i.system or ""), str(i.value)) for i in patient.identifier or []
                            if i.value}
        if patient.id or entry.full_url:  # "Patient/<id>" first, else fullUrl
            self.subject = {"reference": f"Patient/{patient.id}" if patient.id
                            else str(entry.full_url)}
        for problem in patient_status_problems(patient, PATIENT):
            self.issues.append(_Issue(problem))
        fields: dict[str, Any] = {}
        for name, choice in (
                ("patient_name", choose_name(patient.name or [], f"{PATIENT}.name", self.today,
                                             self.give)),
                ("mrn", choose_mrn(patient.identifier or [], f"{PATIENT}.identifier",
                                   self.settings.mrn_systems, self.today, self.give)),
                ("language", choose_language(patient.communication or [],
                                             f"{PATIENT}.communication",
                                             available_languages(), self.give))):
            fields[name] = choice.value
            self.issues.extend(_Issue(p, frozenset({name})) for p in choice.problems)
        fields["date_of_birth"] = self._birth_date(patient)
        if not self.subject and fields["mrn"]:
            found = next(i for i in patient.identifier if str(i.value).strip() == fields["mrn"])
            self.subject = {"identifier": {k: str(v) for k, v in
                                           {"system": found.system, "value": fields["mrn"]}.items()
                                           if v}}
        return fields

    def _birth_date(self, patient: Any) -> str | None:
        where, only = f"{PATIENT}.birthDate", frozenset({"date_of_birth"})
        if patient.birthDate is None:
            self.issue(where, "is missing",
                       f"add the date of birth, or give it with {self.give('date_of_birth')}",
                       only)
            return None
        born = _full_date(patient.birthDate)
        if born is None:
            self.issue(where, "is not a full date", "give year, month and day, like 1961-03-24",
                       only)
            return None
        return born.isoformat()

    # -- the myelogram --------------------------------------------------------

    def candidates(self) -> list[_Candidate]:
        found = []
        for kind in ("Procedure", "ServiceRequest"):
            for entry in self.of_kind(kind):
                if entry.raw.get("status") in UNUSABLE_STATUS or \
                        not _looks_like_myelogram(entry.raw):
                    continue
                resource = _model(entry, self.issues)
                if resource is None:
                    continue
                item = _Candidate(entry, resource)
                self._identify(item)
                self._when(item)
                self._check_subject(item)
                found.append(item)
        return found

    def _identify(self, item: _Candidate) -> None:
        codes, texts = _concept_parts(item.entry.raw.get("code"))
        cpt = _cpt(codes)
        where = f"{item.entry.label}.code"
        if CPT_TWO_OR_MORE_REGIONS in cpt:
            item.issues.append(_Issue(Problem(
                where, "is CPT 62305, a myelogram of two or more regions",
                "print one packet per region: " + FIX_CODE), frozenset({"type"})))
            return
        types = {CPT_TYPES[c] for c in cpt if c in CPT_TYPES}
        if not types:
            _, sites = _concept_parts(item.entry.raw.get("bodySite"))
            types = regions_named(texts) or regions_named(sites)
        if len(types) == 1:
            item.type = types.pop()
            return
        problem = ("names more than one part of the spine" if types else
                   "is a myelogram but does not say which part of the spine")
        item.issues.append(_Issue(Problem(
            where, problem, f"{FIX_CODE}, or add a bodySite, or give {self.give('type')}"),
            frozenset({"type"})))

    def _when(self, item: _Candidate) -> None:
        r, label = item.resource, item.entry.label
        if item.entry.kind == "Procedure":
            options = [(r.performedDateTime, "performedDateTime"),
                       (r.performedPeriod and r.performedPeriod.start, "performedPeriod.start")]
            missing = "performedDateTime"
        else:
            timing = r.occurrenceTiming
            event = timing.event[0] if timing is not None and timing.event else None
            bounds = (timing.repeat.boundsPeriod.start
                      if timing is not None and timing.repeat is not None
                      and timing.repeat.boundsPeriod is not None else None)
            options = [(r.occurrenceDateTime, "occurrenceDateTime"),
                       (r.occurrencePeriod and r.occurrencePeriod.start, "occurrencePeriod.start"),
                       (event, "occurrenceTiming.event[0]"),
                       (bounds, "occurrenceTiming.repeat.boundsPeriod.start")]
            missing = "occurrenceDateTime"
        value, path = next(((v, p) for v, p in options if v is not None), (None, missing))
        item.date_path = f"{label}.{path}"
        only = frozenset({"procedure_date"})
        if value is None:
            item.issues.append(_Issue(Problem(
                item.date_path, "is missing",
                f"add {missing} (the day of the myelogram), or give "
                f"{self.give('procedure_date')}"), only))
            return
        item.day = _full_date(value)
        if item.day is None:
            item.issues.append(_Issue(Problem(
                item.date_path, "is not a full date", "give year, month and day, like 2026-11-25"),
                only))
            return
        if isinstance(value, datetime) and value.tzinfo is not None:
            item.instant = value.isoformat()

    def _check_subject(self, item: _Candidate) -> None:
        subject = item.resource.subject
        if subject is None:
            return
        if subject.reference:
            ok = (not self.patient_keys or reference_key(subject.reference) in self.patient_keys
                  or subject.reference in self.patient_keys)
        elif subject.identifier is not None and subject.identifier.value:
            ident = subject.identifier
            ok = not self.patient_ids or any(
                value == str(ident.value) and (not ident.system or system == str(ident.system))
                for system, value in self.patient_ids)
        else:
            ok = True
        if not ok:
            item.issues.append(_Issue(Problem(
                f"{item.entry.label}.subject", "refers to a different patient",
                "send the myelogram of the Patient in this Bundle")))

    def choose(self, found: list[_Candidate], given: dict[str, Any]) -> _Candidate | None:
        """The myelogram this packet is for; issues when none can be chosen safely.

        The one on the given procedure date; else today's or a current order;
        else a recent one. An older one is never chosen without the date.
        """
        both = frozenset({"type", "procedure_date"})
        wanted = _given_date(given.get("procedure_date"))
        if not found:
            self.issue(MYELOGRAMS, "has no myelogram",
                       "add a Procedure or ServiceRequest for the myelogram (" + FIX_CODE +
                       f"), or give {self.give('type')} and {self.give('procedure_date')}", both)
            return None
        if wanted is not None:
            pool = [c for c in found if c.day == wanted] or [c for c in found if c.day is None]
            if not pool:
                self.issue(MYELOGRAMS, f"has no myelogram on the date given with "
                           f"{self.give('procedure_date')}",
                           f"check the date, or give {self.give('type')} as well", both)
                return None
        else:
            recent = self.today - timedelta(days=self.settings.recent_procedure_days)
            dated = [c for c in found if c.day is not None]
            pool = ([c for c in dated if c.day == self.today]
                    or [c for c in found if c.current]
                    or [c for c in dated if c.day is not None and c.day >= recent]
                    or ([] if dated else found))
            if not pool:
                days = self.settings.recent_procedure_days
                self.issue(MYELOGRAMS, f"has only myelograms from more than {days} days ago "
                           "and no current order",
                           "send today's order, or give the date of the myelogram this packet "
                           f"is for with {self.give('procedure_date')}", both)
                return None
        # The order and the Procedure that carried it out are one myelogram.
        same = {(c.type, c.day) for c in pool}
        pool = [c for c in found if (c.type, c.day) in same]
        if given.get("type") is not None:
            pool = [c for c in pool if c.type and c.type.value == str(given["type"]).strip()
                    .lower()] or pool
        groups = {(c.type, c.day) for c in pool if not c.issues} or {(c.type, c.day) for c in pool}
        if len(groups) > 1 and given.get("type") is None or len({d for _, d in groups}) > 1:
            which = "; ".join(f"{c.entry.label} ({c.day.isoformat() if c.day else 'no date'})"
                              for c in pool)
            self.issue(MYELOGRAMS, f"has {len(pool)} myelograms that could be this one: {which}",
                       f"give the date of the one to print with {self.give('procedure_date')}, "
                       "or send one myelogram per Bundle")
            return None
        chosen = sorted(pool, key=lambda c: (bool(c.issues), c.entry.kind != "Procedure"))[0]
        self.issues.extend(chosen.issues)
        return chosen

    def physician(self, item: _Candidate) -> str | None:
        """The performer's name (else the requester's, for an order): display or Practitioner."""
        r = item.resource
        if item.entry.kind == "Procedure":
            people = [p.actor for p in r.performer or []]
        else:
            people = [*(r.performer or []), *([r.requester] if r.requester else [])]
        for person in people:
            if person.display:
                return " ".join(person.display.split())
            if person.reference:
                key = reference_key(person.reference)
                for entry in self.of_kind("Practitioner"):
                    if key in entry.keys or person.reference in entry.keys:
                        practitioner = _model(entry, None)
                        name = _person_name(practitioner) if practitioner else None
                        if name:
                            return name
        return None


def _given_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()) if value is not None else None
    except ValueError:
        return None  # the record's own check names the problem


def _reference(entry: _Entry) -> str | None:
    if isinstance(entry.raw.get("id"), str):
        return f"{entry.kind}/{entry.raw['id']}"
    return entry.full_url


def _logical_reference(entry: _Entry) -> dict[str, Any] | None:
    """{"type": "Procedure", "identifier": {"system", "value"}} from the resource's first
    identifier with a value (one with a system first); None when it has none."""
    found = [i for i in entry.raw.get("identifier") or []
             if isinstance(i, dict) and isinstance(i.get("value"), str) and i["value"].strip()]
    found.sort(key=lambda i: not isinstance(i.get("system"), str))
    if not found:
        return None
    identifier = {k: found[0][k] for k in ("system", "value") if isinstance(found[0].get(k), str)}
    return {"type": entry.kind, "identifier": identifier}


def packet_from_bundle(data: dict[str, Any] | str | bytes,
                       overrides: dict[str, Any] | None = None,
                       intake_settings: IntakeSettings | None = None,
                       give: Give = cli_flag) -> FhirPacket:
    """Read a FHIR R4 Bundle into a packet record.

    ``overrides`` are record fields that fill in or replace what the Bundle
    says (the CLI's flags, the HTTP request's ``record``), applied before
    anything is judged missing: a Bundle with only a Patient prints with
    ``type`` and ``procedure_date`` given. ``intake_settings`` gives the
    hospital's MRN systems, MRN pattern and date window; ``give(field)`` says
    in errors how the caller supplies a field (default: the CLI flag).
    Raises RecordError naming the FHIR path of every problem.
    """
    settings = intake_settings or IntakeSettings()
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    raw = load_json(data)
    if not isinstance(raw, dict) or raw.get("resourceType") != "Bundle":
        raise _fail([Problem("Bundle.resourceType", "is not 'Bundle'",
                             "send a FHIR R4 Bundle holding the Patient and the myelogram")])
    reader = _Reader(raw, settings, give)
    fields = reader.patient()
    paths = {"patient_name": f"{PATIENT}.name", "date_of_birth": f"{PATIENT}.birthDate",
             "mrn": f"{PATIENT}.identifier", "language": f"{PATIENT}.communication"}
    chosen = reader.choose(reader.candidates(), given)
    if chosen is not None:
        fields.update(type=chosen.type.value if chosen.type else None,
                      procedure_date=chosen.day.isoformat() if chosen.day else None,
                      physician=reader.physician(chosen))
        paths.update(type=f"{chosen.entry.label}.code", procedure_date=chosen.date_path,
                     physician=f"{chosen.entry.label}.performer",
                     record=f"{PATIENT}.birthDate and {chosen.date_path}")
    problems = [i.problem for i in reader.issues if not (i.fields and i.fields <= given.keys())]
    if problems:
        raise _fail(problems)
    fields = {k: v for k, v in fields.items() if v is not None}
    fields.update(given)
    paths.update({key: give(key) for key in given})  # errors in the caller's words
    try:
        record = validate_record(fields, settings)
    except RecordError as exc:
        raise _with_paths(_fail(exc.problems), paths) from None
    mrn_system = next((system for system, value in reader.patient_ids
                       if value.strip() == record.mrn and system), None)
    if mrn_system is None and settings.mrn_systems:  # an --mrn given for the hospital's MRN
        mrn_system = settings.mrn_systems[0]
    return FhirPacket(record=record, subject=reader.subject,
                      procedure_reference=_reference(chosen.entry) if chosen else None,
                      performed_instant=chosen.instant if chosen else None, paths=paths,
                      mrn_system=mrn_system,
                      procedure_identifier=_logical_reference(chosen.entry) if chosen else None)

