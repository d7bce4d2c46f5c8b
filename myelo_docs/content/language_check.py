"""A nudge against mixed languages: nurse-typed text that looks like another language.

A Spanish packet with instructions typed in English reads as two documents to
a patient who has only one of the languages. ``language_nudges(record)`` looks
at the free text a nurse types for the patient (``follow_up``, each of
``instructions``, each medicine's ``instruction``; never names, MRNs or
medicine names) and returns one ``LanguageNudge`` per field that looks like
another language than the packet's. It never blocks: the CLI writes the
packet and prints the nudges on stderr; the nurse page shows them next to the
boxes with a link to the packet.

Conservative by design, since a false alarm teaches nurses to ignore it: a
field is checked only when, after names behind a title (Dr. Smith), ALL-CAPS
abbreviations (BID, PRN), dose units and numbers are set aside, it still has
at least ``MIN_WORDS`` words; and it is flagged only when the detector gives
the packet's language at most ``MOST_PACKET_CONFIDENCE`` and some other
language is the most likely. So "Warfarin", "Apixaban 5 mg BID", "Dr. García
López" or "No change." never warn; "Mantenga la venda seca hasta mañana" in an
English packet does, and so does "Keep the bandage dry until tomorrow" in a
Spanish one. Short phrases such as "Tome con comida" are let through: lingua
is not sure enough of three words.

Detection: lingua (lingua-language-detector), restricted to the languages we
have patient text for and a few that US patients commonly speak
(``COMMON``), in its low-accuracy mode: about 20 MB and 50-90 ms to load on
first use, about 0.1 ms a field. Portuguese and Italian are left out on
purpose: they are rarely typed here and lingua confuses short Spanish with
them. Measured choices are in the closing note of the change that added this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from babel import Locale

if TYPE_CHECKING:
    from lingua import LanguageDetector

    from myelo_docs.schema.record import PacketRecord

MIN_WORDS = 3
MOST_PACKET_CONFIDENCE = 0.05
# Besides the languages we ship: languages US patients commonly speak (ISO 639-1).
COMMON = ("fr", "de", "vi", "tl", "zh", "ko", "ru", "ar")

# A title and the capitalised words after it: "Dr. García López", "Sra. Ruiz".
_NAME_AFTER_TITLE = re.compile(
    r"\b(?:Dr|Dra|Drs|Mr|Mrs|Ms|Mx|Sr|Sra|Srta)\b\.?(?:\s+[A-ZÀ-ÖØ-Þ][\w'’-]*\.?)+")
_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]|[^\W\d_\u3040-\u30ff\u3400-\u9fff]{2,}")
_UNITS = frozenset({"mg", "mcg", "ml", "kg", "mmol", "meq", "iu", "hr", "hrs", "h", "min",
                    "tab", "tabs", "cap", "caps", "am", "pm", "po", "x"})


@dataclass(frozen=True)
class LanguageNudge:
    """One nurse-typed field that looks like another language than the packet's.

    ``field``: the record's name for it (``follow_up``, ``instructions #2``,
    ``medications #1 instruction``); ``language`` and ``packet_language``:
    ISO 639-1 codes (``es``, ``en``). No text of the field is kept.
    """

    field: str
    language: str
    packet_language: str

    def message(self, field: str | None = None) -> str:
        """The English warning for the CLI and logs (names the field, never its text)."""
        return (f"{field or self.field} looks like {language_name(self.language)}, but the "
                f"packet is in {language_name(self.packet_language)}: check that the patient can "
                "read it (the packet is made all the same)")


def language_name(code: str, in_language: str = "en") -> str:
    """A language's name in another language: ("es", "en") -> "Spanish"."""
    try:
        return Locale.parse(code).get_display_name(in_language) or code
    except (ValueError, LookupError):
        return code


def nurse_text_fields(record: PacketRecord) -> dict[str, str]:
    """The free text a nurse typed for the patient, by field name."""
    fields = {"follow_up": record.follow_up} if record.follow_up else {}
    for i, item in enumerate(record.instructions, start=1):
        fields[f"instructions #{i}"] = item
    for i, med in enumerate(record.medications, start=1):
        fields[f"medications #{i} instruction"] = med.instruction
    return fields


def language_nudges(record: PacketRecord) -> list[LanguageNudge]:
    """One nudge per nurse-typed field that looks like another language than the
    packet's, in field order; [] when the packet's language is one the detector
    does not know."""
    return check_fields(nurse_text_fields(record), record.language)


def check_fields(fields: dict[str, str], packet_language: str) -> list[LanguageNudge]:
    nudges = []
    for name, text in fields.items():
        found = looks_like(text, packet_language)
        if found:
            nudges.append(LanguageNudge(name, found, packet_language))
    return nudges


def looks_like(text: str, packet_language: str) -> str | None:
    """The language ``text`` clearly looks like when that is not ``packet_language``
    (an ISO 639-1 code), else None: too short, unsure, or the packet's own."""
    words = _words(text)
    if len(words) < MIN_WORDS:
        return None
    detector = _detector(frozenset(_languages((packet_language,))))
    if detector is None or packet_language not in detector.codes:
        return None
    confidences = detector.lingua.compute_language_confidence_values(" ".join(words))
    found = {c.language.iso_code_639_1.name.lower(): c.value for c in confidences}
    top = max(found, key=found.__getitem__)
    if top == packet_language or found.get(packet_language, 0.0) > MOST_PACKET_CONFIDENCE:
        return None
    return top


def _words(text: str) -> list[str]:
    """The words that say something about the language: no names behind a title,
    abbreviations, units or numbers."""
    return [w for w in _WORD.findall(_NAME_AFTER_TITLE.sub(" ", text))
            if not (len(w) > 1 and w.isupper()) and w.lower() not in _UNITS]


def _languages(packet_languages: Iterable[str]) -> set[str]:
    from myelo_docs.schema.languages import available_languages

    return {*available_languages(), *COMMON, *packet_languages}


@dataclass(frozen=True)
class _Detector:
    lingua: LanguageDetector
    codes: frozenset[str]  # the languages it tells apart


@cache
def _detector(codes: frozenset[str]) -> _Detector | None:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    languages = {}
    for code in sorted(codes):
        try:
            languages[code] = Language.from_iso_code_639_1(IsoCode639_1.from_str(code))
        except ValueError:  # a hospital's own language that lingua does not know
            continue
    if len(languages) < 2:
        return None
    builder = LanguageDetectorBuilder.from_languages(*languages.values())
    return _Detector(builder.with_low_accuracy_mode().build(), frozenset(languages))
