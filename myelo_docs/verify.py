"""Self-check of every PDF before anyone sees it.

Reads the PDF back with PDFium (an engine independent of the one that wrote
it, and ~25x faster than pypdf's text extraction, which matters on every
packet) and proves what a nurse would check by eye:
the pages are numbered 1..N of N, and each page of a packet carries this
patient's name, date of birth and MRN, and (stamp.py) the scannable code
for its own page. Any mismatch raises and the caller writes nothing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import pypdfium2 as pdfium

from .errors import Problem, SelfCheckError
from .stamp import PayloadFor, check_codes

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Identifiers:
    name: str
    dob: str
    mrn: str


def squash(text: str) -> str:
    """Text compared without white space, so line breaks in a long name don't matter.

    PDFium reports a hyphen that may end a line as U+0002; soft hyphens are
    invisible unless a line breaks there, so both sides drop them.
    """
    text = text.replace("\x02", "-").replace("\u00ad", "")
    text = _SPACE.sub("", unicodedata.normalize("NFKC", text))
    # Invisible format characters (zero-width space, joiners, direction marks)
    # are not drawn, so they are not in the text layer either.
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _direction_runs(value: str) -> list[str]:
    """Value split at spaces and where right-to-left letters meet anything else."""
    runs: list[str] = []
    current, current_rtl = "", False
    for ch in value:
        if ch.isspace():
            runs.append(current)
            current = ""
            continue
        kind = unicodedata.bidirectional(ch)
        if current and kind in ("NSM", "BN"):  # a combining mark stays with its letter
            current += ch
            continue
        rtl = kind in ("R", "AL")
        if current and rtl != current_rtl:
            runs.append(current)
            current = ""
        current, current_rtl = current + ch, rtl
    runs.append(current)
    return [run for run in runs if squash(run)]


def _fold(text: str) -> str:
    """Mirrored characters (brackets) made alike, combining marks dropped."""
    return "".join("\u25c7" if unicodedata.mirrored(ch) else ch for ch in text
                   if unicodedata.category(ch) != "Mn")


def shows(value: str, flat_page: str) -> bool:
    """Whether a page's squashed text shows value.

    Text that mixes right-to-left letters with digits, brackets or Latin
    letters comes out of a PDF in an order text extractors can only guess
    (PDF keeps glyphs in drawing order): a bracket may come out mirrored and
    a combining mark before its letter. For such values each direction run
    must be on the page, brackets either way round, combining marks aside;
    everything else is compared exactly. The MRN inside the page's scannable
    code is still compared exactly.
    """
    if squash(value) in flat_page:
        return True
    if not any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in value):
        return False
    folded = _fold(flat_page)
    return all(_fold(squash(run)) in folded for run in _direction_runs(value))


def page_texts(pdf: bytes, password: str | None = None) -> list[str]:
    document = pdfium.PdfDocument(pdf, password=password)
    try:
        texts = []
        for page in document:
            textpage = page.get_textpage()
            texts.append(textpage.get_text_bounded())
            textpage.close()
            page.close()
        return texts
    finally:
        document.close()


def verify_pdf(pdf: bytes, ids: Identifiers | None, numbered: bool = True,
               codes: PayloadFor | None = None) -> int:
    """Check the PDF; return its page count. With codes, also each page's QR code."""
    texts = page_texts(pdf)
    problems = check_pages(texts, ids, numbered)
    if codes is not None and texts:
        problems += check_codes(pdf, codes)
    if problems:
        raise SelfCheckError("The PDF failed its safety check", problems)
    return len(texts)


def check_pages(texts: list[str], ids: Identifiers | None, numbered: bool = True,
                first_page: int = 1) -> list[Problem]:
    """Problems with pages of one document (or one packet inside a print file)."""
    total = len(texts)
    problems = []
    if total == 0:
        problems.append(Problem("pdf", "has no pages", "report this as a bug"))
    wanted = {"name": ids.name, "date of birth": ids.dob, "MRN": ids.mrn} if ids else {}
    for number, text in enumerate(texts, start=1):
        flat = squash(text)
        where = f"page {first_page + number - 1}"
        if numbered and not re.search(rf"(?<!\d){number}\D{{1,12}}{total}(?!\d)", text):
            problems.append(Problem(where, f"is not numbered {number} of {total}",
                                    "report this as a bug"))
        for label, value in wanted.items():
            if not shows(value, flat):
                problems.append(Problem(where, f"does not show the patient's {label}",
                                        "report this as a bug; the packet was not written"))
    return problems
