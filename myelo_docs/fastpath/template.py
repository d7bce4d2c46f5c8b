"""Packet templates: one WeasyPrint render per type, language and print size
(and per shape: text on two lines, a plan over an extra page), reused for
every patient it fits.

The template is the real packet template rendered with a marker, a letter
"X" in a colour of its own, wherever per-patient text goes (SLOTS names
them). Here the PDF is taken apart: each page's content stream is cut at the
markers into shared pieces, and each marker becomes an empty stream of its
own that packet.py fills with one patient's text. Everything else (the
fonts and pictures, the structure tree, the metadata) is kept as written, as
numbered objects ready to be copied byte for byte.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pikepdf
from pikepdf import Array, Name

from myelo_docs.fastpath.pdffont import bundled_chain
from myelo_docs.verify.provenance import CODE_FORMAT

PX = 0.75  # WeasyPrint draws in CSS pixels: 1 px = 0.75 pt
MM = 96 / 25.4  # CSS pixels per millimetre
# Slot name -> marker colour channel (rgb(1, 2, N)); see the mark() macro in _blocks.html.j2.
SLOTS = ("id_name", "id_dob", "id_mrn", "name", "dob", "mrn", "procedure_date", "physician",
         "nurse", "test_and_date", "plan", "plan_2")
SLOT_INDEX = {name: number for number, name in enumerate(SLOTS, start=1)}
TEXT_SLOTS = SLOTS[:10]  # the rest are the plan's
# Per text slot, one flag per line: does the line need the fallback face (Noto
# Sans)? A line with Noto glyphs is a little taller, as in the full render.
Lines = tuple[tuple[bool, ...], ...]
ONE_LINE: Lines = ((False,),) * len(TEXT_SLOTS)
FALLBACK_MARK = "\u0416"  # a Cyrillic letter: drawn with Noto Sans, as the line will be
_MARK = re.compile(rb"0\.003922 0\.007843 ([0-9.]+) rg\n")
_TM = re.compile(rb"1 0 0 -1 ([0-9.]+) ([0-9.]+) Tm\n/\w+ ([0-9.]+) Tf\n")
_TAG = re.compile(rb"/(\w+)\n<</MCID (\d+)>>\nBDC\n")


@dataclass(frozen=True)
class Site:
    """Where a marker was drawn: page index and the baseline start, in WeasyPrint's
    flipped pixel space (y grows downwards); size is the font size in px."""

    slot: str
    page: int
    x: float
    y: float
    size: float
    line: int = 0  # which line of the slot's text
    tag: str = ""  # the marked-content tag around a plan marker
    mcid: int = -1


@dataclass(frozen=True)
class PlanTags:
    """Where a plan hangs in the structure tree (numbers of the template's objects).

    The marker's paragraph becomes a Div holding the plan's own elements, and
    the page's ParentTree array (MCID -> element) gets their entries.
    """

    page: int  # the page object, for /Pg
    array: int  # that page's ParentTree array, rewritten per patient
    entries: list[str]  # its entries in the template, the marker's own set to null
    container: int  # the marker's paragraph, rewritten as the plan's Div
    parent: int  # the container's parent element


@dataclass
class Template:
    key: tuple[Any, ...]
    pages: int
    page_size_pt: tuple[float, float]
    head: bytes
    objects: list[tuple[int, bytes | None]]  # in file order; None: filled per patient
    dynamic: dict[int, tuple[int, Site | None]]  # object -> (page, site; None = the page's code)
    root: int
    info: int
    digest: str  # of the template, for the file ID
    labels: dict[str, str] = field(default_factory=dict)
    lines: dict[str, list[str]] = field(default_factory=dict)  # fixed plan text, as laid out
    plan_tags: dict[str, PlanTags] = field(default_factory=dict)  # by plan slot
    # The self-check's copy replaces each page's shared content (read back in
    # full once per template) with these stand-ins; see packet.py.
    check: dict[int, bytes] = field(default_factory=dict)
    tagged: bool = True

    def sites(self, slot: str) -> list[Site]:
        return [site for _, site in self.dynamic.values() if site and site.slot == slot]

    # Derived once per template, not per packet.
    @cached_property
    def first_sites(self) -> dict[str, Site]:
        """Each slot's first line, wherever it first appears (columns are the same)."""
        first: dict[str, Site] = {}
        for _, site in self.dynamic.values():
            if site and site.line == 0:
                first.setdefault(site.slot, site)
        return first

    @cached_property
    def next_number(self) -> int:
        """The first object number free for a packet's own objects."""
        return max(number for number, _ in self.objects) + 1

    @property
    def large_print(self) -> bool:
        return bool(self.key[2])

    @property
    def line_flags(self) -> dict[str, tuple[bool, ...]]:
        """Per text slot, its lines and which of them use the fallback face."""
        return dict(zip(TEXT_SLOTS, self.key[4], strict=True))


def build(renderer: Any, type_name: str, language: str, large_print: bool,
          plan_pages: int, lines: Lines = ONE_LINE,
          header_margin: int | None = None) -> Template:
    """Render the marker packet with WeasyPrint and cut it up (about one second).

    ``lines``: the lines each of TEXT_SLOTS takes for the patients this
    template serves (see Lines); ``header_margin``: the top margin their
    identifiers need.
    """
    context = renderer._context(type_name, language, large_print)
    labels = context["L"]
    slots = {name: {"colour": SLOT_INDEX[name], "lines": [""]} for name in SLOTS}
    for name, flags in zip(TEXT_SLOTS, lines, strict=True):
        slots[name]["lines"] = [FALLBACK_MARK if noto else "" for noto in flags]
    context.update(patient={"name": "X", "dob": "X", "mrn": "X"}, title=labels["packet_title"],
                   subject=labels["packet_subject"], slots=slots, plan_pages=plan_pages,
                   header_margin=header_margin)
    pdf = renderer._write("packet.html.j2", context, language)
    wanted = ("name_short", "dob_short", "mrn_short", "medicines_title", "medicines_intro",
              "medicine_name", "medicine_instruction", "nurse_instructions_title",
              "follow_up_title", "results_note")
    texts = {key: labels[key] for key in wanted}
    texts["test_title"] = context["T"]["title"]
    texts["primary"] = renderer.brand.primary_colour
    key = (type_name, language, large_print, plan_pages, lines, header_margin)
    template = _cut(pdf, key, texts, fallback=any(any(flags) for flags in lines))
    template.lines = _label_lines(renderer, language, large_print, {
        k: texts[k] for k in ("medicines_title", "medicines_intro", "nurse_instructions_title",
                              "follow_up_title", "results_note")})
    return template


def _label_lines(renderer: Any, language: str, large_print: bool,
                 labels: dict[str, str]) -> dict[str, list[str]]:
    """How WeasyPrint breaks the plan's fixed headings and paragraphs into lines.

    They are the same for every patient, so they are measured once here rather
    than guessed: our own line breaking is only trusted with a safety margin.
    """
    from weasyprint import HTML
    from weasyprint.formatting_structure import boxes

    tags = {k: "h2" if k.endswith("_title") else "p" for k in labels}
    body = "".join(f'<{tags[k]} id="{k}">{html.escape(v)}</{tags[k]}>' for k, v in labels.items())
    size = "large-print" if large_print else "standard-print"
    document = HTML(string=f'<html class="{size}"><body><main><div class="plan"><section>'
                           f'{body}</section></div></main></body></html>').render(
        stylesheets=[*renderer.stylesheets, renderer._language_css(language)],
        font_config=renderer.font_config)
    found: dict[str, list[str]] = {}

    def walk(box: Any, owner: str | None) -> None:
        element = getattr(box, "element", None)
        ident = element.get("id") if element is not None else None
        owner = ident if ident in labels else owner
        if isinstance(box, boxes.LineBox) and owner:
            found.setdefault(owner, []).append(
                "".join(t.text for t in box.descendants() if isinstance(t, boxes.TextBox)).strip())
            return
        for child in getattr(box, "children", []):
            walk(child, owner)

    for page in document.pages:
        walk(page._page_box, None)
    return found


def _cut(pdf: bytes, key: tuple[Any, ...], texts: dict[str, str],
         fallback: bool = False) -> Template:
    placed: dict[int, tuple[int, Site | None]] = {}  # placeholder serial -> (page, site)
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        faces = [face for bold in (False, True) for face in bundled_chain(bold).faces
                 [:2 if fallback else 1]]
        fonts = {face.resource_name: face.add_to(doc) for face in faces}
        serial = 0
        for index, page in enumerate(doc.pages):
            data = page.obj.Contents.read_bytes()
            pieces: list[Any] = []
            for start, end, site in _markers(data, index):
                pieces.append(data[:start])
                data = data[end:]
                serial += 1
                placed[serial] = (index, site)
                pieces.append(serial)
            pieces.append(data)
            pieces[0] = b"q\n" + pieces[0]  # WeasyPrint never undoes its y-flip;
            pieces[-1] = pieces[-1] + b"\nQ\n"  # the code is drawn in plain page space
            serial += 1
            placed[serial] = (index, None)
            pieces.append(serial)
            streams = Array()
            for piece in pieces:
                if isinstance(piece, int):
                    stream = pikepdf.Stream(doc, b"")
                    stream[Name("/MDSlot")] = piece
                else:
                    stream = pikepdf.Stream(doc, b"")
                    stream.write(zlib.compress(piece), filter=Name.FlateDecode)
                streams.append(doc.make_indirect(stream))
            page.obj.Contents = streams
            font_dict = page.obj.Resources.Font
            for name, font in fonts.items():
                font_dict[Name("/" + name)] = font
        doc.docinfo[Name("/MyeloDocsCode")] = CODE_FORMAT
        doc.docinfo[Name("/MyeloDocsRenderPath")] = "template (cached, filled per patient)"
        tagged = "/StructTreeRoot" in doc.Root
        plan_sites = [site for _, site in placed.values() if site and site.slot.startswith("plan")]
        if tagged:
            _detach_parent_arrays(doc, {site.page for site in plan_sites})
        width, height = (float(v) for v in doc.pages[0].MediaBox[2:])
        out = io.BytesIO()
        doc.save(out, object_stream_mode=pikepdf.ObjectStreamMode.disable,
                 deterministic_id=True, compress_streams=True)
    data = out.getvalue()
    with pikepdf.open(io.BytesIO(data)) as doc:
        numbers = {}
        for obj in doc.objects:
            if isinstance(obj, pikepdf.Stream) and "/MDSlot" in obj.stream_dict:
                numbers[obj.objgen[0]] = int(obj.stream_dict["/MDSlot"])
        check = _check_chunks(doc, numbers)
        root = doc.trailer.Root.objgen[0]
        info = doc.trailer.Info.objgen[0]
        pages = len(doc.pages)
        plan_tags = {site.slot: _plan_tags(doc, site) for site in plan_sites} if tagged else {}
    chunks = _objects(data)
    rewritten = {n for tags in plan_tags.values() for n in (tags.array, tags.container)}
    objects = [(num, None if num in numbers or num in rewritten else chunk)
               for num, chunk in chunks]
    dynamic = {num: placed[serial] for num, serial in numbers.items()}
    head = data[:data.index(b"\n", data.index(b"\n") + 1) + 1]
    return Template(key=key, pages=pages, page_size_pt=(width, height), head=head,
                    objects=objects, dynamic=dynamic, root=root, info=info,
                    digest=hashlib.sha256(data).hexdigest(), labels=texts, tagged=tagged,
                    plan_tags=plan_tags, check=check)


_FLIP = re.compile(rb"1 0 0 -1 0 [0-9.]+ cm\nq\n0\.75 0 0 0\.75 0 0 cm\n")


def _check_chunks(doc: pikepdf.Pdf, dynamic: dict[int, int]) -> dict[int, bytes]:
    """Stand-ins for the shared content of each page in the self-check's copy:
    only WeasyPrint's coordinate set-up (y-flip, pixels) and its closing, so
    the patient's text is read back where the real page has it."""
    out = {}
    for page in doc.pages:
        shared = [s for s in page.obj.Contents if "/MDSlot" not in s.stream_dict]
        for i, stream in enumerate(shared):
            if i == 0:
                flip = _FLIP.search(stream.read_bytes(), 0, 200)
                if flip is None:
                    raise ValueError("unexpected start of a page's content")
                body = b"q\n" + flip.group(0).replace(b"q\n", b"")
            else:
                body = b"Q\n" if i == len(shared) - 1 else b""
            number = stream.objgen[0]
            out[number] = (b"%d 0 obj\n<< /Length %d >>\nstream\n%s\nendstream\nendobj\n"
                           % (number, len(body), body))
    return out


def _parent_array(doc: pikepdf.Pdf, page: Any) -> tuple[Any, int]:
    nums = doc.Root.StructTreeRoot.ParentTree.Nums
    key = int(page.obj.StructParents)
    for i in range(0, len(nums), 2):
        if int(nums[i]) == key:
            return nums, i + 1
    raise ValueError("page without a ParentTree entry")


def _detach_parent_arrays(doc: pikepdf.Pdf, pages: set[int]) -> None:
    """Make the ParentTree arrays of these pages objects of their own, to rewrite."""
    for index in pages:
        nums, at = _parent_array(doc, doc.pages[index])
        if not nums[at].is_indirect:
            nums[at] = doc.make_indirect(nums[at])


def _plan_tags(doc: pikepdf.Pdf, site: Site) -> PlanTags:
    page = doc.pages[site.page]
    nums, at = _parent_array(doc, page)
    array = nums[at]
    element = array[site.mcid]
    while str(element.S) != "/P":  # up from the marker's span to its paragraph
        element = element.P
    entries = ["null" if i == site.mcid or item is None or not item.is_indirect
               else f"{item.objgen[0]} 0 R" for i, item in enumerate(array)]
    return PlanTags(page=page.obj.objgen[0], array=array.objgen[0], entries=entries,
                    container=element.objgen[0], parent=element.P.objgen[0])


_NEXT_LINE = re.compile(rb"(?:EMC\n)?(?:/\w+[\n ]<<[^>]*>>[\n ]BDC\n)?(?=BT\n)")


def _markers(data: bytes, page: int) -> list[tuple[int, int, Site]]:
    """(start, end, site) of each marker line's text object, in stream order.

    A marker sets its colour, then draws "X" once per line; lines after the
    first come in text objects of their own, in marked content of their own,
    with no colour change between (any other text would set its colour).
    """
    found = []
    for match in _MARK.finditer(data):
        slot = SLOTS[round(float(match.group(1)) * 255) - 1]
        start, line = match.start(), 0
        while True:
            end = data.index(b"ET\n", start) + 3
            tm = _TM.search(data, start, end)
            if tm is None:
                raise ValueError(f"unexpected marker drawing for {slot}")
            x, y, size = (float(v) for v in tm.groups())
            # A line drawn in two faces may come as two text objects at one height.
            while (data.startswith(b"BT\n", end)
                   and (same := _TM.match(data, end + 3)) and float(same.group(2)) == y):
                end = data.index(b"ET\n", end) + 3
            tag, mcid = "", -1
            if slot.startswith("plan"):
                # A plan replaces its whole marked-content sequence: it has tags of its own.
                bdc = data.rfind(b"<</MCID", 0, start)
                tag_match = _TAG.match(data, data.rfind(b"\n/", 0, bdc) + 1)
                if tag_match is None or not data.startswith(b"EMC\n", end):
                    raise ValueError("unexpected plan marker")
                start, end = tag_match.start(), end + 4
                tag, mcid = tag_match.group(1).decode(), int(tag_match.group(2))
            found.append((start, end, Site(slot, page, x, y, size, line, tag, mcid)))
            following = _NEXT_LINE.match(data, end)
            if slot.startswith("plan") or following is None:
                break
            start, line = following.end(), line + 1
    return _relative(found)


def _relative(found: list[tuple[int, int, Site]]) -> list[tuple[int, int, Site]]:
    """Offsets made relative to the end of the previous marker (the caller slices as it goes)."""
    out, consumed = [], 0
    for start, end, site in found:
        out.append((start - consumed, end - consumed, site))
        consumed = end
    return out


_XREF_LINE = re.compile(rb"(\d{10}) (\d{5}) ([nf]) ?\r?\n")


def _objects(data: bytes) -> list[tuple[int, bytes]]:
    """The numbered objects of a file with a plain cross-reference table, in file order."""
    start = int(data[data.rindex(b"startxref") + 9:].split()[0])
    header = re.match(rb"xref\r?\n0 (\d+)\r?\n", data[start:])
    if header is None:
        raise ValueError("expected a cross-reference table")
    offsets = {}
    position = start + header.end()
    for number in range(int(header.group(1))):
        line = _XREF_LINE.match(data, position)
        if line is None:
            raise ValueError("bad cross-reference line")
        position = line.end()
        if line.group(3) == b"n":
            offsets[number] = int(line.group(1))
    ordered = sorted(offsets.items(), key=lambda item: item[1])
    chunks = []
    for i, (number, offset) in enumerate(ordered):
        end = ordered[i + 1][1] if i + 1 < len(ordered) else start
        chunks.append((number, data[offset:end]))
    return chunks
