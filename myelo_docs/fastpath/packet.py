"""One patient's packet from a cached template: their text in the slots (on
as many lines as their columns need, from a template made for that many),
their plan laid out, a code on every page, then PDFium's read-back.

``FastPackets.packet`` raises Unsure when a record is outside what the fast
path draws exactly like the full render (characters our main face lacks, a
word wider than its column, a line or page break too close to call); the
caller then renders it in full.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import partial
from typing import Any

from babel.dates import format_date

from myelo_docs.fastpath.cache import TemplateCache
from myelo_docs.fastpath.pdffont import EmbeddedFace, bundled_chain
from myelo_docs.fastpath.plan import (
    TEXT,
    Fonts,
    Geometry,
    Style,
    Typesetter,
    Unsure,
    hex_colour,
    paginate,
    show,
    wrap_measured,
)
from myelo_docs.fastpath.plan import stack as stack_blocks
from myelo_docs.fastpath.template import FALLBACK_MARK, MM, ONE_LINE, PX, TEXT_SLOTS, Template
from myelo_docs.render.document import Document, display_identifiers
from myelo_docs.render.stamp import code_box, code_matrix, drawing, payloads_for
from myelo_docs.schema.errors import Problem, SelfCheckError
from myelo_docs.schema.record import PacketRecord
from myelo_docs.verify.selfcheck import page_count, verify_pdf

_COLLAPSE = re.compile(r"[ \t\r\n\f]+")  # CSS white-space: normal


class FastPackets:
    def __init__(self, renderer: Any, cache: TemplateCache | None = None):
        self.renderer = renderer
        self.cache = cache or TemplateCache(renderer)
        self.chain = {False: bundled_chain(False), True: bundled_chain(True)}
        regular, bold = self.chain[False].faces[0], self.chain[True].faces[0]
        self.regular, self.bold = regular, bold
        self.fonts = Fonts(regular, bold, *_vertical_metrics(regular))
        self._read_in_full: set[tuple[Any, ...]] = set()

    def packet(self, record: PacketRecord) -> Any:
        """The packet as a Document; raises Unsure (with the reason) when this
        record needs the full render."""
        ids = display_identifiers(record)
        lang = record.language
        values = {
            "name": ids.name, "dob": ids.dob, "mrn": ids.mrn,
            "procedure_date": format_date(record.procedure_date, format="long", locale=lang),
            "physician": record.physician or "", "nurse": record.nurse or "",
        }
        values = {k: _collapse(v) for k, v in values.items()}
        plan = [record.follow_up or "", *record.instructions,
                *(m.name for m in record.medications),
                *(m.instruction for m in record.medications)]
        # Identifiers and table cells may use the fallback face; the plan may not.
        if not (all(self._drawable(text, fallback=True) for text in values.values())
                and all(self._drawable(text) for text in plan)):
            raise Unsure("characters outside the fast path's fonts")
        key = (record.type.value, lang, record.large_print)
        template = self.cache.get(*key, plan_pages=1)
        lines = self._slot_lines(template, values)
        counts = tuple(tuple(self._needs_fallback(line) for line in lines[slot])
                       for slot in TEXT_SLOTS)
        margin = self.renderer.header_margin(
            template.labels, {"name": ids.name, "dob": ids.dob, "mrn": ids.mrn},
            record.large_print)
        if (counts, margin) != (ONE_LINE, None):  # a template for this many lines
            template = self.cache.get(*key, 1, counts, margin)
        plan_pages = self._plan(template, record)
        if len(plan_pages) > 1:
            template = self.cache.get(*key, 2, counts, margin)
            plan_pages = self._plan(template, record)
        pieces = self._draw_slots(template, lines)
        new = NewObjects(template.next_number)
        pieces.update(_plan_pieces(template, plan_pages, new))
        codes = payloads_for("packet", record.mrn)
        pdf = _assemble(template, pieces, codes, new)
        pages = self._self_check(template, pdf, pieces, codes, new, ids)
        return Document(pdf=pdf, pages=pages, kind="packet", language=lang,
                        tagged=template.tagged, path="fast")

    def _self_check(self, t: Template, pdf: bytes, pieces: dict[int, bytes], codes: Any,
                    new: NewObjects, ids: Any) -> int:
        """PDFium reads the packet back: the first from each template in full, like a
        full render; after that, every object that depends on the patient.

        The full read costs about 3 ms a page, mostly PDFium taking in the shared
        text (the same for every patient, and read in full the first time). So
        later packets are read back from a copy that is the same file with each
        page's shared content left out: the same page tree, the same patient
        text, codes, plan and structure, at the same places. The real file is
        opened too, and must have the template's page count.
        """
        if t.key not in self._read_in_full:
            pages = verify_pdf(pdf, ids, codes=codes)
            self._read_in_full.add(t.key)
            return pages
        verify_pdf(_assemble(t, pieces, codes, new, check=True), ids, numbered=False,
                   codes=codes)
        pages = page_count(pdf)
        if pages != t.pages:
            raise SelfCheckError("The PDF failed its safety check", [
                Problem("pdf", f"has {pages} pages, not {t.pages}", "report this as a bug")])
        return pages

    def _drawable(self, text: str, fallback: bool = False) -> bool:
        if not unicodedata.is_normalized("NFC", text):
            return False
        if fallback:
            return self.chain[True].runs(text) is not None
        return all(self.regular.covers(ch) and self.bold.covers(ch) for ch in text
                   if ch != " ")

    def _needs_fallback(self, line: str) -> bool:
        runs = self.chain[True].runs(line) or []
        return any(face is not self.bold for face, _ in runs)

    def _bold_runs(self, text: str, size: float, x: float, y: float) -> bytes:
        """Text in the bold face, with its fallback where needed, from x."""
        return self.chain[True].show(text, size, x, y, flipped=True) + b"\n" if text else b""

    def _slot_lines(self, t: Template, values: dict[str, str]) -> dict[str, list[str]]:
        """Each slot's text broken into lines as its column allows (the header's
        identifiers start with their label)."""
        width_px = t.page_size_pt[0] / PX
        right_edge = width_px - 16 * MM  # print.css page margins
        id_column = 16 * MM + 0.47 * (width_px - 32 * MM)  # .identifiers margin-left: 47%
        lines = {}
        for slot in TEXT_SLOTS:
            site = t.first_sites[slot]
            size = site.size
            if slot.startswith("id_"):
                label = t.labels[f"{slot[3:]}_short"] + ":"
                lines[slot] = wrap_measured(partial(self._id_width, label, size=size),
                                            f"{label} {values[slot[3:]]}",
                                            site.x + self.bold.advance("X", size) - id_column)
                if not lines[slot][0].startswith(label):
                    raise Unsure("a label that breaks across lines")
                continue
            text = (f"{t.labels['test_title']}, {values['procedure_date']}"
                    if slot == "test_and_date" else values[slot])
            lines[slot] = wrap_measured(partial(self._bold_width, size=size), text,
                                        right_edge - site.x) if text else [""]
        return lines

    def _bold_width(self, text: str, *, size: float) -> float:
        return self.chain[True].advance(text, size)

    def _id_width(self, label: str, line: str, *, size: float) -> float:
        """An identifier's line: the label in the regular face, then the space after
        it and the value in the bold one (the space is outside the label's span, and
        goes to the value's face, as Pango gives it)."""
        if line.startswith(label + " "):
            return (self.regular.advance(label, size)
                    + self._bold_width(line[len(label):], size=size))
        if line == label:
            return self.regular.advance(label, size)
        return self._bold_width(line, size=size)

    def _draw_slots(self, t: Template, lines: dict[str, list[str]]) -> dict[int, bytes]:
        pieces = {}
        flags = t.line_flags
        for number, (_, site) in t.dynamic.items():
            if site is None or site.slot.startswith("plan"):
                continue
            line = lines[site.slot][site.line]
            if not line:
                pieces[number] = b""
            elif site.slot.startswith("id_"):  # right-aligned, label in the regular face
                label = t.labels[f"{site.slot[3:]}_short"] + ":"
                marker = "X" + (FALLBACK_MARK if flags[site.slot][site.line] else "")
                right = site.x + self._bold_width(marker, size=site.size)
                x = right - self._id_width(label, line, size=site.size)
                if site.line == 0:
                    after = x + self.regular.advance(label, site.size)
                    pieces[number] = (_colour() + show(self.regular, label, site.size, x, site.y)
                                      + self._bold_runs(line[len(label):], site.size, after,
                                                        site.y))
                else:
                    pieces[number] = _colour() + self._bold_runs(line, site.size, x, site.y)
            else:
                pieces[number] = _colour() + self._bold_runs(line, site.size, site.x, site.y)
        return pieces

    def _plan(self, t: Template, record: PacketRecord) -> list[list[tuple[float, Any]]]:
        style = Style.for_print(t.large_print)
        width_px, height_px = (v / PX for v in t.page_size_pt)
        first = t.sites("plan")[0]
        body_baseline = self.fonts.baseline(style.size, style.line)
        second = t.sites("plan_2")
        geo = Geometry(
            left=16 * MM, width=width_px - 32 * MM, bottom=height_px - 20 * MM,
            top=first.y - body_baseline,
            next_top=(second[0].y - body_baseline) if second else 32 * MM)
        setter = Typesetter(self.fonts, style, geo, hex_colour(t.labels["primary"]))
        labels, known = t.labels, t.lines
        sections = []
        if record.medications:
            sections.append(stack_blocks([
                setter.heading(labels["medicines_title"], known.get("medicines_title")),
                setter.paragraph(labels["medicines_intro"], known.get("medicines_intro")),
                setter.table((labels["medicine_name"], labels["medicine_instruction"]),
                             [(m.name, m.instruction) for m in record.medications])]))
        if record.instructions:
            sections.append(stack_blocks([setter.heading(labels["nurse_instructions_title"],
                                                         known.get("nurse_instructions_title")),
                                          setter.bullets(record.instructions)]))
        follow = [setter.heading(labels["follow_up_title"], known.get("follow_up_title"))]
        if record.follow_up:
            follow.append(setter.paragraph(record.follow_up))
        follow.append(setter.paragraph(labels["results_note"], known.get("results_note")))
        sections.append(stack_blocks(follow))
        return paginate(sections, geo)


def _collapse(text: str) -> str:
    return _COLLAPSE.sub(" ", text).strip()


def _colour() -> bytes:
    return b"%.6f %.6f %.6f rg\n" % TEXT


class Raw(bytes):
    """A whole object body (not a stream's data) for _assemble."""


class NewObjects:
    """Objects a packet adds after the template's own (its plan's structure elements)."""

    def __init__(self, first: int):
        self.next = first
        self.bodies: dict[int, bytes] = {}

    def reserve(self) -> int:
        self.next += 1
        return self.next - 1


def _plan_pieces(t: Template, pages: list[list[tuple[float, Any]]],
                 new: NewObjects) -> dict[int, bytes]:
    pieces: dict[int, bytes] = {}
    for number, (_, site) in t.dynamic.items():
        if site is None or not site.slot.startswith("plan"):
            continue
        placed = pages[0 if site.slot == "plan" else 1]
        tags = t.plan_tags.get(site.slot)
        art, content, sections = [], [], []
        entries = list(tags.entries) if tags else []
        for top, box in placed:
            if box.art:
                art += [b"q\n1 0 0 1 0 %.3f cm\n" % top, *box.art, b"Q\n"]
            for node in box.nodes:
                sections.append(_emit(node, top, tags, tags.container if tags else 0,
                                      entries, content, new))
        out = [b"/Artifact BMC\n", *art, b"EMC\n"] if art else []
        pieces[number] = b"".join(out + content)
        if tags:
            kids = " ".join(f"{k} 0 R" for k in sections)
            pieces[tags.container] = Raw(
                f"<< /Type /StructElem /S /Div /P {tags.parent} 0 R /K [{kids}] >>".encode())
            pieces[tags.array] = Raw(("[" + " ".join(entries) + "]").encode())
    return pieces


def _emit(node: Any, dy: float, tags: Any, parent: int, entries: list[str], content: list[bytes],
          new: NewObjects) -> int:
    """Draw a node's leaves in marked content and give each node its structure element."""
    number = new.reserve() if tags else 0
    y = dy + node.dy
    if node.children:
        kids = [_emit(child, y, tags, number, entries, content, new) for child in node.children]
        k = "[" + " ".join(f"{kid} 0 R" for kid in kids) + "]"
    else:
        drawn = b"q\n1 0 0 1 0 %.3f cm\n%sQ\n" % (y, node.ops)
        if not tags:
            content.append(drawn)
            return 0
        mcid = len(entries)
        entries.append(f"{number} 0 R")
        content.append(b"/%s <</MCID %d>> BDC\n%sEMC\n" % (node.role.encode(), mcid, drawn))
        k = f"{mcid} /Pg {tags.page} 0 R"
    if tags:
        new.bodies[number] = (f"<< /Type /StructElem /S /{node.role} /P {parent} 0 R /K {k} "
                              f"{node.attributes}>>").encode()
    return number


def _assemble(t: Template, pieces: dict[int, bytes], codes: Any, new: NewObjects,
              check: bool = False) -> bytes:
    """The packet's file; with ``check``, the self-check's copy (see _self_check)."""
    width, height = t.page_size_pt
    for number, (page, site) in t.dynamic.items():
        if site is None and number not in pieces:
            matrix = code_matrix(codes(page + 1, t.pages))
            pieces[number] = drawing(matrix, code_box(width, 0.0, len(matrix)))
    out = [t.head]
    position = len(t.head)
    offsets: dict[int, int] = {}
    digest = hashlib.sha256(t.digest.encode())

    def put(number: int, chunk: bytes) -> None:
        nonlocal position
        offsets[number] = position
        out.append(chunk)
        position += len(chunk)

    for number, chunk in t.objects:
        if check and number in t.check:
            chunk = t.check[number]
        elif chunk is None:
            data = pieces.get(number, b"")
            digest.update(data)
            if isinstance(data, Raw):
                chunk = b"%d 0 obj\n%s\nendobj\n" % (number, data)
            else:
                chunk = (b"%d 0 obj\n<< /Length %d >>\nstream\n" % (number, len(data))
                         + data + b"\nendstream\nendobj\n")
        put(number, chunk)
    for number, body in sorted(new.bodies.items()):
        digest.update(body)
        put(number, b"%d 0 obj\n%s\nendobj\n" % (number, body))
    size = max(offsets) + 1
    xref = [b"xref\n0 %d\n0000000000 65535 f \n" % size]
    xref += [b"%010d 00000 n \n" % offsets[n] if n in offsets else b"0000000000 65535 f \n"
             for n in range(1, size)]
    file_id = digest.hexdigest()[:32].encode()
    trailer = (b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /ID [<%s> <%s>] >>\n"
               b"startxref\n%d\n%%%%EOF\n" % (size, t.root, t.info, file_id, file_id, position))
    return b"".join([*out, *xref, trailer])


def _vertical_metrics(face: EmbeddedFace) -> tuple[float, float]:
    """Ascent and descent per em, as Pango takes them (the hhea table)."""
    from fontTools.ttLib import TTFont

    font = TTFont(str(face.path), lazy=True)
    em = font["head"].unitsPerEm
    return font["hhea"].ascent / em, -font["hhea"].descent / em
