"""Brand and protocol files: a wrong file is a clear error naming the key."""

from __future__ import annotations

import shutil

import pytest

from myelo_docs import ConfigError
from myelo_docs.assets import builtin_brands_dir
from myelo_docs.schema.brand import load_brand
from myelo_docs.schema.protocol import load_protocol


def brand_with(tmp_path, old: str, new: str):
    folder = tmp_path / "brand"
    shutil.copytree(builtin_brands_dir() / "demo", folder)
    path = folder / "brand.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(("old", "new", "message"), [
    ('primary_colour = "#1F4E79"', 'primary_colour = "blue"', "not a colour"),
    ('primary_colour = "#1F4E79"', 'primary_colour = "#FFFF00"', "too light to read"),
    ('department_phone = "(555) 010-0100"\n', "", "department_phone: is required"),
    ('paper = "letter"', 'paper = "legal"', "paper"),
    ('website = "www.example.org"', 'website = "www.example.org"\nwebsit = "x"',
     "websit: is not a known key"),
    ('hospital_name = "Demo General Hospital"', 'hospital_name = "Demo', "not valid TOML"),
])
def test_bad_brand_file(tmp_path, old, new, message):
    with pytest.raises(ConfigError) as caught:
        load_brand(brand_with(tmp_path, old, new))
    assert message in str(caught.value)


def test_missing_brand_file(tmp_path):
    with pytest.raises(ConfigError, match="was not found"):
        load_brand(tmp_path / "nope.toml")


@pytest.mark.parametrize(("content", "message"), [
    ("rest_hours = 0", "rest_hours"),
    ("fever_f = 110", "fever_f"),
    ("test_minutes_low = 90\ntest_minutes_high = 60",
     "test_minutes_low: is more than test_minutes_high"),
    ("rest_hourz = 24", "rest_hourz: is not a known key"),
    ("rest_hours = 'a day'", "rest_hours"),
])
def test_bad_protocol_file(tmp_path, content, message):
    path = tmp_path / "protocol.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_protocol(path)
    assert message in str(caught.value)


def test_protocol_defaults_and_partial_override(tmp_path):
    assert load_protocol().rest_hours == 24
    path = tmp_path / "protocol.toml"
    path.write_text("head_pillows = 3\n")
    protocol = load_protocol(path)
    assert protocol.head_pillows == 3 and protocol.fever_f == 100.0


def test_an_unknown_key_in_any_settings_file_gets_a_did_you_mean_among_its_own_keys(tmp_path):
    """Brand, protocol, thresholds, column map and site: a misspelt key is answered
    with the nearest key of that file, never with the patient record's fields."""
    from click.testing import CliRunner

    from myelo_docs.cli.main import main

    (tmp_path / "brand.toml").write_text(
        (builtin_brands_dir() / "demo" / "brand.toml").read_text("utf-8")
        + '\ndepartmnet = "X"\n', "utf-8")
    shutil.copy(builtin_brands_dir() / "demo" / "logo.svg", tmp_path / "logo.svg")
    (tmp_path / "protocol.toml").write_text("rest_hourz = 3\n", "utf-8")
    (tmp_path / "thresholds.toml").write_text("[en]\nsectoin = 6\n", "utf-8")
    (tmp_path / "map.toml").write_text('ignroe = ["Room"]\n', "utf-8")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "site.toml").write_text('name = "X"\n[outpt]\npaper = "a4"\n', "utf-8")
    (tmp_path / "rows.csv").write_text("patient_name,mrn\nA B,12345678\n", "utf-8")
    handout = ["handout", "--type", "lumbar", "-o", str(tmp_path / "h.pdf")]
    cases = [
        (handout + ["--brand", str(tmp_path / "brand.toml")], "did you mean 'department'?"),
        (handout + ["--protocol", str(tmp_path / "protocol.toml")], "did you mean 'rest_hours'?"),
        (["check-content", "--thresholds", str(tmp_path / "thresholds.toml")],
         "did you mean 'section'?"),
        (["validate", str(tmp_path / "rows.csv"), "--columns", str(tmp_path / "map.toml")],
         "did you mean 'ignore'?"),
        (["validate", str(tmp_path / "rows.csv"), "--site", str(tmp_path / "site")],
         "did you mean 'output'?"),
    ]
    for args, hint in cases:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 4, (args, result.output)
        assert hint in result.output, (args, result.output)
        assert "patient_name" not in result.output and "date_of_birth" not in result.output
