"""A patient's plan (medicines, the nurse's instructions, follow-up) laid out
with the geometry WeasyPrint gave a calibration plan (PlanGeometry, measured
in measure_plan), line breaking and shaping by Pango (shaping.py).

The model places blocks one under another with CSS margin collapsing (the
largest of adjoining margins), keeps each section whole on a page (the
stylesheet must say so: ``break-inside: avoid``) and moves a section that
does not fit to the next page, where its leading margins are dropped. It is
proved on the calibration plan at build time (``verify``): the model must put
every line of that plan where WeasyPrint put it, or the template is not used.
A break too close to call raises Unsure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from myelo_docs.render.fastpath import measure
from myelo_docs.render.fastpath.shaping import Line, Shaper
from myelo_docs.render.fastpath.unsure import Unsure

PAGE_SLACK = 0.5  # px: a section ending this close to the page bottom, either way, is unsure

# The calibration plan: made-up text in the main face, shaped like a real plan
# (a wrapping table cell, a wrapping list item, two paragraphs of follow-up).
CALIBRATION_PLAN = {
    "medications": [
        {"name": "Calibration", "instruction": "Take one tablet in the morning and one in the "
                                               "evening with food, and stop if you feel dizzy "
                                               "or sick at any time of the day."},
        {"name": "Other medicine", "instruction": "Keep taking it."},
    ],
    "instructions": ["Rest today.", "Drink plenty of water and keep the bandage dry until "
                                    "tomorrow morning, then take it off and wash gently."],
    "follow_up": "Spine clinic in two weeks.",
}
# When the page before the plan leaves too little room for that one's first
# section, a smaller plan (still every kind of block) calibrates instead.
SMALL_CALIBRATION_PLAN = {
    "medications": [{"name": "Calibration", "instruction": "Take one tablet."}],
    "instructions": ["Rest today.", "Drink water."],
    "follow_up": "Spine clinic in two weeks.",
}


# ---- the model's output -------------------------------------------------------------------

@dataclass
class Node:
    """A structure element (PDF/UA tag) and, for a leaf, what it draws (ops in
    WeasyPrint's y-down pixel space, relative to the top of its page's plan)."""

    role: str
    ops: bytes = b""
    children: list[Node] = field(default_factory=list)
    attributes: str = ""


@dataclass
class Placed:
    """A section on a page: its structure and artifacts, drawn at absolute y."""

    node: Node
    art: list[bytes]
    lines: list[tuple[str, float, float]]  # (text, x, baseline): what verify compares


# ---- measured geometry --------------------------------------------------------------------

def _margins(box: Any) -> tuple[float, float]:
    if (box.padding_top or box.border_top_width or box.padding_bottom
            or box.border_bottom_width):
        raise Unsure(f"padding or a border around a plan {measure.tag(box) or 'block'}")
    return box.margin_top, box.margin_bottom


def _text_block(box: Any, cell: bool = False) -> dict[str, Any]:
    """A block of lines (h2, p, li content): margins, content edges, line pitch
    and baseline, style and colour, from its first line."""
    from weasyprint.formatting_structure import boxes

    lines = [b for b in box.children if isinstance(b, boxes.LineBox)]
    if not lines:
        raise Unsure("a plan block without lines")
    first = lines[0]
    text = next(t for t, _ in measure.text_boxes(first))
    measure.check_plain_text(box, text)
    if measure.alignment(box) != "left":
        raise Unsure("plan text that is not left-aligned")
    pitches = {round(b.height, 4) for b in lines}
    if len(pitches) != 1:
        raise Unsure("plan lines of different heights")
    return {
        "margins": None if cell else _margins(box), "x": box.content_box_x(), "width": box.width,
        "pitch": first.height, "base": measure.baseline(text) - first.position_y,
        "top": box.content_box_y() - measure.border_top(box),
        "style": measure.style_of(text), "colour": measure.rgb(text.style["color"]),
    }


def measure_plan(document: Any) -> dict[str, Any]:
    """The plan's geometry from the calibration packet's layout (JSON-ready)."""
    from weasyprint.formatting_structure import boxes

    found: dict[str, Any] = {}
    sections: list[tuple[int, Any]] = []
    for index, page in enumerate(document.pages):
        for box, _ in measure.walk(page._page_box):
            if measure.tag(box) == "div" and "plan" in measure.classes(box):
                if box.padding_top or box.border_top_width:
                    raise Unsure("padding or a border around the plan")
                sections += [(index, s) for s in box.children if measure.tag(s) == "section"]
    if not sections:
        raise Unsure("no plan in the calibration packet")
    whole: dict[str, bool] = {}
    order: list[Any] = []  # each section's element once, in order
    for _, section in sections:
        style = section.style
        if section.element not in order:
            order.append(section.element)
        # A section that may break is drawn only where it fits whole (see paginate).
        whole[_section_name(section)] = style["break_inside"] in ("avoid", "avoid-page")
        if style["break_before"] != "auto" or style["break_after"] != "auto":
            raise Unsure("page breaks forced around plan sections")
        found.setdefault("section", {"margins": _margins(section)})
        for child in section.children:
            if child.style["break_before"] in ("page", "left", "right", "recto", "verso") \
                    or child.style["break_after"] in ("page", "left", "right", "recto", "verso"):
                raise Unsure("page breaks forced inside a plan section")
            kind = measure.tag(child)
            if kind in ("h2", "p"):
                key = "follow_up_text" if "follow-up-text" in measure.classes(child) else kind
                if key == "p" and "medicines" not in measure.classes(section):
                    key = "note"
                found.setdefault(key, _text_block(child))
                # A block at the top of a page may have had its top margin
                # dropped there: the margin is the one it has elsewhere.
                top, bottom = found[key]["margins"]
                found[key]["margins"] = (max(top, child.margin_top), bottom)
            elif kind == "ul":
                if "li" not in found:
                    found["ul"] = {"margins": _margins(child)}
                    found["li"] = _list_item(child)
            elif kind == "table":
                if "table" not in found:
                    found["table"] = _table(child)
            else:
                raise Unsure(f"an unexpected {kind or 'box'} in the plan")
    missing = {"section", "h2", "p", "note", "follow_up_text", "ul", "li", "table"} - set(found)
    if missing:
        raise Unsure("the calibration plan lacks " + ", ".join(sorted(missing)))
    first_page = sections[0][0]
    page_top, page_bottom = measure.page_area(document.pages[first_page])
    # Whether a section moved to the next page keeps its top margin there: CSS
    # says an unforced break truncates it, WeasyPrint keeps it after pages it
    # counts as forced (named pages). Known only if the calibration plan spills.
    kept = None
    seen = {id(sections[0][1].element)}
    for (before, _), (index, section) in zip(sections, sections[1:], strict=False):
        first_fragment = id(section.element) not in seen
        seen.add(id(section.element))
        if index != before and first_fragment:
            kept = measure.border_top(section) - measure.page_area(
                document.pages[index])[0] > measure.EPSILON
    if kept is None:
        kept = measure.margins_kept_after_breaks(document)
    found["pages"] = {
        "calibration_start": [first_page, measure.border_top(sections[0][1])],
        "bottom": page_bottom,
        "tops": [measure.page_area(p)[0] for p in document.pages],
        "margins_kept": kept,
    }
    found["whole"] = whole
    found["calibration_lines"] = [
        [order.index(section.element), index, t.text.strip(), t.position_x, measure.baseline(t)]
        for index, section in sections
        for t, _ in measure.text_boxes(section) if t.text.strip()]
    del boxes
    return found


def _section_name(section: Any) -> str:
    for name in ("medicines", "nurse-instructions", "follow-up"):
        if name in measure.classes(section):
            return name
    raise Unsure("a plan section the fast path does not know")


def _list_item(ul: Any) -> dict[str, Any]:
    from weasyprint.formatting_structure import boxes

    items = [b for b in ul.children if measure.tag(b) == "li"]
    item = items[0]
    markers = [b for b in item.children if not isinstance(b, boxes.BlockBox)]
    content = [b for b in item.children if b not in markers]
    if len(markers) != 1 or len(content) != 1:
        raise Unsure("a list item of an unexpected shape")
    text = _text_block(content[0])
    marker = next(t for t, _ in measure.text_boxes(markers[0]))
    return {**text, "margins": _margins(item),
            "top": content[0].content_box_y() - measure.border_top(item),
            "marker": {"text": marker.text, "style": measure.style_of(marker),
                       "colour": measure.rgb(marker.style["color"]),
                       "dx": marker.position_x - text["x"],
                       "base": measure.baseline(marker) - measure.border_top(item)}}


def _table(wrapper: Any) -> dict[str, Any]:
    from weasyprint.formatting_structure import boxes

    tables = [b for b in wrapper.children if isinstance(b, boxes.TableBox)]
    if len(tables) != 1:
        raise Unsure("a table of an unexpected shape")
    table = tables[0]
    if not table.style["border_collapse"] == "collapse":
        raise Unsure("a table with separate borders")
    groups = {measure.tag(g): g for g in table.children}
    if set(groups) != {"thead", "tbody"}:
        raise Unsure("a table of an unexpected shape")
    rows = [r for g in (groups["thead"], groups["tbody"]) for r in g.children]
    out: dict[str, Any] = {"margins": _margins(wrapper), "kinds": {}}
    top = measure.border_top(wrapper)
    out["first_row"] = rows[0].position_y - top
    gaps = {round(b.position_y - (a.position_y + a.height), 4)
            for a, b in zip(rows, rows[1:], strict=False)}
    if gaps != {0}:
        raise Unsure("space between table rows")
    out["tail"] = (top + wrapper.border_height()) - (rows[-1].position_y + rows[-1].height)
    for kind, row in (("head", rows[0]), ("body", rows[1])):
        cells = []
        # Cells aligned to the top take the row's extra height as bottom padding:
        # what a row adds to its tallest content is measured on the row.
        tallest = max(sum(1 for b in cell.children if isinstance(b, boxes.LineBox))
                      * _text_block(cell, cell=True)["pitch"] for cell in row.children)
        out.setdefault("frames", {})[kind] = row.height - tallest
        for cell in row.children:
            if cell.style["vertical_align"] != "top":
                raise Unsure("table cells not aligned to the top")
            block = _text_block(cell, cell=True)
            cells.append({**block, "offset": cell.content_box_y() - row.position_y,
                          "left": cell.position_x, "width_box": cell.border_width(),
                          "rule": cell.border_left_width * 2, "rule_top": cell.border_top_width * 2,
                          "rule_colour": measure.rgb(cell.style["border_left_color"]),
                          "fill": _fill(cell.style["background_color"])})
        out["kinds"][kind] = cells
    out["x"], out["width"] = table.position_x, table.border_width()
    return out


def _fill(colour: Any) -> list[float] | None:
    srgb = colour.to("srgb")
    if srgb.alpha == 0:
        return None
    return measure.rgb(colour)


# ---- the model ----------------------------------------------------------------------------

def _rgb(colour: Sequence[float], op: bytes = b"rg") -> bytes:
    return b"%.6f %.6f %.6f %s\n" % (*colour, op)


class _Leaf:
    def __init__(self, margins: Sequence[float], height: float, node: Node,
                 draw: Any, art: Any = None):
        self.margins = margins
        self.height = height
        self.node = node
        self.draw = draw  # top (absolute y) -> (ops, lines)
        self.art = art  # top -> ops


class PlanLayout:
    """Lays out plans with one template's measured geometry."""

    def __init__(self, geometry: dict[str, Any], shaper: Shaper):
        self.g = geometry
        self.shaper = shaper
        self._style = shaper.style

    def _lines(self, text: str, block: dict[str, Any], width: float | None = None) -> list[Line]:
        style = self._style(block["style"])
        lines = self.shaper.lines(text, style, block["width"] if width is None else width)
        for line in lines:
            if self.shaper.families_of(line):  # its lines' heights are the main face's
                raise Unsure("plan text in a fallback face")
        return lines

    def _draw_lines(self, lines: list[Line], block: dict[str, Any], x: float,
                    top: float) -> tuple[list[Node], list[tuple[str, float, float]]]:
        """One Span per line, as WeasyPrint tags each line's text box."""
        spans, seen = [], []
        colour = _rgb(block["colour"])
        for i, line in enumerate(lines):
            y = top + i * block["pitch"] + block["base"]
            drawn, _ = self.shaper.draw(line, x, y)
            spans.append(Node("Span", colour + drawn))
            seen.append((line.text, x, y))
        return spans, seen

    def text(self, kind: str, text: str, role: str) -> _Leaf:
        block = self.g[kind]
        lines = self._lines(text, block)
        node = Node(role)

        def draw(top: float) -> tuple[bytes, list[tuple[str, float, float]]]:
            node.children, seen = self._draw_lines(lines, block, block["x"], top + block["top"])
            return b"", seen

        return _Leaf(block["margins"], block["top"] + len(lines) * block["pitch"], node, draw)

    def items(self, texts: Sequence[str]) -> list[_Leaf]:
        block = self.g["li"]
        marker = block["marker"]
        marker_lines = self.shaper.lines(marker["text"], self._style(marker["style"]), None)
        leaves = []
        for text in texts:
            lines = self._lines(text, block)
            node = Node("LI", children=[Node("Lbl"), Node("LBody")])

            def draw(top: float, lines: list[Line] = lines, node: Node = node) -> tuple[
                    bytes, list[tuple[str, float, float]]]:
                x = block["x"] + marker["dx"]
                mark, _ = self.shaper.draw(marker_lines[0], x, top + marker["base"])
                node.children[0].children = [Node("Span", _rgb(marker["colour"]) + mark)]
                spans, seen = self._draw_lines(lines, block, block["x"], top + block["top"])
                node.children[1].children = spans
                return b"", [(marker_lines[0].text, x, top + marker["base"]), *seen]

            leaves.append(_Leaf(block["margins"], block["top"] + len(lines) * block["pitch"],
                                node, draw))
        return leaves

    def table(self, head: Sequence[str], rows: Sequence[Sequence[str]]) -> _Leaf:
        t = self.g["table"]
        shaped = []
        heights = []
        for r, row in enumerate([head, *rows]):
            cells = t["kinds"]["head" if r == 0 else "body"]
            if len(row) != len(cells):
                raise Unsure("a table row of another width")
            lines = [self._lines(text, cell) for text, cell in zip(row, cells, strict=True)]
            shaped.append(lines)
            heights.append(t["frames"]["head" if r == 0 else "body"] + max(
                len(ls) * cell["pitch"] for ls, cell in zip(lines, cells, strict=True)))
        groups = [Node("THead"), Node("TBody")]
        node = Node("Table", children=groups)
        height = t["first_row"] + sum(heights) + t["tail"]

        def draw(top: float) -> tuple[bytes, list[tuple[str, float, float]]]:
            y = top + t["first_row"]
            seen = []
            groups[0].children.clear()
            groups[1].children.clear()
            for r, lines in enumerate(shaped):
                cells = t["kinds"]["head" if r == 0 else "body"]
                tr = Node("TR")
                for ls, cell in zip(lines, cells, strict=True):
                    spans, drawn = self._draw_lines(ls, cell, cell["x"], y + cell["offset"])
                    seen += drawn
                    tr.children.append(Node("TH" if r == 0 else "TD", children=spans, attributes=(
                        "/A << /O /Table /Scope /Column >>" if r == 0 else "")))
                groups[min(r, 1)].children.append(tr)
                y += heights[r]
            return b"", seen

        def art(top: float) -> bytes:
            ops = []
            y = top + t["first_row"]
            for r, h in enumerate(heights):
                cells = t["kinds"]["head" if r == 0 else "body"]
                for cell in cells:
                    if cell["fill"]:
                        ops.append(_rgb(cell["fill"]) + b"%.3f %.3f %.3f %.3f re f\n"
                                   % (cell["left"], y, cell["width_box"], h))
                for cell in cells:
                    ops.append(_rgb(cell["rule_colour"], b"RG") + b"%.3f w\n" % cell["rule"])
                    ops.append(b"%.3f %.3f m %.3f %.3f l S\n"
                               % (cell["left"], y, cell["left"], y + h))
                    ops.append(b"%.3f %.3f m %.3f %.3f l S\n"
                               % (cell["left"], y, cell["left"] + cell["width_box"], y))
                last = cells[-1]
                right = last["left"] + last["width_box"]
                ops.append(b"%.3f %.3f m %.3f %.3f l S\n" % (right, y, right, y + h))
                y += h
            first = t["kinds"]["body"][0]
            ops.append(b"%.3f %.3f m %.3f %.3f l S\n"
                       % (first["left"], y, t["kinds"]["body"][-1]["left"]
                          + t["kinds"]["body"][-1]["width_box"], y))
            return b"q\n" + b"".join(ops) + b"Q\n"

        return _Leaf(t["margins"], height, node, draw, art)

    # ---- sections and pages -------------------------------------------------------------

    def section(self, name: str,
                parts: Sequence[_Leaf | tuple[Sequence[float], list[_Leaf], str]]
                ) -> tuple[list[Any], Node, str]:
        """A section's items as a flat list of margins and leaves, and its node."""
        flat: list[Any] = [self.g["section"]["margins"][0]]
        node = Node("Sect")
        for part in parts:
            if isinstance(part, _Leaf):
                flat += [part.margins[0], part, part.margins[1]]
                node.children.append(part.node)
            else:  # a list: its margins collapse with its first and last item's
                margins, leaves, role = part
                flat.append(margins[0])
                child = Node(role)
                for leaf in leaves:
                    flat += [leaf.margins[0], leaf, leaf.margins[1]]
                    child.children.append(leaf.node)
                flat.append(margins[1])
                node.children.append(child)
        flat.append(self.g["section"]["margins"][1])
        return flat, node, name

    def paginate(self, sections: Sequence[tuple[list[Any], Node, str]],
                 start: tuple[int, float], max_pages: int,
                 placed: list[int] | None = None) -> list[list[Placed]]:
        """Sections placed from start (page offset 0, border top of the first
        section), moving on to later pages' content tops as needed."""
        pages: list[list[Placed]] = [[]]
        bottom = self.g["pages"]["bottom"]
        tops = self.g["pages"]["tops"]
        page_index = start[0]
        cursor, pending = start[1], None  # pending: margins waiting above the next leaf
        for flat, node, name in sections:
            leading, body = _leading(flat)
            top = cursor + (max([pending, *leading]) if pending is not None else 0.0)
            height, trailing = _height(body)
            room = bottom - (top + height)
            if abs(room) < PAGE_SLACK:
                raise Unsure("a page break is too close to call")
            if room < 0:
                if not self.g["whole"].get(name, False):
                    raise Unsure(f"a plan section ({name}) that would break across pages")
                if len(pages) == max_pages:
                    raise Unsure("the plan needs more pages than its template has")
                kept = self.g["pages"].get("margins_kept")
                if kept is None:
                    raise Unsure("a plan over two pages, and the calibration's was not")
                pages.append([])
                page_index += 1
                top = tops[page_index] + (max(leading) if kept and leading else 0.0)
                if bottom - (top + height) < PAGE_SLACK:
                    raise Unsure("a section longer than a page")
            pages[-1].append(self._draw(body, node, top))
            if placed is not None:
                placed.append(len(placed))
            cursor, pending = top + height, max(trailing) if trailing else 0.0
        return pages

    def _draw(self, body: list[Any], node: Node, top: float) -> Placed:
        y, pending = top, None
        art, lines = [], []
        for item in body:
            if isinstance(item, _Leaf):
                y += pending or 0.0
                ops, seen = item.draw(y)
                if ops:
                    item.node.ops = ops
                lines += seen
                if item.art:
                    art.append(item.art(y))
                y += item.height
                pending = None
            else:
                pending = item if pending is None else max(pending, item)
        return Placed(node, art, lines)


