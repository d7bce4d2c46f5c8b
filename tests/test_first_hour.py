"""The first hour of a newcomer (issue 15): the install, the README's quick start,
and the messages the usual first mistakes get. Each names what the user typed
and the fix in their terms."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import BASE_RECORD
from myelo_docs.batch.run import Summary
from myelo_docs.cli.batch import Progress
from myelo_docs.cli.main import check_output, main
from myelo_docs.render.fonts import check_glyphs, font_set
from myelo_docs.schema.errors import MissingGlyphError, OutputError
from myelo_docs.schema.languages import available_languages

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "scripts" / "install.sh"
FLAGS = ["--type", "lumbar", "--patient-name", "Rosalind Testpatient",
         "--date-of-birth", "1958-07-14", "--procedure-date", "2026-11-25"]  # no --mrn


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return CliRunner()


# -- install and README ------------------------------------------------------------


def test_install_waits_for_the_package_manager_lock(tmp_path):
    """A stub apt-get that reports the lock held twice, then succeeds: the
    script's apt_get waits with a message instead of failing with exit 100."""
    function = re.search(r"^apt_get\(\) \{.*?^\}", INSTALL.read_text(), re.S | re.M)
    assert function, "install.sh runs apt-get through a function that waits for the lock"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "apt-get").write_text(f"""#!/bin/sh
echo x >> {calls}
if [ "$(wc -l < {calls})" -le 2 ]; then
  echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 42 (apt-get)" >&2
  exit 100
fi
exit 0
""")
    (bin_dir / "apt-get").chmod(0o755)
    script = (f"SUDO=''; LOCK_WAIT_SECONDS=60; LOCK_POLL_SECONDS=0\n{function.group(0)}\n"
              "apt_get update -qq")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(calls.read_text().split()) == 3
    assert "Waiting for another program to finish installing packages" in done.stderr
    assert "held by process 42" in done.stderr
    assert done.stderr.count("Waiting for another program") == 1  # said once, not every poll


def test_install_gives_up_on_the_lock_saying_what_to_do(tmp_path):
    function = re.search(r"^apt_get\(\) \{.*?^\}", INSTALL.read_text(), re.S | re.M)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text("""#!/bin/sh
[ "$LC_ALL" = C ] || { echo "E: Sperre nicht bekommen" >&2; exit 1; }
echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 7" >&2
exit 100
""")
    (bin_dir / "apt-get").chmod(0o755)
    script = (f"SUDO=''; LOCK_WAIT_SECONDS=3; LOCK_POLL_SECONDS=0.5\n{function.group(0)}\n"
              "apt_get update -qq")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LANG": "de_DE.UTF-8"}
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 100
    assert "Waiting up to 3 seconds" in done.stderr  # the English message, in any locale
    assert "Gave up after 3 seconds" in done.stderr and "run this script again" in done.stderr


def test_install_ends_saying_how_to_put_venv_bin_on_path():
    text = INSTALL.read_text()
    tail = text[text.rindex("myelo-docs demo"):]
    assert "--force" in tail.splitlines()[0]  # its own demo file, on every run again
    assert 'export PATH="$PWD/.venv/bin:\\$PATH"' in tail
    assert ".venv/bin/myelo-docs" in tail and "7 minutes" in tail


def test_readme_quick_start_names_what_install_installs_and_why():
    readme = (ROOT / "README.md").read_text()
    quick = readme[readme.index("## Quick start"):readme.index("## What a packet contains")]
    commands = re.search(r"```sh\n(.*?)```", quick, re.S).group(1).strip().splitlines()
    assert [c.split("#")[0].strip() for c in commands] == [
        "bash scripts/install.sh", "bash scripts/test.sh"]  # still two commands
    packages = re.search(r"DEBIAN_PACKAGES=\((.*?)\)", INSTALL.read_text()).group(1).split()
    for package in packages:
        assert f"`{package}`" in quick, package
    assert "about 7 minutes on 2 cores" in quick
    assert "only for the tests" in quick and "never needs a\n  browser" in quick
    assert "waits for it" in quick
    assert "PATH" in quick and ".venv/bin/myelo-docs" in quick


# -- characters no font covers ---------------------------------------------------------


def _glyph_message(**fields: str) -> str:
    with pytest.raises(MissingGlyphError) as caught:
        check_glyphs(fields, font_set())
    return str(caught.value)


