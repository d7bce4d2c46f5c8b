"""The fast path draws every word where the full render draws it.

Each variant (type x language x print size x paper, long and non-Latin names,
a plan over two pages) is rendered once both ways; the packets must have the
same page count, the same words at the same places (within 0.5 pt, read back
by PDFium) and the same structure tree shape (element types in order). A
copy of the stylesheet with other margins, paddings and font size must give,
packet by packet, either the same result or a full render: never a fast
packet that differs. A template build that fails falls back to the full
render, and the batch counts it.
"""

from __future__ import annotations

import csv
import io
import itertools
import shutil

import pikepdf
import pypdfium2 as pdfium
import pytest

from conftest import record
from myelo_docs.assets import templates_dir
from myelo_docs.render.engine import Renderer, get_renderer
from myelo_docs.render.fastpath import cache as template_cache
from myelo_docs.render.fastpath.unsure import Unsure
from myelo_docs.schema.record import validate_record

TOLERANCE = 0.5  # pt

MEDS = [
    {"name": "Warfarin", "instruction": "Restart on Friday unless your doctor tells you "
                                        "otherwise, and check your INR next week."},
    {"name": "Insulin glargine", "instruction": "Take your usual evening dose."},
    {"name": "Metformin", "instruction": "Restart 48 hours after the test."},
]
INSTRUCTIONS = ["No baths for 3 days; showers are fine.",
                "Keep the bandage dry until tomorrow morning, then take it off."]


def words(pdf: bytes) -> list[list[tuple[str, float, float]]]:
    """Per page, each word with the left and bottom of its first character, in pt."""
    document = pdfium.PdfDocument(pdf)
    pages = []
    try:
        for page in document:
            text = page.get_textpage()
            found, current, start = [], "", None
            for i in range(text.count_chars() + 1):
                ch = text.get_text_range(i, 1) if i < text.count_chars() else " "
                if ch.isspace() or not ch:
                    if current:
                        found.append((current, *start))
                    current, start = "", None
                    continue
                if not current:
                    left, bottom, _, _ = text.get_charbox(i)
                    start = (left, bottom)
                current += ch
            pages.append(found)
    finally:
        document.close()
    return pages


def tag_shape(pdf: bytes) -> list[str]:
    """The structure elements' types in document order."""
    out: list[str] = []
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        def walk(node: pikepdf.Object) -> None:
            if isinstance(node, pikepdf.Array):
                for kid in node:
                    walk(kid)
                return
            if not isinstance(node, pikepdf.Dictionary) or "/S" not in node:
                return
            out.append(str(node.S))
            if "/K" in node:
                walk(node.K)

        walk(doc.Root.StructTreeRoot.K)
    return out


def assert_same_by_position(fast: bytes, full: bytes) -> None:
    a, b = words(fast), words(full)
    assert len(a) == len(b), f"{len(a)} pages from the template, {len(b)} in full"
    for number, (ours, theirs) in enumerate(zip(a, b, strict=True), start=1):
        left = list(theirs)
        for word, x, y in ours:
            match = next((w for w in left if w[0] == word and abs(w[1] - x) <= TOLERANCE
                          and abs(w[2] - y) <= TOLERANCE), None)
            assert match is not None, (
                f"page {number}: a word at ({x:.1f}, {y:.1f}) is not where the full render "
                f"has it: {[w[1:] for w in theirs if w[0] == word]}")
            left.remove(match)
        assert not left, f"page {number}: {len(left)} words only in the full render"
    assert tag_shape(fast) == tag_shape(full)


def both(renderer: Renderer, data: dict) -> tuple[object, object]:
    return renderer.packet(data), renderer.packet(data, full_render=True)


VARIANTS = list(itertools.product(("cervical", "thoracic", "lumbar"), ("en", "es"),
                                  (False, True), ("letter", "a4")))


@pytest.fixture(scope="module")
def renderers() -> dict[str, Renderer]:
    return {paper: get_renderer(paper=paper) for paper in ("letter", "a4")}


