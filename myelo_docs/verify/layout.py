"""How a printed PDF is laid out, read back from the PDF itself.

Used by ``scripts/layout_check.py`` and ``tests/test_layout.py``. It reads a
tagged PDF (ours, from WeasyPrint plus ``render/tagging.py``) twice: PDFium
gives every drawn object with its box and marked-content id (MCID), pikepdf
gives the structure tree (which element each MCID belongs to). Nothing here
knows our stylesheet: the header is found as the top-most rule drawn across
the page, the footer as the untagged text below the body.

WeasyPrint builds the structure tree page by page, so an element that runs
over a page break appears once per page (a "fragment"); ``tagging.py`` joins
a table's fragments into one Table. Sections are followed from fragment to
fragment by their heading; a list item continued at the top of a page has no
bullet (``Lbl``) there; a table row continued at the top of a page starts
with an empty cell.

All lengths are millimetres, measured from the top-left corner of the paper.
"""

from __future__ import annotations

import ctypes
import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import pikepdf
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

MM = 72 / 25.4  # PDF points per millimetre
# Elements that open a section, and the containers a section can be.
HEADINGS = ("/H1", "/H2", "/H3")
SECTIONS = ("/Part", "/Sect", "/NonStruct", "/Div", "/Aside")


@dataclass
class Ink:
    """Something drawn: a box on one page (mm from the top-left corner)."""

    page: int  # 1-based
    left: float
    top: float
    right: float
    bottom: float
    text: str = ""


@dataclass
class Node:
    """One structure element on one page (a fragment of an HTML element)."""

    tag: str  # "/H2", "/LI", "/Table"...
    page: int
    children: list[Node] = field(default_factory=list)
    ink: list[Ink] = field(default_factory=list)  # its own marked content

    def all_ink(self) -> list[Ink]:
        found = list(self.ink)
        for child in self.children:
            found += child.all_ink()
        return found

    @property
    def text(self) -> str:
        return " ".join(" ".join(i.text for i in self.all_ink() if i.text).split())

    @property
    def top(self) -> float | None:
        ink = self.all_ink()
        return min(i.top for i in ink) if ink else None

    @property
    def bottom(self) -> float | None:
        ink = self.all_ink()
        return max(i.bottom for i in ink) if ink else None

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class Page:
    number: int
    width: float
    height: float
    header_bottom: float  # the header's rule
    footer_top: float  # the first line of the footer
    body: list[Ink]  # tagged content between the two
    decorations: list[Ink]  # borders and backgrounds drawn in the body (artifacts)

    @property
    def content_bottom(self) -> float:
        ink = self.body + self.decorations
        return max((i.bottom for i in ink), default=self.header_bottom)

    @property
    def fill(self) -> float:
        """How full the body is: 0 empty, 1 down to the footer."""
        return (self.content_bottom - self.header_bottom) / (self.footer_top - self.header_bottom)


@dataclass
class Section:
    """A part, section or box, followed over page breaks."""

    tag: str
    title: str  # the text of its heading
    first_page: int
    last_page: int
    top: float  # on its first page
    bottom: float  # on its last page
    fragments: list[Node] = field(repr=False, default_factory=list)

    def text(self) -> str:
        return " ".join(f.text for f in self.fragments)


@dataclass
class Split:
    """An item (list item, table row) or heading broken by a page end."""

    what: str  # "list item", "table row", "figure", "heading at page end"
    text: str
    page: int  # the page it starts on


@dataclass
class Layout:
    pages: list[Page]
    fragments: list[Node]  # top-level structure elements, in reading order
    sections: list[Section]
    splits: list[Split]

    def section(self, title_start: str) -> Section:
        """The first section whose heading starts with title_start (KeyError if none)."""
        for section in self.sections:
            if section.title.startswith(title_start):
                return section
        raise KeyError(title_start)

    def tables(self) -> list[Node]:
        return [n for f in self.fragments for n in f.walk() if n.tag == "/Table"]


# --- PDFium: every drawn object with its MCID --------------------------------

