"""One patient's packet from a cached template: their text in the slots (on
as many lines as their columns need, from a template made for that many, in
the faces Pango picks), their plan laid out (plan.py), a code on every page,
then PDFium's read-back.

``FastPackets.packet`` raises Unsure when a record is outside what the fast
path draws exactly like the full render (an identifier over two header lines,
plan text in a fallback face, right-to-left text, a page break too close to
call, a stylesheet whose layout cannot be derived); the caller then renders
it in full.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path
from typing import Any

from myelo_docs.content.loader import long_date
from myelo_docs.render.document import Document
from myelo_docs.render.fastpath.cache import TemplateCache
from myelo_docs.render.fastpath.plan import Node, PlanLayout, PlanPage, plan_sections
from myelo_docs.render.fastpath.shaping import Line, Shaper
from myelo_docs.render.fastpath.template import (
    HEADER_SLOTS,
    LABEL_SLOTS,
    ONE_LINE,
    PLAN_SLOTS,
    TEXT_SLOTS,
    XREF_FREE,
    Template,
)
from myelo_docs.render.fastpath.unsure import Unsure
from myelo_docs.render.stamp import code_box, code_matrix, drawing, payloads_for
from myelo_docs.schema.errors import Problem, SelfCheckError
from myelo_docs.schema.record import PacketRecord
from myelo_docs.verify.selfcheck import page_count, verify_pdf

_COLLAPSE = re.compile(r"[ \t\r\n\f]+")  # CSS white-space: normal


class FastPackets:
    def __init__(self, renderer: Any, folder: Path | None | str = "default"):
        """``folder``: where templates are cached (cache.default_dir(); None: memory only)."""
        self.renderer = renderer
        renderer.stylesheets  # noqa: B018 - loads the @font-face fonts into its font_config
        self.shaper = Shaper(renderer.font_config)
        self.cache = TemplateCache(renderer, self.shaper, folder)
        self._read_in_full: set[tuple[Any, ...]] = set()

    def packet(self, record: PacketRecord) -> Document:
        """The packet as a Document; raises Unsure (with the reason) when this
        record needs the full render."""
        ids = self.renderer.identifiers(record)
        lang = record.language
        values = {
            "name": ids.name, "dob": ids.dob, "mrn": ids.mrn,
            "procedure_date": long_date(record.procedure_date, self.renderer.locale(lang)),
            "physician": record.physician or "", "nurse": record.nurse or "",
        }
        values = {k: _collapse(v) for k, v in values.items()}
        texts = [*values.values(), record.follow_up or "", *record.instructions,
                 *(text for m in record.medications for text in (m.name, m.instruction))]
        if not all(unicodedata.is_normalized("NFC", text) for text in texts):
            raise Unsure("text not in composed form")
        key = (record.type.value, lang, record.large_print)
        base = self.cache.get(*key)
        styles = self._styles_of(base)
        lines = self._slot_lines(base, styles, values)
        shape = tuple(tuple(self.shaper.families_of(line) if line else ()
                            for line in lines[slot]) for slot in TEXT_SLOTS)
        template = base if shape == ONE_LINE else self.cache.get(*key, 1, shape)
        plan = self._plan(template, record, len(PLAN_SLOTS))
        if len(plan) > 1:  # from a template with a place on each page the plan takes
            template = self.cache.get(*key, len(plan), shape)
            pages = len(plan)
            plan = self._plan(template, record, pages)
            if len(plan) != pages:
                raise Unsure("the plan takes other pages in its own template")
        pieces = self._draw_slots(template, styles, lines)
        new = NewObjects(template.next_number)
        pieces.update(_plan_pieces(template, plan, new))
        codes = payloads_for("packet", record.mrn)
        pdf = _assemble(template, pieces, codes, new)
        pages = self._self_check(template, pdf, pieces, codes, new, ids)
        return Document(pdf=pdf, pages=pages, kind="packet", language=lang,
                        tagged=template.tagged, path="fast")

    def _styles_of(self, t: Template) -> dict[str, Any]:
        return {name: self.shaper.style(values)
                for name, values in t.calibration["styles"].items()}

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

    def _slot_lines(self, t: Template, styles: dict[str, Any],
                    values: dict[str, str]) -> dict[str, list[Line | None]]:
        """Each slot's text broken into lines as its column allows. A header
        identifier is its label, then the value on the same line (or Unsure)."""
        out: dict[str, list[Line | None]] = {}
        for slot in TEXT_SLOTS:
            site = t.first_sites[slot]
            width = site.right - site.left
            if slot in HEADER_SLOTS:
                label = self.shaper.lines(t.labels[f"{slot[3:]}_short"] + ":",
                                          styles["id_label"], None)[0]
                text = " " + values[slot[3:]]
                value = self.shaper.lines(text, styles[slot], width - label.width,
                                          is_line_start=False)
                if len(value) > 1:  # the rest goes on under it, in the whole width
                    if not value[0].text.strip():
                        raise Unsure("an identifier that starts under its label")
                    rest = self.shaper.lines(text[len(value[0].text):].lstrip(" "),
                                             styles[slot], width)
                    if len(rest) != 1:
                        raise Unsure("an identifier over three header lines")
                    value = [value[0], rest[0]]
                out[slot] = list(value)
                out[slot + "_label"] = [label]
                continue
            text = (f"{t.labels['test_title']}, {values['procedure_date']}"
                    if slot == "test_and_date" else values[slot])
            out[slot] = list(self.shaper.lines(text, styles[slot], width)) if text else [None]
            # The same value in a column of another width (the details table
            # and the page to sign): drawn from the same lines only if it breaks
            # the same there.
            for other in {s.right - s.left for s in t.sites(slot) if s.line == 0} - {width}:
                if text and [line.text for line in self.shaper.lines(text, styles[slot], other)] \
                        != [line.text for line in out[slot] if line is not None]:
                    raise Unsure("a value broken otherwise in another column")
        return out

    def _draw_slots(self, t: Template, styles: dict[str, Any],
                    lines: dict[str, list[Line | None]]) -> dict[int, bytes]:
        pieces = {}
        colours = t.calibration["colours"]
        for number, (_, site) in t.dynamic.items():
            if site is None or site.slot.startswith("plan"):
                continue
            line = lines[site.slot][site.line]
            if line is None:
                pieces[number] = b""
                continue
            x = site.left if site.align == "left" else site.right - line.width
            if site.slot in LABEL_SLOTS:  # right-aligned: before its value
                value = lines[site.slot.removesuffix("_label")][0]
                assert value is not None
                x = site.right - value.width - line.width
            drawn, _ = self.shaper.draw(line, x, site.baseline)
            pieces[number] = _rgb(colours[_colour_of(site.slot)]) + drawn
        return pieces

    def _plan(self, t: Template, record: PacketRecord, max_pages: int) -> list[PlanPage]:
        geometry = {**t.calibration["plan"],
                    "pages": {**t.calibration["plan"]["pages"], **t.pages_area}}
        layout = PlanLayout(geometry, self.shaper)
        sections = plan_sections(layout, t.labels, _collapse(record.follow_up or ""),
                                 [_collapse(i) for i in record.instructions],
                                 [(_collapse(m.name), _collapse(m.instruction))
                                  for m in record.medications])
        start = t.sites("plan")[0]
        return layout.paginate(sections, (start.page, start.top), max_pages)


def _colour_of(slot: str) -> str:
    return "id_label" if slot in LABEL_SLOTS else slot


def _collapse(text: str) -> str:
    return _COLLAPSE.sub(" ", text).strip()


def _rgb(colour: list[float]) -> bytes:
    return b"%.6f %.6f %.6f rg\n" % tuple(colour)


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


def _plan_pieces(t: Template, pages: list[PlanPage], new: NewObjects) -> dict[int, bytes]:
    """The plan's marker streams, ParentTree arrays and parent elements filled:
    each page's artifacts and marked content; each section's element in place
    of the marker paragraph of the page it begins on (a section broken over
    pages is one element, with content on both)."""
    pieces: dict[int, bytes] = {}
    tags_of = [t.plan_tags.get(slot) for slot in PLAN_SLOTS]
    entries = [list(tags.entries) if tags else [] for tags in tags_of]
    content: list[list[bytes]] = [[] for _ in PLAN_SLOTS]
    in_place: dict[int, list[int]] = {}  # a marker's paragraph -> the sections replacing it
    for index, page in enumerate(pages):
        tags = tags_of[index]
        sections = [_emit(node, tags_of, tags.parent if tags else 0, entries, content, new)
                    for node in page.starts]
        if tags:
            in_place[tags.container] = sections
    for number, (_, site) in t.dynamic.items():
        if site is None or site.slot not in PLAN_SLOTS:
            continue
        index = PLAN_SLOTS.index(site.slot)
        art = pages[index].art if index < len(pages) else []
        out = [b"/Artifact BMC\n", *art, b"EMC\n"] if art else []
        pieces[number] = b"".join(out + content[index])
        tags = tags_of[index]
        if tags:
            pieces[tags.array] = Raw(("[" + " ".join(entries[index]) + "]").encode())
    gone: set[int] = set()  # elements left without kids: out of the tree
    for tags in t.plan_tags.values():
        kids = [ref for kid in tags.parent_kids for ref in (
            [f"{k} 0 R" for k in in_place.get(int(kid[2:]), [])] if kid.startswith("P:")
            else [kid])]
        if not kids:
            gone.add(tags.parent)
        pieces[tags.parent] = _element(tags.parent_body, kids)
    # Then their ancestors (shared between pages: the Document, at least).
    above = {number: (body, entries) for tags in t.plan_tags.values()
             for number, body, entries in tags.above}
    changed = True
    while changed:
        changed = False
        for number, (_, entries) in above.items():
            if number not in gone and all(
                    kid.startswith("R:") and int(kid[2:]) in gone for kid in entries):
                gone.add(number)
                changed = True
    if any(tags.above and tags.above[-1][0] in gone for tags in t.plan_tags.values()):
        raise Unsure("a packet left without parts")
    for number, (body, entries) in above.items():
        pieces[number] = _element(body, [f"{kid[2:]} 0 R" if kid.startswith("R:") else kid
                                         for kid in entries
                                         if not (kid.startswith("R:") and int(kid[2:]) in gone)])
    return pieces


def _element(body: str, kids: list[str]) -> Raw:
    """A structure element's dictionary with these /K entries."""
    data = body.encode("latin-1")
    return Raw(data[:data.rindex(b">>")] + b"/K [" + " ".join(kids).encode() + b"] >>")