@pytest.mark.parametrize("type_name,language,large,paper", VARIANTS,
                         ids=["-".join(map(str, v)) for v in VARIANTS])
def test_every_variant_is_drawn_where_the_full_render_draws_it(renderers, type_name,
                                                               language, large, paper):
    # The largest of these plans the fast path draws (how much room the plan's
    # page leaves depends on the text before it); a Spanish date of birth takes
    # two header lines in large print.
    renderer = renderers[paper]
    candidates = [record(type=type_name, language=language, large_print=large,
                         medications=MEDS[:meds], instructions=INSTRUCTIONS[:items],
                         follow_up="Spine clinic in 2 weeks.")
                  for meds, items in ((2, 1), (1, 1), (1, 0), (0, 1), (0, 0))]
    data = candidates[-1]
    for candidate in candidates:
        try:
            renderer.fast_packets().packet(validate_record(candidate))
        except Unsure:
            continue
        data = candidate
        break
    fast, full = both(renderer, data)
    assert fast.path == "fast"
    assert_same_by_position(fast.pdf, full.pdf)


NAMES = {
    "long": "Maximiliana Bartholomew-Fitzwilliam Abernathy-Whitcombe",
    "vietnamese": "Nguyễn Thị Ánh",
    "greek": "Ελένη Παππά",
    "arabic": "سارة أحمد",
    "hebrew": "שרה כהן",
}


@pytest.mark.parametrize("name", list(NAMES))
def test_long_and_non_latin_names(renderers, name):
    """Drawn fast where the fast path can, else in full: the same either way."""
    data = record(patient_name=NAMES[name], nurse=NAMES[name], medications=MEDS[:1])
    fast, full = both(renderers["letter"], data)
    if name in ("vietnamese", "greek"):
        assert fast.path == "fast"
    assert_same_by_position(fast.pdf, full.pdf)


@pytest.mark.parametrize("large", [False, True], ids=["standard", "large print"])
def test_a_plan_over_two_pages(renderers, large):
    """The follow-up (a section that stays whole) moves to the next page: the
    first follow-up long enough to do so is drawn where the full render draws it
    (today's large-print second page was 11 pt higher from the template)."""
    renderer = renderers["letter"]
    short = renderer.packet(record(medications=[], instructions=[], large_print=large))
    # The search asks the fast path alone (a full render per try would be slow).
    for meds, items, sentences in itertools.product(range(4), range(12), (9, 6, 3, 1)):
        data = record(medications=MEDS[:meds], instructions=["Rest today."] * items,
                      large_print=large,
                      follow_up="Spine clinic in 2 weeks, on the second floor. " * sentences)
        try:
            fast = renderer.fast_packets().packet(validate_record(data))
        except Unsure:
            continue
        if fast.pages > short.pages:
            break
    else:
        pytest.fail("no follow-up moved to a second plan page on the fast path")
    assert fast.pages == short.pages + 1
    assert_same_by_position(fast.pdf, renderer.packet(data, full_render=True).pdf)


def _broken_plan(medicines: int, items: int) -> dict:
    """Rows and items of one to three lines, named so a test can find their pages."""
    sentence = ("Take one tablet with water in the morning and one with food in the evening "
                "unless your doctor says to stop")

    def text(count: int) -> str:
        return " ".join(sentence.split()[:count])

    return {"medications": [{"name": f"Medzero {i}", "instruction": text(3 + 7 * i % 17)}
                            for i in range(medicines)],
            "instructions": [f"Itemzero {i}: {text(2 + 5 * i % 19)}" for i in range(items)]}


def _spans(pdf: bytes, marker: str) -> bool:
    return len({n for n, page in enumerate(words(pdf)) for w in page if w[0] == marker}) == 2


BROKEN = ("table", "list", "table then list")
BROKEN_VARIANTS = [(plan, *variant) for plan in BROKEN
                   for variant in (("en", False, "letter"), ("en", True, "letter"),
                                   ("es", False, "a4"))]