def _leading(flat: list[Any]) -> tuple[list[float], list[Any]]:
    """The margins before the first leaf, and the rest."""
    for i, item in enumerate(flat):
        if isinstance(item, _Leaf):
            return list(flat[:i]), flat[i:]
    raise Unsure("an empty section")


def _height(body: list[Any]) -> tuple[float, list[float]]:
    """From the first leaf's border top to the last leaf's border bottom, and the
    margins after it."""
    y, pending, last_end, trailing = 0.0, 0.0, 0.0, []
    for item in body:
        if isinstance(item, _Leaf):
            y += pending
            y += item.height
            last_end, pending, trailing = y, 0.0, []
        else:
            pending = max(pending, item)
            trailing.append(item)
    return last_end, trailing


def plan_sections(layout: PlanLayout, labels: dict[str, str], follow_up: str,
                  instructions: Sequence[str], medications: Sequence[tuple[str, str]]
                  ) -> list[tuple[list[Any], Node]]:
    """The plan's sections as packet.html.j2 lays them out (medicines, the
    nurse's instructions, follow-up), each only when it has something to say."""
    sections = []
    if medications:
        sections.append(layout.section("medicines", [
            layout.text("h2", labels["medicines_title"], "H2"),
            layout.text("p", labels["medicines_intro"], "P"),
            layout.table((labels["medicine_name"], labels["medicine_instruction"]), medications),
        ]))
    if instructions:
        sections.append(layout.section("nurse-instructions", [
            layout.text("h2", labels["nurse_instructions_title"], "H2"),
            (layout.g["ul"]["margins"], layout.items(instructions), "L"),
        ]))
    follow = [layout.text("h2", labels["follow_up_title"], "H2")]
    if follow_up:
        follow.append(layout.text("follow_up_text", follow_up, "P"))
    follow.append(layout.text("note", labels["results_note"], "P"))
    sections.append(layout.section("follow-up", follow))
    return sections


