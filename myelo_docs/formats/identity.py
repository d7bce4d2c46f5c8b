"""The identity rule: which of a FHIR Patient's identifiers, names and languages we print.

Real Patient resources carry many identifiers (the MRN next to enterprise and
internal ids, Social Security, driver's licence and passport numbers), several
names (official, usual, old, maiden) with periods, and languages coded by
vendors. The rule, the same for the CLI, the service and the Python API:

MRN (``Patient.identifier``)
  1. Identifiers with no value, ``use: old``, or a ``period`` that has ended
     (or not yet begun) are skipped.
  2. Identifiers that are Social Security, driver's licence, passport,
     national id, tax or insurance numbers (by type code, type text or their
     well-known systems) are never used and never printed.
  3. An identifier whose ``system`` is one of the hospital's MRN systems
     (``--mrn-system``) wins; otherwise one typed as a medical record number:
     v2-0203 code ``MR`` (or ``MRN``, seen in the wild), or a type text or
     display that says so ("MRN", "Medical Record Number").
  4. No candidate, or two different values of the same rank, is an error that
     names the systems and type texts found (never a value) and the fix.

Name (``Patient.name``)
  Current names only (no ended period, not ``old``, ``maiden``, ``nickname``
  or ``anonymous``), ``official`` before ``usual`` before one with no use.
  Printed as given names, family name and suffixes ("Robert James Testwell
  Jr."); ``text`` only when there are no parts, since systems fill it with
  "LAST, FIRST" or a nickname. Prefixes ("Mr", "Dr") are left out: the
  wristband the packet is checked against carries none. Two different current
  names of the same rank are an error.

Language (``Patient.communication``)
  The preferred entry (else the first). Within it, a BCP-47 coding
  (``urn:ietf:bcp:47``) first, then any code that is a language tag, then any
  display or text that names a language, in English or in that language
  ("Spanish", "Español"), matched with Babel's names. An entry that names no
  language we can recognise is an error, never a silent English packet.

Deceased
  ``deceasedBoolean: true`` or a ``deceasedDateTime`` is refused, as is a
  Patient marked ``active: false`` or ``link``-ed as replaced by another.

Each function returns the value and the problems found; problems never quote
a value. Functions take fhir.resources models.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

from myelo_docs.schema.errors import Problem
from myelo_docs.schema.messages import problem

V2_0203 = ("http://terminology.hl7.org/CodeSystem/v2-0203", "http://hl7.org/fhir/v2/0203")
BCP47 = "urn:ietf:bcp:47"
MRN_CODES = {"MR", "MRN"}
# v2-0203 types that identify a person outside the hospital: never an MRN, never printed.
PERSONAL_ID_CODES = {"SS", "SSN", "DL", "DLN", "PPN", "NI", "NIIP", "TAX", "TIN", "SB", "NH",
                     "HC", "PEN", "BCT", "MB", "MC", "MA", "VS", "CZ"}
PERSONAL_ID_SYSTEMS = (
    "http://hl7.org/fhir/sid/us-ssn",
    "urn:oid:2.16.840.1.113883.4.1",  # US Social Security number
    "urn:oid:2.16.840.1.113883.4.3.",  # US driver's licences, one OID per state
    "http://hl7.org/fhir/sid/passport-",
    "http://standardhealthrecord.org/fhir/StructureDefinition/passportNumber",  # Synthea
    "http://hl7.org/fhir/sid/us-mbi",  # Medicare
    "http://hl7.org/fhir/sid/us-medicare",
    "urn:oid:2.16.840.1.113883.4.572",  # Medicare
    "http://hl7.org/fhir/sid/us-medicaid",
    "https://fhir.nhs.uk/Id/nhs-number",  # national health numbers
    "http://hl7.org/fhir/sid/nhs-number",
)
_PERSONAL_ID_TEXT = re.compile(
    r"\b(ssn|social security|social insurance|driver'?s?|licen[cs]e|passport|national|"
    r"tax|medicare|medicaid|insurance)\b", re.IGNORECASE)
_MRN_TEXT = re.compile(r"\b(mrn|mr|medical record( number| no\.?| #)?|med rec( no\.?)?)\b",
                       re.IGNORECASE)
CURRENT_NAME_USES = {"official": 0, "usual": 1, None: 2, "temp": 3}


def _codings(concept: Any) -> list[Any]:
    return list(concept.coding or []) if concept is not None else []


def _texts(concept: Any) -> list[str]:
    if concept is None:
        return []
    return [t for t in [concept.text, *(c.display for c in _codings(concept))] if t]


def _day(value: Any) -> date | None:
    """A FHIR date or dateTime as a date; a partial one ("2020", "2020-01") as its first day."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    found = re.fullmatch(r"(\d{4})(?:-(\d{2}))?", str(value or ""))
    if found:
        return date(int(found[1]), int(found[2] or 1), 1)
    return None