@pytest.mark.parametrize("plan,language,large,paper", BROKEN_VARIANTS,
                         ids=["-".join(map(str, v)) for v in BROKEN_VARIANTS])
def test_a_plan_broken_between_rows_and_items(renderers, plan, language, large, paper):
    """A medicines table goes on over the page break between rows (its header
    row again on top), a list between items: drawn fast, every word where the
    full render has it, one Table and one list in the tag tree."""
    renderer = renderers[paper]
    # The first plan of this kind whose table (or list) the fast path breaks
    # over two pages (the search asks the fast path alone).
    tries = {"table": [(n, 0) for n in range(1, 16)],
             "list": [(m, n) for m in range(0, 10, 3) for n in range(1, 16)],
             "table then list": [(n, 4) for n in range(1, 16)]}[plan]
    for medicines, items in tries:
        data = record(language=language, large_print=large, **_broken_plan(medicines, items))
        try:
            fast = renderer.fast_packets().packet(validate_record(data))
        except Unsure:
            continue
        if _spans(fast.pdf, "Itemzero" if plan == "list" else "Medzero"):
            break
    else:
        pytest.fail(f"no {plan} broken over two pages on the fast path")
    fast, full = both(renderer, data)
    assert fast.path == "fast"
    assert_same_by_position(fast.pdf, full.pdf)
    # One Table, its header row once (the repeated row is an artifact), one list.
    bare = renderer.packet(record(language=language, large_print=large,
                                  medications=[], instructions=[]))
    shape, before = tag_shape(fast.pdf), tag_shape(bare.pdf)
    assert shape.count("/Table") - before.count("/Table") == (1 if medicines else 0)
    assert shape.count("/TH") - before.count("/TH") == (2 if medicines else 0)
    assert shape.count("/L") - before.count("/L") == (1 if items else 0)


@pytest.mark.parametrize("medicines,items", [(8, 10), (12, 15)])
def test_a_long_plan_over_three_and_four_pages(renderers, medicines, items):
    """A large-print plan of many medicines and instructions takes three or
    four pages, from a template with a place on each: drawn fast, every word
    where the full render has it, pages that hold only rows or items going on
    from the page before leave no empty part in the tag tree."""
    data = record(large_print=True, **_broken_plan(medicines, items))
    fast, full = both(renderers["letter"], data)
    assert fast.path == "fast"
    plan_pages = {n for n, page in enumerate(words(fast.pdf)) for w in page
                  if w[0] in ("Medzero", "Itemzero")}
    assert len(plan_pages) == (3 if medicines == 8 else 4)
    assert_same_by_position(fast.pdf, full.pdf)


LONG_INTRO = ("Find each of your medicines below in the table. Do what it says under "
              "\u201cWhat to do\u201d for each one of them, every day, until your doctor or "
              "your nurse tells you something else. Your nurse wrote these steps for you "
              "today, so keep this page with your other papers and bring it to the clinic. "
              "Ask us if anything here is not clear to you.")


def test_a_long_paragraph_near_a_page_end_is_left_to_the_full_render(tmp_path):
    """A hospital's long medicines intro (five lines in large print) that
    WeasyPrint may break between its lines at a page end: the fast path does
    not model that, so such a packet is rendered in full, never drawn
    differently (found in review: the whole section moved a page on)."""
    site = tmp_path / "site"
    (site / "content" / "en").mkdir(parents=True)
    (site / "site.toml").write_text('name = "Test Site"\n[content]\ntext_reviewed = 2026-11-20\n',
                                    encoding="utf-8")
    (site / "content" / "en" / "labels.toml").write_text(
        f'[labels]\nmedicines_intro = "{LONG_INTRO}"\n', encoding="utf-8")
    renderer = get_renderer(site=str(site))
    paths = set()
    for type_name, words_in in (("lumbar", 8), ("thoracic", 40)):
        instruction = " ".join(("Take one tablet with water in the morning and another one "
                                "with food. " * 5).split()[:words_in])
        data = record(type=type_name, large_print=True, instructions=["Rest."],
                      medications=[{"name": "Warfarin", "instruction": instruction}])
        fast, full = both(renderer, data)
        paths.add(fast.path)
        if fast.path == "fast":
            assert_same_by_position(fast.pdf, full.pdf)
    assert "full" in paths


