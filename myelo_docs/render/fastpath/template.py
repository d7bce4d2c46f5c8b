"""Packet templates: one WeasyPrint render per type, language and print size
(and per shape: which faces each line of per-patient text needs, a plan over
an extra page), reused for every patient it fits.

The template is the real packet template rendered with a marker, a letter
"X" in a colour of its own, wherever per-patient text goes (SLOTS). Where
each marker line sits (its baseline, its block's edges and alignment) is
read from WeasyPrint's box tree; the PDF's content streams are parsed with
pikepdf and cut at the markers into shared pieces and one empty stream per
marker line, which packet.py fills with one patient's text. Everything else
(fonts, pictures, the structure tree, metadata) is kept as written, as
numbered objects ready to be copied byte for byte.

Each type, language and print size also gets a calibration (calibrate): the
same packet laid out with made-up identifiers and plan, from which the plan's
geometry, the text styles and colours are measured, and against which the
fast path's own placing is proved before any patient is drawn.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import logging
import zlib
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import pikepdf
from pikepdf import Array, Name

from myelo_docs.content.loader import long_date
from myelo_docs.render.fastpath import measure, plan
from myelo_docs.render.fastpath.shaping import Shaper, restore
from myelo_docs.render.fastpath.unsure import Unsure
from myelo_docs.verify.provenance import CODE_FORMAT

# Slot name -> marker colour channel (rgb(1, 2, N)); see the mark() macro in _blocks.html.j2.
SLOTS = ("id_name", "id_dob", "id_mrn", "name", "dob", "mrn", "procedure_date", "physician",
         "nurse", "test_and_date", "plan", "plan_2", "id_name_label", "id_dob_label",
         "id_mrn_label", "plan_3", "plan_4")
SLOT_INDEX = {name: number for number, name in enumerate(SLOTS, start=1)}
TEXT_SLOTS = SLOTS[:10]  # the rest are the plan's and the labels
HEADER_SLOTS = SLOTS[:3]  # "Name: value", right-aligned, label in a face of its own
LABEL_SLOTS = SLOTS[12:15]  # the header identifiers' labels, drawn where their value leaves room
PLAN_SLOTS = ("plan", "plan_2", "plan_3", "plan_4")  # where the plan goes on each of its pages
# Per text slot, per line: the font families (indexes in fonts.BUNDLED_FACES)
# beyond the first that the line is drawn in. A line in other faces has other
# heights; its template's marker line is drawn in the same families.
Shape = tuple[tuple[tuple[int, ...], ...], ...]
ONE_LINE: Shape = (((),),) * len(TEXT_SLOTS)
_LOG = logging.getLogger("myelo_docs.render.fastpath")

# The calibration packet's identifiers and details: made up, one line each, main face.
CALIBRATION_PATIENT = {"name": "Calibration Example", "mrn": "CAL-0000000",
                       "physician": "Dr. Calibration", "nurse": "Calibration Nurse"}
CALIBRATION_BIRTH = datetime.date(1950, 1, 1)
CALIBRATION_DAY = datetime.date(2026, 1, 1)


@dataclass(frozen=True)
class Site:
    """Where a marker line was laid out: page index, its baseline and its block's
    content edges in WeasyPrint's y-down pixel space, and the block's alignment.
    A plan marker gives the border top of its paragraph (``top``) and its
    marked-content tag."""

    slot: str
    page: int
    line: int
    left: float
    right: float
    baseline: float
    align: str
    top: float = 0.0
    tag: str = ""
    mcid: int = -1


@dataclass(frozen=True)
class PlanTags:
    """Where a plan hangs in the structure tree (numbers of the template's objects)."""

    page: int  # the page object, for /Pg
    array: int  # that page's ParentTree array, rewritten per patient
    entries: list[str]  # its entries in the template, the marker's own set to null
    container: int  # the marker's paragraph: the plan's sections take its place
    parent: int  # the container's parent element, rewritten per patient
    parent_body: str  # its dictionary without /K
    parent_kids: list[str]  # its /K entries; "P:<n>" for the paragraph of object n
    # The parent's ancestors up to the Document, nearest first, rewritten per
    # patient: an element left without kids (no section begins on its page)
    # leaves the tree, as WeasyPrint tags no empty part. Each is (object
    # number, dictionary without /K, /K entries with "R:<n>" for object n).
    above: list[tuple[int, str, list[str]]] = field(default_factory=list)


XREF_FREE = b"0000000000 65535 f \n"  # a cross-reference entry: 20 bytes, an object number each


@dataclass(frozen=True)
class Fixed:
    """A template's unchanging part of every packet's file, laid out once: the
    header and every object not filled per patient, and their cross-reference
    entries (``XREF_FREE`` for object 0, for the objects filled per patient and
    for numbers not used). packet.py writes the filled objects after ``blob``."""

    blob: bytes
    xref: bytes  # 20 bytes for each object number below Template.next_number
    filled: tuple[int, ...]  # the objects filled per patient, in the template's file order


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
    calibration: dict[str, Any] = field(default_factory=dict)  # see calibrate()
    pages_area: dict[str, Any] = field(default_factory=dict)  # plan page bottom, page tops
    plan_tags: dict[str, PlanTags] = field(default_factory=dict)  # by plan slot
    # The self-check's copy replaces each page's shared content (read back in
    # full once per template) with these stand-ins; see packet.py.
    check: dict[int, bytes] = field(default_factory=dict)
    tagged: bool = True

    @cached_property
    def first_sites(self) -> dict[str, Site]:
        first: dict[str, Site] = {}
        for _, site in self.dynamic.values():
            if site and site.line == 0:
                first.setdefault(site.slot, site)
        return first

    def sites(self, slot: str) -> list[Site]:
        return [site for _, site in self.dynamic.values() if site and site.slot == slot]

    @cached_property
    def next_number(self) -> int:
        return max(number for number, _ in self.objects) + 1

    @cached_property
    def fixed(self) -> Fixed:
        return self._fixed({})

    @cached_property
    def fixed_check(self) -> Fixed:
        """As ``fixed``, for the self-check's copy (``check`` in place of shared content)."""
        return self._fixed(self.check)

    def _fixed(self, replaced: dict[int, bytes]) -> Fixed:
        parts = [self.head]
        position = len(self.head)
        xref = bytearray(XREF_FREE * self.next_number)
        filled = []
        for number, chunk in self.objects:
            if chunk is None:
                filled.append(number)
                continue
            chunk = replaced.get(number, chunk)
            xref[20 * number:20 * number + 20] = b"%010d 00000 n \n" % position
            parts.append(chunk)
            position += len(chunk)
        return Fixed(b"".join(parts), bytes(xref), tuple(filled))


def marker_text(families: tuple[int, ...], shaper: Shaper) -> str:
    """What a marker line adds to its "X" (see mark() in _blocks.html.j2) to be
    drawn in these families too."""
    return "".join(shaper.marker_char(family) for family in families)


def _context(renderer: Any, type_name: str, language: str, large_print: bool) -> dict[str, Any]:
    context = renderer.template_context(type_name, language, large_print)
    labels = context["L"]
    context.update(title=labels["packet_title"], subject=labels["packet_subject"])
    return context


def build(renderer: Any, shaper: Shaper, key: tuple[Any, ...],
          calibration: dict[str, Any]) -> Template:
    """Render the marker packet with WeasyPrint and cut it up (about a second).

    ``key``: (type, language, large print, plan pages, Shape). Raises Unsure
    when the layout is outside what the fast path places exactly.
    """
    type_name, language, large_print, plan_pages, shape = key
    context = _context(renderer, type_name, language, large_print)
    slots = {name: {"colour": SLOT_INDEX[name], "lines": [""]} for name in SLOTS}
    for name, lines in zip(TEXT_SLOTS, shape, strict=True):
        slots[name]["lines"] = [marker_text(families, shaper) for families in lines]
    context.update(patient={"name": "X", "dob": "X", "mrn": "X"}, slots=slots,
                   plan_pages=plan_pages)
    document = renderer.layout("packet.html.j2", context, language)
    sites, margins = _sites(document)
    # The plan marker stands for the first section's heading: with the same top
    # margin, its border top is where that heading's is.
    margin = margins.get("plan", -1)
    if margin is not None and abs(margin - calibration["plan"]["h2"]["margins"][0]) \
            > measure.EPSILON:
        raise Unsure("the plan marker and the plan's first heading have other margins")
    for name in (*TEXT_SLOTS, *LABEL_SLOTS, *PLAN_SLOTS[:plan_pages]):
        if name not in {site.slot for site in sites}:
            raise Unsure(f"no place for {name} in the template")
    plan_page = next(s.page for s in sites if s.slot == "plan")
    area = {"bottom": measure.page_area(document.pages[plan_page])[1],
            "tops": [measure.page_area(page)[0] for page in document.pages]}
    if shape == proof_shape(calibration):
        _prove_sites(sites, calibration, shaper, context["L"], len(document.pages))
    pdf = renderer.write_pdf(document, "packet.html.j2", context, language)
    texts = {k: context["L"][k] for k in (
        "name_short", "dob_short", "mrn_short", "medicines_title", "medicines_intro",
        "medicine_name", "medicine_instruction", "nurse_instructions_title", "follow_up_title",
        "results_note")}
    texts["test_title"] = context["T"]["title"]
    faces = {face for face in shaper.faces
             if shaper.family(face) == 0 or any(shaper.family(face) in families
                                                for lines in shape for families in lines)}
    template = _cut(pdf, key, sites, faces)
    template.labels = texts
    template.calibration = calibration
    template.pages_area = area
    return template


def calibrate(renderer: Any, shaper: Shaper, type_name: str, language: str,
              large_print: bool) -> dict[str, Any]:
    """The calibration packet laid out (not written) and measured: the plan's
    geometry (proved with plan.verify), each slot's style and colour, and where
    each slot's first line went. JSON-ready."""
    context = _context(renderer, type_name, language, large_print)
    p = CALIBRATION_PATIENT
    dob = long_date(CALIBRATION_BIRTH, renderer.locale(language))
    day = long_date(CALIBRATION_DAY, renderer.locale(language))
    labels = {k: context["L"][k] for k in (
        "medicines_title", "medicines_intro", "medicine_name", "medicine_instruction",
        "nurse_instructions_title", "follow_up_title", "results_note")}
    patient = {**p, "dob": dob, "procedure_date": day}
    split = _split_calibration(renderer, shaper, context, patient, labels, language)
    alone = renderer.computed_styles(
        "packet.html.j2", {**context, "patient": {**patient, **plan.ALONE_PLAN}}, language)
    for calibration_plan in (plan.CALIBRATION_PLAN, plan.SMALL_CALIBRATION_PLAN):
        context.update(patient={**patient, **calibration_plan})
        document = renderer.layout("packet.html.j2", context, language)
        try:
            geometry = plan.measure_plan(document)
            # Where broken sections go on, if the long plan's blocks measured the same.
            if split and all(_same(split[k], geometry[k]) for k in plan.BLOCKS):
                geometry["continued"] = {**split["continued"], **geometry["continued"]}
            # Break values by item and row position: the long plan has middle ones.
            geometry["breaks"] = plan.merge_breaks(geometry["breaks"],
                                                   split["breaks"] if split else {})
            plan.check_alone(geometry["breaks"], *alone)
            plan.verify(geometry, shaper, labels, calibration_plan)
            break
        except Unsure:
            if calibration_plan is plan.SMALL_CALIBRATION_PLAN:
                raise
    values = {"name": p["name"], "dob": dob, "mrn": p["mrn"], "procedure_date": day,
              "physician": p["physician"], "nurse": p["nurse"],
              "test_and_date": f"{context['T']['title']}, {day}"}
    styles, colours, seen = {}, {}, {}
    header_lines: dict[str, set[float]] = {}  # each identifier's baselines on page 1
    for index, page in enumerate(document.pages):
        for text_box, parents in measure.text_boxes(page._page_box):
            block = measure.block_of(parents)
            owner = {c for p_ in (*parents, text_box) for c in measure.classes(p_)}
            text = text_box.text
            slot = None
            if "id-label" in owner:
                slot = "id_label"
            else:
                for name in ("name", "dob", "mrn"):
                    if f"id-{name}" in owner and text.strip():
                        if index == 0:
                            header_lines.setdefault(name, set()).add(
                                round(measure.baseline(text_box), 2))
                        if text.strip() == values[name] or values[name].startswith(
                                text.strip() + " "):  # the value, or its first line
                            slot = f"id_{name}"
                if slot is None and "identifiers" not in owner and text.strip():
                    # a value's first line: the whole value, or where it wraps
                    slot = next((k for k, v in values.items() if k not in seen and (
                        text == v or (len(text) > 3 and v.startswith(text.rstrip() + " ")))),
                        None)
            if slot is None or slot in seen:
                continue
            measure.check_plain_text(block, text_box)
            seen[slot] = [index, text_box.position_x, measure.baseline(text_box),
                          text_box.width, text]
            styles[slot] = measure.style_of(text_box)
            colours[slot] = measure.rgb(text_box.style["color"])
    missing = {*TEXT_SLOTS, "id_label"} - set(seen)
    if missing:
        raise Unsure("the calibration packet lacks " + ", ".join(sorted(missing)))
    return {"plan": geometry, "styles": styles, "colours": colours, "seen": seen,
            "values": values, "pages": len(document.pages),
            "header_lines": {name: len(lines) for name, lines in header_lines.items()}}


def proof_shape(calibration: dict[str, Any]) -> Shape:
    """The shape of the calibration's own text: every value on one line in the
    main face, the header identifiers on as many lines as they took there (a
    Spanish date of birth takes two in large print). A template of this shape
    is proved against the calibration."""
    lines = calibration["header_lines"]
    return tuple(((),) * lines.get(slot[3:], 1) if slot in HEADER_SLOTS else ((),)
                 for slot in TEXT_SLOTS)


def _split_calibration(renderer: Any, shaper: Shaper, context: dict[str, Any],
                       patient: dict[str, Any], labels: dict[str, str],
                       language: str) -> dict[str, Any] | None:
    """The plan geometry of a plan long enough to be broken between table rows
    and list items (with ``continued``: where a broken section goes on), once
    the model has laid that plan out as WeasyPrint did. None when it cannot:
    then packets whose sections would break are rendered in full."""
    for long_plan in plan.SPLIT_CALIBRATION_PLANS:
        document = renderer.layout("packet.html.j2", {
            **context, "patient": {**patient, **long_plan}}, language)
        try:
            geometry = plan.measure_plan(document)
            plan.verify(geometry, shaper, labels, long_plan)
            return geometry
        except Unsure as reason:
            _LOG.info("fast path: a long plan laid out otherwise (%s)", reason)
    return None


def _same(a: Any, b: Any) -> bool:
    """Two measurements (JSON-like) equal, numbers within measure.EPSILON."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return abs(a - b) <= measure.EPSILON
    return bool(a == b)


def _prove_sites(sites: list[Site], calibration: dict[str, Any], shaper: Shaper,
                 labels: dict[str, str], pages: int) -> None:
    """The one-line template's markers must sit where the calibration's values
    are (same baseline, and the same x once drawn as packet.py draws them)."""
    styles = {k: restore(v, shaper.font_config) for k, v in calibration["styles"].items()}
    for slot in TEXT_SLOTS:
        site = next(s for s in sites if s.slot == slot and s.line == 0)
        page, x, base, _, text = calibration["seen"][slot]
        if slot == "test_and_date":  # after the plan, which may take the calibration a page more
            page, site_page = page - calibration["pages"], site.page - pages
        else:
            site_page = site.page
        if page != site_page or abs(base - site.baseline) > measure.EPSILON:
            raise Unsure(f"{slot} is not where the calibration put it")
        if slot in HEADER_SLOTS:
            label = labels[f"{slot[3:]}_short"] + ":"
            label_width = shaper.lines(label, styles["id_label"], None)[0].width
            value = shaper.lines(text, styles[slot], None, is_line_start=False)[0]
            ours = site.right - value.width
            label_seen = calibration["seen"]["id_label"]
            if site.align != "right" or abs(ours - x) > measure.EPSILON or (
                    slot == "id_name" and abs(ours - label_width - label_seen[1])
                    > measure.EPSILON):
                raise Unsure("the header identifiers are not laid out as the fast path draws")
        elif site.align != "left" or abs(site.left - x) > measure.EPSILON:
            raise Unsure(f"{slot} is not aligned as the fast path draws it")


def _slot_of(text_box: Any) -> str | None:
    element = getattr(text_box, "element", None)
    if element is None or "slot" not in (element.get("class") or "").split():
        return None
    style = element.get("style") or ""
    channel = int(style.rsplit(",", 1)[1].strip(" );"))
    return SLOTS[channel - 1]


def _sites(document: Any) -> tuple[list[Site], dict[str, float]]:
    """Every marker line in the marker packet's box tree, in document order; and
    the plan marker's top margin."""
    sites, margins = [], {}
    for index, page in enumerate(document.pages):
        count: dict[str, int] = {}
        for text_box, parents in measure.text_boxes(page._page_box):
            slot = _slot_of(text_box)
            if slot is None:
                continue
            block = measure.block_of(parents)
            line = count.get(slot, 0)
            count[slot] = line + 1
            left = block.content_box_x()
            sites.append(Site(slot, index, line, left, left + block.width,
                              measure.baseline(text_box), measure.alignment(block),
                              top=measure.border_top(block) if slot.startswith("plan") else 0.0))
            if slot == "plan":
                at_top = abs(measure.border_top(block) - measure.page_area(page)[0]) \
                    < measure.EPSILON
                # at a page's top a dropped margin is the heading's dropped margin too
                margins[slot] = None if at_top and not block.margin_top else block.margin_top
    return sites, margins


# ---- cutting the PDF -------------------------------------------------------------------------

def _marker_slot(operands: Any) -> str | None:
    values = [round(float(v) * 255) for v in operands]
    if len(values) == 3 and values[:2] == [1, 2] and 1 <= values[2] <= len(SLOTS):
        return SLOTS[values[2] - 1]
    return None


def _markers(ops: list[Any]) -> list[tuple[int, int, str, str, int]]:
    """(first, last instruction index, slot, tag, mcid) of each marker line's
    drawing, in stream order. A text line is its colour (when set there) and
    its text object; a plan marker, its whole marked-content sequence."""
    found = []
    colour: str | None = None
    colour_at = -1
    open_marks: list[int] = []
    i = 0
    while i < len(ops):
        operator = str(ops[i].operator)
        if operator == "BDC" or operator == "BMC":
            open_marks.append(i)
        elif operator == "EMC" and open_marks:
            open_marks.pop()
        elif operator == "rg":
            colour, colour_at = _marker_slot(ops[i].operands), i
        elif operator in ("g", "k", "sc", "scn", "cs"):
            colour = None
        elif operator == "BT" and colour is not None:
            end = next(j for j in range(i, len(ops)) if str(ops[j].operator) == "ET")
            start = colour_at if colour_at == i - 1 else i
            if colour.startswith("plan"):
                bdc = open_marks[-1]
                after = end + 1
                if str(ops[after].operator) != "EMC" or any(
                        str(op.operator) not in ("BDC", "rg", "gs") for op in ops[bdc:start]):
                    raise Unsure("an unexpected plan marker drawing")
                name, properties = ops[bdc].operands
                found.append((bdc, after, colour, str(name)[1:], int(properties.MCID)))
                open_marks.pop()
                i = after + 1
                colour = None
                continue
            mcid = -1
            if open_marks and str(ops[open_marks[-1]].operator) == "BDC":
                properties = ops[open_marks[-1]].operands[1]
                if isinstance(properties, pikepdf.Dictionary) and "/MCID" in properties:
                    mcid = int(properties.MCID)
            found.append((start, end, colour, "", mcid))
            i = end + 1
            continue
        i += 1
    return found


def _cut(pdf: bytes, key: tuple[Any, ...], sites: list[Site], faces: set[Any]) -> Template:
    placed: dict[int, tuple[int, Site | None]] = {}  # placeholder serial -> (page, site)
    by_page: dict[tuple[int, str, int], Site] = {(s.page, s.slot, s.line): s for s in sites}
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        fonts = {face.resource_name: face.add_to(doc) for face in sorted(
            faces, key=lambda f: f.resource_name)}
        serial = 0
        text_marks: dict[int, list[int]] = {}  # page -> MCIDs of text markers
        for index, page in enumerate(doc.pages):
            ops = list(pikepdf.parse_content_stream(page))
            pieces: list[Any] = []
            previous = 0
            count: dict[str, int] = {}
            for start, end, slot, mark_tag, mcid in _markers(ops):
                line = count.get(slot, 0)
                count[slot] = line + 1
                site = by_page.get((index, slot, line))
                if site is None:
                    raise Unsure("a marker drawn where the layout has none")
                if mark_tag:
                    site = Site(**{**asdict(site), "tag": mark_tag, "mcid": mcid})
                elif mcid >= 0:
                    text_marks.setdefault(index, []).append(mcid)
                pieces.append(pikepdf.unparse_content_stream(ops[previous:start]))
                serial += 1
                placed[serial] = (index, site)
                pieces.append(serial)
                previous = end + 1
            laid_out: dict[str, int] = {}
            for site in sites:
                if site.page == index:
                    laid_out[site.slot] = laid_out.get(site.slot, 0) + 1
            if count != laid_out:
                raise Unsure("the drawn markers differ from the laid-out ones")
            pieces.append(pikepdf.unparse_content_stream(ops[previous:]))
            pieces[0] = b"q\n" + pieces[0]  # WeasyPrint never undoes its y-flip;
            pieces[-1] = pieces[-1] + b"\nQ\n"  # the code is drawn in plain page space
            serial += 1
            placed[serial] = (index, None)
            pieces.append(serial)
            streams = Array()
            for piece in pieces:
                stream = pikepdf.Stream(doc, b"")
                if isinstance(piece, int):
                    stream[Name("/MDSlot")] = piece
                else:
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
            for index, mcids in text_marks.items():
                _splice_marker_spans(doc, index, mcids)
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
        check = _check_chunks(doc)
        root = doc.trailer.Root.objgen[0]
        info = doc.trailer.Info.objgen[0]
        pages = len(doc.pages)
        containers = {_plan_paragraph(doc, site).objgen[0] for site in plan_sites} if tagged \
            else set()
        plan_tags = {site.slot: _plan_tags(doc, site, containers) for site in plan_sites} \
            if tagged else {}
        chunks = _objects(doc)
    rewritten = {n for tags in plan_tags.values()
                 for n in (tags.array, tags.parent, *(number for number, _, _ in tags.above))}
    objects = [(num, None if num in numbers or num in rewritten else chunk)
               for num, chunk in chunks]
    dynamic = {num: placed[serial] for num, serial in numbers.items()}
    head = data[:data.index(b"\n", data.index(b"\n") + 1) + 1]
    return Template(key=key, pages=pages, page_size_pt=(width, height), head=head,
                    objects=objects, dynamic=dynamic, root=root, info=info,
                    digest=hashlib.sha256(data).hexdigest(), tagged=tagged,
                    plan_tags=plan_tags, check=check)


def _objects(doc: pikepdf.Pdf) -> list[tuple[int, bytes]]:
    """Every numbered object of doc as 'N 0 obj ... endobj' bytes, by number."""
    chunks = []
    for obj in doc.objects:
        number, generation = obj.objgen
        if number == 0:
            continue
        if generation:
            raise Unsure("an object of a later generation")
        if isinstance(obj, pikepdf.Stream):
            raw = obj.read_raw_bytes()
            body = (obj.stream_dict.unparse(resolved=True) + b"\nstream\n" + raw + b"\nendstream")
        else:
            body = obj.unparse(resolved=True)
        chunks.append((number, b"%d 0 obj\n%s\nendobj\n" % (number, body)))
    return sorted(chunks)


def _check_chunks(doc: pikepdf.Pdf) -> dict[int, bytes]:
    """Stand-ins for the shared content of each page in the self-check's copy:
    only WeasyPrint's coordinate set-up (its leading q and cm operators) and
    the closing, so the patient's text is read back where the real page has it."""
    out = {}
    for page in doc.pages:
        shared = [s for s in page.obj.Contents if "/MDSlot" not in s.stream_dict]
        for i, stream in enumerate(shared):
            if i == 0:
                setup = []
                for instruction in pikepdf.parse_content_stream(stream):
                    if str(instruction.operator) == "cm":
                        setup.append(instruction)
                    elif str(instruction.operator) != "q":
                        break
                body = b"q\n" + pikepdf.unparse_content_stream(setup) + b"\n"
            else:
                body = b"Q\n" if i == len(shared) - 1 else b""
            number = stream.objgen[0]
            out[number] = (b"%d 0 obj\n<< /Length %d >>\nstream\n%s\nendstream\nendobj\n"
                           % (number, len(body), body))
    return out


def _splice_marker_spans(doc: pikepdf.Pdf, index: int, mcids: list[int]) -> None:
    """Take the markers' own span elements out of the structure tree (their
    content goes to their parent), so that the tree has the full render's shape."""
    page = doc.pages[index]
    nums, at = _parent_array(doc, page)
    array = nums[at]
    for mcid in mcids:
        span = array[mcid]
        if span is None or not isinstance(span, pikepdf.Dictionary) or str(span.S) != "/Span":
            raise Unsure("a marker outside a span element")
        parent = span.P
        if span.objgen == (0, 0) or parent.objgen == (0, 0):
            raise Unsure("a structure element that is not an object")
        kids = _as_list(span.K)
        content = [pikepdf.Dictionary(Type=Name.MCR, MCID=kid, Pg=page.obj)
                   if isinstance(kid, int) else kid for kid in kids]
        siblings = []
        for kid in _as_list(parent.K):
            if isinstance(kid, pikepdf.Dictionary) and kid.objgen == span.objgen:
                siblings += content
            else:
                siblings.append(kid)
        parent.K = Array(siblings)
        for kid in kids:
            number = int(kid) if isinstance(kid, int) else int(kid.MCID)
            array[number] = parent
        _prune_empty(parent)


def _prune_empty(element: Any) -> None:
    """Drop the empty elements a marker's line breaks leave (NonStruct, no content)."""
    kids = _as_list(element.K) if "/K" in element else []
    kept = []
    for kid in kids:
        if isinstance(kid, pikepdf.Dictionary) and "/S" in kid:
            _prune_empty(kid)
            if str(kid.S) == "/NonStruct" and not _as_list(kid.get("/K", Array())):
                continue
        kept.append(kid)
    if len(kept) != len(kids):
        element.K = Array(kept)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, pikepdf.Array):
        return list(value)
    return [int(value) if isinstance(value, int) else value]


