"""Self-check of every PDF before anyone sees it.

Reads the PDF back with PDFium (an engine independent of the one that wrote
it, and ~25x faster than pypdf's text extraction, which matters on every
packet) and proves what a nurse would check by eye:
the pages are numbered 1..N of N, and each page of a packet carries this
patient's name, date of birth and MRN, and (stamp.py) the scannable code
for its own page. Any mismatch raises and the caller writes nothing.
"""

from __future__ import annotations

import codecs
import ctypes
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from myelo_docs.render.stamp import PayloadFor, code_problem
from myelo_docs.schema.errors import Problem, SelfCheckError
from myelo_docs.schema.messages import problem, title

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
    if text.isascii():  # no format characters there
        return text
    # Invisible format characters (zero-width space, joiners, direction marks)
    # are not drawn, so they are not in the text layer either.
    return text.translate(_VISIBLE)


class _Visible(dict[int, int | None]):
    """A str.translate table dropping format characters (Cf), filled as characters are met."""

    def __missing__(self, code: int) -> int | None:
        kept = None if unicodedata.category(chr(code)) == "Cf" else code
        self[code] = kept
        return kept


_VISIBLE = _Visible()


def _right_to_left(ch: str) -> bool:
    return (unicodedata.bidirectional(ch) in ("R", "AL", "AN")
            or unicodedata.name(ch, "").startswith(("ARABIC", "HEBREW")))


def _strong_runs(value: str) -> list[str]:
    """The letters and digits of value, in runs of one direction (and one
    right-to-left script: Hebrew and Arabic come from different fonts).

    Digits are runs of their own: in a line PDFium reads as right-to-left they
    may come out on either side of the letters next to them. A mark that is not
    of a right-to-left run's script is drawn from another font, which cuts the
    run in two chunks that may come out in either order: it ends the run.
    """
    runs: list[str] = []
    current, current_key = "", ""
    for ch in unicodedata.normalize("NFKC", value):
        category = unicodedata.category(ch)
        if category in ("Mn", "Me", "Cf"):  # marks: extracted before or after their letter
            if (category != "Cf" and current_key not in ("", "ltr", "EN")
                    and unicodedata.name(ch, "?").split()[0] != current_key):
                runs.append(current)
                current = ""
            continue
        kind = unicodedata.bidirectional(ch)
        if kind not in ("L", "R", "AL", "EN", "AN") or category[0] not in "LN":
            # spaces, punctuation and symbols (an Arabic star too) end a run
            runs.append(current)
            current = ""
            continue
        if kind in ("R", "AL", "AN"):
            key = unicodedata.name(ch, "?").split()[0]
        else:
            key = "EN" if kind == "EN" else "ltr"
        if current and key != current_key:
            runs.append(current)
            current = ""
        current, current_key = current + ch, key
    runs.append(current)
    return [run for run in runs if run]


def shows(value: str, flat_page: str) -> bool:
    """Whether a page's squashed text shows value.

    Text in a right-to-left script mixed with digits, punctuation, Latin
    letters or marks comes out of a PDF in an order text extractors can only
    guess (a PDF keeps glyphs in drawing order): a bracket may come out
    mirrored, a mark before its letter, a digit on the other side. For such
    values each run of letters and digits of one direction must be on the
    page; punctuation and marks are left out. Everything else is compared
    exactly, and the MRN inside each page's scannable code always is.
    """
    if squash(value) in flat_page:
        return True
    if not any(_right_to_left(ch) for ch in value):
        return False
    page = "".join(ch for ch in flat_page if unicodedata.category(ch) not in ("Mn", "Me"))
    return all(run in page for run in _strong_runs(value))


def page_texts(pdf: bytes, password: str | None = None) -> list[str]:
    document = pdfium.PdfDocument(pdf, password=password)
    try:
        texts = []
        for index in range(len(document)):
            page = pdfium_c.FPDF_LoadPage(document, index)
            if not page:
                raise pdfium.PdfiumError("Failed to load page.")
            try:
                texts.append(_text_of(page))
            finally:
                pdfium_c.FPDF_ClosePage(page)
        return texts
    finally:
        document.close()


def _text_of(page: Any) -> str:
    """A raw page's text, as PdfTextPage.get_text_bounded() reads it (within its bounding box)."""
    textpage = pdfium_c.FPDFText_LoadPage(page)
    if not textpage:
        raise pdfium.PdfiumError("Failed to load text page.")
    try:
        box = pdfium_c.FS_RECTF()
        if not pdfium_c.FPDF_GetPageBoundingBox(page, box):
            raise pdfium.PdfiumError("Failed to get page bounding box.")
        area = (textpage, box.left, box.top, box.right, box.bottom)
        count = pdfium_c.FPDFText_GetBoundedText(*area, None, 0)
        if count <= 0:
            return ""
        buffer = (ctypes.c_ushort * count)()
        pdfium_c.FPDFText_GetBoundedText(*area, buffer, count)
        return codecs.decode(buffer, "utf-16-le", "ignore")
    finally:
        pdfium_c.FPDFText_ClosePage(textpage)


def page_count(pdf: bytes) -> int:
    """Pages in a PDF, as PDFium reads its page tree."""
    document = pdfium.PdfDocument(pdf)
    try:
        return len(document)
    finally:
        document.close()


def verify_pdf(pdf: bytes, ids: Identifiers | None, numbered: bool = True,
               codes: PayloadFor | None = None) -> int:
    """Check the PDF; return its page count. With codes, also each page's QR code.

    One pass: each page is parsed once for its text and its code.
    """
    document = pdfium.PdfDocument(pdf)
    texts, problems = [], []
    try:
        total = len(document)
        for index in range(total):
            # PDFium's own calls, as PdfDocument.get_page and PdfTextPage make them,
            # without their helper objects (a finalizer each): ten pages a packet.
            page = pdfium_c.FPDF_LoadPage(document, index)
            if not page:
                raise pdfium.PdfiumError("Failed to load page.")
            try:
                texts.append(_text_of(page))
                if codes is not None:
                    found = code_problem(page, codes(index + 1, total), index + 1)
                    if found:
                        problems.append(found)
            finally:
                pdfium_c.FPDF_ClosePage(page)
    finally:
        document.close()
    problems = check_pages(texts, ids, numbered) + problems
    if problems:
        raise SelfCheckError(title("self_check_failed"), problems)
    return len(texts)


def check_pages(texts: list[str], ids: Identifiers | None, numbered: bool = True,
                first_page: int = 1) -> list[Problem]:
    """Problems with pages of one document (or one packet inside a print file)."""
    total = len(texts)
    problems = []
    if total == 0:
        problems.append(problem("self_check_no_pages", "pdf"))
    wanted = {"name": ids.name, "date of birth": ids.dob, "MRN": ids.mrn} if ids else {}
    for number, text in enumerate(texts, start=1):
        flat = squash(text)
        where = f"page {first_page + number - 1}"
        if numbered and not re.search(rf"(?<!\d){number}\D{{1,12}}{total}(?!\d)", text):
            problems.append(problem("self_check_page_number", where, number=number, total=total))
        for label, value in wanted.items():
            if not shows(value, flat):
                problems.append(problem("self_check_identifier", where, label=label))
    return problems
