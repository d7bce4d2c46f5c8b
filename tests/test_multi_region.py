"""A myelogram of several parts of the spine (CPT 62305) prints one packet.

The record's type takes one part or several (a JSON list, "cervical+lumbar"
in flags and CSV, FHIR 62305 with bodySite or words, 62302-62304 in one
order); the packet names every part, says where the needle goes, watches
every matching body part, and shades every part in the drawing.
"""

from __future__ import annotations

import copy
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pikepdf
import pytest
from click.testing import CliRunner
from pypdf import PdfReader
from test_qr import decode_pages

from conftest import ROOT, flat, pages_text, record
from myelo_docs import RecordError, validate_record
from myelo_docs.cli.main import main
from myelo_docs.content.loader import load_content
from myelo_docs.formats.fhir import packet_from_bundle
from myelo_docs.formats.fhir_out import document_reference
from myelo_docs.output.filenames import file_name
from myelo_docs.render.document import display_identifiers
from myelo_docs.render.stamp import payloads_for
from myelo_docs.schema.intake import IntakeSettings
from myelo_docs.schema.json_schema import record_schema
from myelo_docs.schema.record import MultiRegionType, MyelogramType
from myelo_docs.verify.selfcheck import verify_pdf

DATA = ROOT / "tests" / "data" / "fhir"
IMAGES = ROOT / "templates" / "images"
CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"
CERNER_MRN = IntakeSettings(mrn_systems=("urn:oid:2.16.840.1.113883.6.1000",))
PATIENT = record()


def problems(data: object, **kwargs: object) -> dict[str, tuple[str, str]]:
    with pytest.raises(RecordError) as caught:
        if isinstance(data, dict) and data.get("resourceType") == "Bundle":
            packet_from_bundle(data, **kwargs)
        else:
            validate_record(data)
    return {p.field: (p.problem, p.fix) for p in caught.value.problems}


def texts(pdf: bytes) -> list[str]:
    return [flat(t) for t in pages_text(pdf)]


def figure_alts(pdf: bytes) -> list[str]:
    def walk(node):
        k = node.get("/K") if isinstance(node, pikepdf.Dictionary) else None
        for kid in (k if isinstance(k, pikepdf.Array) else [k] if k is not None else []):
            if isinstance(kid, pikepdf.Dictionary) and "/S" in kid:
                yield kid
                yield from walk(kid)

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        return [str(e.get("/Alt", "")) for e in walk(doc.Root.StructTreeRoot) if e.S == "/Figure"]


# -- the record -------------------------------------------------------------------


@pytest.mark.parametrize("given", [["cervical", "lumbar"], ["Lumbar", "cervical"],
                                   "cervical+lumbar", " LUMBAR + Cervical "])
def test_several_parts_become_one_type_in_spine_order(given):
    kind = validate_record(record(type=given)).type
    assert kind is MultiRegionType.cervical_lumbar
    assert kind.value == "cervical+lumbar"  # the key file names, caches and content use
    assert kind.regions == (MyelogramType.cervical, MyelogramType.lumbar)


def test_a_single_part_stays_as_it_was():
    for given in ("lumbar", "Lumbar", ["lumbar"], MyelogramType.lumbar):
        parsed = validate_record(record(type=given))
        assert parsed.type is MyelogramType.lumbar
        assert parsed.model_dump(mode="json")["type"] == "lumbar"
    assert list(MyelogramType) == ["cervical", "thoracic", "lumbar"]


def test_all_three_and_the_json_round_trip():
    parsed = validate_record(record(type=["lumbar", "thoracic", "cervical"]))
    assert parsed.type.value == "cervical+thoracic+lumbar"
    dumped = parsed.model_dump(mode="json")
    assert dumped["type"] == "cervical+thoracic+lumbar"
    assert validate_record(dumped) == parsed