def _parent_array(doc: pikepdf.Pdf, page: Any) -> tuple[Any, int]:
    nums = doc.Root.StructTreeRoot.ParentTree.Nums
    key = int(page.obj.StructParents)
    for i in range(0, len(nums), 2):
        if int(nums[i]) == key:
            return nums, i + 1
    raise Unsure("a page without a ParentTree entry")


def _detach_parent_arrays(doc: pikepdf.Pdf, pages: set[int]) -> None:
    """Make the ParentTree arrays of these pages objects of their own, to rewrite."""
    for index in pages:
        nums, at = _parent_array(doc, doc.pages[index])
        if not nums[at].is_indirect:
            nums[at] = doc.make_indirect(nums[at])


def _plan_paragraph(doc: pikepdf.Pdf, site: Site) -> Any:
    nums, at = _parent_array(doc, doc.pages[site.page])
    element = nums[at][site.mcid]
    while str(element.S) != "/P":  # up from the marker's span to its paragraph
        element = element.P
    return element


def _plan_tags(doc: pikepdf.Pdf, site: Site, containers: set[int]) -> PlanTags:
    page = doc.pages[site.page]
    nums, at = _parent_array(doc, page)
    array = nums[at]
    element = array[site.mcid]
    while str(element.S) != "/P":  # up from the marker's span to its paragraph
        element = element.P
    entries = ["null" if i == site.mcid or item is None or not item.is_indirect
               else f"{item.objgen[0]} 0 R" for i, item in enumerate(array)]
    parent = element.P
    body, kids = _element_parts(parent, "P", containers)
    above = []
    node = parent
    while "/S" in node and str(node.S) != "/Document":
        node = node.P
        above.append((node.objgen[0], *_element_parts(node, "R", None)))
    return PlanTags(page=page.obj.objgen[0], array=array.objgen[0], entries=entries,
                    container=element.objgen[0], parent=parent.objgen[0],
                    parent_body=body, parent_kids=kids, above=above)


def _element_parts(element: Any, mark: str, marked: set[int] | None) -> tuple[str, list[str]]:
    """A structure element's dictionary without /K, and its /K entries
    ("<mark>:<n>" for the elements of object n in marked; None: all)."""
    body = pikepdf.Dictionary({k: v for k, v in element.items() if k != "/K"}).unparse()
    kids = []
    for kid in _as_list(element.K):
        if isinstance(kid, pikepdf.Object) and kid.is_indirect and (
                marked is None or kid.objgen[0] in marked):
            kids.append(f"{mark}:{kid.objgen[0]}")
        elif isinstance(kid, int):
            kids.append(str(kid))
        else:
            kids.append(kid.unparse().decode("latin-1"))
    return body.decode("latin-1"), kids