# A restyled copy of the stylesheet: the rules below are appended, so they win.
RESTYLED = """
/* test: another house style */
p { margin: 0 0 5mm; }
li { margin-bottom: 2.5mm; }
.medicines-table th, .medicines-table td { padding: 3mm 4mm; }
html { font-size: 13pt; }
"""


def restyled_renderer(tmp_path_factory, css: str) -> Renderer:
    """A renderer of a copy of the templates whose stylesheet ends with css."""
    folder = tmp_path_factory.mktemp("site") / "templates"
    shutil.copytree(templates_dir(), folder)
    with (folder / "print.css").open("a", encoding="utf-8") as fh:
        fh.write(css)
    return Renderer(templates=folder)


@pytest.fixture(scope="module")
def restyled(tmp_path_factory) -> Renderer:
    return restyled_renderer(tmp_path_factory, RESTYLED)


def test_a_restyled_stylesheet_is_followed_or_left_to_the_full_render(restyled):
    """Each packet either comes out the same both ways or is rendered in full:
    never a fast packet that differs. The new margins are followed, not ignored."""
    drawn_fast = 0
    # Bigger text and margins leave less room: the plans move to the next page
    # or break there at other rows, as WeasyPrint does with this stylesheet.
    for data in (record(medications=[], instructions=["Rest today.", "Drink water."]),
                 record(type="cervical", medications=MEDS[:1], instructions=["Rest today."]),
                 record(type="thoracic", language="es", medications=MEDS,
                        instructions=INSTRUCTIONS, follow_up="Clínica el 10 de diciembre.")):
        fast, full = both(restyled, data)
        assert fast.path in ("fast", "full")
        if fast.path == "fast":
            drawn_fast += 1
            assert_same_by_position(fast.pdf, full.pdf)
    assert drawn_fast, "the fast path should derive this stylesheet's layout"


# Break rules a hospital might add: keep the medicines table and the nurse's
# list with what follows them. WeasyPrint then breaks earlier (inside the
# table, or before the list's last item) where the next section must move.
RESTYLED_BREAKS = """
/* test: keep-with-next rules */
.medicines-table { break-after: avoid; }
ul { break-after: avoid; }
"""


@pytest.fixture(scope="module")
def restyled_breaks(tmp_path_factory) -> Renderer:
    return restyled_renderer(tmp_path_factory, RESTYLED_BREAKS)


def test_break_rules_at_a_table_or_list_end_are_followed_or_left_to_the_full_render(
        restyled_breaks):
    """The break values at a table's or a list's end (the table's, the list's,
    not only the last row's or item's) keep it with the next section: where
    that section must move to the next page, the packet is rendered in full;
    every packet drawn fast is drawn where the full render draws it (found in
    review: a table's last rows stayed on the page the full render moved them
    off)."""
    paths = []
    for medicines, items in itertools.product((0, 4, 8), (0, 2, 4, 6)):
        data = record(**_broken_plan(medicines, items))
        fast, full = both(restyled_breaks, data)
        paths.append(fast.path)
        if fast.path == "fast":
            assert_same_by_position(fast.pdf, full.pdf)
    assert "full" in paths and paths.count("fast") >= len(paths) // 2, paths


_SENTENCE = ("Take one tablet with water in the morning and one with food in the evening "
             "unless your doctor says to stop and then call the clinic on the number below")
_WORDS = _SENTENCE.split(" ")


def _long(count: int, start: int = 0) -> str:
    return " ".join((_WORDS * 4)[start:start + count])