@pytest.mark.parametrize(("given", "problem", "fix"), [
    ("lumbar+lumbar", "names lumbar twice", "name each part of the spine once"),
    (["cervical", "Cervical"], "names cervical twice", "name each part of the spine once"),
    ("cervical+lumbr", "is not a myelogram type (part 2)", "did you mean 'lumbar'?"),
    (["cervical", "spinal"], "is not a myelogram type (part 2)", "join them with +"),
    ("cervical,lumbar", "is not a myelogram type", "join them with +, like cervical+lumbar"),
    ([], "names no part of the spine", "use cervical, thoracic or lumbar"),
    ([3], "is not a myelogram type", "use cervical, thoracic or lumbar"),
])
def test_a_bad_type_names_the_field_and_the_fix(given, problem, fix):
    found = problems(record(type=given))
    assert list(found) == ["type"]
    assert found["type"][0] == problem
    assert fix in found["type"][1]


def test_json_schema_takes_a_list_or_a_joined_string():
    schema = record_schema()["properties"]["type"]
    strings, lists = schema["anyOf"]
    assert "cervical+lumbar" in strings["enum"] and "lumbar" in strings["enum"]
    assert lists["items"]["enum"] == ["cervical", "thoracic", "lumbar"]
    assert lists["uniqueItems"] is True


def test_file_names_and_content_key_on_the_canonical_value():
    parsed = validate_record(record(type="lumbar+cervical"))
    assert file_name("{type}-{row}", 2, parsed) == "cervical+lumbar-2.pdf"
    for language in ("en", "es"):
        types = load_content(language).data["types"]
        for kind in MultiRegionType:
            assert set(types[kind.value]) >= {"type_name", "title", "region", "numbness_where",
                                              "spine_alt", "during", "home_note"}


# -- the drawing --------------------------------------------------------------------


def shaded(svg: str) -> set[str]:
    """The vertebrae drawn in the shading colour, by where they are."""
    return set(re.findall(r'<g transform="(translate\([^)]*\))[^"]*" fill="#D9480F"', svg))


def test_the_drawing_of_several_parts_shades_each_part():
    one = {p: shaded((IMAGES / f"spine-{p.value}.svg").read_text()) for p in MyelogramType}
    for kind in MultiRegionType:
        svg = (IMAGES / f"spine-{kind.value}.svg").read_text()
        assert shaded(svg) == set().union(*(one[p] for p in kind.regions)), kind
        assert svg.count("stroke-width=\"42\"") == len(kind.regions)  # one band per part
        assert 'viewBox="0 0 200 400"' in svg  # the size comes from print.css
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "spine_drawings.py"),
                           "--check"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr  # the files are what the script makes


# -- the packet ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_parts(renderer):
    return {lang: renderer.packet(record(type=["lumbar", "cervical"], language=lang),
                                  full_render=True)
            for lang in ("en", "es")}


EXPECTED = {
    "en": {
        "title": "Cervical and lumbar myelogram",
        "region": "so it looks at your neck and your lower back",
        "watch": "mild numbness or tingling in your arms, hands, legs or feet",
        "needle": "The doctor usually puts the needle in your lower back.",
        "neck": "For the neck pictures, your head will be lower than your feet.",
        "home": "Watch your arms and hands, and your legs and feet, for numbness",
        "caption": "The shading shows what this test looks at: your neck and your lower back.",
    },
    "es": {
        "title": "Mielografía cervical y lumbar",
        "region": "así que mira el cuello y la parte baja de la espalda",
        "watch": "Siente los brazos, las manos, las piernas o los pies un poco dormidos",
        "needle": "Por lo general, el médico pone la aguja en la parte baja de la espalda.",
        "neck": "Para las fotos del cuello, su cabeza quedará más baja que los pies.",
        "home": "Fíjese si siente los brazos, las manos, las piernas o los pies dormidos",
        "caption": "Lo sombreado muestra lo que mira esta prueba: el cuello y la parte baja de "
                   "la espalda.",
    },
}


