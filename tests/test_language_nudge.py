"""The nudge against mixed languages (content/language_check.py): nurse-typed text
that looks like another language than the packet's is named on the CLI's stderr
and next to its box on the nurse page; it never blocks, and names, medicine
names and short text never warn."""

from __future__ import annotations

import csv
import re

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from conftest import flat, pages_text
from myelo_docs.cli.main import main
from myelo_docs.content.language_check import language_nudges, looks_like
from myelo_docs.schema.record import validate_record
from myelo_docs.service import RenderPool, RenderSettings, create_app

FLAGS = ["--type", "lumbar", "--patient-name", "Rosalind Testpatient", "--date-of-birth",
         "1958-07-14", "--mrn", "TST-4471902", "--procedure-date", "2026-11-25"]
SPANISH = "Mantenga la venda seca hasta mañana."
ENGLISH = "Keep the bandage dry until tomorrow."


# -- what warns and what does not ------------------------------------------------


@pytest.mark.parametrize("text", [SPANISH, "Tome una pastilla por la boca dos veces al día.",
                                  "Reinicie 48 horas después del examen."])
def test_spanish_sentences_in_an_english_packet_look_spanish(text):
    assert looks_like(text, "en") == "es"
    assert looks_like(text, "es") is None


@pytest.mark.parametrize("text", [ENGLISH, "Restart tomorrow morning with food.",
                                  "Call the clinic to book a visit in 2 weeks."])
def test_english_sentences_in_a_spanish_packet_look_english(text):
    assert looks_like(text, "es") == "en"
    assert looks_like(text, "en") is None


@pytest.mark.parametrize("text", [
    "Warfarin", "Apixaban 5 mg BID", "Metformin ER 500 mg", "Eliquis x 48 hrs",  # medicines
    "Dr. García López", "Rosa Hernández", "Dra. Okonkwo",  # names
    "2026-12-10 9:30", "Ext. 4411", "N/A", "PRN",  # numbers and abbreviations
    "No change.", "Sin cambios.", "Sí", "OK", "Tome con comida",  # too short to be sure
])
def test_names_medicines_numbers_and_short_text_never_warn(text):
    assert looks_like(text, "en") is None
    assert looks_like(text, "es") is None


def test_a_name_behind_a_title_does_not_make_english_look_spanish():
    assert looks_like("Follow up with Dr. García López in two weeks.", "en") is None


def test_only_nurse_typed_fields_are_checked_and_named_by_field():
    record = validate_record({
        "type": "lumbar", "patient_name": "José García Fernández", "date_of_birth": "1958-07-14",
        "mrn": "TST-4471902", "procedure_date": "2026-11-25",
        "physician": "Dra. Ximena Hernández de la Fuente", "follow_up": SPANISH,
        "instructions": ["Wear your back brace when you walk.", SPANISH],
        "medications": [{"name": "Aspirina infantil", "instruction": "Keep taking it."},
                        {"name": "Warfarin", "instruction": "Reinicie el viernes a menos que "
                                                            "su médico le diga otra cosa."}],
    })
    found = [(n.field, n.language, n.packet_language) for n in language_nudges(record)]
    assert found == [("follow_up", "es", "en"), ("instructions #2", "es", "en"),
                     ("medications #2 instruction", "es", "en")]


