"""A QR code on every page of a packet, for the hospital's document scanner.

Payload (UTF-8, with an ECI marker when it is not plain ASCII)::

    MYELO|<kind>|<page>/<total>|<MRN>

for example ``MYELO|packet|3/8|00123456``. The MRN comes last and is printed
as given, so a scanner rule can split on the first three ``|`` and keep the
rest, even if an MRN itself holds a ``|``.

The code is drawn while WeasyPrint writes the PDF (a ``finisher``): plain
filled rectangles appended to each page's content stream, marked as an
artifact so the tagged (PDF/UA) structure is untouched and screen readers
skip it. No font, no image, no second parse of the PDF. Its size and place
(``--code-side``, ``--code-bottom``, ``--code-right``) are read from
print.css, where the page's margins leave room for it: in the bottom margin,
its right edge aligned with the text. ``check_codes`` reads it back with
PDFium for the self-check.
"""

from __future__ import annotations

import ctypes
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import tinycss2
import zxingcpp

from myelo_docs.assets import templates_dir
from myelo_docs.schema.errors import Problem
from myelo_docs.schema.messages import problem

PREFIX = "MYELO"
MM = 72 / 25.4  # PDF points per millimetre
QUIET_MODULES = 4  # the blank border a QR reader needs

PayloadFor = Callable[[int, int], str]  # (page, total) -> payload


def code_payload(kind: str, mrn: str, page: int, total: int) -> str:
    return f"{PREFIX}|{kind}|{page}/{total}|{mrn}"


def payloads_for(kind: str, mrn: str) -> PayloadFor:
    return lambda page, total: code_payload(kind, mrn, page, total)


@lru_cache(maxsize=256)
def code_matrix(payload: str) -> tuple[bytes, ...]:
    """The QR modules (level M, UTF-8 behind an ECI marker when not ASCII),
    one bytes row each (1 = dark), without the quiet zone. zxing-cpp's writer
    (C++, about 0.1 ms a code; segno took 0.6 ms even with one fixed mask, and
    a packet has one code a page). Without ``eci`` it would write an MRN in
    Cyrillic as Shift JIS, which a scanner can only guess."""
    options = {} if payload.isascii() else {"eci": "UTF8"}
    image = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level="M",
                                    **options).to_image(scale=1, add_quiet_zones=False)
    rows, side = image.shape
    modules = memoryview(image).tobytes().translate(_DARK)
    return tuple(modules[i:i + side] for i in range(0, rows * side, side))


@dataclass(frozen=True)
class Box:
    """Where a symbol sits on a page, in PDF points (origin bottom left)."""

    x: float
    y: float
    side: float
    modules: int

    @property
    def module(self) -> float:
        return self.side / self.modules

    @property
    def quiet(self) -> float:
        return QUIET_MODULES * self.module


@dataclass(frozen=True)
class Place:
    """The symbol's side (without its quiet zone) and its distances from the
    paper's bottom and right edges, in millimetres."""

    side: float
    bottom: float
    right: float


PLACE_PROPERTIES = {"--code-side": "side", "--code-bottom": "bottom", "--code-right": "right"}


@cache
def code_place() -> Place:
    """The ``--code-*`` lengths (in mm) of the ``:root`` rule of templates/print.css.

    Raises RuntimeError when one is missing or not in mm (a broken stylesheet).
    """
    css = (templates_dir() / "print.css").read_text("utf-8")
    found: dict[str, float] = {}
    for rule in tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True):
        if rule.type != "qualified-rule" or tinycss2.serialize(rule.prelude).strip() != ":root":
            continue
        for declaration in tinycss2.parse_blocks_contents(rule.content, skip_comments=True,
                                                          skip_whitespace=True):
            if declaration.type != "declaration" or declaration.name not in PLACE_PROPERTIES:
                continue
            tokens = [t for t in declaration.value if t.type not in ("whitespace", "comment")]
            if len(tokens) == 1 and tokens[0].type == "dimension" and tokens[0].unit == "mm":
                found[PLACE_PROPERTIES[declaration.name]] = float(tokens[0].value)
    missing = sorted(name for name, key in PLACE_PROPERTIES.items() if key not in found)
    if missing:
        raise RuntimeError(f"print.css gives no length in mm for {', '.join(missing)} in :root")
    return Place(**found)


def code_box(page_right: float, page_bottom: float, modules: int) -> Box:
    place = code_place()
    side = place.side * MM
    return Box(page_right - place.right * MM - side, page_bottom + place.bottom * MM, side,
               modules)


_RUN = re.compile(rb"\x01+")
_SPAN = re.Match.span


def drawing(matrix: Sequence[bytes], box: Box) -> bytes:
    """Content-stream operators filling the dark modules, one rectangle per run,
    drawn in module units (row 0 at the top)."""
    starts, widths = _run_operands(len(matrix))
    # The rows joined with a light module between them, so that no run goes on.
    runs = [starts[start] + widths[end - start]
            for start, end in map(_SPAN, _RUN.finditer(b"\0".join(matrix)))]
    return (b"/Artifact BMC\nq\n0 g\n%.4f 0 0 %.4f %.3f %.3f cm\n"
            % (box.module, box.module, box.x, box.y) + b"".join(runs) + b"f\nQ\nEMC")