def _emit(node: Node, tags_of: list[Any], parent: int, entries: list[list[str]],
          content: list[list[bytes]], new: NewObjects) -> int:
    """Draw a node's leaves in marked content on their pages and give each node
    its structure element."""
    tagged = tags_of[0] is not None
    number = new.reserve() if tagged else 0
    if node.children:
        kids = [_emit(child, tags_of, number, entries, content, new) for child in node.children]
        k = "[" + " ".join(f"{kid} 0 R" for kid in kids) + "]"
    else:
        if not tagged:
            content[node.page].append(node.ops)
            return 0
        mcid = len(entries[node.page])
        entries[node.page].append(f"{number} 0 R")
        content[node.page].append(b"/%s <</MCID %d>> BDC\n%sEMC\n"
                                  % (node.role.encode(), mcid, node.ops))
        k = f"{mcid} /Pg {tags_of[node.page].page} 0 R"
    if tagged:
        new.bodies[number] = (f"<< /Type /StructElem /S /{node.role} /P {parent} 0 R /K {k} "
                              f"{node.attributes}>>").encode()
    return number


def _assemble(t: Template, pieces: dict[int, bytes], codes: Any, new: NewObjects,
              check: bool = False) -> bytes:
    """The packet's file; with ``check``, the self-check's copy (see _self_check).

    The template's unchanging objects come first, as one piece laid out once
    per template (Template.fixed); the objects filled for this patient follow,
    and only their cross-reference entries are written here."""
    width, height = t.page_size_pt
    for number, (page, site) in t.dynamic.items():
        if site is None and number not in pieces:
            matrix = code_matrix(codes(page + 1, t.pages))
            pieces[number] = drawing(matrix, code_box(width, 0.0, len(matrix)))
    fixed = t.fixed_check if check else t.fixed
    out = [fixed.blob]
    position = len(fixed.blob)
    xref = bytearray(fixed.xref)
    digest = hashlib.sha256(t.digest.encode())
    for number in fixed.filled:
        data = pieces.get(number, b"")
        digest.update(data)
        if isinstance(data, Raw):
            chunk = b"%d 0 obj\n%s\nendobj\n" % (number, data)
        else:
            chunk = (b"%d 0 obj\n<< /Length %d >>\nstream\n%s\nendstream\nendobj\n"
                     % (number, len(data), data))
        xref[20 * number:20 * number + 20] = b"%010d 00000 n \n" % position
        out.append(chunk)
        position += len(chunk)
    size = t.next_number
    for number, body in sorted(new.bodies.items()):
        digest.update(body)
        xref += XREF_FREE * (number - size) + b"%010d 00000 n \n" % position
        size = number + 1
        chunk = b"%d 0 obj\n%s\nendobj\n" % (number, body)
        out.append(chunk)
        position += len(chunk)
    file_id = digest.hexdigest()[:32].encode()
    trailer = (b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /ID [<%s> <%s>] >>\n"
               b"startxref\n%d\n%%%%EOF\n" % (size, t.root, t.info, file_id, file_id, position))
    return b"".join([*out, b"xref\n0 %d\n" % size, xref, trailer])