# -- the command line ---------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_packet_warns_on_stderr_names_the_flag_and_still_writes_the_packet(cli, tmp_path):
    result = cli.invoke(main, ["packet", *FLAGS, "--instruction", "No baths for 3 days.",
                               "--instruction", SPANISH, "-o", "p.pdf"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert warnings == ["Warning: --instruction #2 looks like Spanish, but the packet is in "
                        "English: check that the patient can read it (the packet is made all "
                        "the same)."]
    assert SPANISH not in result.stderr and "Testpatient" not in result.stderr
    assert "Wrote" in result.stderr
    whole = flat(" ".join(pages_text((tmp_path / "p.pdf").read_bytes())))
    assert SPANISH in whole  # printed as the nurse typed it


def test_packet_in_spanish_warns_about_an_english_medicine_instruction(cli, tmp_path):
    result = cli.invoke(main, ["packet", *FLAGS, "--language", "es", "--medication",
                               f"Warfarin: {ENGLISH}", "-o", "p.pdf"])
    assert result.exit_code == 0, result.output
    assert ("Warning: --medication #1 instruction looks like English, but the packet is in "
            "Spanish") in result.stderr
    assert (tmp_path / "p.pdf").read_bytes().startswith(b"%PDF-")


def test_packet_with_a_medicine_name_and_short_text_prints_no_warning(cli, tmp_path):
    result = cli.invoke(main, ["packet", *FLAGS, "--medication", "Apixaban 5 mg BID: Hold",
                               "--instruction", "Tylenol", "--follow-up", "Dr. García López",
                               "-o", "p.pdf"])
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr
    assert (tmp_path / "p.pdf").is_file()


def test_batch_warns_per_row_and_field_and_renders_every_row(cli, tmp_path):
    fields = ["type", "patient_name", "date_of_birth", "mrn", "procedure_date", "instructions",
              "language"]
    with (tmp_path / "rows.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        writer.writerow(["lumbar", "Ana Example", "1960-01-02", "B-1", "2026-11-25",
                         f"{ENGLISH}\n{SPANISH}", "en"])
        writer.writerow(["lumbar", "Bea Example", "1961-02-03", "B-2", "2026-11-25",
                         "Warfarin", "en"])
    result = cli.invoke(main, ["batch", "rows.csv", "--out", "out", "--jobs", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^  row 2: instructions #2 looks like Spanish, but the packet is in "
                     r"English", result.stderr, re.M)
    assert "row 3" not in result.stderr and SPANISH not in result.stderr
    assert len(list((tmp_path / "out").glob("*.pdf"))) == 2


# -- the nurse page -----------------------------------------------------------------


@pytest.fixture(scope="module")
def pool():
    pool = RenderPool(RenderSettings(), workers=1, queue=2).start()
    yield pool
    pool.close()


@pytest.fixture
def client(pool):
    return TestClient(create_app(pool), base_url="http://127.0.0.1", follow_redirects=False)


FORM = {"type": "lumbar", "patient_name": "Rosalind Testpatient", "date_of_birth": "1958-07-14",
        "mrn": "TST-4471902", "procedure_date": "2026-11-25", "med_name_1": "Warfarin",
        "med_instruction_1": "Restart on Friday.", "language": "en", "medicine_rows": "3",
        "instruction_rows": "2", "action": "print"}


def test_page_shows_the_warning_next_to_the_box_with_the_packet_link(client):
    posted = client.post("/", data={**FORM, "instruction_2": SPANISH})
    assert posted.status_code == 303
    assert posted.headers["location"].startswith("/forms/")
    page = client.get(posted.headers["location"])
    assert page.status_code == 200
    html = page.text
    warning = re.search(r'<p class="field-warning" id="instruction_2-warning">(.*?)</p>', html,
                        re.S)
    assert warning and "This looks like Spanish, but the packet is in English" in warning.group(1)
    box = re.search(r'<input[^>]*id="instruction_2"[^>]*>', html).group(0)
    assert 'aria-describedby="instruction_2-warning"' in box
    assert f'value="{SPANISH}"' in box  # what was typed is kept to fix
    assert "field-warning" not in html.split('id="instruction_2-warning"')[1]  # only that one
    assert "The packet is ready" in html
    link = re.search(r'<a class="packet-link" href="(/packets/[A-Za-z0-9_-]{43})">', html)
    assert link
    packet = client.get(link.group(1))  # the packet was made all the same
    assert packet.status_code == 200 and packet.headers["content-type"] == "application/pdf"
    assert SPANISH in flat(" ".join(pages_text(packet.content)))


def test_page_in_spanish_names_the_languages_in_spanish(client):
    posted = client.post("/?lang=es", data={**FORM, "language": "es", "page_language": "es",
                                            "med_instruction_1": ENGLISH})
    page = client.get(posted.headers["location"])
    assert "Parece estar en inglés, pero el paquete está en español" in page.text
    assert 'id="med_instruction_1-warning"' in page.text


def test_page_without_mixed_text_goes_straight_to_the_packet(client):
    posted = client.post("/", data={**FORM, "instruction_1": "Tome con comida",
                                    "follow_up": "Dr. García López, 2026-12-10"})
    assert posted.status_code == 303
    assert posted.headers["location"].startswith("/packets/")