@pytest.mark.parametrize("language", ["en", "es"])
def test_packet_names_both_parts_the_needle_and_every_body_part(two_parts, language):
    document = two_parts[language]
    whole = " ".join(texts(document.pdf))
    for key, sentence in EXPECTED[language].items():
        assert sentence in whole, key
    # No sentence of a one-part packet that would contradict the other part.
    assert "Watch your legs and feet for numbness" not in whole
    assert "shaded part is the part" not in whole  # the drawing shades two parts
    types = load_content(language).data["types"]
    assert types["cervical+lumbar"]["spine_alt"] in figure_alts(document.pdf)
    info = PdfReader(io.BytesIO(document.pdf)).metadata
    assert info["/MyeloDocsType"] == "cervical+lumbar"


@pytest.mark.parametrize("language", ["en", "es"])
def test_two_identifiers_and_the_code_on_every_page(two_parts, language, tmp_path):
    document = two_parts[language]
    parsed = validate_record(record(type="cervical+lumbar", language=language))
    ids = display_identifiers(parsed)
    pages = texts(document.pdf)
    assert len(pages) == document.pages
    for text in pages:
        assert flat(ids.name) in text
        assert flat(ids.mrn) in text and flat(ids.dob) in text
    codes = payloads_for("packet", parsed.mrn)
    assert verify_pdf(document.pdf, ids, codes=codes) == document.pages  # the self-check
    decoded = decode_pages(document.pdf, tmp_path)
    assert [found for found, _ in decoded] == [
        [f"MYELO|packet|{n}/{document.pages}|{parsed.mrn}"]
        for n in range(1, document.pages + 1)]


def test_the_neck_route_follows_through_for_several_parts(tmp_path):
    from myelo_docs.render.engine import Renderer
    from myelo_docs.schema.protocol import load_protocol

    protocol = load_protocol().model_copy(update={"cervical_route": "neck"})
    document = Renderer(protocol=protocol).packet(record(type="cervical+lumbar"),
                                                  full_render=True)
    whole = " ".join(texts(document.pdf))
    assert "puts the needle in the side of your upper neck, just below your skull" in whole
    assert "The table tilts so the dye flows down to your lower back." in whole
    assert "most likely went in your lower back" not in whole
    # The stroke-type signs meant for a neck needle (only = ["cervical"]) are kept.
    assert "slurred speech" in whole


def test_thoracic_and_lumbar_has_no_neck_text(renderer):
    document = renderer.packet(record(type="thoracic+lumbar"), full_render=True)
    whole = " ".join(texts(document.pdf))
    assert "Thoracic and lumbar myelogram" in whole
    assert "chest, belly, legs or feet" in whole
    assert "chin raised" not in whole and "upper neck" not in whole


def test_the_fast_path_draws_several_parts_too(renderer, two_parts):
    document = renderer.packet(record(type="cervical+lumbar"))  # a cached template

    def words(pdf: bytes) -> list[str]:  # where a bullet lands in the text layer may differ
        return [flat(t.replace("\u2022", " ")) for t in pages_text(pdf)]

    assert words(document.pdf) == words(two_parts["en"].pdf)


# -- flags, JSON file, CSV ---------------------------------------------------------------


FLAGS = ["--patient-name", PATIENT["patient_name"], "--date-of-birth", PATIENT["date_of_birth"],
         "--mrn", PATIENT["mrn"], "--procedure-date", PATIENT["procedure_date"], "--full-render"]


