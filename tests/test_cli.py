"""The command line, run as a nurse would: exit codes, messages, files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import BASE_RECORD, flat, pages_text
from myelo_docs.cli.main import main

FLAGS = [
    "--type", "cervical", "--patient-name", "Rosalind Testpatient",
    "--date-of-birth", "1958-07-14", "--mrn", "TST-4471902", "--procedure-date", "2026-11-25",
]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_packet_from_flags_default_name_has_no_patient_name(cli, tmp_path):
    result = cli.invoke(main, ["packet", *FLAGS, "--medication", "Warfarin: Restart on Friday",
                               "--instruction", "No baths for a week."])
    assert result.exit_code == 0, result.output
    files = list(tmp_path.glob("*.pdf"))
    assert len(files) == 1
    name = files[0].name
    assert name.startswith("myelogram-packet-2026-11-25-")
    assert "Rosalind" not in name and "Testpatient" not in name and "4471902" not in name
    whole = flat(" ".join(pages_text(files[0].read_bytes())))
    assert "Warfarin" in whole and "Restart on Friday" in whole and "No baths for a week." in whole
    assert "Cervical myelogram" in whole


def test_packet_from_json_stdin_to_stdout(cli):
    result = cli.invoke(main, ["packet", "--input", "-", "-o", "-"],
                        input=json.dumps(BASE_RECORD))
    assert result.exit_code == 0
    assert result.stdout_bytes.startswith(b"%PDF-")
    assert "Rosalind Testpatient" in flat(pages_text(result.stdout_bytes)[0])


def test_flags_override_json(cli, tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(BASE_RECORD))
    result = cli.invoke(main, ["packet", "--input", "r.json", "--type", "thoracic", "-o", "t.pdf"])
    assert result.exit_code == 0, result.output
    assert "after your thoracic myelogram" in flat(pages_text((tmp_path / "t.pdf").read_bytes())[0])


def test_invalid_record_exit_3_lists_every_problem_and_writes_nothing(cli, tmp_path):
    result = cli.invoke(main, ["packet", "--type", "spinal", "--patient-name", "Ann",
                               "--date-of-birth", "14/07/1958", "-o", "x.pdf"])
    assert result.exit_code == 3
    for text in ["--type:", "--date-of-birth:", "--mrn: is required",
                 "--procedure-date: is required"]:
        assert text in result.stderr
    assert "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


def test_bad_json_is_exit_3_with_position(cli, tmp_path):
    (tmp_path / "r.json").write_text('{"type": "lumbar",}')
    result = cli.invoke(main, ["packet", "--input", "r.json"])
    assert result.exit_code == 3
    assert "line 1 column" in result.stderr


def test_bad_medication_flag(cli):
    result = cli.invoke(main, ["packet", *FLAGS, "--medication", "Warfarin"])
    assert result.exit_code == 3
    assert "NAME: INSTRUCTION" in result.stderr


def test_existing_file_not_overwritten_without_force(cli, tmp_path):
    (tmp_path / "p.pdf").write_bytes(b"keep me")
    result = cli.invoke(main, ["packet", *FLAGS, "-o", "p.pdf"])
    assert result.exit_code == 5
    assert (tmp_path / "p.pdf").read_bytes() == b"keep me"
    result = cli.invoke(main, ["packet", *FLAGS, "-o", "p.pdf", "--force"])
    assert result.exit_code == 0
    assert (tmp_path / "p.pdf").read_bytes().startswith(b"%PDF-")


def test_bad_brand_exit_4(cli, tmp_path):
    (tmp_path / "brand.toml").write_text('hospital_name = "X"\n')
    result = cli.invoke(main, ["packet", *FLAGS, "--brand", "brand.toml"])
    assert result.exit_code == 4
    assert "logo: is required" in result.stderr


def test_unsupported_character_exit_3_no_file(cli, tmp_path):
    result = cli.invoke(main, ["packet", *FLAGS[:2], "--patient-name", "王小明", *FLAGS[4:],
                               "-o", "x.pdf"])
    assert result.exit_code == 3
    assert "--patient-name: has characters no installed font can print: 3 Chinese, Japanese " \
        "or Korean characters" in result.stderr
    assert "U+738B" not in result.stderr  # code points would spell the name
    assert not (tmp_path / "x.pdf").exists()


def test_handout_command(cli, tmp_path):
    result = cli.invoke(main, ["handout", "--type", "THORACIC"])
    assert result.exit_code == 0, result.output
    pdf = (tmp_path / "myelogram-handout-thoracic-en.pdf").read_bytes()
    assert "Your thoracic myelogram: what to expect" in flat(pages_text(pdf)[0])


def test_handout_unknown_type_and_language(cli):
    assert cli.invoke(main, ["handout", "--type", "sacral"]).exit_code == 3
    result = cli.invoke(main, ["handout", "--type", "lumbar", "--language", "xx"])
    assert result.exit_code == 3
    assert "use one of: en" in result.stderr


def test_help_documents_every_option_and_exit_codes(cli):
    for command in ["packet", "handout", "demo"]:
        result = cli.invoke(main, [command, "--help"])
        assert result.exit_code == 0
        assert "Exit codes:" in result.output
        for param in main.commands[command].params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.help, f"{command} --{param.name} has no help"


def run_cli(args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "MYELO_DOCS_DEBUG"}
    return subprocess.run([sys.executable, "-m", "myelo_docs", *args], cwd=cwd, env=env,
                          capture_output=True, timeout=120)


def test_demo_twice_in_separate_processes_gives_identical_bytes(tmp_path):
    first = run_cli(["demo", "-o", "a.pdf"], tmp_path)
    second = run_cli(["demo", "-o", "b.pdf"], tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    a, b = (tmp_path / "a.pdf").read_bytes(), (tmp_path / "b.pdf").read_bytes()
    assert a.startswith(b"%PDF-") and a == b
    assert b"Wrote a" in first.stderr