def verify(geometry: dict[str, Any], shaper: Shaper, labels: dict[str, str],
           plan: dict[str, Any]) -> None:
    """The model must lay out the calibration plan exactly as WeasyPrint did
    (every line's text, x and baseline within measure.EPSILON); else Unsure."""
    layout = PlanLayout(geometry, shaper)
    sections = plan_sections(layout, labels, plan["follow_up"], plan["instructions"],
                             [(m["name"], m["instruction"]) for m in plan["medications"]])
    first_page, start = geometry["pages"]["calibration_start"]
    pages_known = len(geometry["pages"]["tops"])
    # Sections the model cannot place (one WeasyPrint broke across pages) end
    # the comparison; at least the first must be placed.
    placed: list[int] = []
    try:
        pages = layout.paginate(sections, (first_page, start), pages_known, placed)
    except Unsure:
        if not placed:
            raise
        pages = layout.paginate(sections[:len(placed)], (first_page, start), pages_known)
    ours = sorted((first_page + n, text.strip(), x, y) for n, on_page in enumerate(pages)
                  for section in on_page for text, x, y in section.lines if text.strip())
    theirs = sorted(tuple(line[1:]) for line in geometry["calibration_lines"]
                    if line[0] < len(placed))
    if len(ours) != len(theirs):
        raise Unsure("the plan model does not match the stylesheet (lines)")
    for a, b in zip(ours, theirs, strict=True):
        if a[0] != b[0] or a[1] != b[1] or abs(a[2] - b[2]) > measure.EPSILON \
                or abs(a[3] - b[3]) > measure.EPSILON:
            raise Unsure("the plan model does not match the stylesheet (positions)")
