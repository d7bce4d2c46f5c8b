"""The one options table (render/options.py) and --site on every path (issues #11, #13).

Every command that renders or reads records takes --site and MYELO_DOCS_SITE;
a flag beats the site, which beats our default; the Python API takes site=;
and one site (its own text, a changed protocol choice, Spanish brand
strings) gives the same paper through the CLI, batch, HTTP, FHIR and the
Python API.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import re
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pypdf import PdfReader

from conftest import ROOT, flat, pages_text, record
from myelo_docs import get_renderer, render_handout, render_packet
from myelo_docs.cli.main import main
from myelo_docs.formats.csv_input import record_to_row, row_to_data
from myelo_docs.formats.fhir import packet_from_bundle
from myelo_docs.render.engine import renderer_for
from myelo_docs.render.options import OPTIONS, SITE_VARIABLE, RenderSettings, site_value
from myelo_docs.schema.errors import ROWS_FAILED, ConfigError, RecordError
from myelo_docs.schema.record import PacketRecord, validate_record
from myelo_docs.service import RenderPool, create_app

DEMO_BRAND = ROOT / "myelo_docs" / "brands" / "demo"
FHIR_BUNDLE = ROOT / "tests" / "data" / "fhir" / "lumbar-procedure.json"

# What the site changes, and how a reader of the paper sees it.
SITE_TEXT_EN = "Questions? Call St. Example any time."
SITE_TEXT_ES = "¿Preguntas? Llame a St. Example a cualquier hora."
SITE_DEPARTMENT_ES = "Departamento de Radiología de St. Example"
FLAT_ES = "Acuéstese boca arriba, sin almohada"   # protocol position = "flat"
RAISED_ES = "con la cabeza y los hombros en alto"  # our default, "raised"

A4_WIDTH, LETTER_WIDTH = 595, 612  # points


def make_site(folder: Path, site_toml: str = "", protocol: str = 'position = "flat"\n') -> Path:
    """A site: its own brand (with Spanish strings), a protocol choice changed, one
    text key overridden in English and Spanish, A4 paper."""
    (folder / "content" / "en").mkdir(parents=True)
    (folder / "content" / "es").mkdir()
    shutil.copy(DEMO_BRAND / "logo.svg", folder / "logo.svg")
    (folder / "site.toml").write_text(
        'name = "St. Example"\nlanguages = ["en", "es"]\n' + site_toml +
        '\n[content]\ntext_reviewed = 2026-11-01\nreviewed_by = "Dr. Reviewer"\n'
        '\n[output]\npaper = "a4"\n', encoding="utf-8")
    (folder / "brand.toml").write_text(
        'hospital_name = "St. Example Hospital"\ndepartment = "Radiology"\n'
        'logo = "logo.svg"\nlogo_alt = "St. Example Hospital logo"\n'
        'primary_colour = "#1F4E79"\naccent_colour = "#9C3D00"\n'
        'department_phone = "(555) 010-7777"\nafter_hours_phone = "(555) 010-7799"\n'
        'emergency_number = "911"\npaper = "letter"\n'
        f'languages.es.department = "{SITE_DEPARTMENT_ES}"\n', encoding="utf-8")
    (folder / "protocol.toml").write_text(protocol, encoding="utf-8")
    (folder / "content" / "en" / "labels.toml").write_text(
        f'[labels]\ncall_box_title = "{SITE_TEXT_EN}"\n', encoding="utf-8")
    (folder / "content" / "es" / "labels.toml").write_text(
        f'[labels]\ncall_box_title = "{SITE_TEXT_ES}"\n', encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return make_site(tmp_path_factory.mktemp("site"))


@pytest.fixture()
def broken_site(tmp_path) -> Path:
    folder = tmp_path / "broken-site"
    folder.mkdir()  # no site.toml
    return folder


def page_width(pdf: bytes) -> int:
    return round(float(PdfReader(io.BytesIO(pdf)).pages[0].mediabox.width))


def page_texts(pdf: bytes) -> list[str]:
    return [flat(text) for text in pages_text(pdf)]


# -- every command takes --site and MYELO_DOCS_SITE ------------------------------------

# Commands that neither render nor read records, and why.
NO_SITE = {
    "inspect": "reads a PDF's metadata only",
    "schema": "prints the record's JSON Schema",
}


def leaf_commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(leaf_commands(command, f"{prefix}{name} "))
        else:
            found[prefix + name] = command
    return found


def site_option(command: click.Command) -> click.Option | None:
    for param in command.params:
        if isinstance(param, click.Option) and "--site" in param.opts:
            return param
    return None


def test_every_command_that_renders_or_reads_records_takes_site():
    missing = []
    for name, command in leaf_commands(main).items():
        if name in NO_SITE or name.startswith("site "):  # site init/check/warm: DIR argument
            continue
        option = site_option(command)
        if option is None or option.envvar != SITE_VARIABLE:
            missing.append(name)
    assert missing == [], f"commands without --site / {SITE_VARIABLE}: {missing}"
    # ... and each one is run with a site below: a new command must be added there too
    rendering = {n for n in leaf_commands(main) if n not in NO_SITE and not n.startswith("site ")}
    assert rendering == set(COMMAND_ARGS)


def test_help_says_the_flag_beats_the_environment_and_the_site_beats_our_default():
    text = CliRunner().invoke(main, ["packet", "--help"]).output
    assert "--site" in text and SITE_VARIABLE in text
    assert "--site wins over it" in flat(text)
    assert "A flag beats the site's setting, which beats our default." in flat(text)


# The cheapest valid start of each command; the site is read before anything slow.
COMMAND_ARGS = {
    "packet": ["packet", "--type", "lumbar"],
    "handout": ["handout", "--type", "lumbar", "-o", "{tmp}/h.pdf"],
    "demo": ["demo", "-o", "{tmp}/d.pdf"],
    "batch": ["batch", "{tmp}/rows.csv", "--out", "{tmp}/out"],
    "validate": ["validate", "{tmp}/rows.csv"],
    "check-content": ["check-content"],
    "serve": ["serve", "--port", "8765"],
}


def _args(name: str, tmp_path: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp_path)) for a in COMMAND_ARGS[name]]


@pytest.mark.parametrize("name", sorted(COMMAND_ARGS))
def test_each_command_reads_the_site_from_the_environment(name, broken_site, tmp_path):
    result = CliRunner().invoke(main, _args(name, tmp_path),
                                env={SITE_VARIABLE: str(broken_site)})
    assert result.exit_code == ConfigError.exit_code, result.output
    assert "has no site.toml" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name", sorted(COMMAND_ARGS))
def test_each_command_reads_the_site_flag_over_the_environment(name, site, broken_site,
                                                               tmp_path):
    result = CliRunner().invoke(main, [*_args(name, tmp_path), "--site", str(broken_site)],
                                env={SITE_VARIABLE: str(site)})
    assert result.exit_code == ConfigError.exit_code, result.output
    assert str(broken_site) in flat(result.output)


def test_the_flag_wins_over_a_broken_site_in_the_environment(site, broken_site, tmp_path):
    rows = write_csv(tmp_path / "rows.csv", [record()])
    result = CliRunner().invoke(main, ["validate", str(rows), "--site", str(site)],
                                env={SITE_VARIABLE: str(broken_site)})
    assert result.exit_code == 0, result.output
    assert "1 row: 1 ready" in result.output


def test_an_empty_environment_variable_means_no_site():
    assert RenderSettings(site="").site is None


# -- precedence: flag > site > default, for each option ---------------------------------

@pytest.fixture(scope="module")
def full_site(tmp_path_factory) -> Path:
    """A site that sets every table option (fonts too) and the CSV and intake settings."""
    folder = make_site(tmp_path_factory.mktemp("full-site"), site_toml=(
        '\n[files]\nfonts = "fonts"\n'
        '\n[identity]\nmrn_systems = ["urn:oid:1.2.3"]\nmrn_pattern = "SITE-[0-9]+"\n'
        '\n[csv]\nencoding = "cp1252"\ncolumns = "columns.toml"\n'))
    (folder / "fonts").mkdir()
    (folder / "columns.toml").write_text('[columns]\npatient_name = "Patient"\n')
    return folder


def test_on_the_command_line_a_flag_beats_the_site_which_beats_our_default(site, tmp_path):
    runner = CliRunner()
    made = {}
    for name, extra in {"site": ["--site", str(site)],
                        "flag": ["--site", str(site), "--paper", "letter",
                                 "--brand", str(DEMO_BRAND / "brand.toml")],
                        "default": []}.items():
        out = tmp_path / f"{name}.pdf"
        result = runner.invoke(main, ["handout", "--type", "lumbar", "-o", str(out), *extra])
        assert result.exit_code == 0, result.output
        made[name] = out.read_bytes()
    assert page_width(made["site"]) == A4_WIDTH
    assert "St. Example Hospital" in " ".join(page_texts(made["site"]))
    assert SITE_TEXT_EN in " ".join(page_texts(made["site"]))
    assert page_width(made["flag"]) == LETTER_WIDTH
    flagged = " ".join(page_texts(made["flag"]))
    assert "Demo General Hospital" in flagged and SITE_TEXT_EN in flagged  # text: the site's
    assert SITE_TEXT_EN not in " ".join(page_texts(made["default"]))


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.site_key], ids=lambda o: o.name)
def test_each_render_option_flag_beats_site_beats_default(option, full_site, tmp_path):
    given = {"brand": tmp_path / "b.toml", "protocol": tmp_path / "p.toml",
             "font_dir": tmp_path, "paper": "letter"}[option.name]
    from_site = getattr(RenderSettings(site=full_site).resolved(), option.name)
    site_says = {"brand": full_site / "brand.toml", "protocol": full_site / "protocol.toml",
                 "font_dir": full_site / "fonts", "paper": "a4"}[option.name]
    assert from_site == site_says
    flagged = RenderSettings(site=full_site, **{option.name: given}).resolved()
    assert getattr(flagged, option.name) == (given if option.name == "paper" else
                                             Path(given).resolve())
    assert getattr(RenderSettings().resolved(), option.name) is None  # our default


def test_site_intake_settings_and_flags_over_them(full_site):
    settings = RenderSettings(site=full_site)
    intake = settings.intake()
    assert intake.mrn_pattern == "SITE-[0-9]+" and intake.mrn_systems == ("urn:oid:1.2.3",)
    assert intake.languages == ("en", "es")
    flagged = settings.intake(mrn_systems=("urn:flag",), mrn_pattern="[0-9]+")
    assert flagged.mrn_pattern == "[0-9]+" and flagged.mrn_systems == ("urn:flag",)
    assert RenderSettings().intake().mrn_pattern is None


def test_site_value_is_the_one_rule_for_the_other_settings(full_site):
    loaded = RenderSettings(site=full_site).load_site()
    assert site_value("utf-8", loaded, "csv_encoding") == "utf-8"
    assert site_value(None, loaded, "csv_encoding") == "cp1252"
    assert site_value(None, None, "csv_encoding", "default") == "default"
    assert site_value(None, loaded, "file_name_pattern", "ours") == "ours"  # site sets none


def write_csv(path: Path, records: list[dict], encoding: str = "utf-8",
              rename: dict[str, str] | None = None) -> Path:
    rows = [record_to_row(PacketRecord.model_validate(r)) for r in records]
    rename = rename or {}
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([rename.get(k, k) for k in rows[0]])
        writer.writerows(list(row.values()) for row in rows)
    return path


def test_csv_encoding_columns_and_mrn_pattern_come_from_the_site(full_site, tmp_path):
    # cp1252 bytes, a "Patient" column (the site's column map), an MRN the site's
    # pattern refuses and ours accepts
    rows = write_csv(tmp_path / "rows.csv", [record(patient_name="Zoë Testpatient")],
                     encoding="cp1252", rename={"patient_name": "Patient"})
    runner = CliRunner()
    with_site = runner.invoke(main, ["validate", str(rows), "--site", str(full_site)])
    assert with_site.exit_code == ROWS_FAILED, with_site.output  # read and mapped
    assert "row 2: error: mrn: does not match the hospital's MRN pattern" in with_site.output
    flags = runner.invoke(main, ["validate", str(rows), "--site", str(full_site),
                                 "--mrn-pattern", "TST-[0-9]+"])
    assert flags.exit_code == 0, flags.output
    wrong_encoding = runner.invoke(main, ["validate", str(rows), "--site", str(full_site),
                                          "--mrn-pattern", "TST-[0-9]+", "--encoding", "utf-8"])
    assert "not valid UTF-8" in wrong_encoding.output  # the flag beat the site's cp1252
    other_map = tmp_path / "other.toml"
    other_map.write_text('[columns]\npatient_name = "Name"\n')
    wrong_map = runner.invoke(main, ["validate", str(rows), "--site", str(full_site),
                                     "--mrn-pattern", "TST-[0-9]+", "--columns", str(other_map)])
    assert wrong_map.exit_code != 0 and "Name" in wrong_map.output, wrong_map.output
    no_site = runner.invoke(main, ["validate", str(rows)])
    assert "not valid UTF-8" in no_site.output  # our default


@pytest.mark.parametrize(("given", "expected"), [({}, True), ({"large_print": False}, False)])
def test_the_sites_large_print_default_fills_only_a_record_that_does_not_say(
        tmp_path, given, expected):
    folder = make_site(tmp_path / "large", site_toml="")
    text = (folder / "site.toml").read_text()
    text = text.replace("[output]\n", "[output]\nlarge_print = true\n")
    (folder / "site.toml").write_text(text)
    intake = RenderSettings(site=folder).intake()
    data = {k: v for k, v in record().items() if k != "large_print"} | given
    assert validate_record(data, intake).large_print is expected
    assert validate_record(PacketRecord.model_validate(data), intake).large_print is expected
    assert validate_record(data).large_print is False  # ours
    assert "large_print" not in row_to_data({"large_print": " "})  # a blank CSV cell


def test_a_language_the_site_does_not_offer_is_refused(tmp_path):
    folder = make_site(tmp_path / "english-only")
    text = (folder / "site.toml").read_text().replace('["en", "es"]', '["en"]')
    (folder / "site.toml").write_text(text)
    with pytest.raises(RecordError) as caught:
        validate_record(record(language="es"), RenderSettings(site=folder).intake())
    assert any(p.field == "language" and "en" in p.fix for p in caught.value.problems)


# -- the Python API --------------------------------------------------------------------

@pytest.mark.parametrize("function", [get_renderer, render_packet, render_handout])
def test_the_api_keywords_are_the_options_table(function):
    parameters = inspect.signature(function).parameters
    assert {o.name for o in OPTIONS} <= set(parameters)
    assert parameters["site"].default is None


def test_get_renderer_with_a_site_is_the_settings_renderer(site):
    assert get_renderer(site=site) is renderer_for(RenderSettings(site=site))
    assert get_renderer(site=str(site)) is get_renderer(site=site)
    assert get_renderer(site=site) is not get_renderer()


def test_render_packet_with_a_site(site):
    pdf = render_packet(record(language="es"), site=site)
    text = " ".join(page_texts(pdf))
    assert SITE_TEXT_ES in text and SITE_DEPARTMENT_ES in text and FLAT_ES in text
    assert RAISED_ES not in text
    assert page_width(pdf) == A4_WIDTH  # the site's paper
    assert page_width(render_packet(record(language="es"), site=site,
                                    paper="letter")) == LETTER_WIDTH  # the keyword wins
    ours = " ".join(page_texts(render_packet(record(language="es"))))
    assert SITE_TEXT_ES not in ours and RAISED_ES in ours


def test_render_handout_with_a_site(site):
    text = " ".join(page_texts(render_handout("lumbar", "en", site=site)))
    assert "St. Example Hospital" in text


def test_a_bad_site_in_the_api_is_a_config_error(broken_site):
    with pytest.raises(ConfigError) as caught:
        render_packet(record(), site=broken_site)
    assert "site.toml" in str(caught.value.problems[0])


# -- honoured on every path ------------------------------------------------------------

@pytest.fixture(scope="module")
def site_pool(site):
    pool = RenderPool(RenderSettings(site=site), workers=1, queue=4).start()
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def site_client(site_pool):
    return TestClient(create_app(site_pool), base_url="http://127.0.0.1")


def test_the_service_uses_the_sites_brand_and_languages(site_client):
    types = site_client.get("/v1/types").json()
    assert types["languages"] == ["en", "es"]
    page = site_client.get("/", headers={"accept-language": "es"}).text
    assert "St. Example Hospital" in page and "Demo General Hospital" not in page
    handout = site_client.post("/v1/handouts", json={"type": "lumbar", "language": "es"})
    assert handout.status_code == 200
    assert SITE_DEPARTMENT_ES in " ".join(page_texts(handout.content))


def test_the_nurse_page_offers_the_sites_languages_and_large_print_default(tmp_path):
    folder = make_site(tmp_path / "spanish-large")
    text = (folder / "site.toml").read_text().replace('["en", "es"]', '["es"]')
    (folder / "site.toml").write_text(text.replace("[output]\n", "[output]\nlarge_print = true\n"))
    pool = RenderPool(RenderSettings(site=folder), workers=1, queue=0)  # not started: no render
    client = TestClient(create_app(pool), base_url="http://127.0.0.1")
    assert client.get("/v1/types").json()["languages"] == ["es"]
    page = client.get("/").text
    assert re.search(r'<input type="checkbox" id="large_print"[^>]* checked>', page)
    assert '<option value="es"' in page and '<option value="en"' not in page
    ours = TestClient(create_app(RenderPool(RenderSettings(), workers=1, queue=0)),
                      base_url="http://127.0.0.1").get("/").text
    assert not re.search(r'id="large_print"[^>]* checked', ours)
    assert '<option value="en"' in ours


def test_one_site_gives_the_same_paper_on_every_path(site, site_client, tmp_path):
    """CLI, batch, HTTP JSON, HTTP FHIR and the Python API, from one FHIR Bundle's
    record in Spanish: the same pages, word for word, with the site's text, its
    protocol choice and its Spanish brand strings; the full render agrees."""
    bundle = json.loads(FHIR_BUNDLE.read_text())
    wanted = {"procedure_date": "2026-11-25", "language": "es"}
    data = packet_from_bundle(bundle, dict(wanted)).record.model_dump(mode="json")

    papers: dict[str, bytes] = {}
    papers["api"] = render_packet(data, site=site)

    (tmp_path / "record.json").write_text(json.dumps(data))
    runner = CliRunner()
    result = runner.invoke(main, ["packet", "--input", str(tmp_path / "record.json"),
                                  "-o", str(tmp_path / "cli.pdf"), "--site", str(site)])
    assert result.exit_code == 0, result.output
    papers["cli"] = (tmp_path / "cli.pdf").read_bytes()
    result = runner.invoke(main, ["packet", "--input", str(tmp_path / "record.json"),
                                  "-o", str(tmp_path / "full.pdf"), "--full-render"],
                           env={SITE_VARIABLE: str(site)})
    assert result.exit_code == 0, result.output
    papers["cli --full-render, site from the environment"] = (tmp_path / "full.pdf").read_bytes()

    rows = write_csv(tmp_path / "rows.csv", [data])
    result = runner.invoke(main, ["batch", str(rows), "--out", str(tmp_path / "out"),
                                  "--jobs", "1", "--quiet", "--site", str(site)])
    assert result.exit_code == 0, result.output
    [batch_pdf] = (tmp_path / "out").glob("*.pdf")
    papers["batch"] = batch_pdf.read_bytes()

    response = site_client.post("/v1/packets", json=data)
    assert response.status_code == 200, response.text
    papers["http"] = response.content
    response = site_client.post("/v1/fhir/packets", json={"bundle": bundle, "record": wanted},
                                headers={"accept": "application/pdf"})
    assert response.status_code == 200, response.text
    papers["fhir"] = response.content

    expected = page_texts(papers["api"])
    joined = " ".join(expected)
    assert SITE_TEXT_ES in joined and FLAT_ES in joined and SITE_DEPARTMENT_ES in joined
    assert RAISED_ES not in joined and "Demo General Hospital" not in joined
    for path, pdf in papers.items():
        assert page_texts(pdf) == expected, f"{path} differs from the Python API"
        assert page_width(pdf) == A4_WIDTH, path