def test_uncovered_characters_are_named_in_words_with_code_points_for_the_font_fixer():
    name = _glyph_message(patient_name="王小明")
    assert "3 Chinese, Japanese or Korean characters" in name
    assert "CJK Unified Ideographs U+4E00-U+9FFF" in name  # what a font must cover
    assert "U+738B" not in name and "U+5C0F" not in name  # code points would spell the name
    assert "fonts-noto-cjk" in name
    cherry = _glyph_message(**{"instructions #1": "Eat a 🍒"})
    assert "an emoji or symbol (U+1F352 CHERRIES)" in cherry
    assert "1 of them: CHERRY" not in cherry
    heart = _glyph_message(mrn="A❤️")
    assert "an emoji or symbol (Unicode block Dingbats" in heart and "HEAVY" not in heart
    assert "Devanagari letters (U+0905" in _glyph_message(physician="Dr. अमित")


def test_readme_says_what_the_font_message_says():
    readme = (ROOT / "README.md").read_text()
    fonts = readme[readme.index("## Fonts and scripts"):readme.index("## Brand and protocol")]
    assert "Chinese, Japanese or Korean characters" in fonts and "U+738B" in fonts


# -- commands ----------------------------------------------------------------------


def test_demo_never_replaces_a_file_without_force(cli, tmp_path):
    (tmp_path / "d.pdf").write_bytes(b"keep me")
    result = cli.invoke(main, ["demo", "-o", "d.pdf"])
    assert result.exit_code == 5
    assert "-o: d.pdf exists. Fix: choose another name, or add --force" in result.stderr
    assert (tmp_path / "d.pdf").read_bytes() == b"keep me"
    result = cli.invoke(main, ["demo", "-o", "d.pdf", "--force"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d.pdf").read_bytes().startswith(b"%PDF-")


def test_missing_field_names_the_flag_to_add(cli):
    result = cli.invoke(main, ["packet", *FLAGS, "-o", "p.pdf"])
    assert result.exit_code == 3
    assert "--mrn: is required but missing. Fix: add --mrn" in result.stderr
    assert "add a value for it" not in result.stderr


def test_errors_about_flags_name_the_flag(cli):
    result = cli.invoke(main, ["packet", *FLAGS, "--mrn", "M1", "--instruction", "",
                               "--date-of-birth", "24/03/1961", "-o", "p.pdf"])
    assert result.exit_code == 3
    assert "--instruction #1: is empty" in result.stderr
    assert "--date-of-birth: is not a date" in result.stderr
    assert "after validation" not in result.stderr and "instructions #1" not in result.stderr


def test_record_from_json_names_the_key_and_both_ways_to_add(cli, tmp_path):
    data = {k: v for k, v in BASE_RECORD.items() if k != "mrn"}
    data["date_of_birth"] = "1961/03/24"
    (tmp_path / "r.json").write_text(json.dumps(data))
    result = cli.invoke(main, ["packet", "--input", "r.json", "-o", "p.pdf"])
    assert result.exit_code == 3
    assert "date_of_birth: is not a date" in result.stderr  # the JSON key, as in the file
    assert 'mrn: is required but missing. Fix: add --mrn, or "mrn" to r.json' in result.stderr


def test_settings_errors_have_no_pydantic_wording_and_say_the_unit(cli, tmp_path):
    brand = tmp_path / "brand"
    brand.mkdir()
    demo = ROOT / "myelo_docs" / "brands" / "demo"
    for file in demo.iterdir():
        (brand / file.name).write_bytes(file.read_bytes())
    text = (brand / "brand.toml").read_text()
    text = re.sub(r'(?m)^primary_colour = .*$', 'primary_colour = "blue"', text)
    text = re.sub(r'(?m)^accent_colour = .*$', 'accent_colour = "#FFFF00"', text)
    (brand / "brand.toml").write_text(text)
    result = cli.invoke(main, ["packet", *FLAGS, "--mrn", "M1",
                               "--brand", str(brand / "brand.toml")])
    assert result.exit_code == 4
    assert "value error" not in result.stderr.lower()
    assert "brand primary_colour: is not a colour written as #RRGGBB" in result.stderr
    assert "brand accent_colour: is too light" in result.stderr and "darker" in result.stderr
    (tmp_path / "protocol.toml").write_text("fever_f = 38\n")
    result = cli.invoke(main, ["packet", *FLAGS, "--mrn", "M1", "--protocol", "protocol.toml"])
    assert result.exit_code == 4
    assert "protocol fever_f: is below 99 °F. Fix: give it in °F, from 99 to 102.5" \
        in result.stderr
    assert "greater than or equal" not in result.stderr


def test_choices_take_any_case_and_spaces(cli):
    # --paper ' A4' passes the command line; the missing MRN stops it before any render.
    result = cli.invoke(main, ["packet", *FLAGS, "--paper", " A4", "--language", "ES-mx",
                               "--type", " Lumbar "])
    assert result.exit_code == 3, result.output
    assert "--mrn: is required" in result.stderr and "--paper" not in result.stderr
    assert "--language" not in result.stderr and "--type" not in result.stderr


def test_a_region_tag_counts_as_its_language_on_the_handout_too(cli, tmp_path):
    result = cli.invoke(main, ["handout", "--type", "lumbar", "--language", "es-MX"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "myelogram-handout-lumbar-es.pdf").exists()
    result = cli.invoke(main, ["handout", "--type", "lumbar", "--language", "xx"])
    assert result.exit_code == 3
    assert "--language: 'xx' has no patient text. Fix: use one of: en, es" in result.stderr


def test_language_help_lists_the_languages(cli):
    for command in ("packet", "handout"):
        help_text = " ".join(cli.invoke(main, [command, "--help"]).output.split())
        assert "Language: " + ", ".join(available_languages()) in help_text
        assert "es-MX is es" in help_text


def _exit_codes(cli, *command: str) -> set[int]:
    output = cli.invoke(main, [*command, "--help"]).output
    block = output[output.index("Exit codes:"):]
    return {int(m) for m in re.findall(r"^\s+(\d+)\s\s", block, re.M)}


def test_each_command_lists_only_the_exit_codes_it_can_return(cli):
    every = {0, 1, 2, 130}  # 130: stopped with Ctrl-C
    assert _exit_codes(cli) == {*range(8), 130}
    assert _exit_codes(cli, "schema") == every
    assert _exit_codes(cli, "packet") == {*every, 3, 4, 5, 6}
    assert _exit_codes(cli, "demo") == {*every, 5, 6}
    assert _exit_codes(cli, "check-content") == {*every, 4}
    assert _exit_codes(cli, "validate") == {*every, 3, 4, 7}
    assert _exit_codes(cli, "batch") == {*every, 3, 4, 5, 7}
    assert "    0  success" in cli.invoke(main, ["--help"]).output  # aligned with 130
    assert "manifest.csv" not in cli.invoke(main, ["validate", "--help"]).output.split(
        "Exit codes:")[1]


class _Terminal:
    def isatty(self) -> bool:
        return True


def test_pdf_to_a_terminal_is_refused():
    with pytest.raises(OutputError) as caught:
        check_output("-", stdout=_Terminal())
    assert "-o -" in str(caught.value) and "redirect" in str(caught.value)
    with open(os.devnull, "w") as redirected:
        check_output("-", stdout=redirected)  # fine


def test_pdf_to_a_real_terminal_is_refused_before_any_render(tmp_path):
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "myelo_docs", "demo", "-o", "-"],
                              cwd=tmp_path, stdout=follower, stderr=subprocess.PIPE,
                              timeout=120)
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 5
    assert b"Standard output is a terminal" in done.stderr


def test_a_name_not_ending_in_pdf_gets_a_warning(cli):
    result = cli.invoke(main, ["packet", *FLAGS, "-o", "out.txt"])
    assert "Warning: -o out.txt does not end in .pdf" in result.stderr
    result = cli.invoke(main, ["packet", *FLAGS, "-o", "out.PDF"])
    assert "Warning" not in result.stderr


def test_batch_progress_shows_no_rate_before_a_packet_is_rendered(capsys):
    progress = Progress(quiet=False)
    progress.tty = False
    progress(3, 100, Summary(total=100, failed=3, seconds=0.005))
    first = capsys.readouterr().err
    assert first.strip() == "3/100 rows"
    progress.tty = True
    progress(4, 100, Summary(total=100, failed=4, seconds=0.006))
    assert "rows/s" not in capsys.readouterr().err
    progress(5, 100, Summary(total=100, ok=1, failed=4, seconds=2.0))
    assert "2.5 rows/s" in capsys.readouterr().err


def test_the_quick_start_json_example_is_a_valid_record():
    from myelo_docs.schema.record import validate_record

    record = validate_record(json.loads((ROOT / "examples" / "record.json").read_text()))
    assert record.type.value == "lumbar"


# -- found by a newcomer's run of the README ----------------------------------------


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "myelo-docs"
    return [str(script)] if script.exists() else [sys.executable, "-m", "myelo_docs"]


def test_ctrl_c_stops_a_batch_with_every_pdf_recorded_and_says_resume(tmp_path):
    import signal
    import time

    header = "type,patient_name,date_of_birth,mrn,procedure_date"
    rows = [f"lumbar,Rosalind Testpatient,1958-07-14,TST-{n:07d},2026-11-25" for n in range(60)]
    (tmp_path / "rows.csv").write_text("\n".join([header, *rows]) + "\n")
    out = tmp_path / "out"
    process = subprocess.Popen([*_cli(), "batch", "rows.csv", "--out", "out", "--jobs", "2",
                                "--full-render", "--quiet"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until a first packet is recorded
        manifest = out / "manifest.csv"
        if manifest.exists() and len(manifest.read_text().splitlines()) >= 2:
            break
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr and "stopped after" in stderr and "Traceback" not in stderr
    lines = (out / "manifest.csv").read_text().splitlines()[1:]
    pdfs = sorted(p.name for p in out.glob("*.pdf"))
    assert 1 <= len(pdfs) < 60
    assert sorted(line.split(",")[2] for line in lines if ",ok," in line) == pdfs
    done = subprocess.run([*_cli(), "batch", "rows.csv", "--out", "out", "--resume",
                           "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{len(pdfs)} already done" in done.stdout


def test_serve_on_a_port_in_use_says_so_before_starting_workers(tmp_path):
    import socket
    import time

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run([*_cli(), "serve", "--port", str(port)], capture_output=True,
                              text=True, timeout=60)
    assert done.returncode == 4
    assert f"--port: {port} is in use" in done.stderr and "--port" in done.stderr
    assert time.monotonic() - started < 10 and "workers ready" not in done.stderr


def test_fhir_out_over_an_existing_file_names_the_flag_before_rendering(tmp_path):
    (tmp_path / "docref.json").write_text("{}")
    result = CliRunner().invoke(main, [
        "packet", "--fhir", str(ROOT / "tests" / "data" / "fhir" / "lumbar-procedure.json"),
        "--procedure-date", "2026-11-25", "--fhir-out", str(tmp_path / "docref.json")])
    assert result.exit_code == 5
    assert "--fhir-out" in result.output


def test_a_brand_file_cannot_set_where_its_logo_may_come_from(tmp_path):
    import shutil

    from myelo_docs.schema.brand import load_brand

    shutil.copytree(Path(load_brand().folder), tmp_path / "brand")
    with (tmp_path / "brand" / "brand.toml").open("a") as fh:
        fh.write('folder = "/etc"\n')
    result = CliRunner().invoke(main, ["handout", "--type", "lumbar", "--brand",
                                       str(tmp_path / "brand" / "brand.toml"),
                                       "-o", str(tmp_path / "h.pdf")])
    assert result.exit_code == 4
    assert "folder: is not a known key" in result.output
    assert "folder," not in result.output.split("known keys are:")[1]


def test_a_print_file_inside_a_new_out_folder_works(tmp_path):
    header = "type,patient_name,date_of_birth,mrn,procedure_date"
    (tmp_path / "rows.csv").write_text(
        f"{header}\nlumbar,Rosalind Testpatient,1958-07-14,TST-0000001,2026-11-25\n")
    result = CliRunner().invoke(main, [
        "batch", str(tmp_path / "rows.csv"), "--out", str(tmp_path / "new"), "--combined",
        str(tmp_path / "new" / "print.pdf"), "--jobs", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "new" / "print.pdf").exists()
    assert "1 row: 1 ok" in result.output


def test_an_unknown_address_answers_in_the_error_shape():
    from fastapi.testclient import TestClient

    from myelo_docs.service import RenderPool, RenderSettings, create_app

    pool = RenderPool(RenderSettings(), workers=1, queue=0)  # not started: no render here
    client = TestClient(create_app(pool), base_url="http://127.0.0.1")
    for response in (client.get("/nothing/here"), client.delete("/v1/packets")):
        body = response.json()
        assert response.status_code in (404, 405)
        assert set(body) == {"error", "message", "problems"} and body["problems"][0]["fix"]


def test_a_misspelt_type_gets_a_did_you_mean():
    from myelo_docs import RecordError, validate_record

    with pytest.raises(RecordError) as caught:
        validate_record({**BASE_RECORD, "type": "Lumbr"})
    assert caught.value.problems[0].fix.startswith("did you mean 'lumbar'?")
    with pytest.raises(RecordError) as caught:
        validate_record({**BASE_RECORD, "type": "Rosalind"})
    assert "did you mean" not in caught.value.problems[0].fix


def test_one_emoji_is_one_and_a_style_mark_alone_is_named_as_such():
    fonts = font_set()
    with pytest.raises(MissingGlyphError) as caught:
        check_glyphs({"nurse": "Ann \u2764\ufe0f", "physician": "Dr \U0001f44d\U0001f3fd"}, fonts)
    heart, thumb = caught.value.problems
    assert "an emoji or symbol (U+2764 HEAVY BLACK HEART)" in heart.problem
    assert "an emoji or symbol (U+1F44D THUMBS UP SIGN)" in thumb.problem
    with pytest.raises(MissingGlyphError) as caught:
        check_glyphs({"nurse": "Ann \u00a9\ufe0f"}, fonts)  # the copyright sign prints
    [mark] = caught.value.problems
    assert "emoji style mark" in mark.problem and "prints without it" in mark.fix