def in_force(period: Any, today: date) -> bool:
    """Is a FHIR Period (or None) in force today? Partial dates count as their start."""
    if period is None:
        return True
    start, end = _day(period.start), _day(period.end)
    return not ((end is not None and end < today) or (start is not None and start > today))


# -- MRN ------------------------------------------------------------------------


def _describe(identifier: Any) -> str:
    """How an identifier is named in an error: its system and type, never its value."""
    parts = []
    if identifier.system:
        parts.append(f"system {identifier.system}")
    texts = _texts(identifier.type)
    codes = [c.code for c in _codings(identifier.type) if c.code]
    if texts or codes:
        parts.append("type " + "/".join(dict.fromkeys([*codes, *texts])))
    return ", ".join(parts) or "no system or type"


def is_personal_id(identifier: Any) -> bool:
    """SSN, driver's licence, passport, national id, tax or insurance number."""
    system = str(identifier.system or "")
    if any(system == s or (s.endswith((".", "-")) and system.startswith(s))
           for s in PERSONAL_ID_SYSTEMS):
        return True
    codes = {str(c.code).upper() for c in _codings(identifier.type) if c.code}
    if codes & PERSONAL_ID_CODES or any(c.startswith("NN") and len(c) == 5 for c in codes):
        return True
    return any(_PERSONAL_ID_TEXT.search(t) for t in _texts(identifier.type))


def is_typed_mrn(identifier: Any) -> bool:
    """Typed as a medical record number: v2-0203 MR (or MRN), or a type text saying so."""
    for coding in _codings(identifier.type):
        if str(coding.code or "").upper() in MRN_CODES and (
                coding.system is None or str(coding.system).startswith(V2_0203)):
            return True
    return any(_MRN_TEXT.search(t) for t in _texts(identifier.type))


@dataclass(frozen=True)
class Choice:
    """A value chosen by the rule (None when there is none) and the problems found."""

    value: str | None
    problems: tuple[Problem, ...] = ()


def choose_mrn(identifiers: Iterable[Any], where: str, systems: tuple[str, ...], today: date,
               give: Callable[[str], str]) -> Choice:
    """The MRN of a Patient by the rule above; ``give(field)`` says how the user supplies it."""
    current = [i for i in identifiers
               if i.value and i.use != "old" and in_force(i.period, today)]
    by_system = [i for i in current if i.system and str(i.system) in systems]
    typed = [i for i in current if is_typed_mrn(i) and not is_personal_id(i)]
    ranked = by_system or typed
    values = list(dict.fromkeys(str(i.value).strip() for i in ranked))
    if len(values) == 1:
        return Choice(values[0])
    setting = f"the hospital's MRN system with {give('mrn_system')}"
    if values:
        found = "; ".join(_describe(i) for i in ranked)
        return Choice(None, (problem("fhir_mrn_ambiguous", where, count=len(values), found=found,
                                     setting=setting, give=give("mrn")),))
    others = [i for i in current if not is_personal_id(i)]
    skipped = len(current) - len(others)
    found = "; ".join(_describe(i) for i in others) or "none"
    note = (f"; {skipped} Social Security, licence, passport or national id number(s) "
            "were left out, as they always are") if skipped else ""
    return Choice(None, (problem("fhir_mrn_none", where, found=found, note=note, setting=setting,
                                 give=give("mrn")),))


# -- name -----------------------------------------------------------------------


