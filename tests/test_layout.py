"""Where things land on paper, read back from the real PDFs (verify/layout.py):
warnings on page 1, nothing split or stranded, no near-empty page, one page to
sign, one Table across pages, and a QR code that survives printing.

Every variant is rendered once (full render, ~0.6 s each): each type (and one
combination of regions) x language x print size x paper, as a packet and a
handout, plus long packets (25 medicines, long names, a long plan).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

from conftest import BASE_RECORD, record
from myelo_docs import get_renderer
from myelo_docs.verify.layout import Layout, read_layout

TYPES = ["cervical", "thoracic", "lumbar"]
# Several regions in one packet (CPT 62305): one combination, covered by
# every test below like a single type.
COMBINATIONS = ["cervical+lumbar"]
LANGUAGES = ["en", "es"]
SIZES = ["normal", "large"]
PAPERS = ["letter", "a4"]

MIN_FILL = 0.5  # a page that is not the last of its part is at least half full
HEADER_GAP_MM = 1.5  # clear space under the header's rule
CODE_EDGE_MM = 8.0  # the QR code from every paper edge
FIT_TO_PAGE = 0.94  # what "fit to page" printing does to the page
SCAN_DPI = 150

LONG = {
    "physician": "Dr. Maximiliana Alexandra Bartholomew-Featherstonehaugh de la Santísima "
                 "Trinidad Wolfeschlegelsteinhausen",
    "nurse": "Theodora Wilhelmina Checkmark-Fairweather-Longbottom, RN, BSN, "
             "Neuro-Interventional Radiology Nursing Team",
    "follow_up": ("See the spine clinic on 2026-12-09 at 10:30 and bring your scan pictures "
                  "and your list of medicines. ") * 4,
    "instructions": [f"Step {n}: walk a little every hour while you are awake, drink water "
                     "with each meal, and write down any pain so you can tell the clinic. "
                     * 2 for n in range(1, 16)],
    "medications": [{"name": f"Medicine number {n} extended release",
                     "instruction": "Take one tablet each morning with food and a full glass "
                                    "of water. Do not crush or chew it."}
                    for n in range(1, 26)],
}


@dataclass
class Variant:
    kind: str  # "packet", "long" or "handout"
    type: str
    language: str
    size: str
    paper: str

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.type}-{self.language}-{self.size}-{self.paper}"

    @cached_property
    def renderer(self):
        return get_renderer(paper=self.paper)

    @cached_property
    def pdf(self) -> bytes:
        large = self.size == "large"
        if self.kind == "handout":
            return self.renderer.handout(self.type, self.language, large).pdf
        extra = LONG if self.kind == "long" else {}
        data = record(type=self.type, language=self.language, large_print=large, **extra)
        return self.renderer.packet(data, full_render=True).pdf

    @cached_property
    def layout(self) -> Layout:
        return read_layout(self.pdf)

    @cached_property
    def text(self) -> dict:
        """The section titles this variant prints (from its own content)."""
        context = self.renderer.template_context(self.type, self.language,
                                                 self.size == "large")
        discharge, labels = context["C"]["discharge"], context["L"]
        return {"call_box": labels["call_box_title"], "summary": labels["summary_title"],
                "emergency": discharge["emergency"]["title"],
                "call_us": discharge["call_us"]["title"],
                "first_topic": context["C"]["handout"]["sections"][0]["title"],
                "medicine_name": labels["medicine_name"]}


def variants(kinds=("packet", "long", "handout")) -> list[Variant]:
    found = []
    for kind in kinds:
        types = TYPES + COMBINATIONS if kind != "long" else ["lumbar"]
        found += [Variant(kind, t, lang, size, paper) for t in types for lang in LANGUAGES
                  for size in SIZES for paper in PAPERS]
    return found


ALL = {v.name: v for v in variants()}


@pytest.fixture(scope="module")
def rendered():
    """Each variant rendered once for the module, on first use."""
    return ALL


def each(kinds=("packet", "long", "handout")):
    return pytest.mark.parametrize("name", [v.name for v in variants(kinds)])


def sections(variant: Variant, key: str):
    return [s for s in variant.layout.sections if s.title == variant.text[key]]


def one(variant: Variant, key: str):
    found = sections(variant, key)
    assert len(found) == 1, f"{variant.name}: {len(found)} sections titled {variant.text[key]!r}"
    return found[0]


# --- Warnings first -------------------------------------------------------------

def on_pages(variant: Variant, key: str) -> tuple[int, int]:
    section = one(variant, key)
    return section.first_page, section.last_page


@each(("packet", "long"))
def test_call_box_on_page_1(rendered, name):
    assert on_pages(rendered[name], "call_box") == (1, 1), name


@each(("packet", "long"))
def test_whole_emergency_list_on_page_1(rendered, name):
    assert on_pages(rendered[name], "emergency") == (1, 1), name


@each()
def test_call_us_list_never_splits(rendered, name):
    section = one(rendered[name], "call_us")
    assert section.first_page == section.last_page, f"{name}: pages {section.first_page}-" \
        f"{section.last_page}"


@each(("handout",))
def test_handout_opens_with_key_points_and_warning_signs(rendered, name):
    variant = rendered[name]
    order = [s.title for s in variant.layout.sections if s.tag != "/Part"]
    opening = [variant.text[k] for k in ("summary", "emergency", "call_us", "call_box")]
    assert order[:4] == opening, f"{name}: opens with {order[:4]}"
    assert order.index(variant.text["first_topic"]) == 4
    assert one(variant, "summary").last_page == 1
    for key in ("emergency", "call_us"):  # each whole, straight after the key points
        section = one(variant, key)
        assert section.first_page == section.last_page <= 3, (name, key)


# --- No broken pages -----------------------------------------------------------

@each()
def test_nothing_split_and_no_heading_ends_a_page(rendered, name):
    splits = rendered[name].layout.splits
    assert not splits, f"{name}: " + "; ".join(
        f"{s.what} on page {s.page}: {s.text}" for s in splits)


@each()
def test_only_the_last_page_of_a_part_is_less_than_half_full(rendered, name):
    layout = rendered[name].layout
    last_pages = {s.last_page for s in layout.sections if s.tag == "/Part"}
    assert last_pages, f"{name}: no parts found"
    for page in layout.pages:
        if page.number not in last_pages:
            assert page.fill >= MIN_FILL, f"{name}: page {page.number} is {page.fill:.0%} full"


@each(("packet", "long"))
def test_signature_page_is_one_page(rendered, name):
    parts = [s for s in rendered[name].layout.sections if s.tag == "/Part"]
    sign = parts[-1]
    assert sign.first_page == sign.last_page == len(rendered[name].layout.pages), (
        f"{name}: the page to sign runs over pages {sign.first_page}-{sign.last_page}")


@each()
def test_nothing_touches_the_header_rule(rendered, name):
    for page in rendered[name].layout.pages:
        drawn = page.body + page.decorations
        top = min(i.top for i in drawn)
        assert top - page.header_bottom >= HEADER_GAP_MM, (
            f"{name}: page {page.number}: something drawn {top - page.header_bottom:.1f} mm "
            "under the header's rule")


# --- Accessible across pages ------------------------------------------------------

@each(("long",))
def test_a_table_over_pages_is_one_table_with_one_header_row(rendered, name):
    variant = rendered[name]
    tables = variant.layout.tables()
    medicines = [t for t in tables if any(c.tag == "/THead" for c in t.children)]
    assert len(medicines) == 1, f"{name}: {len(medicines)} medicine tables in the tag tree"
    table = medicines[0]
    rows = [n for n in table.walk() if n.tag == "/TR"]
    assert len(rows) == 1 + len(LONG["medications"])
    pages = sorted({i.page for i in table.all_ink()})
    assert len(pages) > 1, f"{name}: the long table should run over pages"
    head = [n for n in table.children if n.tag == "/THead"][0]
    assert {i.page for i in head.all_ink()} == {pages[0]}  # read once
    label = variant.text["medicine_name"]
    for number in pages[1:]:  # printed again on every page, as an artifact
        page = variant.layout.pages[number - 1]
        assert any(i.text.strip() == label for i in page.decorations), f"{name}: page {number}"
        assert not any(i.text.strip() == label for i in page.body), f"{name}: page {number}"
    # Every other table (details, phone numbers) is one Table too.
    details = [t for t in tables if not any(c.tag == "/THead" for c in t.children)]
    assert len(details) == 3  # phone numbers, details, details on the page to sign


@pytest.mark.parametrize("name", [v.name for v in variants(("long",))]
                         + ["packet-lumbar-en-large-letter", "handout-cervical-es-normal-a4"])
def test_pdfua_finds_nothing(rendered, name, tmp_path):
    from pdfua import validate

    path = tmp_path / "doc.pdf"
    path.write_bytes(rendered[name].pdf)
    found = [f"{f.severity.name} {f.rule_id}: {f.message}" for f in validate(str(path)).findings]
    assert found == [], name


# --- The QR code where printers print ------------------------------------------------

def scanned(page: pdfium.PdfPage, scale: float) -> Image.Image:
    """The page printed at `scale` (centred on the paper, as "fit to page" does)
    and scanned at SCAN_DPI."""
    width, height = page.get_size()
    px = SCAN_DPI / 72
    paper = Image.new("L", (round(width * px), round(height * px)), 255)
    printed = page.render(scale=px * scale, grayscale=True).to_pil()
    paper.paste(printed, ((paper.width - printed.width) // 2,
                          (paper.height - printed.height) // 2))
    return paper


@each(("packet", "long"))
def test_qr_code_clear_of_the_edges_and_read_after_fit_to_page(rendered, name):
    variant = rendered[name]
    document = pdfium.PdfDocument(variant.pdf)
    total = len(document)
    mm = 25.4 / SCAN_DPI
    try:
        for index in (0, total - 1):
            payload = f"MYELO|packet|{index + 1}/{total}|{BASE_RECORD['mrn']}"
            page = document[index]
            image = scanned(page, 1.0)
            codes = zxingcpp.read_barcodes(image)
            assert [c.text for c in codes] == [payload], f"{name}: page {index + 1}"
            corners = codes[0].position
            xs = [p.x for p in (corners.top_left, corners.top_right, corners.bottom_left,
                                corners.bottom_right)]
            ys = [p.y for p in (corners.top_left, corners.top_right, corners.bottom_left,
                                corners.bottom_right)]
            edges = {"left": min(xs), "top": min(ys), "right": image.width - max(xs),
                     "bottom": image.height - max(ys)}
            for edge, px in edges.items():
                assert px * mm >= CODE_EDGE_MM, (
                    f"{name}: page {index + 1}: code {px * mm:.1f} mm from the {edge} edge")
            fitted = zxingcpp.read_barcodes(scanned(page, FIT_TO_PAGE))
            assert [c.text for c in fitted] == [payload], f"{name}: page {index + 1} at 94%"
            page.close()
    finally:
        document.close()


def test_layout_check_script_reports_pages_sections_and_splits(rendered, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    variant = rendered["long-lumbar-en-large-letter"]
    path = tmp_path / "long.pdf"
    path.write_bytes(variant.pdf)
    script = Path(__file__).resolve().parent.parent / "scripts" / "layout_check.py"
    result = subprocess.run([sys.executable, str(script), str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sum(1 for line in lines if line.startswith("page ")) == len(variant.layout.pages)
    assert any(variant.text["emergency"][:40] in line for line in lines)
    assert "no splits" in result.stdout


def test_layout_reader_finds_split_items_and_a_stranded_heading():
    """The reader itself, on a page made to break badly: a table row and a list
    item run over a page end, and a heading ends a page."""
    from weasyprint import HTML

    filler = "<p>Filler text for the page.</p>" * 22
    html = f"""<html lang="en"><head><title>t</title><style>
      @page {{ size: A5; margin: 20mm 10mm;
              @top-center {{ content: element(h); vertical-align: bottom; width: 100%; }} }}
      header {{ position: running(h); border-bottom: 1pt solid black; }}
      p, td, li {{ margin: 0; line-height: 14pt; font-size: 11pt; orphans: 1; widows: 1; }}
    </style></head><body><header>Head</header>
    <main><section><h2>One</h2>{filler}
      <table><tr><th>Nurse</th><td>{"A long name that wraps. " * 60}</td></tr></table>
      {filler}<ul><li>{"An item that runs over the page end. " * 40}</li></ul></section>
    <section><h2>Two</h2><p style="break-before: page">After a forced break.</p></section>
    </main></body></html>"""
    layout = read_layout(HTML(string=html).write_pdf(pdf_tags=True, pdf_variant="pdf/ua-1"))
    kinds = sorted({s.what for s in layout.splits})
    assert kinds == ["heading at page end", "list item", "table row"], layout.splits
    assert [s.title for s in layout.sections if s.tag == "/Sect"] == ["One", "Two"]


def test_layout_reader_finds_a_figure_whose_caption_runs_onto_the_next_page():
    from weasyprint import HTML

    filler = "<p>Filler text for the page that goes on and on.</p>" * 30
    image = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='9' height='9'/%3E"
    html = f"""<html lang="en"><head><title>t</title><style>
      @page {{ size: A5; margin: 20mm 10mm;
              @top-center {{ content: element(h); vertical-align: bottom; width: 100%; }} }}
      header {{ position: running(h); border-bottom: 1pt solid black; }}
      figure {{ float: right; width: 30mm; margin: 0; }}
      img {{ width: 30mm; height: 50mm; display: block; }}
    </style></head><body><header>Head</header><main><section><h2>One</h2>{filler}
    <figure><img alt="A drawing" src="{image}"><figcaption>Its caption.</figcaption></figure>
    {filler}</section></main></body></html>"""
    layout = read_layout(HTML(string=html).write_pdf(pdf_tags=True, pdf_variant="pdf/ua-1"))
    assert [(s.what, s.text) for s in layout.splits] == [("figure", "Its caption.")]
