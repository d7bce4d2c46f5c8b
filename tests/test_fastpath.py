"""The fast path: packets from cached templates must read exactly like full renders.

Every type, language and print size is compared page by page with the full
WeasyPrint render of the same record (pypdf text, in reading order and in
layout order), and so are the cases the fast path must hand back to the
full render.
"""

from __future__ import annotations

import io
import os

import pytest
from pypdf import PdfReader

from conftest import record
from myelo_docs import SelfCheckError, get_renderer
from myelo_docs.render.fastpath import cache as template_cache
from myelo_docs.render.fastpath import template
from myelo_docs.render.fastpath.packet import FastPackets
from myelo_docs.schema.record import validate_record

MEDS = [
    {"name": "Warfarin", "instruction": "Restart on Friday unless your doctor tells you "
                                        "otherwise, and check your INR next week."},
    {"name": "Insulin glargine", "instruction": "Take your usual evening dose."},
    {"name": "Metformin", "instruction": "Restart 48 hours after the test."},
]
LONG_PLAN = {
    "medications": MEDS * 2,
    "instructions": ["No baths for 3 days; showers are fine.",
                     "Keep the bandage dry until tomorrow morning, then take it off.",
                     "Do not lift anything heavier than a gallon of milk this week."],
}


def texts(pdf: bytes, mode: str) -> list[str]:
    reader = PdfReader(io.BytesIO(pdf))
    return [" ".join(page.extract_text(extraction_mode=mode).split()) for page in reader.pages]


def assert_reads_the_same(fast: bytes, full: bytes) -> None:
    """Layout mode places text by where it is on the page, as a reader sees it: it must
    match line for line. Plain mode follows drawing order, where the fast path may draw
    a list's bullets before its items rather than after: the same words, then."""
    a, b = texts(fast, "layout"), texts(full, "layout")
    assert len(a) == len(b)
    for number, (x, y) in enumerate(zip(a, b, strict=True), start=1):
        assert x == y, f"page {number} differs"
    for number, (x, y) in enumerate(zip(texts(fast, "plain"), texts(full, "plain"),
                                        strict=True), start=1):
        assert sorted(x.split()) == sorted(y.split()), f"page {number} has other words"