# Rules that give some items or rows other break values than the rest (by
# their place, or alone in their list), or let them break inside: each with a
# plan that drew a packet the full render draws otherwise before the model
# learnt them (found in review).
BY_PLACE = [
    ("li:first-child { break-before: avoid; }", False, _broken_plan(6, 6)),
    ("li:only-child { break-after: avoid; }", False,
     {**_broken_plan(6, 0), "instructions": [f"Itemzero 0: {_long(25)}"]}),
    ("tr:only-child { break-after: avoid; }", True,
     {"medications": [{"name": "Medzero 0", "instruction": _long(25)}],
      "instructions": _broken_plan(0, 6)["instructions"]}),
    (".medicines-table tr { break-inside: auto; }", False,
     {"medications": [{"name": f"Medzero {k}", "instruction": _long(45, k)[:270]}
                      for k in range(11)], "instructions": []}),
]


@pytest.mark.parametrize("css,large,plan", BY_PLACE, ids=[c.split("{")[0].strip()
                                                         for c, _, _ in BY_PLACE])
def test_break_rules_by_place_or_inside_are_followed_or_left_to_the_full_render(
        tmp_path_factory, css, large, plan):
    renderer = restyled_renderer(tmp_path_factory, css)
    fast, full = both(renderer, record(large_print=large, **plan))
    if css.startswith("li:first-child"):  # measured on first items: followed, not refused
        assert fast.path == "fast"
    if fast.path == "fast":
        assert_same_by_position(fast.pdf, full.pdf)


def test_the_space_above_headings_is_one_value_the_fast_path_follows(tmp_path_factory):
    """print.css states the space above a section's heading once (--heading-space):
    changed there, the plan marker moves with the headings and the packet is still
    drawn fast, where the full render draws it. A heading's top margin set apart
    from the marker's is refused (the marker stands for the plan's first heading)."""
    data = record(medications=MEDS, instructions=INSTRUCTIONS)
    moved = restyled_renderer(tmp_path_factory, ":root { --heading-space: 7mm; }")
    fast, full = both(moved, data)
    assert fast.path == "fast"
    assert_same_by_position(fast.pdf, full.pdf)
    assert words(full.pdf) != words(get_renderer().packet(data, full_render=True).pdf)
    apart = restyled_renderer(tmp_path_factory, "h2 { margin-top: 7mm; }")
    assert apart.packet(data).path == "full"


def test_a_template_build_that_fails_falls_back_and_is_counted(tmp_path, monkeypatch, caplog):
    from myelo_docs.batch.run import run_batch
    from myelo_docs.render.fastpath import template as template_module

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the template build")

    monkeypatch.setenv("MYELO_DOCS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(template_module, "build", broken)
    monkeypatch.setattr(template_cache, "build", broken)
    # batch workers may hold a renderer whose templates are already in memory
    monkeypatch.setattr(template_cache.TemplateCache, "get", broken)
    data = record(patient_name="Fallback Patient")
    with caplog.at_level("WARNING", logger="myelo_docs.render.fastpath"):
        document = Renderer().packet(data)
    assert document.path == "fallback"
    assert document.pages == get_renderer().packet(data, full_render=True).pages
    assert "RuntimeError" in caplog.text and "Fallback" not in caplog.text

    source = tmp_path / "rows.csv"
    with source.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["type", "patient_name", "date_of_birth", "mrn", "procedure_date"])
        writer.writerow(["lumbar", "Row One", "1950-01-01", "FB-0000001", "2026-11-27"])
        writer.writerow(["cervical", "Row Two", "1951-02-02", "FB-0000002", "2026-11-27"])
    summary = run_batch(source, tmp_path / "out", jobs=1)
    assert summary.ok == 2 and summary.fallbacks == 2
    with (tmp_path / "out" / "manifest.csv").open(encoding="utf-8") as fh:
        assert [line["render"] for line in csv.DictReader(fh)] == ["fallback", "fallback"]