def _mark_mcid(obj: pdfium.PdfObject) -> tuple[bool, int | None]:
    """(drawn as an artifact, its MCID if tagged) from the object's content marks."""
    artifact, mcid = False, None
    for i in range(pdfium_c.FPDFPageObj_CountMarks(obj.raw)):
        mark = pdfium_c.FPDFPageObj_GetMark(obj.raw, i)
        size = ctypes.c_ulong()
        pdfium_c.FPDFPageObjMark_GetName(mark, None, 0, ctypes.byref(size))
        name = (ctypes.c_ushort * (size.value // 2))()
        pdfium_c.FPDFPageObjMark_GetName(mark, name, size.value, ctypes.byref(size))
        if bytes(name).decode("utf-16-le").rstrip("\0") == "Artifact":
            artifact = True
        value = ctypes.c_int()
        if pdfium_c.FPDFPageObjMark_GetParamIntValue(mark, b"MCID", ctypes.byref(value)):
            mcid = value.value
    return artifact, mcid


def _object_text(obj: pdfium.PdfObject, textpage: pdfium.PdfTextPage) -> str:
    if pdfium_c.FPDFPageObj_GetType(obj.raw) != pdfium_c.FPDF_PAGEOBJ_TEXT:
        return ""
    size = pdfium_c.FPDFTextObj_GetText(obj.raw, textpage.raw, None, 0)
    buffer = (ctypes.c_ushort * size)()
    pdfium_c.FPDFTextObj_GetText(obj.raw, textpage.raw, buffer, size)
    return bytes(buffer).decode("utf-16-le", errors="replace").rstrip("\0")


def _read_page(page: pdfium.PdfPage, number: int):
    """(page size, tagged ink by MCID, untagged text, untagged paths)."""
    width, height = page.get_size()
    textpage = page.get_textpage()
    tagged: dict[int, list[Ink]] = {}
    loose_text: list[Ink] = []
    loose_paths: list[Ink] = []
    try:
        for obj in page.get_objects(max_depth=1):
            left, bottom, right, top = obj.get_bounds()
            ink = Ink(number, left / MM, (height - top) / MM, right / MM, (height - bottom) / MM,
                      _object_text(obj, textpage))
            artifact, mcid = _mark_mcid(obj)
            if mcid is not None and not artifact:
                tagged.setdefault(mcid, []).append(ink)
            elif pdfium_c.FPDFPageObj_GetType(obj.raw) == pdfium_c.FPDF_PAGEOBJ_TEXT:
                loose_text.append(ink)
            else:
                loose_paths.append(ink)
    finally:
        textpage.close()
    return (width / MM, height / MM), tagged, loose_text, loose_paths


# --- pikepdf: the structure tree -----------------------------------------------

def _kids(node: pikepdf.Object) -> list:
    k = node.get("/K") if isinstance(node, pikepdf.Dictionary) else None
    if k is None:
        return []
    return list(k) if isinstance(k, pikepdf.Array) else [k]


def _build(element: pikepdf.Dictionary, pages: dict, tagged: list[dict[int, list[Ink]]],
           default_page: int) -> Node:
    page_ref = element.get("/Pg")
    page = pages.get(page_ref.objgen, default_page) if page_ref is not None else default_page
    node = Node(str(element.get("/S")), page)
    for kid in _kids(element):
        if isinstance(kid, int):
            node.ink += tagged[page - 1].get(kid, [])
        elif isinstance(kid, pikepdf.Dictionary) and "/MCID" in kid:
            kid_page = pages.get(kid.Pg.objgen, page) if "/Pg" in kid else page
            node.ink += tagged[kid_page - 1].get(int(kid.MCID), [])
        elif isinstance(kid, pikepdf.Dictionary) and "/S" in kid:
            node.children.append(_build(kid, pages, tagged, page))
    return node


# --- Putting it together ----------------------------------------------------------

def read_layout(pdf: bytes) -> Layout:
    """The layout of a tagged PDF.

    Raises ValueError for an untagged PDF or a page without a header rule.
    """
    document = pdfium.PdfDocument(pdf)
    try:
        read = [_read_page(document[i], i + 1) for i in range(len(document))]
    finally:
        document.close()
    tagged = [r[1] for r in read]
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        root = doc.Root.get("/StructTreeRoot")
        if root is None:
            raise ValueError("the PDF is not tagged")
        page_numbers = {p.obj.objgen: i + 1 for i, p in enumerate(doc.pages)}
        top = [k for k in _kids(root) if isinstance(k, pikepdf.Dictionary)]
        document_node = top[0] if len(top) == 1 and top[0].get("/S") == "/Document" else root
        fragments = [_build(k, page_numbers, tagged, 1) for k in _kids(document_node)
                     if isinstance(k, pikepdf.Dictionary) and "/S" in k]
    in_parts = {id(i) for f in fragments if f.tag == "/Part" for i in f.all_ink()}
    pages = []
    for number, ((width, height), by_mcid, loose_text, loose_paths) in enumerate(read, start=1):
        rules = [p for p in loose_paths if p.right - p.left > 0.8 * width and p.top < height / 3]
        if not rules:
            raise ValueError(f"page {number}: no header rule found")
        header = min(rules, key=lambda p: p.top)
        header_bottom = header.bottom
        body = [i for ink in by_mcid.values() for i in ink if id(i) in in_parts]
        # The footer: untagged text below the body, in the page's lower half
        # (untagged text inside the body is a repeated table header).
        lowest = max((i.bottom for i in body), default=height / 2)
        below = [t for t in loose_text if t.top >= max(lowest - 0.1, height / 2)]
        footer_top = min((t.top for t in below), default=height)
        decorations = [p for p in loose_paths + loose_text if p is not header
                       and p.top >= header_bottom - 0.5 and p.bottom <= footer_top]
        pages.append(Page(number, width, height, header_bottom, footer_top, body, decorations))
    return Layout(pages, fragments, _sections(fragments), _splits(fragments, pages))


def _heading(node: Node) -> Node | None:
    """The heading that opens this fragment (its first child with ink, after any
    drawing floated beside it), if any."""
    for child in node.children:
        if not child.all_ink() or any(n.tag == "/Figure" for n in child.walk()):
            continue
        return child if child.tag in HEADINGS else None
    return None


def _chain(node: Node | None, last: bool) -> list[Node]:
    """node, then its first (or last) child with ink, and so on down."""
    chain = []
    while node is not None:
        chain.append(node)
        inked = [c for c in node.children if c.all_ink()]
        node = (inked[-1] if last else inked[0]) if inked else None
    return chain


def _page_chains(fragments: list[Node]) -> dict[int, tuple[list[Node], list[Node]]]:
    """Per page: the chain of elements that opens it and the one that ends it."""
    # Parts (HTML main) carry the flow; a float can be left over as a fragment
    # of its own at the top level, and the first page's header is one too.
    flow = [f for f in fragments if f.tag == "/Part"] or fragments
    by_page: dict[int, list[Node]] = {}
    for fragment in flow:
        if fragment.all_ink():
            by_page.setdefault(fragment.page, []).append(fragment)
    return {page: (_chain(nodes[0], False), _chain(nodes[-1], True))
            for page, nodes in by_page.items()}


def _continues(node: Node, depth: int, chains: dict) -> Node | None:
    """The fragment on the page before that node continues, if it continues one."""
    earlier = [page for page in chains if page < node.page]
    if not earlier or node.page not in chains:
        return None
    first, _ = chains[node.page]
    _, previous_last = chains[max(earlier)]
    if depth < len(first) and first[depth] is node and depth < len(previous_last):
        before = previous_last[depth]
        if before.tag == node.tag:
            return before
    return None


def _sections(fragments: list[Node]) -> list[Section]:
    """Parts, sections and boxes that open with a heading, followed onto later
    pages: a fragment without a heading at the top of a page continues the one
    of the same kind and depth that ended the page before."""
    chains = _page_chains(fragments)
    sections: list[Section] = []
    section_of: dict[int, Section] = {}

    def visit(node: Node, depth: int) -> None:
        if node.tag in SECTIONS and node.all_ink():
            heading = _heading(node)
            before = _continues(node, depth, chains)
            if heading is not None:
                section = Section(node.tag, heading.text, node.page, node.page,
                                  node.top or 0.0, node.bottom or 0.0, [node])
                sections.append(section)
                section_of[id(node)] = section
            elif before is not None and id(before) in section_of:
                section = section_of[id(before)]
                section.fragments.append(node)
                section_of[id(node)] = section
        for child in node.children:
            visit(child, depth + 1)

    for fragment in fragments:
        visit(fragment, 0)
    for section in sections:  # a joined table can carry a fragment's ink onto later pages
        ink = [i for f in section.fragments for i in f.all_ink()]
        section.last_page = max(i.page for i in ink)
        section.bottom = max(i.bottom for i in ink if i.page == section.last_page)
    return sections


def _splits(fragments: list[Node], pages: list[Page]) -> list[Split]:
    """List items, table rows and figures broken over a page end; headings that
    end a page."""
    chains = _page_chains(fragments)
    splits = []
    for page, (first, last) in sorted(chains.items()):
        if page > 1:
            for node in first:
                if node.tag == "/LI" and not any(c.tag == "/Lbl" for c in node.children):
                    splits.append(Split("list item", node.text[:60], page - 1))
                cells = [c for c in node.children if c.tag in ("/TH", "/TD")]
                if node.tag == "/TR" and cells and not cells[0].all_ink():
                    splits.append(Split("table row", node.text[:60], page - 1))
        if page < len(pages):
            bottom = max(i.bottom for i in pages[page - 1].body) if pages[page - 1].body else 0
            headings = [n for n in last if n.tag in HEADINGS]
            for node in headings:
                if node.bottom is not None and node.bottom >= bottom - 0.5:
                    splits.append(Split("heading at page end", node.text[:60], page))
            # A heading with a single line after it, its section going on overleaf.
            following = chains.get(page + 1, ([], []))[0]
            for depth, node in enumerate(last):
                heading = _heading(node) if node.tag in SECTIONS[1:] else None
                if heading is None or heading.bottom >= bottom - 0.5:
                    continue
                goes_on = (depth < len(following) and following[depth].tag == node.tag
                           and _heading(following[depth]) is None)
                lines = {round(i.bottom) for i in node.all_ink()
                         if i.text and i.top >= heading.bottom - 0.1}
                if goes_on and len(lines) <= 1:
                    splits.append(Split("heading at page end", heading.text[:60], page))
    # A caption whose drawing is on another page (a figure broken by a page end).
    for fragment in fragments:
        for node in fragment.walk():
            tags = [c.tag for c in node.children]
            if "/Caption" in tags and not any(n.tag == "/Figure" for n in node.walk()):
                caption = node.children[tags.index("/Caption")]
                splits.append(Split("figure", caption.text[:60], caption.page - 1))
    # One element with ink on two pages (a table row, in a Table tagging.py joined).
    for fragment in fragments:
        for node in fragment.walk():
            if node.tag in ("/TR", "/LI") and len({i.page for i in node.all_ink()}) > 1:
                what = "table row" if node.tag == "/TR" else "list item"
                splits.append(Split(what, node.text[:60], min(i.page for i in node.all_ink())))
    return splits


def report(layout: Layout) -> str:
    """A plain-text summary: per page how full it is, sections, and splits."""
    lines = []
    for page in layout.pages:
        starts = [s.title[:48] for s in layout.sections
                  if s.first_page == page.number and s.tag != "/Part"]
        ends = [s.title[:48] for s in layout.sections
                if s.last_page == page.number and s.first_page != page.number]
        lines.append(f"page {page.number:2d}  {page.fill:4.0%} full"
                     + (f"  starts: {'; '.join(starts)}" if starts else "")
                     + (f"  ends: {'; '.join(ends)}" if ends else ""))
    lines.append("")
    for section in layout.sections:
        span = (f"page {section.first_page}" if section.first_page == section.last_page
                else f"pages {section.first_page}-{section.last_page}")
        lines.append(f"{section.tag[1:]:9} {span:11} {section.top:5.0f}-{section.bottom:3.0f} mm"
                     f"  {section.title[:70]}")
    lines.append("")
    lines += [f"SPLIT {s.what} on page {s.page}: {s.text}" for s in layout.splits] or ["no splits"]
    return "\n".join(lines)
