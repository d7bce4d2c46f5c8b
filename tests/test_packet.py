"""The discharge packet, opened as a user would: text on every page, fonts, metadata."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader

from conftest import BASE_RECORD, embedded_fonts, flat, pages_text, record

TYPES = ("cervical", "thoracic", "lumbar")

TYPE_TEXT = {
    "cervical": ["Cervical myelogram", "chin", "arms, hands or legs"],
    "thoracic": ["Thoracic myelogram", "middle back", "chest, belly or legs"],
    "lumbar": ["Lumbar myelogram", "legs may tingle", "legs or feet"],
}


@pytest.mark.parametrize("kind", TYPES)
def test_every_page_carries_three_identifiers(packets, kind):
    texts = pages_text(packets[kind].pdf)
    assert len(texts) == packets[kind].pages >= 5
    for number, text in enumerate(texts, start=1):
        page = flat(text)
        assert BASE_RECORD["patient_name"] in page, f"name missing on page {number}"
        assert "July 14, 1958" in page, f"date of birth missing on page {number}"
        assert BASE_RECORD["mrn"] in page, f"MRN missing on page {number}"
        assert f"Page {number} of {len(texts)}" in page


@pytest.mark.parametrize("kind", TYPES)
def test_type_specific_text(packets, kind):
    whole = flat(" ".join(pages_text(packets[kind].pdf)))
    for phrase in TYPE_TEXT[kind]:
        assert phrase in whole
    others = [t for t in TYPES if t != kind]
    for other in others:
        assert TYPE_TEXT[other][0] not in whole


def test_packet_parts_in_order(packets):
    texts = [flat(t) for t in pages_text(packets["lumbar"].pdf)]
    first = texts[0]
    # What a worried patient looks for first: who to call, on page 1.
    assert "Questions or problems? Call us." in first
    assert "(555) 010-0100" in first and "(555) 010-0199" in first and "Call 911" in first
    assert "Going home after your lumbar myelogram" in first
    whole = " ".join(texts)
    order = [
        "Call 911 or go to the emergency room",
        "Call us if you have any of these",
        "Caring for yourself at home",
        "Your medicines",
        "Extra instructions from your nurse",
        "Your follow-up",
        "About your lumbar myelogram",
        "What is a myelogram?",
        "What happens right after the test?",
        "Please sign: you got these instructions",
    ]
    positions = [whole.index(h) for h in order]
    assert positions == sorted(positions)
    last = texts[-1]
    assert "Please sign" in last and "Nurse signature" in last
    assert "The patient's questions were answered." in last


def test_personal_details_printed(packets):
    whole = flat(" ".join(pages_text(packets["lumbar"].pdf)))
    assert "Warfarin" in whole
    assert "Restart on 2026-11-27 unless told otherwise." in whole
    assert "Wear your back brace when you walk." in whole
    assert "Spine clinic on 2026-12-09 at 10:30." in whole
    assert "Dr. Imogen Fieldwork" in whole
    assert "November 25, 2026" in whole


def test_optional_sections_left_out_when_empty(renderer):
    bare = {k: v for k, v in BASE_RECORD.items()
            if k not in ("instructions", "medications", "physician", "nurse", "follow_up")}
    whole = flat(" ".join(pages_text(renderer.packet(bare).pdf)))
    assert "Your medicines" not in whole
    assert "Extra instructions from your nurse" not in whole
    assert "Caring for yourself at home" in whole


def test_fonts_all_embedded_and_ours(packets):
    for document in packets.values():
        fonts = embedded_fonts(document.pdf)
        assert fonts
        for name in fonts:
            # subset prefix + the family names our @font-face rules give
            assert re.fullmatch(r"/[A-Z]{6}\+MD-[A-Za-z-]+", name), name


def test_metadata_title_language_subject(packets):
    reader = PdfReader(io.BytesIO(packets["cervical"].pdf))
    meta = reader.metadata
    assert meta.title == "Going home after your cervical myelogram"
    assert "cervical myelogram" in meta.subject
    assert BASE_RECORD["patient_name"] not in (meta.title + meta.subject)
    assert reader.trailer["/Root"]["/Lang"] == "en-US"
    assert "/StructTreeRoot" in reader.trailer["/Root"]


@pytest.mark.parametrize("kind", TYPES)
def test_handout_alone_has_no_patient_and_covers_every_topic(renderer, kind):
    document = renderer.handout(kind)
    texts = [flat(t) for t in pages_text(document.pdf)]
    whole = " ".join(texts)
    for heading in [
        "What is a myelogram?", "How is it different from a spinal tap?",
        "What can a myelogram find?", "Who may need a myelogram?",
        "What other tests could you have?", "What are the risks?", "Does it hurt?",
        "How do you get ready?", "What happens during the test?",
        "What happens right after the test?", "Caring for yourself at home",
        "What is a spinal headache?", "Call us if you have any of these",
        "Call 911 or go to the emergency room",
    ]:
        assert heading in whole, heading
    assert TYPE_TEXT[kind][1] in whole
    for number, text in enumerate(texts, start=1):
        assert f"Page {number} of {len(texts)}" in text
        assert "Name:" not in text and "MRN" not in text


def test_protocol_settings_change_the_text(tmp_path):
    from myelo_docs import get_renderer

    protocol = tmp_path / "protocol.toml"
    protocol.write_text('version = "test"\nrest_hours = 48\nfever_f = 100.4\nfasting_hours = 6\n')
    document = get_renderer(protocol=protocol).packet(record())
    whole = flat(" ".join(pages_text(document.pdf)))
    assert "Rest for at least 2 days" in whole
    assert "100.4 °F (38.0 °C)" in whole
    assert "6 hours" in whole
    assert "Rest for at least 24 hours" not in whole


def test_same_record_gives_identical_bytes(renderer):
    assert renderer.packet(record()).pdf == renderer.packet(record()).pdf


def test_a4_paper(tmp_path):
    from myelo_docs import get_renderer

    document = get_renderer(paper="a4").handout("lumbar")
    box = PdfReader(io.BytesIO(document.pdf)).pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)


def test_large_print_uses_bigger_text(renderer):
    standard = renderer.packet(record())
    large = renderer.packet(record(large_print=True))
    assert large.pages > standard.pages
    assert BASE_RECORD["patient_name"] in flat(pages_text(large.pdf)[-1])


def test_longest_name_and_mrn_wrap_and_still_pass_the_check(renderer):
    name = ("Maximiliana Alexandra Bartholomew-Featherstonehaugh de la Santísima Trinidad "
            "Wolfeschlegelsteinhausen-Bergerdorff")
    assert len(name) <= 120
    document = renderer.packet(record(patient_name=name, mrn="M" * 40))
    for text in pages_text(document.pdf):
        compact = "".join(text.split())
        assert "".join(name.split()) in compact
        assert "M" * 40 in compact


@pytest.mark.parametrize("large_print", [False, True])
def test_longest_identifiers_stay_on_the_paper(renderer, large_print):
    """The header grows upwards; long identifiers must not run off the top edge,
    nor into the outer 5 mm many printers cannot print."""
    import pypdfium2

    name = ("Maximiliana Alexandra Bartholomew-Featherstonehaugh de la Santísima Trinidad "
            "Wolfeschlegelsteinhausen-Bergerdorff")
    document = renderer.packet(record(patient_name=name, mrn="W" * 40, large_print=large_print))
    pdf = pypdfium2.PdfDocument(document.pdf)
    for page in [pdf[0], pdf[len(pdf) - 1]]:
        height = page.get_height()
        text = page.get_textpage()
        tops = [text.get_charbox(i)[3] for i in range(text.count_chars())]
        assert max(tops) <= height - 5 * 72 / 25.4, "header text within 5 mm of the top edge"