def test_flag_takes_several_parts(tmp_path):
    out = tmp_path / "p.pdf"
    result = CliRunner().invoke(main, ["packet", "--type", "lumbar+cervical", *FLAGS,
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Cervical and lumbar myelogram" in " ".join(texts(out.read_bytes()))


def test_flag_error_names_the_flag(tmp_path):
    result = CliRunner().invoke(main, ["packet", "--type", "cervical+cervical", *FLAGS,
                                       "-o", str(tmp_path / "p.pdf")])
    assert result.exit_code == 3
    assert "--type: names cervical twice" in result.output
    assert not (tmp_path / "p.pdf").exists()


def test_json_file_takes_a_list(tmp_path):
    source = tmp_path / "r.json"
    source.write_text(json.dumps(record(type=["thoracic", "cervical", "lumbar"])))
    out = tmp_path / "p.pdf"
    result = CliRunner().invoke(main, ["packet", "--input", str(source), "--full-render",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Cervical, thoracic and lumbar myelogram" in " ".join(texts(out.read_bytes()))
    source.write_text(json.dumps(record(type=["thoracic", "lumbr"])))
    result = CliRunner().invoke(main, ["packet", "--input", str(source), "-o", str(out),
                                       "--force"])
    assert result.exit_code == 3
    assert "type: is not a myelogram type (part 2)" in result.output
    assert "did you mean 'lumbar'?" in result.output


def test_csv_type_column_takes_several_parts(tmp_path):
    source = tmp_path / "list.csv"
    source.write_text("type,patient_name,date_of_birth,mrn,procedure_date\n"
                      "cervical+lumbar,Ann Batchrow,1960-01-01,B-001,2026-11-25\n"
                      "cervical + thoracic,Bea Batchrow,1960-01-02,B-002,2026-11-25\n"
                      "neck+lumbar,Cy Batchrow,1960-01-03,B-003,2026-11-25\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["batch", str(source), "--out", str(out), "--jobs", "1",
                                       "--quiet", "--name-pattern", "{row}-{type}"])
    assert result.exit_code == 7, result.output
    assert "row 4:" in result.stderr and "type: is not a myelogram type (part 1)" in \
        result.stderr
    names = sorted(p.name for p in out.glob("*.pdf"))
    assert names == ["2-cervical+lumbar.pdf", "3-cervical+thoracic.pdf"]
    assert "Cervical and lumbar myelogram" in " ".join(texts((out / names[0]).read_bytes()))


# -- FHIR in and out -------------------------------------------------------------------


def bundle(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def test_epic_two_orders_of_one_requisition_make_one_packet():
    packet = packet_from_bundle(bundle("epic-two-orders-cervical-lumbar"))
    assert packet.record.type is MultiRegionType.cervical_lumbar
    assert packet.record.language == "es"
    assert packet.record.procedure_date.isoformat() == "2026-11-30"


def test_two_orders_without_a_link_are_not_guessed_to_be_one_test():
    data = bundle("epic-two-orders-cervical-lumbar")
    for entry in data["entry"][1:]:
        del entry["resource"]["requisition"]
    found = problems(data)
    problem, fix = found["Bundle.entry[Procedure or ServiceRequest]"]
    assert problem.startswith("has 2 myelograms that could be this one")
    assert "give --type with every part, like cervical+lumbar" in fix
    packet = packet_from_bundle(data, overrides={"type": "cervical+lumbar"})
    assert packet.record.type is MultiRegionType.cervical_lumbar
    packet = packet_from_bundle(data, overrides={"type": ["lumbar"]})  # one of them only
    assert packet.record.type is MyelogramType.lumbar


def test_cerner_62305_with_snomed_body_sites():
    packet = packet_from_bundle(bundle("cerner-62305-bodysite"), intake_settings=CERNER_MRN)
    assert packet.record.type is MultiRegionType.cervical_lumbar
    assert packet.procedure_reference == "Procedure/3391775"


def _procedure(data: dict) -> dict:
    return data["entry"][1]["resource"]


@pytest.mark.parametrize(("change", "kind"), [
    # the regions in the words only (bodySite text, no codes)
    (lambda p: p.update(bodySite=[{"text": "C-spine"}, {"text": "T-spine"}]),
     "cervical+thoracic"),
    # no bodySite: the code's words
    (lambda p: (p.pop("bodySite"), p["code"].update(text="CT MYELOGRAM CERVICAL AND LUMBAR")),
     "cervical+lumbar"),
    # all three coded
    (lambda p: p["bodySite"].append({"coding": [{"system": SNOMED, "code": "122495006"}]}),
     "cervical+thoracic+lumbar"),
    # 62302 and 62304 as two codings of one Procedure
    (lambda p: p.update(bodySite=[], code={"coding": [{"system": CPT, "code": "62304"},
                                                      {"system": CPT, "code": "62302"}]}),
     "cervical+lumbar"),
])
def test_62305_and_several_codes_variants(change, kind):
    data = bundle("cerner-62305-bodysite")
    change(_procedure(data))
    assert packet_from_bundle(data, intake_settings=CERNER_MRN).record.type.value == kind


def test_the_needle_route_in_words_is_not_a_part():
    # CPT's own description of 62302 says "via lumbar injection": still cervical alone.
    data = bundle("cerner-62305-bodysite")
    _procedure(data).pop("bodySite")
    _procedure(data)["code"] = {"text": "Myelography via lumbar injection; cervical"}
    assert packet_from_bundle(data, intake_settings=CERNER_MRN).record.type is \
        MyelogramType.cervical


@pytest.mark.parametrize(("change", "problem"), [
    (lambda p: (p.pop("bodySite"), p["code"].pop("text")), "does not say which parts"),
    (lambda p: p["bodySite"].pop(), "names only one part"),
])
def test_62305_without_readable_parts_stops_naming_the_path(change, problem):
    data = bundle("cerner-62305-bodysite")
    change(_procedure(data))
    found = problems(data, intake_settings=CERNER_MRN)
    assert list(found) == ["Bundle.entry[Procedure].bodySite"]
    text, fix = found["Bundle.entry[Procedure].bodySite"]
    assert text == ("is CPT 62305, a myelogram of two or more parts of the spine, but "
                    + problem)
    assert "122494005" in fix and "--type with every part" in fix
    packet = packet_from_bundle(data, intake_settings=CERNER_MRN,
                                overrides={"type": "thoracic+lumbar"})
    assert packet.record.type is MultiRegionType.thoracic_lumbar


def test_procedures_based_on_one_order_are_one_test():
    data = bundle("cerner-62305-bodysite")
    first = _procedure(data)
    first.pop("bodySite")
    first["code"] = {"coding": [{"system": CPT, "code": "62302"}]}
    first["basedOn"] = [{"reference": "ServiceRequest/order-9"}]
    second = copy.deepcopy(first)
    second["id"] = "3391776"
    second["code"] = {"coding": [{"system": CPT, "code": "62304"}]}
    data["entry"].append({"resource": second})
    packet = packet_from_bundle(data, intake_settings=CERNER_MRN)
    assert packet.record.type is MultiRegionType.cervical_lumbar
    # Done on different days, they are two tests: never one packet for both.
    second["performedDateTime"] = "2026-11-27T10:00:00Z"
    packet = packet_from_bundle(data, intake_settings=CERNER_MRN)  # today's
    assert packet.record.type is MyelogramType.cervical
    packet = packet_from_bundle(data, intake_settings=CERNER_MRN,
                                overrides={"procedure_date": "2026-11-27"})
    assert packet.record.type is MyelogramType.lumbar


def test_document_reference_event_is_62305_for_several_parts():
    pdf = b"%PDF-1.7 stand-in"
    several = packet_from_bundle(bundle("cerner-62305-bodysite"), intake_settings=CERNER_MRN)
    reference = document_reference(pdf, several, load_brand())
    assert reference["context"]["event"] == [{"coding": [{"system": CPT, "code": "62305"}]}]
    assert "cervical and lumbar myelogram" in reference["description"]
    one = packet_from_bundle(bundle("lumbar-procedure"))
    reference = document_reference(pdf, one, load_brand())
    assert reference["context"]["event"] == [{"coding": [{"system": CPT, "code": "62304"}]}]


def load_brand():
    from myelo_docs.schema.brand import load_brand as load

    return load()


def test_readme_says_62305_is_taken():
    text = Path(ROOT / "README.md").read_text()
    assert "62305 (two or more regions) is refused" not in text
