"""The reading-level check: our text passes it, hard text fails it by name."""

from __future__ import annotations

import re
import shutil

import pytest
from click.testing import CliRunner

from myelo_docs.assets import content_dir
from myelo_docs.cli.main import main
from myelo_docs.content.readability import check
from myelo_docs.schema.languages import available_languages

HANDOUT_IDS = re.compile(r'^id = "([a-z-]+)"', re.M)


@pytest.fixture(scope="module")
def reports():
    return {r.language: r for r in check()}


@pytest.mark.parametrize("language", available_languages())
def test_shipped_content_is_within_its_reading_level(reports, language):
    report = reports[language]
    assert report.formula, f"no readability formula for {language}"
    names = {m.name for m in report.measures}
    ids = HANDOUT_IDS.findall((content_dir() / language / "handout.toml").read_text("utf-8"))
    assert {f"handout {i}" for i in ids} <= names
    assert {"discharge home", "discharge emergency", "types cervical", "labels",
            "whole handout (lumbar)"} <= names
    over = [f"{m.name}: {m.score} (limit {m.limit})" for m in report.measures if m.over]
    assert not over, f"{language} text is too hard: {over}"


def test_english_meets_our_published_bar(reports):
    en = reports["en"].measures
    assert all(m.score <= 7 for m in en if not m.whole)
    assert all(m.score <= 6 for m in en if m.whole)
    assert all(m.words > 0 and m.sentences > 0 for m in en)


def _hospital_folder(tmp_path):
    folder = tmp_path / "content"
    shutil.copytree(content_dir() / "en", folder / "en")
    return folder


def test_a_hard_section_in_a_hospital_folder_fails_by_name(tmp_path):
    folder = _hospital_folder(tmp_path)
    handout = folder / "en" / "handout.toml"
    text = handout.read_text("utf-8")
    hard = ("Subsequent to the administration of a subcutaneous anesthetic preparation, "
            "practitioners characteristically experience proprioceptive sensations "
            "attributable to intrathecal instrumentation rather than considerable discomfort.")
    start = text.index('p = "First, the doctor numbs your skin')
    end = text.index("\n", start)
    handout.write_text(text[:start] + f'p = "{hard}"' + text[end:], "utf-8")

    result = CliRunner().invoke(main, ["check-content", "--content-dir", str(folder)])
    assert result.exit_code == 4, result.output
    assert "en/handout.toml [handout does-it-hurt]" in result.stderr
    assert "limit is ≤ 7" in result.stderr
    over_lines = [line for line in result.stdout.splitlines() if line.endswith("OVER")]
    assert len(over_lines) == 1 and "handout does-it-hurt" in over_lines[0]


def test_thresholds_are_a_setting(tmp_path):
    strict = tmp_path / "strict.toml"
    strict.write_text("[en]\nsection = 1.5\nwhole = 1\n", "utf-8")
    result = CliRunner().invoke(main, ["check-content", "--language", "en",
                                       "--thresholds", str(strict)])
    assert result.exit_code == 4
    assert "whole handout (lumbar)" in result.stderr and "limit is ≤ 1" in result.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text('[en]\nformula = "guesswork"\nsecton = 7\n', "utf-8")
    result = CliRunner().invoke(main, ["check-content", "--thresholds", str(bad)])
    assert result.exit_code == 4
    assert "thresholds [en] formula" in result.stderr
    assert "thresholds [en] secton: is not a known key" in result.stderr
    assert "Traceback" not in result.output


def test_a_wrong_placeholder_in_a_hospital_folder_is_named(tmp_path):
    folder = _hospital_folder(tmp_path)
    discharge = folder / "en" / "discharge.toml"
    discharge.write_text(discharge.read_text("utf-8").replace("{rest_time}", "{rest_tme}"),
                         "utf-8")
    result = CliRunner().invoke(main, ["check-content", "--content-dir", str(folder)])
    assert result.exit_code == 4
    assert "'{rest_tme}' is not a known placeholder" in result.stderr


def test_unknown_language_lists_those_available():
    result = CliRunner().invoke(main, ["check-content", "--language", "xx"])
    assert result.exit_code == 4
    assert "'xx' has no content folder" in result.stderr and "en" in result.stderr


def test_text_printed_for_one_protocol_choice_is_measured_too(tmp_path):
    """A hard sentence that only a "flat" hospital prints still fails the check,
    though the default protocol is "raised"."""
    folder = _hospital_folder(tmp_path)
    discharge = folder / "en" / "discharge.toml"
    text = discharge.read_text("utf-8")
    flat_item = '{ text = "**Lie flat** on your back for {position_time}, as much as you can."'
    assert flat_item in text
    hard = ("Maintain continuous horizontal recumbency, discontinuing it exclusively for "
            "physiologically unavoidable elimination requirements, throughout {position_time}. ")
    discharge.write_text(text.replace(flat_item, f'{{ text = "{hard * 6}"'), "utf-8")
    over = [m.name for report in check(content_dir=folder, languages=["en"])
            for m in report.measures if m.over]
    assert "discharge home" in over
