"""A patient's plan (medicines, the nurse's instructions, follow-up) laid out
with the geometry WeasyPrint gave a calibration plan (measure_plan), line
breaking and shaping by Pango (shaping.py).

The model places blocks (headings, paragraphs, list items, table rows) one
under another with CSS margin collapsing (the largest of adjoining margins).
A section that does not fit is broken before the last block that fits where
the break-before/after values at the blocks' edges allow it (never inside a
row or an item: ``break-inside: avoid``; never right after a table's header
row), and goes on at the next page's top (a table with its header row again,
as an artifact); with no such place, it moves whole to the next page, where
its leading margins are dropped or kept as WeasyPrint does. Sections the
stylesheet keeps whole (``break-inside: avoid``) only move. The values at an
edge are those WeasyPrint weighs there: a table's own with its last row's, a
list's with its last item's, the plan's with what ends before it; an item's
or a row's by its place (first, middle, last, alone: check_alone). A section
kept with the one before it that must move is Unsure: WeasyPrint would break
earlier, inside the section before. So is an item or a row the stylesheet
lets break inside, near a page end.

Where a broken section goes on, and every rule above, is measured and proved
when a template is built (``verify``): on the calibration plan, and on a plan
long enough to be broken between rows and items (SPLIT_CALIBRATION_PLANS), the
model must put every line where WeasyPrint put it, or the template does not
break sections (or is not used). A page bottom too close to a block's to call
raises Unsure.
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

# A plan long enough that WeasyPrint breaks its table between rows and its
# list between items (rows and items of one, two and three lines), from
# which the model learns where a broken section goes on and is proved.
_SENTENCE = ("Take one tablet with water in the morning, and another one with food in the "
             "evening unless the clinic tells you to stop.")


def _words(count: int) -> str:
    return " ".join(_SENTENCE.split()[:count])


def _split_plan(shift: int) -> dict[str, Any]:
    return {
        "medications": [{"name": "Calibration long medicine name" if i % 7 == 3
                         else f"Calibration {i}", "instruction": _words(4 + (i * 5 + shift) % 19)}
                        for i in range(36)],
        "instructions": [_words(3 + (i * 7 + shift) % 21) for i in range(36)],
        "follow_up": "Spine clinic in two weeks.",
    }


# A second one, for when a page break of the first is too close to call.
SPLIT_CALIBRATION_PLANS = (_split_plan(0), _split_plan(4))

# The measured blocks (measure_plan's keys) a plan's model is made of.
BLOCKS = ("section", "h2", "p", "note", "follow_up_text", "ul", "li", "table")
# Items and rows by position (a stylesheet may give first, middle and last
# ones other break values): the calibration plan has first and last ones,
# the long plan middle ones too.
POSITIONS = ("first", "middle", "last")

# ---- the model's output -------------------------------------------------------------------

@dataclass
class Node:
    """A structure element (PDF/UA tag) and, for a leaf, what it draws (ops in
    WeasyPrint's y-down pixel space, relative to the top of its page's plan)."""

    role: str
    ops: bytes = b""
    children: list[Node] = field(default_factory=list)
    attributes: str = ""
    page: int = 0  # a leaf's page, counted from the plan's first


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
        # Lines from which WeasyPrint may break the block itself across pages
        # (orphans + widows); 0: never (break-inside: avoid).
        "splits_from": 0 if box.style["break_inside"] in ("avoid", "avoid-page")
        else box.style["orphans"] + box.style["widows"],
    }


def measure_plan(document: Any) -> dict[str, Any]:
    """The plan's geometry from the calibration packet's layout (JSON-ready)."""
    from weasyprint.formatting_structure import boxes

    found: dict[str, Any] = {}
    sections: list[tuple[int, Any]] = []
    before_plan: list[str] | None = None  # the break values where the plan begins
    for index, page in enumerate(document.pages):
        for box, parents in measure.walk(page._page_box):
            if measure.tag(box) == "div" and "plan" in measure.classes(box):
                if box.padding_top or box.border_top_width:
                    raise Unsure("padding or a border around the plan")
                if before_plan is None:
                    before_plan = _before_plan(document, index, box, parents)
                sections += [(index, s) for s in box.children if measure.tag(s) == "section"]
    if not sections or before_plan is None:
        raise Unsure("no plan in the calibration packet")
    whole: dict[str, bool] = {}
    order: list[Any] = []  # each section's element once, in order
    breaks: dict[str, dict[str, list[str]]] = {}
    continued: dict[str, float] = {}
    # A box broken over pages has its top margin on its first part and its
    # bottom margin (and a table its bottom border) on its last.
    parts: dict[str, list[Any]] = {}
    for index, section in sections:
        style = section.style
        if section.element in order:  # the section goes on from the page before
            _continued(section, measure.page_area(document.pages[index])[0], continued)
        else:
            order.append(section.element)
        # A section that may break is drawn only where it fits whole (see paginate).
        whole[_section_name(section)] = style["break_inside"] in ("avoid", "avoid-page")
        if style["break_before"] != "auto" or style["break_after"] != "auto":
            raise Unsure("page breaks forced around plan sections")
        _collect(parts, "section", section)
        for child in section.children:
            if child.style["break_before"] in ("page", "left", "right", "recto", "verso") \
                    or child.style["break_after"] in ("page", "left", "right", "recto", "verso"):
                raise Unsure("page breaks forced inside a plan section")
            kind = measure.tag(child)
            if kind in ("h2", "p"):
                key = "follow_up_text" if "follow-up-text" in measure.classes(child) else kind
                if key == "p" and "medicines" not in measure.classes(section):
                    key = "note"
                _break_values(breaks, key, child)
                found.setdefault(key, _text_block(child))
                # A block at the top of a page may have had its top margin
                # dropped there: the margin is the one it has elsewhere.
                top, bottom = found[key]["margins"]
                found[key]["margins"] = (max(top, child.margin_top), bottom)
            elif kind == "ul":
                _break_values(breaks, "ul", child, chain=False)
                source = [e for e in child.element if e.tag == "li"]
                for item in child.children:
                    if measure.tag(item) == "li":
                        kind = "li_" + _position(source, item.element)
                        _break_values(breaks, kind, item)
                        _splits(breaks, kind, item, [b for b in item.children
                                                     if isinstance(b, boxes.BlockBox)])
                if "li" not in found:
                    found["li"] = _list_item(child)
                _collect(parts, "ul", child)
            elif kind == "table":  # from the table down to its header row; up to its body
                _break_values(breaks, "table", child, skip_after=_last_row(child))
                for group in _table_box(child).children:
                    if measure.tag(group) == "tbody":
                        source = [e for e in group.element if e.tag == "tr"]
                        for row in group.children:
                            kind = "tr_" + _position(source, row.element)
                            _break_values(breaks, kind, row)
                            _splits(breaks, kind, row, row.children)
                if "table" not in found:
                    found["table"] = _table(child)
                _collect(parts, "table", child)
            else:
                raise Unsure(f"an unexpected {kind or 'box'} in the plan")
    for key, fragments in parts.items():
        margins = (_margins(fragments[0])[0], _margins(fragments[-1])[1])
        found.setdefault(key, {})["margins"] = margins
    if "table" in parts:
        found["table"]["tail"] = _tail(parts["table"][-1])
    missing = set(BLOCKS) - set(found)
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
    breaks["plan"] = {"before": before_plan, "after": []}  # what the plan's first leaf meets
    found["breaks"] = breaks
    found["continued"] = continued
    found["calibration_lines"] = [
        [order.index(section.element), index, t.text.strip(), t.position_x, measure.baseline(t)]
        for index, section in sections
        for t, _ in measure.text_boxes(section) if t.text.strip()]
    del boxes
    return found


def _break_values(breaks: dict[str, dict[str, list[Any]]], kind: str, box: Any,
                  chain: bool = True, skip_after: Any = None) -> None:
    """A kind of block's break-before and -after values: with ``chain``, those
    WeasyPrint weighs at its edges (its own and those of the first or last
    boxes down inside it, up to skip_after's), else its own only; ["?"] where
    its blocks differ."""
    values = {}
    for side in ("before", "after"):
        edge = _edge(box, side) if chain else [box.style[f"break_{side}"]]
        if side == "after" and skip_after is not None:
            edge = edge[len(_edge(skip_after, side)):]
        values[side] = sorted(set(edge))
    _learn(breaks, kind, values)


def _learn(breaks: dict[str, dict[str, list[Any]]], kind: str,
           values: dict[str, list[Any]]) -> None:
    known = breaks.setdefault(kind, {})
    for side, value in values.items():
        if known.setdefault(side, value) != value:
            known[side] = ["?"]


def merge_breaks(a: dict[str, dict[str, list[Any]]], b: dict[str, dict[str, list[Any]]]
                 ) -> dict[str, dict[str, list[Any]]]:
    """Two layouts' break values in one: ["?"] where they differ."""
    merged = {kind: dict(values) for kind, values in a.items()}
    for kind, values in b.items():
        _learn(merged, kind, values)
    return merged


# A plan with one medicine and one instruction: what a row or an item alone
# in its table or list has (a stylesheet may say so with :only-child).
ALONE_PLAN = {"medications": [{"name": "Alone", "instruction": "Take one."}],
              "instructions": ["Rest today."], "follow_up": "Spine clinic in two weeks."}


def check_alone(breaks: dict[str, dict[str, list[Any]]], root: Any, style_for: Any) -> None:
    """The break values of an item or a row alone in its list or table
    (``li_alone``, ``tr_alone``), from its first and last ones': where only
    one of the two has values other than a middle one's, it has those. Kept
    where WeasyPrint's computed styles of ALONE_PLAN's (root and style_for
    from Renderer.computed_styles) keep with neighbours and break inside as
    they say; else unknown ("?"): such packets go to the full render."""
    for kind, section, tag in (("li", "nurse-instructions", "li"), ("tr", "medicines", "tr")):
        found = [e for s in root.iter("section") if section in (s.get("class") or "").split()
                 for e in s.iter(tag) if tag == "li" or e.find("td") is not None]
        if len(found) != 1:
            raise Unsure("a plan of one medicine and one instruction of another shape")
        first, middle, last = (_breaks_of(breaks, f"{kind}_{p}") for p in POSITIONS)
        alone = {}
        for side in ("before", "after", "inside"):
            differs = [v[side] for v in (first, last) if v[side] != middle[side]]
            alone[side] = (middle[side] if not differs else differs[0]
                           if len(differs) == 1 and "?" not in middle[side] else ["?"])
        own = style_for(found[0])
        parts = [style_for(c) for c in found[0] if c.tag == "td"] or [own]
        agrees = all("?" not in alone[side] and (own[f"break_{side}"] != "auto") == any(
            v != "auto" for v in alone[side]) for side in ("before", "after"))
        avoid = any(p["break_inside"] in ("avoid", "avoid-page") for p in (own, *parts))
        agrees &= alone["inside"] == [0 if avoid else min(
            p["orphans"] + p["widows"] for p in parts)]
        breaks[f"{kind}_alone"] = alone if agrees else {side: ["?"] for side in alone}


def _breaks_of(breaks: dict[str, dict[str, list[Any]]], kind: str) -> dict[str, list[Any]]:
    """A kind's measured break values; ["?"] (unknown) for what was not measured."""
    unknown: dict[str, list[Any]] = {"before": ["?"], "after": ["?"], "inside": ["?"]}
    return {**unknown, **breaks.get(kind, {})}


def _by_position(breaks: dict[str, dict[str, list[Any]]], kind: str, index: int,
                 count: int) -> dict[str, list[Any]]:
    """An item's or a row's break values by its place among count (first,
    middle, last; alone: check_alone's)."""
    if count == 1:
        return _breaks_of(breaks, f"{kind}_alone")
    place = "first" if index == 0 else "last" if index == count - 1 else "middle"
    return _breaks_of(breaks, f"{kind}_{place}")


def _position(source: list[Any], element: Any) -> str:
    """first, middle or last among its siblings in the source (one alone is
    first; check_alone gives what the model uses for it)."""
    index = source.index(element)
    return "first" if index == 0 else "last" if index == len(source) - 1 else "middle"


def _last_row(wrapper: Any) -> Any:
    groups = [g for g in _table_box(wrapper).children if measure.tag(g) == "tbody"]
    if not groups or not groups[-1].children:
        raise Unsure("a table of an unexpected shape")
    return groups[-1].children[-1]


def _splits(breaks: dict[str, dict[str, list[Any]]], kind: str, box: Any,
            blocks: list[Any]) -> None:
    """From how many lines WeasyPrint may break an item or a row across pages
    (orphans + widows of its blocks, the fewest); 0: never (break-inside:
    avoid on it or on one of its blocks)."""
    avoid = ("avoid", "avoid-page")
    if box.style["break_inside"] in avoid or any(b.style["break_inside"] in avoid
                                                  for b in blocks):
        value = 0
    else:
        value = min((b.style["orphans"] + b.style["widows"] for b in blocks), default=0)
    _learn(breaks, kind, {"inside": [value]})


def _edge(box: Any, side: str) -> list[str]:
    from weasyprint.layout.block import _add_break_values

    return list(_add_break_values(box, side))


def _before_plan(document: Any, index: int, plan: Any, parents: tuple[Any, ...]) -> list[str]:
    """The break values between the plan and what comes before it: the
    break-after values at the end of the box before it (on this page or,
    when the plan begins the page, on the page before) and the plan's own
    break-before (its sections' are checked to be auto)."""
    parent = parents[-1]
    earlier = parent.children[:parent.children.index(plan)]
    if not earlier and index:  # the parent's part on the page before
        for box, _ in measure.walk(document.pages[index - 1]._page_box):
            if getattr(box, "element", None) is parent.element and box.children \
                    and measure.tag(box) == measure.tag(parent):
                earlier = box.children
    if not earlier:
        raise Unsure("nothing before the plan to measure a break from")
    return sorted(set(_edge(earlier[-1], "after") + [plan.style["break_before"]]))


def _table_box(wrapper: Any) -> Any:
    from weasyprint.formatting_structure import boxes

    tables = [b for b in wrapper.children if isinstance(b, boxes.TableBox)]
    if len(tables) != 1:
        raise Unsure("a table of an unexpected shape")
    return tables[0]


def _continued(section: Any, page_top: float, continued: dict[str, float]) -> None:
    """Where a section broken over pages goes on at the next page's top: the
    border top of its first list item, or of its table's repeated header row
    (relative to the page's content top)."""
    first = section.children[0] if section.children else None
    kind = measure.tag(first) if first is not None else ""
    if kind == "ul":
        item = next(b for b in first.children if measure.tag(b) == "li")
        value, key = measure.border_top(item) - page_top, "li"
    elif kind == "table":
        groups = {measure.tag(g): g for g in _table_box(first).children}
        if "thead" not in groups or "tbody" not in groups:
            raise Unsure("a table going on over pages without its header row")
        head, body = groups["thead"].children[0], groups["tbody"].children[0]
        if abs(body.position_y - (head.position_y + head.height)) > measure.EPSILON:
            raise Unsure("space between a repeated header row and the next row")
        value, key = head.position_y - page_top, "row"
    else:
        return  # a break the model does not make: verify finds it out
    if key in continued and abs(continued[key] - value) > measure.EPSILON:
        raise Unsure("sections go on at different places on later pages")
    continued[key] = value


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

    table = _table_box(wrapper)
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


def _collect(parts: dict[str, list[Any]], key: str, box: Any) -> None:
    """The parts (one per page) of the first box of its kind."""
    found = parts.setdefault(key, [])
    if not found or found[0].element is box.element:
        found.append(box)


def _tail(wrapper: Any) -> float:
    """From a table's last row to the border bottom of its wrapper."""
    groups = [g for g in _table_box(wrapper).children if g.children]
    last = groups[-1].children[-1]
    return measure.border_top(wrapper) + wrapper.border_height() - (last.position_y + last.height)


def _fill(colour: Any) -> list[float] | None:
    srgb = colour.to("srgb")
    if srgb.alpha == 0:
        return None
    return measure.rgb(colour)


# ---- the model ----------------------------------------------------------------------------

def _rgb(colour: Sequence[float], op: bytes = b"rg") -> bytes:
    return b"%.6f %.6f %.6f %s\n" % (*colour, op)


def _avoid(*sides: Sequence[str]) -> bool:
    """Whether the break values at two blocks' facing edges keep them together."""
    values = [v for side in sides for v in side]
    if any(v not in ("auto", "avoid", "avoid-page") for v in values):
        raise Unsure("break rules the plan model does not follow")
    return any(v != "auto" for v in values)


class _Leaf:
    """A block the model places whole: a heading, a paragraph, a list item, a
    table row (with the table's head: the header row and what is above it).

    ``height`` runs from its border top to its border bottom (a table's last
    row includes the table's bottom border); ``core`` is what must fit on the
    page for WeasyPrint to place it (the last row without that border), so a
    page bottom between the two is too close to call. ``before``/``after``:
    the break-before/after values at its edges; ``draw(top)`` fills its
    node's children and returns the lines drawn."""

    def __init__(self, margins: Sequence[float], height: float, node: Node, draw: Any,
                 kind: str = "block", before: Sequence[str] = ("auto",),
                 after: Sequence[str] = ("auto",),
                 core: float | None = None, table: _Table | None = None,
                 splittable: bool = False):
        self.margins = margins
        self.height = height
        self.core = height if core is None else core
        self.node = node
        self.draw = draw
        self.kind = kind  # block, li, head, row
        self.before = before
        self.after = after
        self.table = table
        self.splittable = splittable  # WeasyPrint may break it between its lines


class _Table:
    """What the rows of one table share: its structure element, its shaped
    header (repeated on the pages it continues on) and how its rules are drawn."""

    def __init__(self, layout: PlanLayout, node: Node, head: list[list[Line]],
                 head_height: float):
        self.layout = layout
        self.node = node
        self.head = head
        self.head_height = head_height

    def art(self, rows: list[tuple[str, float, float]]) -> bytes:
        """Fills and rules of rows (kind, top, height) drawn one under another
        on one page, closed by the last row's bottom rule."""
        t = self.layout.g["table"]
        ops = []
        for kind, y, h in rows:
            cells = t["kinds"][kind]
            for cell in cells:
                if cell["fill"]:
                    ops.append(_rgb(cell["fill"]) + b"%.3f %.3f %.3f %.3f re f\n"
                               % (cell["left"], y, cell["width_box"], h))
            for cell in cells:
                ops.append(_rgb(cell["rule_colour"], b"RG") + b"%.3f w\n" % cell["rule"])
                ops.append(b"%.3f %.3f m %.3f %.3f l S\n" % (cell["left"], y, cell["left"], y + h))
                ops.append(b"%.3f %.3f m %.3f %.3f l S\n"
                           % (cell["left"], y, cell["left"] + cell["width_box"], y))
            last = cells[-1]
            right = last["left"] + last["width_box"]
            ops.append(b"%.3f %.3f m %.3f %.3f l S\n" % (right, y, right, y + h))
        body = t["kinds"]["body"]
        end = rows[-1][1] + rows[-1][2]
        ops.append(b"%.3f %.3f m %.3f %.3f l S\n"
                   % (body[0]["left"], end, body[-1]["left"] + body[-1]["width_box"], end))
        return b"q\n" + b"".join(ops) + b"Q\n"

    def repeated_head(self, top: float) -> tuple[bytes, list[tuple[str, float, float]]]:
        """The header row drawn again (an artifact) with its border top at top."""
        ops, seen = [], []
        for lines, cell in zip(self.head, self.layout.g["table"]["kinds"]["head"], strict=True):
            spans, drawn = self.layout._draw_lines(lines, cell, cell["x"], top + cell["offset"])
            ops += [span.ops for span in spans]
            seen += drawn
        return b"".join(ops), seen


@dataclass
class PlanPage:
    """One page of a plan: its artifacts (table fills, rules, repeated
    headers), the lines drawn (what verify compares), and the sections that
    begin on it (a section broken over pages is one element, on its first)."""

    art: list[bytes] = field(default_factory=list)
    lines: list[tuple[str, float, float]] = field(default_factory=list)
    starts: list[Node] = field(default_factory=list)


@dataclass
class Section:
    name: str
    node: Node
    leaves: list[_Leaf]
    gaps: list[list[float]]  # the margins above each leaf (for the first: the leading ones)
    trailing: list[float]  # the margins after the last leaf


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

    def _breaks(self, kind: str) -> dict[str, list[Any]]:
        return _breaks_of(self.g.get("breaks", {}), kind)

    @staticmethod
    def _splittable(breaks: dict[str, list[Any]], lines: int) -> bool:
        """Whether WeasyPrint may break this item or row across pages."""
        inside = breaks["inside"]
        return inside != [0] and ("?" in inside or 0 < inside[0] <= lines)

    def text(self, kind: str, text: str, role: str) -> _Leaf:
        block = self.g[kind]
        lines = self._lines(text, block)
        node = Node(role)

        def draw(top: float) -> list[tuple[str, float, float]]:
            node.children, seen = self._draw_lines(lines, block, block["x"], top + block["top"])
            return seen

        breaks = self._breaks(kind)
        return _Leaf(block["margins"], block["top"] + len(lines) * block["pitch"], node, draw,
                     before=breaks["before"], after=breaks["after"],
                     splittable=0 < block["splits_from"] <= len(lines))

    def items(self, texts: Sequence[str]) -> list[_Leaf]:
        block = self.g["li"]
        marker = block["marker"]
        marker_lines = self.shaper.lines(marker["text"], self._style(marker["style"]), None)
        ul = self._breaks("ul")
        leaves = []
        for index, text in enumerate(texts):
            lines = self._lines(text, block)
            node = Node("LI", children=[Node("Lbl"), Node("LBody")])

            def draw(top: float, lines: list[Line] = lines, node: Node = node
                     ) -> list[tuple[str, float, float]]:
                x = block["x"] + marker["dx"]
                mark, _ = self.shaper.draw(marker_lines[0], x, top + marker["base"])
                node.children[0].children = [Node("Span", _rgb(marker["colour"]) + mark)]
                spans, seen = self._draw_lines(lines, block, block["x"], top + block["top"])
                node.children[1].children = spans
                return [(marker_lines[0].text, x, top + marker["base"]), *seen]

            breaks = _by_position(self.g.get("breaks", {}), "li", index, len(texts))
            # the list's own values at its first and last item's edges
            before = [*breaks["before"], *(ul["before"] if index == 0 else [])]
            after = [*breaks["after"], *(ul["after"] if index == len(texts) - 1 else [])]
            leaves.append(_Leaf(block["margins"], block["top"] + len(lines) * block["pitch"],
                                node, draw, kind="li", before=before, after=after,
                                splittable=self._splittable(breaks, len(lines))))
        return leaves

    def table(self, head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[_Leaf]:
        """The table's head (what is above the header row, and the header row)
        and one leaf per row; its node is their ``table.node``."""
        t = self.g["table"]
        shaped, heights = [], []
        for r, row in enumerate([head, *rows]):
            cells = t["kinds"]["head" if r == 0 else "body"]
            if len(row) != len(cells):
                raise Unsure("a table row of another width")
            lines = [self._lines(text, cell) for text, cell in zip(row, cells, strict=True)]
            shaped.append(lines)
            heights.append(t["frames"]["head" if r == 0 else "body"] + max(
                len(ls) * cell["pitch"] for ls, cell in zip(lines, cells, strict=True)))
        thead, tbody = Node("THead"), Node("TBody")
        table = _Table(self, Node("Table", children=[thead, tbody]), shaped[0], heights[0])
        breaks = self._breaks("table")
        leaves = []
        for r, lines in enumerate(shaped):
            kind = "head" if r == 0 else "body"
            tr = Node("TR")
            (thead if r == 0 else tbody).children.append(tr)
            offset = t["first_row"] if r == 0 else 0.0

            def draw(top: float, lines: list[list[Line]] = lines, tr: Node = tr, kind: str = kind,
                     offset: float = offset) -> list[tuple[str, float, float]]:
                seen = []
                tr.children = []
                for ls, cell in zip(lines, t["kinds"][kind], strict=True):
                    spans, drawn = self._draw_lines(ls, cell, cell["x"], top + offset
                                                    + cell["offset"])
                    seen += drawn
                    tr.children.append(Node("TH" if kind == "head" else "TD", children=spans,
                                            attributes=("/A << /O /Table /Scope /Column >>"
                                                        if kind == "head" else "")))
                return seen

            last = r == len(shaped) - 1
            row_breaks = (_by_position(self.g.get("breaks", {}), "tr", r - 1, len(rows)) if r else
                          {"before": [], "after": [], "inside": [0]})  # the head: the table's
            leaves.append(_Leaf(
                (t["margins"][0] if r == 0 else 0.0, t["margins"][1] if last else 0.0),
                offset + heights[r] + (t["tail"] if last else 0.0), tr, draw,
                kind="head" if r == 0 else "row", core=offset + heights[r],
                before=breaks["before"] if r == 0 else row_breaks["before"],
                after=[*row_breaks["after"], *(breaks["after"] if last else [])], table=table,
                splittable=self._splittable(row_breaks, max(map(len, lines)))))
        return leaves

    # ---- sections and pages -------------------------------------------------------------

    def section(self, name: str, parts: Sequence[Any]) -> Section:
        """A section of leaves, lists (margins, leaves, role) and tables (a list
        of leaves from table()), with the margins between its leaves."""
        leaves: list[_Leaf] = []
        gaps: list[list[float]] = []
        pending: list[float] = [self.g["section"]["margins"][0]]
        node = Node("Sect")

        def add(leaf: _Leaf) -> None:
            nonlocal pending
            gaps.append([*pending, leaf.margins[0]])
            leaves.append(leaf)
            pending = [leaf.margins[1]]

        for part in parts:
            if isinstance(part, _Leaf):
                add(part)
                node.children.append(part.node)
            elif isinstance(part, list):  # a table
                for leaf in part:
                    add(leaf)
                node.children.append(part[0].table.node)
            else:  # a list: its margins collapse with its first and last item's
                margins, items, role = part
                pending.append(margins[0])
                for leaf in items:
                    add(leaf)
                pending.append(margins[1])
                node.children.append(Node(role, children=[leaf.node for leaf in items]))
        pending.append(self.g["section"]["margins"][1])
        if not leaves:
            raise Unsure("an empty section")
        return Section(name, node, leaves, gaps, pending)

    def _allowed(self, section: Section, a: _Leaf, b: _Leaf) -> bool:
        """May the page break between these two leaves of a section?"""
        if self.g["whole"].get(section.name, False):
            return False
        if a.kind == "head":  # WeasyPrint never breaks right after a table's header
            return False
        return not _avoid(a.after, b.before)

    def paginate(self, sections: Sequence[Section], start: tuple[int, float],
                 max_pages: int) -> list[PlanPage]:
        """Sections placed from start (page index, border top of the first
        section), a section that does not fit broken between leaves where the
        stylesheet allows (on the next page a table's header row comes again)
        or moved whole to the next page."""
        bottom = self.g["pages"]["bottom"]
        tops = self.g["pages"]["tops"]
        continued = self.g.get("continued", {})
        pages = [PlanPage()]
        page = start[0]
        cursor, pending = start[1], None  # pending: margins waiting above the next leaf
        empty = abs(start[1] - tops[page]) < measure.EPSILON  # nothing above on this page
        carry: tuple[list[tuple[str, float, float]], bytes] = ([], b"")  # a table's head again
        previous_after = self._breaks("plan")["before"]  # the template's, above the plan

        def new_page() -> None:
            nonlocal page, empty
            if len(pages) == max_pages:
                raise Unsure("the plan needs more pages than its template has")
            pages.append(PlanPage())
            page += 1
            empty = True

        for section in sections:
            leaves, gaps = section.leaves, section.gaps
            first, fresh = 0, False  # fresh: the section moved whole to a page's top
            while True:
                if first == 0 and not fresh:
                    top = cursor + (max([pending, *gaps[0]]) if pending is not None else 0.0)
                elif first == 0:
                    kept = self.g["pages"].get("margins_kept")
                    if kept is None:
                        raise Unsure("a plan over two pages, and the calibration's was not")
                    top = tops[page] + (max(gaps[0]) if kept else 0.0)
                else:
                    kind = leaves[first].kind
                    if kind not in continued:
                        raise Unsure(f"a plan section ({section.name}) that would break "
                                     "across pages")
                    top = tops[page] + continued[kind]
                    table = leaves[first].table
                    if table is not None:  # its header row comes first
                        ops, seen = table.repeated_head(top)
                        pages[-1].lines += seen
                        carry = ([("head", top, table.head_height)], ops)
                        top += table.head_height
                placed, overflow, y = [], None, top
                for m in range(first, len(leaves)):
                    if m > first:
                        y += max(gaps[m])
                    leaf = leaves[m]
                    if y + leaf.core - PAGE_SLACK < bottom < y + leaf.height + PAGE_SLACK:
                        raise Unsure("a page break is too close to call")
                    if y + leaf.height > bottom:
                        overflow = m
                        break
                    placed.append((leaf, y))
                    y += leaf.height
                if overflow is None:
                    self._commit(pages, page - start[0], section, placed, first, carry)
                    cursor, pending = y, max(section.trailing)
                    empty, carry, previous_after = False, ([], b""), leaves[-1].after
                    break
                # WeasyPrint may break a long paragraph here (the one that
                # overflows, or one before a break it must avoid): not modelled.
                if not self.g["whole"].get(section.name, False) and any(
                        leaf.splittable for leaf in leaves[first:overflow + 1]):
                    raise Unsure("a block that may break across pages")
                cut = next((m for m in range(overflow, first, -1)
                            if self._allowed(section, leaves[m - 1], leaves[m])), None)
                if cut is None:
                    if first == 0 and not fresh and not empty:
                        if _avoid(previous_after, leaves[0].before):
                            raise Unsure("a plan section kept with the one before it")
                        new_page()
                        fresh = True
                        continue
                    raise Unsure("a section longer than a page")
                self._commit(pages, page - start[0], section, placed[:cut - first], first, carry)
                carry = ([], b"")
                new_page()
                first, fresh = cut, False
        return pages

    def _commit(self, pages: list[PlanPage], index: int, section: Section,
                placed: list[tuple[_Leaf, float]], first: int,
                carry: tuple[list[tuple[str, float, float]], bytes]) -> None:
        """Draw leaves placed on one page; a table's fills and rules once its
        rows on this page are known (after a repeated header row: ``carry``,
        that row and its text, drawn over its fill)."""
        page = pages[index]
        if first == 0:
            page.starts.append(section.node)
        rows, head_text = carry
        table = placed[0][0].table if rows else None

        def close() -> None:
            assert table is not None
            page.art.append(table.art(rows) + head_text)

        for leaf, top in placed:
            page.lines += leaf.draw(top)
            _on_page(leaf.node, index)
            if leaf.table is not None:
                table = leaf.table
                if leaf.kind == "head":
                    rows = [("head", top + self.g["table"]["first_row"], table.head_height)]
                else:
                    rows.append(("body", top, leaf.core))
            elif table is not None:
                close()
                table, rows, head_text = None, [], b""
        if table is not None:
            close()


def _on_page(node: Node, index: int) -> None:
    node.page = index
    for child in node.children:
        _on_page(child, index)


def plan_sections(layout: PlanLayout, labels: dict[str, str], follow_up: str,
                  instructions: Sequence[str], medications: Sequence[tuple[str, str]]
                  ) -> list[Section]:
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
    (every line's text, page, x and baseline within measure.EPSILON, the
    repeated header rows too); else Unsure."""
    layout = PlanLayout(geometry, shaper)
    sections = plan_sections(layout, labels, plan["follow_up"], plan["instructions"],
                             [(m["name"], m["instruction"]) for m in plan["medications"]])
    first_page, start = geometry["pages"]["calibration_start"]
    pages = layout.paginate(sections, (first_page, start),
                            len(geometry["pages"]["tops"]) - first_page)
    ours = sorted((first_page + n, text.strip(), x, y) for n, page in enumerate(pages)
                  for text, x, y in page.lines if text.strip())
    theirs = sorted(tuple(line[1:]) for line in geometry["calibration_lines"])
    if len(ours) != len(theirs):
        raise Unsure("the plan model does not match the stylesheet (lines)")
    for a, b in zip(ours, theirs, strict=True):
        if a[0] != b[0] or a[1] != b[1] or abs(a[2] - b[2]) > measure.EPSILON \
                or abs(a[3] - b[3]) > measure.EPSILON:
            raise Unsure("the plan model does not match the stylesheet (positions)")
