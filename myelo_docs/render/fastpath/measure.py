"""What the fast path needs to know about a layout, read from WeasyPrint's box
tree (``document.pages[i]._page_box`` and its descendants) when a template is
built: where each slot's lines sit, where the plan starts and may continue,
and the geometry of every kind of block in the plan, measured on a
calibration packet laid out by the real templates and stylesheet.

Nothing here knows a CSS value: margins, paddings, borders, widths, line
heights, colours and page edges are read from the boxes. Layout rules the plan
model relies on (sections that stay whole, no padding or border between
collapsing margins, left- or right-aligned text) are checked on the boxes,
and a template whose layout breaks one raises Unsure: its packets are
rendered in full.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from myelo_docs.render.fastpath.shaping import capture
from myelo_docs.render.fastpath.unsure import Unsure

EPSILON = 0.01  # px: positions closer than this are the same


def walk(box: Any, parents: tuple[Any, ...] = ()) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """Every box under box (itself first), with its ancestors."""
    yield box, parents
    for child in getattr(box, "children", ()):
        yield from walk(child, (*parents, box))


def classes(box: Any) -> set[str]:
    element = getattr(box, "element", None)
    return set((element.get("class") or "").split()) if element is not None else set()


def tag(box: Any) -> str:
    return getattr(box, "element_tag", "") or ""


def rgb(colour: Any) -> list[float]:
    """A computed colour as sRGB (0-1 floats); Unsure if it is not opaque."""
    srgb = colour.to("srgb")
    if srgb.alpha != 1:
        raise Unsure("a translucent colour")
    return [round(float(v), 6) for v in srgb.coordinates]


def text_boxes(box: Any) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    from weasyprint.formatting_structure import boxes

    for found, parents in walk(box):
        if isinstance(found, boxes.TextBox):
            yield found, parents


def baseline(text_box: Any) -> float:
    """Where WeasyPrint draws a text box's baseline (draw/text.py)."""
    return text_box.position_y + text_box.baseline


def border_top(box: Any) -> float:
    return box.position_y + box.margin_top


def block_of(parents: tuple[Any, ...]) -> Any:
    """The block container whose lines hold a text box."""
    from weasyprint.formatting_structure import boxes

    for parent in reversed(parents):
        if isinstance(parent, boxes.LineBox):
            continue
        if isinstance(parent, boxes.BlockContainerBox):
            return parent
    raise Unsure("a text box outside a block")


def alignment(block: Any) -> str:
    """left or right, as the block aligns its lines; Unsure for anything else."""
    style = block.style
    value = style["text_align_all"]
    last = style["text_align_last"]
    if last not in ("auto", value):
        raise Unsure("a last line aligned apart")
    if style["direction"] != "ltr":
        raise Unsure("right-to-left blocks")
    if value in ("left", "start"):
        return "left"
    if value in ("right", "end"):
        return "right"
    raise Unsure(f"text-align {value}")


def check_plain_text(block: Any, text_box: Any) -> None:
    """The text properties the fast path draws as WeasyPrint does, or none at all."""
    style = text_box.style
    if style["text_transform"] != "none" or style["text_indent"].value != 0 \
            or style["text_decoration_line"] != "none" or style["letter_spacing"] != "normal" \
            or style["word_spacing"] != 0 or style["visibility"] != "visible":
        raise Unsure("text properties the fast path does not draw")
    if block.style["text_indent"].value != 0:
        raise Unsure("an indented first line")


def page_area(page: Any) -> tuple[float, float]:
    """(top, bottom) of a page's content area, px."""
    box = page._page_box
    top = box.content_box_y()
    return top, top + box.height


def style_of(text_box: Any) -> dict[str, Any]:
    return capture(text_box.style)


def margins_kept_after_breaks(document: Any) -> bool | None:
    """Whether a block that a page break moved to the top of the next page keeps
    its top margin there, as WeasyPrint laid out this document (CSS truncates
    it at unforced breaks; WeasyPrint keeps it after pages it counts as forced,
    such as named pages). None if no page shows it."""
    from weasyprint.formatting_structure import boxes

    answers = set()
    started: set[int] = set()
    for page in document.pages:
        top = page_area(page)[0]
        forced = False
        for box, _ in walk(page._page_box):
            if tag(box) == "main" and id(box.element) not in started:
                started.add(id(box.element))
                forced = True  # main + main: a page the stylesheet starts on purpose
            if forced or not isinstance(box, boxes.BlockBox) or box.element is None \
                    or tag(box) in ("main", "body", "html"):
                continue
            wanted = box.style["margin_top"]
            if getattr(wanted, "value", 0) and abs(box.position_y - top) < EPSILON:
                answers.add(box.margin_top > EPSILON)
                break
            if box.position_y > top + EPSILON:
                break
    return answers.pop() if len(answers) == 1 else None
