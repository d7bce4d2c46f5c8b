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
from myelo_docs.schema.languages import available_languages
from myelo_docs.schema.messages import phrase, problem, title
from myelo_docs.schema.record import (
    ExamType,
    MyelogramType,
    PacketRecord,
    exam_type,
    parse_type,
    validate_record,
)

CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"
CPT_TYPES = {
    "62302": MyelogramType.cervical,
    "62303": MyelogramType.thoracic,
    "62304": MyelogramType.lumbar,
}
CPT_TWO_OR_MORE_REGIONS = "62305"
SNOMED_SYSTEM = "http://snomed.info/sct"
# bodySite codes of the parts of the spine (SNOMED CT "... spine structure").
SNOMED_REGIONS = {
    "122494005": MyelogramType.cervical,
    "122495006": MyelogramType.thoracic,
    "122496007": MyelogramType.lumbar,
}
UNUSABLE_STATUS = {"entered-in-error", "not-done", "revoked", "cancelled", "stopped"}
CURRENT_STATUS = {"ServiceRequest": {"active"}, "Procedure": {"preparation", "in-progress"}}
PATIENT = "Bundle.entry[Patient]"
MYELOGRAMS = "Bundle.entry[Procedure or ServiceRequest]"
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
    return RecordError(title("fhir_bundle_unusable"), problems)


def load_json(data: dict[str, Any] | str | bytes) -> Any:
    """JSON text or bytes (UTF-8, BOM allowed) as Python data; data already parsed as is.

    Raises InvalidJSON (a RecordError) naming the place: not UTF-8, not valid
    JSON, too deep, or an object with a key twice (its path in the Bundle).
    """
    if isinstance(data, str | bytes):
        return parse_json(data, "Bundle", phrase("json_fix_bundle"))
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


@cache
def needle_route_words() -> tuple[str, ...]:
    data = tomllib.loads((content_dir() / "order_words.toml").read_text("utf-8"))
    return tuple(_plain_words(w) for w in data.get("needle_route", []))


def names_myelogram(texts: list[str]) -> bool:
    stems, _ = order_words()
    return any(word.startswith(stems) for t in texts for word in _plain_words(t).split())


