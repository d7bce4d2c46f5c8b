"""Each PDF says which versions made it; `myelo-docs inspect` shows that, and no patient."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from babel.dates import format_date
from click.testing import CliRunner
from pypdf import PdfReader, PdfWriter

from conftest import BASE_RECORD, flat, pages_text
from myelo_docs import __version__, get_renderer
from myelo_docs.assets import builtin_brands_dir, templates_dir
from myelo_docs.cli.main import main
from myelo_docs.content.loader import Content, load_content
from myelo_docs.schema.brand import load_brand
from myelo_docs.schema.protocol import load_protocol
from myelo_docs.verify.provenance import (
    KEYS,
    brand_hash,
    content_hash,
    protocol_hash,
    templates_hash,
)

PATIENT = [BASE_RECORD["patient_name"], "Rosalind", "Testpatient", BASE_RECORD["mrn"], "4471902",
           BASE_RECORD["date_of_birth"], "July 14, 1958", "1958"]


def metadata(pdf: bytes) -> dict[str, str]:
    return {k.lstrip("/"): str(v) for k, v in PdfReader(io.BytesIO(pdf)).metadata.items()}


def test_packet_and_handout_carry_provenance_and_no_patient_data(packets, renderer):
    content = load_content("en")
    expected = {
        "MyeloDocsVersion": __version__,
        "MyeloDocsLanguage": "en",
        "MyeloDocsContent": content_hash(content),
        "MyeloDocsContentReviewed": content.last_reviewed.isoformat(),
        "MyeloDocsTemplates": templates_hash(),
        "MyeloDocsBrand": brand_hash(load_brand()),
        "MyeloDocsProtocolVersion": load_protocol().version,
        "MyeloDocsProtocol": protocol_hash(load_protocol()),
    }
    packet = metadata(packets["thoracic"].pdf)
    handout = metadata(renderer.handout("thoracic").pdf)
    for meta, kind in ((packet, "packet"), (handout, "handout")):
        assert meta["MyeloDocsKind"] == kind and meta["MyeloDocsType"] == "thoracic"
        for key, value in expected.items():
            assert meta[key] == value, key
        assert len(meta["MyeloDocsFonts"]) == 12
    assert "MyeloDocsCode" in packet and "MyeloDocsCode" not in handout
    # nothing about the patient anywhere in the document metadata (Info and XMP)
    reader = PdfReader(io.BytesIO(packets["thoracic"].pdf))
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode("utf-8")
    everything = json.dumps(packet) + xmp
    for secret in PATIENT:
        assert secret not in everything


def test_review_date_printed_on_every_page_matches_metadata(packets):
    content = load_content("en")
    shown = format_date(content.last_reviewed, format="medium", locale="en")
    label = content.data["labels"]["labels"]["content_reviewed"]
    texts = pages_text(packets["cervical"].pdf)
    for text in texts:
        assert f"{label}: {shown}" in flat(text)
    assert metadata(packets["cervical"].pdf)["MyeloDocsContentReviewed"] == \
        content.last_reviewed.isoformat()


def test_hashes_follow_what_was_used(tmp_path, monkeypatch):
    # content: one changed letter in a copy of the English text
    folder = tmp_path / "en"
    shutil.copytree(load_content("en").folder, folder)
    copy = Content(language="en", folder=folder, data={})
    assert content_hash(copy) == content_hash(load_content("en"))
    handout = folder / "handout.toml"
    handout.write_text(handout.read_text().replace("myelogram", "myelogrma", 1))
    assert content_hash(copy) != content_hash(load_content("en"))

    # brand: same settings, different logo bytes
    brand_dir = tmp_path / "brand"
    shutil.copytree(builtin_brands_dir() / "demo", brand_dir)
    assert brand_hash(load_brand(brand_dir / "brand.toml")) == brand_hash(load_brand())
    (brand_dir / "logo.svg").write_text((brand_dir / "logo.svg").read_text() + "\n")
    assert brand_hash(load_brand(brand_dir / "brand.toml")) != brand_hash(load_brand())

    # protocol: the settings in force count, not the file: restating a default changes nothing
    same = tmp_path / "same.toml"
    same.write_text(f"rest_hours = {load_protocol().rest_hours}\n")
    other = tmp_path / "other.toml"
    other.write_text("rest_hours = 48\n")
    assert protocol_hash(load_protocol(same)) == protocol_hash(load_protocol())
    assert protocol_hash(load_protocol(other)) != protocol_hash(load_protocol())

    # templates: any file in the folder, the stylesheet included
    copied = tmp_path / "templates"
    shutil.copytree(templates_dir(), copied)
    monkeypatch.setattr("myelo_docs.verify.provenance.templates_dir", lambda: copied)
    before = templates_hash()
    (copied / "print.css").write_text((copied / "print.css").read_text() + "/* */\n")
    assert templates_hash() != before


def test_protocol_version_reaches_the_pdf(tmp_path):
    protocol = tmp_path / "protocol.toml"
    protocol.write_text('version = "St. Elsewhere 2027-01"\nrest_hours = 48\n')
    meta = metadata(get_renderer(protocol=protocol).handout("lumbar").pdf)
    assert meta["MyeloDocsProtocolVersion"] == "St. Elsewhere 2027-01"
    assert meta["MyeloDocsProtocol"] == protocol_hash(load_protocol(protocol))


@pytest.fixture
def packet_file(packets, tmp_path):
    path = tmp_path / "packet.pdf"
    path.write_bytes(packets["lumbar"].pdf)
    return path


def test_inspect_prints_provenance_without_patient_details(packet_file, packets):
    result = CliRunner().invoke(main, ["inspect", str(packet_file)])
    assert result.exit_code == 0, result.output
    meta = metadata(packets["lumbar"].pdf)
    out = result.output
    assert f"Pages: {packets['lumbar'].pages}" in out
    assert "Going home after your lumbar myelogram" in out
    for key in ("MyeloDocsVersion", "MyeloDocsContent", "MyeloDocsContentReviewed",
                "MyeloDocsTemplates", "MyeloDocsBrand", "MyeloDocsProtocol"):
        assert meta[key] in out
        assert KEYS[key].capitalize() in out
    assert packets["lumbar"].path == "fast"
    made = next(line for line in out.splitlines() if line.startswith("Rendered from"))
    assert "template" in made  # how it was made, for an audit
    for secret in PATIENT:
        assert secret not in out

    as_json = CliRunner().invoke(main, ["inspect", "--json", str(packet_file)])
    data = json.loads(as_json.output)
    assert data["pages"] == packets["lumbar"].pages and data["MyeloDocsKind"] == "packet"
    for secret in PATIENT:
        assert secret not in as_json.output


def test_inspect_other_and_broken_files(tmp_path):
    plain = tmp_path / "plain.pdf"
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    with plain.open("wb") as fh:
        writer.write(fh)
    result = CliRunner().invoke(main, ["inspect", str(plain)])
    assert result.exit_code == 0
    assert "No myelo-docs provenance" in result.output and "Pages: 1" in result.output

    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\nnot really")
    result = CliRunner().invoke(main, ["inspect", str(broken)])
    assert result.exit_code == 3
    assert "could not be read as a PDF" in result.stderr
    assert "Traceback" not in result.output