def _written(name: Any) -> str:
    parts = [*(name.given or []), name.family or "", *(name.suffix or [])]
    written = " ".join(" ".join(p.split()) for p in parts if p and p.strip())
    return written or " ".join((name.text or "").split())


def choose_name(names: Iterable[Any], where: str, today: date,
                give: Callable[[str], str]) -> Choice:
    """The patient's current name by the rule above."""
    current = [n for n in names
               if n.use in CURRENT_NAME_USES and in_force(n.period, today) and _written(n)]
    if not current:
        return Choice(None, (problem("fhir_name_none", where, give=give("patient_name")),))
    best = min(CURRENT_NAME_USES[n.use] for n in current)
    written = list(dict.fromkeys(_written(n) for n in current if CURRENT_NAME_USES[n.use] == best))
    if len(written) > 1:
        use = next(n.use for n in current if CURRENT_NAME_USES[n.use] == best) or "no use"
        return Choice(None, (problem("fhir_name_ambiguous", where, count=len(written), use=use,
                                     give=give("patient_name")),))
    return Choice(written[0])


# -- language -------------------------------------------------------------------


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).split())


@cache
def _language_names() -> dict[str, str]:
    """Language names in English and in each language itself (Babel) -> ISO code."""
    from babel import Locale
    from babel.localedata import locale_identifiers

    names: dict[str, str] = {}
    for code, name in Locale("en").languages.items():
        if "_" not in code:
            names.setdefault(_plain(name), code)
    for identifier in locale_identifiers():
        if "_" in identifier:
            continue
        native = Locale.parse(identifier).languages.get(identifier)
        if native:
            names.setdefault(_plain(native), identifier)
    return names


def language_of(text: str) -> str | None:
    """The ISO 639 code a tag or a language name stands for ("es-MX", "Spanish",
    "Español", "spanish (mexico)"), or None."""
    from babel import Locale, UnknownLocaleError

    plain = _plain(text)
    names = _language_names()
    for candidate in (plain, re.split(r"[(,;/]| - ", plain)[0].strip()):
        if candidate in names:
            return names[candidate]
    try:
        return Locale.parse(text.strip().replace("-", "_")).language
    except (ValueError, TypeError, UnknownLocaleError):
        return None


def _language_of_concept(concept: Any) -> str | None:
    codings = _codings(concept)
    for coding in sorted(codings, key=lambda c: c.system != BCP47):
        if coding.code and (coding.system in (None, BCP47) or
                            str(coding.system).startswith("urn:iso:std:iso:639")):
            found = language_of(str(coding.code))
            if found:
                return found
    for text in _texts(concept):
        found = language_of(text)
        if found:
            return found
    return None


def language_name(code: str) -> str:
    from babel import Locale

    return Locale("en").languages.get(code, code)


def choose_language(communication: Iterable[Any], where: str, available: list[str],
                    give: Callable[[str], str]) -> Choice:
    """The packet language from Patient.communication; None (our default) when none is given."""
    spoken = sorted(communication, key=lambda c: 0 if c.preferred else 1)
    if not spoken:
        return Choice(None)
    have = ", ".join(f"{language_name(c)} ({c})" for c in available)
    code = _language_of_concept(spoken[0].language)
    if code is None:
        return Choice(None, (problem("fhir_language_unknown", where, bcp47=BCP47,
                                     give=give("language"), have=have),))
    if code not in available:
        return Choice(None, (problem("fhir_language_missing", where, language=language_name(code),
                                     give=give("language"), have=have),))
    return Choice(code)


# -- is this the living, current patient? ----------------------------------------


def patient_status_problems(patient: Any, where: str) -> list[Problem]:
    """Deceased, inactive or replaced (merged) Patients are refused."""
    problems = []
    if patient.deceasedBoolean or patient.deceasedDateTime is not None:
        problems.append(problem("fhir_patient_deceased", f"{where}.deceased[x]"))
    if patient.active is False:
        problems.append(problem("fhir_patient_inactive", f"{where}.active"))
    if any(link.type == "replaced-by" for link in patient.link or []):
        problems.append(problem("fhir_patient_replaced", f"{where}.link"))
    return problems