CASES = {
    "lumbar en": record(),
    "cervical en, no plan, no doctor or nurse": record(
        type="cervical", medications=[], instructions=[], follow_up=None, physician=None,
        nurse=None),
    "thoracic en, accents": record(type="thoracic", patient_name="Zoë Fernández-O'Brien",
                                   nurse="Søren Åberg", medications=MEDS),
    "lumbar es": record(language="es", medications=MEDS[:1], instructions=[],
                        follow_up="Cita en la clínica el 10 de diciembre."),
    "cervical es": record(type="cervical", language="es", medications=[]),
    "thoracic es": record(type="thoracic", language="es", instructions=[]),
    "lumbar large print": record(large_print=True),
    "thoracic large print": record(type="thoracic", large_print=True, instructions=[]),
    "names in the fallback face": record(patient_name="Дмитрий Иванов",
                                         nurse="Ελένη Παππά", physician="Dr. Nguyễn Thị Ánh"),
    "a name in the fallback face, large print": record(patient_name="Дмитрий Иванов",
                                                       large_print=True),
    "a plan broken over pages, large print": record(**LONG_PLAN, large_print=True),
    "a name on two header lines": record(
        patient_name="Maximiliana Bartholomew-Fitzwilliam Abernathy-Whitcombe"),
    "es large print: the date of birth on two header lines": record(language="es",
                                                                   large_print=True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fast_packet_reads_like_the_full_render(renderer, case):
    fast = renderer.packet(CASES[case])
    assert fast.path == "fast", "this record should not need the full render"
    full = renderer.packet(CASES[case], full_render=True)
    assert full.path == "full"
    assert fast.pages == full.pages
    assert_reads_the_same(fast.pdf, full.pdf)
    assert fast.tagged


@pytest.mark.parametrize("changes", [
    {"patient_name": "سارة أحمد"},  # a right-to-left script
    {"instructions": ["Спросите врача."]},  # the plan is drawn in the main face only
    {"mrn": "MRN" + "7" * 35, "large_print": True},  # broken inside a word in the header
    {"instructions": ["x" * 300]},  # a word wider than the page
    # three header lines; a name the two tables break at other places
    {"patient_name": "Ελένη Παππά Καραγιαννοπούλου Αλεξανδροπούλου", "large_print": True},
    {"patient_name": "Maximiliana Bartholomew-Fitzwilliam Abernathy-Whitcombe",
     "large_print": True},
], ids=["arabic", "cyrillic plan", "long mrn", "long word", "name over three header lines",
        "name broken otherwise in the two tables"])
def test_records_the_fast_path_cannot_draw_exactly_get_the_full_render(renderer, changes):
    document = renderer.packet(record(**changes))
    assert document.path == "full"


@pytest.mark.parametrize("length", [30, 34, 38, 42])
def test_names_near_the_header_width_read_the_same_either_way(renderer, length):
    """Whichever path a name of this length takes, the packet reads like the full render."""
    name = ("Annabel Winterbottom-Featherstonehaugh Q" * 2)[:length].strip()
    data = record(patient_name=name, large_print=length % 4 == 2)
    assert_reads_the_same(renderer.packet(data).pdf,
                          renderer.packet(data, full_render=True).pdf)


def test_templates_are_shared_through_the_disk_cache(tmp_path, monkeypatch):
    renderer = get_renderer()
    record_ = validate_record(record(type="thoracic"))
    first = FastPackets(renderer, tmp_path).packet(record_)
    files = list(tmp_path.glob("*.tmpl"))
    assert len(files) == 2  # the calibration and the template

    def no_render(*args, **kwargs):
        raise AssertionError("the template should have come from the disk cache")

    monkeypatch.setattr(template_cache, "build", no_render)
    again = FastPackets(renderer, tmp_path).packet(record_)
    assert again.pdf == first.pdf  # byte for byte

    for file in files:  # damaged: rebuilt, not trusted
        file.write_bytes(file.read_bytes()[:-100])
    monkeypatch.setattr(template_cache, "build", template.build)
    rebuilt = FastPackets(renderer, tmp_path).packet(record_)
    assert rebuilt.pdf == first.pdf


def test_the_cache_folder_is_the_users_own(tmp_path, monkeypatch):
    monkeypatch.setenv("MYELO_DOCS_CACHE_DIR", str(tmp_path / "c"))
    assert template_cache.default_dir() == tmp_path / "c"
    monkeypatch.setenv("MYELO_DOCS_CACHE_DIR", "off")
    assert template_cache.default_dir() is None
    folder = tmp_path / "new"
    FastPackets(get_renderer(), folder).cache.get("lumbar", "en", False, 1)
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700"


def test_templates_hold_no_patient_data(tmp_path):
    """A template is the same file whichever patient first needed it."""
    renderer = get_renderer()
    files = []
    for n, changes in enumerate([{}, {"patient_name": "Ada Other", "mrn": "OTHER-77",
                                      "medications": MEDS, "physician": None}]):
        folder = tmp_path / str(n)
        FastPackets(renderer, folder).packet(validate_record(record(**changes)))
        files.append({p.name: p.read_bytes() for p in folder.glob("*.tmpl")})
    shared = files[0].keys() & files[1].keys()
    assert shared and all(files[0][name] == files[1][name] for name in shared)


def test_after_the_first_full_read_the_patients_objects_are_still_read_back(monkeypatch,
                                                                          tmp_path):
    renderer = get_renderer()
    fast = FastPackets(renderer, tmp_path)
    first = fast.packet(validate_record(record()))  # the template's first: read in full
    assert len(fast._read_in_full) == 1
    real_draw = FastPackets._draw_slots

    def nurse_name_in_the_header(self, template, styles, lines):
        other = self.shaper.lines(" Theo Checkmark", styles["id_name"], None, False)
        return real_draw(self, template, styles, {**lines, "id_name": other})

    monkeypatch.setattr(FastPackets, "_draw_slots", nurse_name_in_the_header)
    with pytest.raises(SelfCheckError) as caught:
        fast.packet(validate_record(record(mrn="TST-0000002")))
    assert all("name" in p.problem for p in caught.value.problems)
    # every page but the two that show the name in their tables too
    assert {p.field for p in caught.value.problems} >= {
        f"page {n}" for n in range(3, first.pages)}


def test_a4_paper_reads_like_the_full_render():
    renderer = get_renderer(paper="a4")
    data = record(medications=MEDS[:1], instructions=[], large_print=True)
    fast = renderer.packet(data)
    assert fast.path == "fast"
    assert_reads_the_same(fast.pdf, renderer.packet(data, full_render=True).pdf)
