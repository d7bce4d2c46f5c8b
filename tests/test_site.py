"""A hospital's site folder (issue #13): site.toml, text overrides, `site init`,
`site check` and `site warm`."""

from __future__ import annotations

import io
import re
import shutil
import tomllib
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from conftest import BASE_RECORD, ROOT, flat, pages_text
from myelo_docs.assets import content_dir, default_protocol_file
from myelo_docs.cli.main import main
from myelo_docs.content.loader import Content, load_content
from myelo_docs.content.overrides import content_for, known_placeholders
from myelo_docs.schema.brand import load_brand
from myelo_docs.schema.errors import ConfigError
from myelo_docs.schema.protocol import choices, load_protocol
from myelo_docs.site import load_site
from myelo_docs.site.check import load_topics, uncovered, warm
from myelo_docs.site.init import init_site

EXAMPLE = ROOT / "examples" / "site"


def make_site(folder: Path, site_toml: str = 'name = "Test Site"\n',
              files: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "site.toml").write_text(site_toml, encoding="utf-8")
    for name, text in (files or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def problems_of(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


REVIEWED = 'name = "Test Site"\n[content]\ntext_reviewed = 2026-11-20\n'


def overridden(folder: Path, files: dict[str, str]) -> Content:
    """English (or the file's language) text with these site files over ours."""
    make_site(folder, REVIEWED, files)
    language = next(iter(files)).split("/")[1]
    return content_for(language, folder / "content")


# -- site.toml: each setting ---------------------------------------------------------

def test_every_setting_of_site_toml_reaches_the_site(tmp_path):
    brand_dir = ROOT / "myelo_docs" / "brands" / "demo"
    make_site(tmp_path, """
name = "St. Test"
languages = ["es", "en"]
[files]
brand = "brand/brand.toml"
protocol = "my-protocol.toml"
fonts = "fonts"
[content]
folder = "text"
text_reviewed = 2026-11-02
reviewed_by = "A. Reviewer"
[identity]
mrn_systems = ["urn:oid:1.2.3", "urn:oid:1.2.4"]
mrn_pattern = "[0-9]{8}"
[csv]
encoding = "cp1252"
columns = "columns.toml"
[output]
paper = " A4 "
large_print = true
file_name_pattern = "{row}-{key}"
""", {"my-protocol.toml": 'position = "flat"\n', "columns.toml": "[columns]\n",
      "text/en/labels.toml": '[labels]\npage = "Sheet"\n'})
    shutil.copytree(brand_dir, tmp_path / "brand")
    (tmp_path / "fonts").mkdir()
    site = load_site(tmp_path)
    assert site.folder == tmp_path.resolve()
    assert site.name == "St. Test"
    assert site.languages == ("es", "en")
    assert site.brand == (tmp_path / "brand" / "brand.toml").resolve()
    assert site.protocol == (tmp_path / "my-protocol.toml").resolve()
    assert site.font_dir == (tmp_path / "fonts").resolve()
    assert site.content == (tmp_path / "text").resolve()
    assert site.text_reviewed == date(2026, 11, 2) and site.reviewed_by == "A. Reviewer"
    assert site.mrn_systems == ("urn:oid:1.2.3", "urn:oid:1.2.4")
    assert site.mrn_system == "urn:oid:1.2.3"
    assert site.mrn_pattern == "[0-9]{8}"
    assert site.csv_encoding == "cp1252"
    assert site.column_map == (tmp_path / "columns.toml").resolve()
    assert site.paper == "a4"
    assert site.large_print is True
    assert site.file_name_pattern == "{row}-{key}"


def test_a_bare_site_uses_files_named_as_init_writes_them_else_ours(tmp_path):
    make_site(tmp_path)
    site = load_site(tmp_path)
    assert (site.brand, site.protocol, site.content, site.font_dir, site.column_map) == \
        (None, None, None, None, None)
    assert (site.languages, site.paper, site.large_print) == ((), None, False)
    (tmp_path / "protocol.toml").write_text('position = "none"\n')
    (tmp_path / "content").mkdir()
    site = load_site(tmp_path)
    assert site.protocol == tmp_path.resolve() / "protocol.toml"
    assert site.content == tmp_path.resolve() / "content"


@pytest.mark.parametrize(("text", "field", "hint"), [
    ('name = "x"\nlangauges = ["en"]\n', "site.toml langauges", "did you mean 'languages'"),
    ('name = "x"\n[output]\npapr = "a4"\n', "site.toml output papr", "did you mean 'paper'"),
    ('name = "x"\n[csv]\nencodng = "utf-8"\n', "site.toml csv encodng",
     "did you mean 'encoding'"),
    ('name = "x"\n[identity]\nmrn_system = "urn:x"\n', "site.toml identity mrn_system",
     "did you mean 'mrn_systems'"),
])
def test_an_unknown_key_gets_a_did_you_mean_among_its_own_tables_keys(tmp_path, text, field,
                                                                      hint):
    make_site(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_site(tmp_path)
    (problem,) = exc.value.problems
    assert problem.field == field
    assert hint in problem.fix
    assert "patient_name" not in problem.fix  # never the record's fields


@pytest.mark.parametrize(("text", "field", "words"), [
    ('name = "x"\n[output]\npaper = "a5"\n', "site.toml output paper", "letter"),
    ('name = "x"\n[output]\nlarge_print = "yes"\n', "site.toml output large_print",
     "true or false"),
    ('name = "x"\n[output]\nfile_name_pattern = "{room}"\n',
     "site.toml output file_name_pattern", "{row}"),
    ('name = "x"\n[csv]\nencoding = "klingon-8"\n', "site.toml csv encoding", "utf-8"),
    ('name = "x"\n[identity]\nmrn_pattern = "[0-9"\n', "site.toml identity mrn_pattern",
     "regular expression"),
    ('name = "x"\nlanguages = ["English"]\n', "site.toml languages", "language code"),
    ('name = "x"\nlanguages = ["en", "en"]\n', "site.toml languages", "twice"),
    ('languages = ["en"]\n', "site.toml name", "required"),
    ('name = "x"\n[content]\ntext_reviewed = "last week"\n', "site.toml content text_reviewed",
     "date"),
])
def test_a_bad_value_names_the_file_and_key(tmp_path, text, field, words):
    make_site(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_site(tmp_path)
    (problem,) = exc.value.problems
    assert problem.field == field
    assert words in str(problem)


def test_a_pointer_to_nothing_names_its_key(tmp_path):
    make_site(tmp_path, 'name = "x"\n[files]\nbrand = "ours/brand.toml"\n'
                        '[csv]\ncolumns = "map.toml"\n')
    with pytest.raises(ConfigError) as exc:
        load_site(tmp_path)
    fields = [p.field for p in exc.value.problems]
    assert fields == ["site.toml files brand", "site.toml csv columns"]


def test_no_folder_or_no_site_toml_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_site(tmp_path / "nowhere")
    assert "site init" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_site(tmp_path)
    assert "site.toml" in str(exc.value) and "site init" in str(exc.value)


def test_changed_text_needs_its_review_date(tmp_path):
    make_site(tmp_path, 'name = "x"\n', {"content/en/labels.toml": '[labels]\npage = "Sheet"\n'})
    with pytest.raises(ConfigError) as exc:
        load_site(tmp_path)
    assert exc.value.problems[0].field == "site.toml content text_reviewed"
    with pytest.raises(ConfigError) as exc:  # the renderer's path says so too
        content_for("en", tmp_path / "content")
    assert "text_reviewed" in str(exc.value)


# -- text overrides ------------------------------------------------------------------

def test_a_site_file_overrides_only_the_keys_it_names(tmp_path):
    content = overridden(tmp_path, {"content/en/discharge.toml":
                                    '[home]\ntitle = "Looking after yourself at home"\n'})
    ours = load_content("en").data
    assert content.data["discharge"]["home"]["title"] == "Looking after yourself at home"
    assert content.data["discharge"]["home"]["blocks"] == ours["discharge"]["home"]["blocks"]
    for name in ("labels", "handout", "types"):
        assert content.data[name] == ours[name] or name == "labels"
    assert ours["discharge"]["home"]["title"] != "Looking after yourself at home"  # not ours


def test_handout_sections_are_matched_by_id_and_a_list_is_replaced_whole(tmp_path):
    content = overridden(tmp_path, {"content/en/handout.toml": """
[[sections]]
id = "versus-spinal-tap"
blocks = [{ p = "A spinal tap takes fluid out. A myelogram puts dye in." }]
"""})
    ours = load_content("en").data["handout"]["sections"]
    sections = content.data["handout"]["sections"]
    assert [s["id"] for s in sections] == [s["id"] for s in ours]  # order and ids kept
    changed = next(s for s in sections if s["id"] == "versus-spinal-tap")
    original = next(s for s in ours if s["id"] == "versus-spinal-tap")
    assert changed["title"] == original["title"]
    assert changed["blocks"] == [{"p": "A spinal tap takes fluid out. A myelogram puts dye in."}]
    assert [s for s in sections if s["id"] != "versus-spinal-tap"] == \
        [s for s in ours if s["id"] != "versus-spinal-tap"]


def test_any_language_we_ship_can_be_overridden(tmp_path):
    content = overridden(tmp_path, {"content/es/labels.toml":
                                    '[labels]\nresults_note = "Le llamaremos."\n'})
    assert content.language == "es"
    assert content.data["labels"]["labels"]["results_note"] == "Le llamaremos."
    assert content.data["labels"]["labels"]["page"] == \
        load_content("es").data["labels"]["labels"]["page"]


@pytest.mark.parametrize(("file", "text", "field", "fix"), [
    ("discharge.toml", '[home]\ntitel = "x"\n', "content/en/discharge.toml [home] titel",
     "did you mean 'title'?"),
    ("labels.toml", '[lables]\npage = "x"\n', "content/en/labels.toml lables",
     "did you mean 'labels'?"),
    ("handout.toml", '[[sections]]\nid = "what-it-find"\ntitle = "x"\n',
     "content/en/handout.toml sections[id=what-it-find]", "did you mean 'what-it-finds'?"),
    ("discharge.toml", '[home]\nblocks = "x"\n', "content/en/discharge.toml [home] blocks",
     "a list"),
])
def test_an_unknown_key_or_wrong_shape_names_file_and_key(tmp_path, file, text, field, fix):
    make_site(tmp_path, REVIEWED, {f"content/en/{file}": text})
    with pytest.raises(ConfigError) as exc:
        content_for("en", tmp_path / "content")
    (problem,) = exc.value.problems
    assert problem.field == field
    assert fix in str(problem)


def test_an_unknown_file_gets_a_did_you_mean(tmp_path):
    make_site(tmp_path, REVIEWED, {"content/en/discharges.toml": '[home]\ntitle = "x"\n'})
    with pytest.raises(ConfigError) as exc:
        content_for("en", tmp_path / "content")
    (problem,) = exc.value.problems
    assert problem.field == "content/en/discharges.toml"
    assert "did you mean 'discharge'?" in problem.fix


def test_an_unknown_placeholder_is_an_error_naming_file_and_key(tmp_path):
    make_site(tmp_path, REVIEWED, {"content/en/labels.toml": '[labels]\n'
                                   'call_box_emergency_text = "Call {emergency_numbr}"\n'})
    with pytest.raises(ConfigError) as exc:
        content_for("en", tmp_path / "content")
    unknown, dropped = exc.value.problems  # the typo, and the name it replaced
    assert unknown.field == dropped.field == \
        "content/en/labels.toml [labels] call_box_emergency_text"
    assert "{emergency_numbr}" in unknown.problem
    assert "did you mean 'emergency_number'?" in unknown.fix
    assert "leaves out {emergency_number}" in dropped.problem


def test_a_text_that_drops_a_placeholder_is_an_error(tmp_path):
    # Typing the number instead of {rest_time} would go stale when the protocol changes.
    ours = load_content("en").data["labels"]["labels"]["summary"]
    assert "{rest_time}" in str(ours)
    make_site(tmp_path, REVIEWED, {"content/en/labels.toml":
                                   '[labels]\nsummary = ["Rest for at least 24 hours."]\n'})
    with pytest.raises(ConfigError) as exc:
        content_for("en", tmp_path / "content")
    dropped = {re.search(r"\{(\w+)\}", p.problem).group(1) for p in exc.value.problems}
    assert "rest_time" in dropped
    assert all(p.field == "content/en/labels.toml [labels] summary" for p in exc.value.problems)
    assert all("leaves out" in p.problem for p in exc.value.problems)


def test_a_condition_must_name_a_protocol_choice(tmp_path):
    make_site(tmp_path, REVIEWED, {"content/en/discharge.toml": """
[home]
blocks = [{ p = "Rest.", when = { positon = "flat" } },
          { p = "Rest more.", when = { position = "sideways" } }]
"""})
    with pytest.raises(ConfigError) as exc:
        content_for("en", tmp_path / "content")
    text = "\n".join(problems_of(exc))
    assert "[home.blocks[#1].when] positon: is not a protocol choice" in text
    assert "did you mean 'position'?" in text
    assert "'sideways' is not one of its choices" in text


def test_placeholders_known_include_every_setting_and_type_key():
    names = known_placeholders()
    assert {"rest_time", "position_time", "emergency_number", "type_name", "region"} <= names


# -- a language of the site's own ----------------------------------------------------

def test_a_language_of_the_sites_own_must_have_every_file_and_key(tmp_path):
    make_site(tmp_path, REVIEWED, {"content/fr/labels.toml":
                                   '[meta]\nlanguage = "fr"\n[labels]\npage = "Page"\n'})
    with pytest.raises(ConfigError) as exc:
        content_for("fr", tmp_path / "content")
    text = "\n".join(problems_of(exc))
    for name in ("handout", "discharge", "types"):
        assert f"content/fr/{name}.toml: is missing" in text
    assert "content/fr/labels.toml [labels] of: is missing" in text


def test_a_complete_language_of_the_sites_own_loads(tmp_path):
    folder = tmp_path / "content" / "xx"
    shutil.copytree(content_dir() / "en", folder)
    (folder / "nurse_page.toml").unlink()
    make_site(tmp_path, REVIEWED)
    content = content_for("xx", tmp_path / "content")
    assert content.language == "xx"
    assert content.folder == folder
    assert content.last_reviewed == date(2026, 11, 20)
    assert len(content.overrides) == 4


# -- provenance and the footer date ---------------------------------------------------

def test_provenance_and_footer_follow_the_sites_text(tmp_path):
    from myelo_docs import get_renderer

    make_site(tmp_path, 'name = "x"\n[content]\ntext_reviewed = 2026-11-02\n',
              {"content/en/labels.toml":
               '[labels]\nresults_note = "Your doctor will call you with the results."\n'})
    renderer = get_renderer(site=tmp_path)
    pdf = renderer.packet(BASE_RECORD, full_render=True).pdf
    info = {k.lstrip("/"): str(v) for k, v in PdfReader(io.BytesIO(pdf)).metadata.items()}
    assert info["MyeloDocsContentReviewed"] == "2026-11-02"
    assert re.fullmatch(r"[0-9a-f]{12}", info["MyeloDocsContentOverrides"])
    text = flat(" ".join(pages_text(pdf)))
    assert "Your doctor will call you with the results." in text
    assert text.count("Text reviewed: Nov 2, 2026") == len(pages_text(pdf))
    ours = get_renderer().packet(BASE_RECORD, full_render=True).pdf
    ours_info = {k.lstrip("/"): str(v) for k, v in PdfReader(io.BytesIO(ours)).metadata.items()}
    assert "MyeloDocsContentOverrides" not in ours_info
    assert ours_info["MyeloDocsContent"] == info["MyeloDocsContent"]  # our files, same hash
    # A changed override file is a changed hash.
    (tmp_path / "content/en/labels.toml").write_text(
        '[labels]\nresults_note = "We will call you."\n')
    load_content.cache_clear()
    from myelo_docs.verify.provenance import content_provenance

    again = content_provenance(content_for("en", tmp_path / "content"))
    assert again["MyeloDocsContentOverrides"] != info["MyeloDocsContentOverrides"]


# -- topics ----------------------------------------------------------------------------

@pytest.mark.parametrize("language", ["en", "es"])
def test_our_text_covers_every_topic_for_every_protocol_choice(language):
    content, brand = load_content(language), load_brand()
    protocol = load_protocol()
    variants = [protocol] + [protocol.model_copy(update={key: option})
                             for key, options in choices().items() for option in options]
    for variant in variants:
        missing, unchecked = uncovered(content, variant, brand)
        assert (missing, unchecked) == ([], []), variant


def test_a_text_without_a_topic_is_caught():
    ours = load_content("en")
    data = {**ours.data, "discharge": {**ours.data["discharge"], "headache": {
        "title": "Headache", "blocks": [{"p": "Call us if your head hurts."}]}}}
    cut = Content(language="en", folder=ours.folder, data=data)
    missing, _ = uncovered(cut, load_protocol(), load_brand())
    assert "spinal-headache" in missing and "blood-patch" in missing


def test_every_topic_names_its_brief_and_words_in_each_language():
    for topic, table in load_topics().items():
        assert table["brief"], topic
        assert table["en"] and table["es"], topic


# -- site init, site check ---------------------------------------------------------------

def test_site_init_writes_a_commented_site_from_our_defaults(tmp_path):
    folder = tmp_path / "site"
    result = CliRunner().invoke(main, ["site", "init", str(folder)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in folder.iterdir()} >= {"site.toml", "brand.toml", "protocol.toml",
                                                   "logo.svg", "content"}
    assert (folder / "content" / "README.txt").is_file()
    site = load_site(folder)
    assert site.brand == folder.resolve() / "brand.toml"
    assert load_brand(site.brand).hospital_name == load_brand().hospital_name
    # Every setting of our protocol file is there, commented: ours until changed.
    ours = tomllib.loads(default_protocol_file().read_text())
    text = (folder / "protocol.toml").read_text()
    for key in ours:
        if key != "version":
            assert re.search(rf"^# {key} =", text, re.M), key
    theirs = load_protocol(site.protocol)
    assert theirs.model_dump(exclude={"version"}) == \
        load_protocol().model_dump(exclude={"version"})
    assert theirs.version != load_protocol().version
    # Uncommenting a line changes that setting.
    (folder / "protocol.toml").write_text(text.replace('# position = "raised"',
                                                       'position = "flat"'))
    assert load_protocol(site.protocol).position == "flat"


def test_site_init_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["site", "init", str(tmp_path)])
    assert result.exit_code == 5
    assert "--force" in result.output
    assert not (tmp_path / "site.toml").exists()
    result = CliRunner().invoke(main, ["site", "init", str(tmp_path), "--force"])
    assert result.exit_code == 0
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_site_check_on_a_new_site_passes_and_writes_previews(tmp_path):
    folder = tmp_path / "site"
    init_site(folder)
    text = (folder / "site.toml").read_text()
    (folder / "site.toml").write_text(text.replace('languages = ["en", "es"]',
                                                   'languages = ["es"]'))
    result = CliRunner().invoke(main, ["site", "check", str(folder), "--no-warm"])
    assert result.exit_code == 0, result.output
    assert "Ready to print" in result.output
    assert len(result.output.splitlines()) <= 24  # one screen
    previews = sorted((folder / "preview").glob("*.pdf"))
    assert [p.name for p in previews][:1] == ["packet-cervical-es.pdf"]
    assert len(previews) == 7  # every type (three parts, four multi-part), Spanish only
    pdf = previews[0].read_bytes()
    assert "Mielografía cervical" in flat(" ".join(pages_text(pdf)))


def test_site_check_on_a_broken_site_exits_4_naming_the_file_and_key(tmp_path):
    folder = tmp_path / "site"
    init_site(folder)
    text = (folder / "site.toml").read_text().replace("# text_reviewed", "text_reviewed")
    (folder / "site.toml").write_text(text)
    make_site(folder, text, {"content/en/discharge.toml": '[home]\ntitel = "At home"\n',
                             "content/es/labels.toml":
                             '[labels]\nresults_note = "Llame al {hospitl}."\n'})
    result = CliRunner().invoke(main, ["site", "check", str(folder), "--no-warm"])
    assert result.exit_code == 4
    out = result.output
    assert "content/en/discharge.toml [home] titel" in out
    assert "did you mean 'title'?" in out
    assert "content/es/labels.toml [labels] results_note" in out
    assert "{hospitl}" in out
    assert "Not ready" in out
    assert not (folder / "preview").exists()  # nothing printed from broken text


def test_site_check_on_a_bad_site_toml_stops_there(tmp_path):
    make_site(tmp_path, 'name = "x"\n[output]\npapr = "a4"\n')
    result = CliRunner().invoke(main, ["site", "check", str(tmp_path)])
    assert result.exit_code == 4
    assert "site.toml output papr" in result.output
    assert "did you mean 'paper'" in result.output


def test_the_worked_example_site_is_valid():
    site = load_site(EXAMPLE)
    assert site.name.startswith("St. Example")
    assert load_protocol(site.protocol).position == "flat"
    assert load_brand(site.brand).for_language("es").hospital_name == "Hospital St. Example"
    for language in ("en", "es"):
        content = content_for(language, site.content)
        assert content.last_reviewed == site.text_reviewed
        assert "St. Example" in content.data["labels"]["labels"]["results_note"]


def test_warm_builds_the_fast_path_templates(tmp_path, monkeypatch):
    from myelo_docs import get_renderer

    monkeypatch.setenv("MYELO_DOCS_CACHE_DIR", str(tmp_path / "cache"))
    done = warm(get_renderer(site=EXAMPLE), ["en"], types=["lumbar"])
    assert done.error == ""
    assert done.built + len(done.full) == 2  # regular and large print
    assert done.folder == tmp_path / "cache"
    files = sorted((tmp_path / "cache").glob("*.tmpl"))
    assert len(files) >= done.built >= 1  # on disk, for every later process


def test_a_site_may_set_its_own_condition_on_a_part_matched_by_id(tmp_path):
    content = overridden(tmp_path, {"content/en/discharge.toml": """
[[home.figures]]
id = "rest-flat"
when = { position = ["flat", "none"] }
"""})
    figure = next(f for f in content.data["discharge"]["home"]["figures"] if f["id"] == "rest-flat")
    assert figure["when"] == {"position": ["flat", "none"]}
    assert figure["caption"] == next(
        f for f in load_content("en").data["discharge"]["home"]["figures"]
        if f["id"] == "rest-flat")["caption"]