def regions_named(texts: list[str]) -> set[MyelogramType]:
    """The parts of the spine the words name (not the needle's way in)."""
    _, regions = order_words()
    plain = " ".join(_plain_words(t) for t in texts)
    for route in needle_route_words():
        plain = plain.replace(route, " ")
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
    type: ExamType | None = None
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
        raise _fail([problem("fhir_entry_not_list", "Bundle.entry")])
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
                issues.append(_Issue(problem("fhir_not_r4", path, detail=message)))
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

    def issue(self, found: Problem, fields: frozenset[str] = frozenset()) -> None:
        self.issues.append(_Issue(found, fields))

    def of_kind(self, kind: str) -> list[_Entry]:
        return [e for e in self.entries if e.kind == kind]

    # -- Patient --------------------------------------------------------------

    def patient(self) -> dict[str, Any]:
        """The record fields the Patient gives (missing ones left out, with issues)."""
        patients = self.of_kind("Patient")
        if not patients:
            self.issue(problem("fhir_patient_missing", PATIENT), PATIENT_FIELDS)
            return {}
        if len(patients) > 1:
            self.issue(problem("fhir_patient_many", PATIENT, count=len(patients)))
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
        for found in patient_status_problems(patient, PATIENT):
            self.issues.append(_Issue(found))
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
            self.issue(problem("fhir_birth_missing", where, give=self.give("date_of_birth")), only)
            return None
        born = _full_date(patient.birthDate)
        if born is None:
            self.issue(problem("fhir_birth_partial", where), only)
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
        _join_orders(found)
        return found

    def _identify(self, item: _Candidate) -> None:
        """The parts of the spine: from CPT codes (62302-62304, several of them make one
        test of several parts); else, and for 62305, from bodySite (SNOMED CT or words),
        else from the code's words."""
        raw = item.entry.raw
        codes, texts = _concept_parts(raw.get("code"))
        cpt = _cpt(codes)
        site_codes, site_texts = _concept_parts(raw.get("bodySite"))
        sites = {SNOMED_REGIONS[c] for system, c in site_codes
                 if system == SNOMED_SYSTEM and c in SNOMED_REGIONS} | regions_named(site_texts)
        regions = {CPT_TYPES[c] for c in cpt if c in CPT_TYPES}
        several = CPT_TWO_OR_MORE_REGIONS in cpt
        if several or not regions:
            regions |= sites or regions_named(texts)
        if several and len(regions) < 2:
            item.issues.append(_Issue(problem(
                "fhir_several_one_part" if regions else "fhir_several_no_part",
                f"{item.entry.label}.bodySite", give=self.give("type")), frozenset({"type"})))
            return
        if regions:
            item.type = exam_type(regions)
            return
        item.issues.append(_Issue(problem(
            "fhir_no_part", f"{item.entry.label}.code", cpt_system=CPT_SYSTEM,
            give=self.give("type")), frozenset({"type"})))

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
            item.issues.append(_Issue(problem(
                "fhir_date_missing", item.date_path, element=missing,
                give=self.give("procedure_date")), only))
            return
        item.day = _full_date(value)
        if item.day is None:
            item.issues.append(_Issue(problem("fhir_date_partial", item.date_path), only))
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
            item.issues.append(_Issue(problem("fhir_other_patient",
                                              f"{item.entry.label}.subject")))

    def choose(self, found: list[_Candidate], given: dict[str, Any]) -> _Candidate | None:
        """The myelogram this packet is for; issues when none can be chosen safely.

        The one on the given procedure date; else today's or a current order;
        else a recent one. An older one is never chosen without the date.
        """
        both = frozenset({"type", "procedure_date"})
        wanted = _given_date(given.get("procedure_date"))
        if not found:
            self.issue(problem("fhir_no_myelogram", MYELOGRAMS, cpt_system=CPT_SYSTEM,
                               give_type=self.give("type"),
                               give_date=self.give("procedure_date")), both)
            return None
        if wanted is not None:
            pool = [c for c in found if c.day == wanted] or [c for c in found if c.day is None]
            if not pool:
                self.issue(problem("fhir_none_on_date", MYELOGRAMS,
                                   give_date=self.give("procedure_date"),
                                   give_type=self.give("type")), both)
                return None
        else:
            recent = self.today - timedelta(days=self.settings.recent_procedure_days)
            dated = [c for c in found if c.day is not None]
            pool = ([c for c in dated if c.day == self.today]
                    or [c for c in found if c.current]
                    or [c for c in dated if c.day is not None and c.day >= recent]
                    or ([] if dated else found))
            if not pool:
                self.issue(problem("fhir_only_old", MYELOGRAMS,
                                   days=self.settings.recent_procedure_days,
                                   give_date=self.give("procedure_date")), both)
                return None
        # The order and the Procedure that carried it out are one myelogram.
        same = {(c.type, c.day) for c in pool}
        pool = [c for c in found if (c.type, c.day) in same]
        if given.get("type") is not None:
            wanted_type = _given_type(given["type"])
            # A type of several parts takes the myelograms of its parts (one test).
            pool = [c for c in pool if c.type and wanted_type is not None
                    and set(c.type.regions) <= set(wanted_type.regions)] or pool
        groups = {(c.type, c.day) for c in pool if not c.issues} or {(c.type, c.day) for c in pool}
        days = {d for _, d in groups}
        if len(groups) > 1 and given.get("type") is None or len(days) > 1:
            undated = phrase("fhir_no_date")
            which = "; ".join(f"{c.entry.label} ({c.day.isoformat() if c.day else undated})"
                              for c in pool)
            if len(days) > 1:
                self.issue(problem("fhir_several_days", MYELOGRAMS, count=len(pool), which=which,
                                   give_date=self.give("procedure_date")))
            else:
                self.issue(problem("fhir_several_candidates", MYELOGRAMS, count=len(pool),
                                   which=which, give_type=self.give("type")))
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


def _links(entry: _Entry) -> set[str]:
    """What ties a myelogram to others of the same order: its requisition (the
    order's group identifier) and the orders it is based on or part of."""
    raw, links = entry.raw, set()
    requisition = raw.get("requisition")
    if isinstance(requisition, dict) and isinstance(requisition.get("value"), str):
        links.add(f"requisition|{requisition.get('system') or ''}|{requisition['value']}")
    for name in ("basedOn", "partOf"):
        for ref in raw.get(name) or []:
            if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
                links.add(reference_key(ref["reference"]))
    return links


def _join_orders(found: list[_Candidate]) -> None:
    """Myelograms of one order (one requisition, or based on the same order or on each
    other) are one test: each gets the type of all their parts together, so that
    62302 and 62304 ordered together print one packet for the neck and lower back."""
    groups: list[tuple[set[str], list[_Candidate]]] = []
    for item in found:
        keys = _links(item.entry) | item.entry.keys
        joined = [g for g in groups if g[0] & keys]
        for g in joined:
            groups.remove(g)
            keys |= g[0]
        groups.append((keys, [c for g in joined for c in g[1]] + [item]))
    for _, order in groups:
        days = {c.day for c in order if c.day is not None} or {None}
        for day in days:  # parts done on another day are another test
            members = [c for c in order if c.day in (day, None)]
            regions = {r for c in members if c.type for r in c.type.regions}
            if len(members) < 2 or not regions:
                continue
            kind = exam_type(regions)
            for c in members:
                if c.type is None:  # a part named by the others of its order
                    c.issues = [i for i in c.issues if i.fields != frozenset({"type"})]
                c.type = kind


def _given_type(value: Any) -> ExamType | None:
    try:
        return parse_type(value)
    except ValueError:
        return None  # the record's own check names the problem


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
        raise _fail([problem("fhir_not_bundle", "Bundle.resourceType")])
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
                     record=phrase("fhir_both_paths", first=f"{PATIENT}.birthDate",
                                   second=chosen.date_path))
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