@cache
def _run_operands(n: int) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """For a code of side n: "x y " of a run starting at each place in its rows
    joined by one byte, and "width 1 re" for each width."""
    return (tuple(b"%d %d " % (at % (n + 1), n - 1 - at // (n + 1)) for at in range(n * (n + 1))),
            tuple(b"%d 1 re\n" % width for width in range(n + 1)))


def stamp_pages(pdf: object, payload_for: PayloadFor) -> None:
    """Append a QR code to every page of a pydyf.PDF before WeasyPrint writes it."""
    objects = pdf.objects  # type: ignore[attr-defined]
    numbers = pdf.pages["Kids"][::3]  # type: ignore[attr-defined]
    total = len(numbers)
    for page_number, number in enumerate(numbers, start=1):
        page = objects[number]
        llx, lly, urx, ury = (float(v) for v in page["MediaBox"])
        stream = objects[int(page["Contents"].split()[0])]
        matrix = code_matrix(payload_for(page_number, total))
        # WeasyPrint's stream starts with a bare "cm" (a y-flip) and never
        # restores it; wrap the page in q/Q so we draw in plain page space.
        stream.stream.insert(0, b"q")
        stream.stream.append(b"Q")
        stream.stream.append(drawing(matrix, code_box(urx, lly, len(matrix))))


def check_codes(pdf: bytes, payload_for: PayloadFor, first: int = 0,
                count: int | None = None) -> list[Problem]:
    """Read each page's code area back with PDFium and compare it module by module.

    Checks ``count`` pages from index ``first`` (all by default: one packet,
    or one packet inside a larger print file) as pages 1..count. Renders only
    the code and its quiet zone, a few ms a page, and checks each module is
    dark or light as the expected payload demands and the quiet zone is
    blank, so nothing was printed over it.
    """
    document = pdfium.PdfDocument(pdf)
    try:
        total = len(document) - first if count is None else count
        problems = []
        for number in range(1, total + 1):
            page = document[first + number - 1]
            try:
                found = code_problem(page, payload_for(number, total), first + number)
                if found:
                    problems.append(found)
            finally:
                page.close()
        return problems
    finally:
        document.close()


def code_problem(page: Any, payload: str, page_number: int) -> Problem | None:
    """A problem if this open page (a pypdfium2 PdfPage or a raw FPDF_PAGE)
    does not carry the code for payload."""
    if _matches(page, code_matrix(payload)):
        return None
    return problem("code_unreadable", f"page {page_number}")


MODULE_PX = 5  # pixels a module when reading a code back; sampled at each module's middle
_DARK = bytes(1 if value < 128 else 0 for value in range(256))  # grey level -> module
_WHITE = 0xFFFFFFFF  # ARGB
_RENDER_FLAGS = pdfium_c.FPDF_GRAYSCALE | pdfium_c.FPDF_ANNOT  # PdfPage.render(grayscale=True)


def _matches(page: Any, wanted: Sequence[bytes]) -> bool:
    # PDFium's own calls, as PdfPage.render makes them, without its helper objects
    # (a finalizer each): ten pages a packet.
    width, height = pdfium_c.FPDF_GetPageWidthF(page), pdfium_c.FPDF_GetPageHeightF(page)
    n = len(wanted)
    box = code_box(width, 0.0, n)
    scale = MODULE_PX / box.module
    left = box.x - box.quiet
    right = box.x + box.side + box.quiet
    bottom = box.y - box.quiet
    top = box.y + box.side + box.quiet
    full_width, full_height = math.ceil(width * scale), math.ceil(height * scale)
    cut_left, cut_bottom, cut_right, cut_top = (
        math.ceil(c * scale) for c in (left, bottom, width - right, height - top))
    columns = full_width - cut_left - cut_right
    rows = full_height - cut_bottom - cut_top
    pixels = (ctypes.c_ubyte * (columns * rows))()
    bitmap = pdfium_c.FPDFBitmap_CreateEx(columns, rows, pdfium_c.FPDFBitmap_Gray, pixels,
                                          columns)
    if not bitmap:
        raise MemoryError("PDFium made no bitmap for the code")
    try:
        pdfium_c.FPDFBitmap_FillRect(bitmap, 0, 0, columns, rows, _WHITE)
        pdfium_c.FPDF_RenderPageBitmap(bitmap, page, -cut_left, -cut_top, full_width,
                                       full_height, 0, _RENDER_FLAGS)
    finally:
        pdfium_c.FPDFBitmap_Destroy(bitmap)
    seen_all = bytes(pixels)
    grid = n + 2 * QUIET_MODULES
    quiet = bytes(QUIET_MODULES)
    for r in range(grid):
        start = (r * MODULE_PX + MODULE_PX // 2) * columns + MODULE_PX // 2
        seen = seen_all[start:start + grid * MODULE_PX:MODULE_PX].translate(_DARK)
        inside = QUIET_MODULES <= r < n + QUIET_MODULES
        expected = (quiet + wanted[r - QUIET_MODULES] + quiet) if inside else bytes(grid)
        if seen != expected:  # a wrong module, or something drawn over the quiet zone
            return False
    return True
