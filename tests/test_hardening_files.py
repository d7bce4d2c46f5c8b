"""Issue 16, files: the output folder is ours and nothing else (no symbolic link
is followed, every file is 0600 from its first byte), patient values are never
echoed from a CSV, pathological CSV shapes stop fast in bounded memory, and a
JSON key given twice is an error naming the key.

Refusals happen before anything is rendered, so most tests here take well under
a second; the few that render use one or two rows and --jobs 1.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import BASE_RECORD, ROOT
from myelo_docs.batch import run as batch_module
from myelo_docs.batch.run import INCOMPLETE, Manifest, RowResult, _Plan, _prepare_out_dir
from myelo_docs.cli.main import main
from myelo_docs.formats.csv_input import MAX_CELL_CHARS, MAX_COLUMNS, MAX_ROW_CHARS
from myelo_docs.formats.json_input import parse_json, shown_key
from myelo_docs.output.files import create_private, write_atomic
from myelo_docs.schema.errors import InvalidJSON, OutputError, RecordError

HEADER = "type,patient_name,date_of_birth,mrn,procedure_date\n"
ROW = "lumbar,Ann Linkcheck,1960-01-01,L-001,2026-11-25\n"
ROW2 = "cervical,Bob Linkcheck,1961-02-02,L-002,2026-11-25\n"
SENTINEL = b"not yours to touch\n"
PHI = ["Rosalind", "Testpatient", "1958-07-14", "4471902", "Ann Linkcheck", "L-001",
       "Bob Linkcheck", "L-002", "1960-01-01", "1961-02-02"]


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def no_phi(*texts: str) -> None:
    for text in texts:
        for value in PHI:
            assert value not in text, value


@pytest.fixture
def victim(tmp_path):
    """A folder outside the output folder, with files a link could reach."""
    folder = tmp_path / "victim"
    folder.mkdir()
    for name in ("keep.txt", "keep.pdf", "manifest.csv"):
        (folder / name).write_bytes(SENTINEL)
    return folder


def untouched(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["keep.pdf", "keep.txt", "manifest.csv"]
    for path in folder.iterdir():
        assert path.read_bytes() == SENTINEL


# ---- links in the output folder -----------------------------------------------------

LINKS = {  # what is linked -> (where the link is, relative to tmp_path; its real target)
    "incomplete": ("out/.incomplete", "victim"),
    "manifest": ("out/manifest.csv", "victim/manifest.csv"),
    "pdf": ("out/2.pdf", "victim/keep.pdf"),
    "print file": ("print.pdf", "victim/keep.pdf"),
}


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("dangling", [False, True], ids=["real", "dangling"])
@pytest.mark.parametrize("kind", list(LINKS))
def test_a_link_where_our_file_goes_is_exit_5_and_nothing_is_touched(tmp_path, victim, kind,
                                                                     dangling, force):
    source = tmp_path / "list.csv"
    source.write_text(HEADER + ROW)
    out = tmp_path / "out"
    out.mkdir()
    where, target = LINKS[kind]
    link = tmp_path / where
    target_path = tmp_path / ("victim/missing" if dangling else target)
    link.symlink_to(target_path)
    if kind == "incomplete":  # the data-loss case: a batch that is refused anyway
        (out / "manifest.csv").write_text("row,status\n")
    args = ["batch", source, "--out", out, "--jobs", "1", "--quiet", "--name-pattern", "{row}",
            "--combined", tmp_path / "print.pdf"]
    result = run(*args, *(["--force"] if force else []))
    assert result.exit_code == 5, result.output
    assert str(link) in result.stderr and "symbolic link" in result.stderr
    assert "Traceback" not in result.output
    untouched(victim)
    assert link.is_symlink() and os.readlink(link) == str(target_path)
    assert not (tmp_path / "victim/missing").exists()
    assert not list(out.glob("*.pdf")) or kind == "pdf"  # nothing rendered


def test_a_link_inside_incomplete_is_refused_and_nothing_deleted(tmp_path, victim):
    source = tmp_path / "list.csv"
    source.write_text(HEADER + ROW)
    out = tmp_path / "out"
    (out / ".incomplete").mkdir(parents=True)
    (out / ".incomplete" / ".myelo-old.part").write_bytes(b"stale")
    (out / ".incomplete" / ".myelo-link.part").symlink_to(victim / "keep.txt")
    result = run("batch", source, "--out", out, "--jobs", "1", "--quiet")
    assert result.exit_code == 5
    assert ".myelo-link.part is a symbolic link" in result.stderr
    assert (out / ".incomplete" / ".myelo-old.part").exists()  # checks come before deleting
    untouched(victim)


def test_an_existing_batch_is_refused_before_stale_files_are_deleted(tmp_path):
    source = tmp_path / "list.csv"
    source.write_text(HEADER + ROW)
    out = tmp_path / "out"
    (out / ".incomplete").mkdir(parents=True)
    (out / ".incomplete" / ".myelo-old.part").write_bytes(b"stale")
    (out / "manifest.csv").write_text("row,status\n")
    result = run("batch", source, "--out", out, "--jobs", "1", "--quiet")
    assert result.exit_code == 5 and "--resume" in result.stderr
    assert (out / ".incomplete" / ".myelo-old.part").read_bytes() == b"stale"


def test_out_itself_may_be_a_link_and_every_file_is_0600(tmp_path):
    source = tmp_path / "list.csv"
    source.write_text(HEADER + ROW)
    real = tmp_path / "real"
    real.mkdir()
    out = tmp_path / "out"
    out.symlink_to(real)
    (real / ".incomplete").mkdir()
    (real / ".incomplete" / ".myelo-old.part").write_bytes(b"stale")
    (real / "manifest.csv").write_text("row,status\n")
    (real / "manifest.csv").chmod(0o644)  # from an older version
    old_umask = os.umask(0o022)
    try:
        result = run("batch", source, "--out", out, "--jobs", "1", "--quiet", "--force",
                     "--combined", tmp_path / "print.pdf")
    finally:
        os.umask(old_umask)
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in real.iterdir())
    assert len(files) == 2 and "manifest.csv" in files  # the stale file and .incomplete went
    for name in files:
        assert mode(real / name) == 0o600, name
    assert mode(tmp_path / "print.pdf") == 0o600


def test_the_live_manifest_is_0600_from_creation_and_never_opened_through_a_link(tmp_path):
    old_umask = os.umask(0o022)
    try:
        manifest = Manifest(tmp_path, resume=False)
        assert mode(tmp_path / "manifest.csv") == 0o600
        manifest.append(RowResult(2, "ok", "a.pdf"))
        manifest._fh.close()
        (tmp_path / "manifest.csv").chmod(0o644)
        resumed = Manifest(tmp_path, resume=True)  # appends to the old one, made 0600
        assert mode(tmp_path / "manifest.csv") == 0o600 and 2 in resumed.previous
        resumed._fh.close()
    finally:
        os.umask(old_umask)
    (tmp_path / "elsewhere.csv").write_bytes(SENTINEL)
    for resume in (True, False):
        (tmp_path / "manifest.csv").unlink()
        (tmp_path / "manifest.csv").symlink_to(tmp_path / "elsewhere.csv")
        with pytest.raises(OutputError, match="symbolic link"):
            Manifest(tmp_path, resume=resume)
        assert (tmp_path / "elsewhere.csv").read_bytes() == SENTINEL


@pytest.mark.parametrize("dangling", [False, True])
def test_write_atomic_never_replaces_a_link_even_with_overwrite(tmp_path, dangling):
    target = tmp_path / "target.pdf"
    if not dangling:
        target.write_bytes(SENTINEL)
    link = tmp_path / "p.pdf"
    link.symlink_to(target)
    for overwrite in (False, True):
        with pytest.raises(OutputError) as caught:
            write_atomic(link, b"%PDF-new", overwrite=overwrite)
        assert str(link) in str(caught.value) and "symbolic link" in str(caught.value)
    assert link.is_symlink()
    assert target.read_bytes() == SENTINEL if not dangling else not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["p.pdf"] + ([] if dangling else ["target.pdf"]))


def test_an_existing_print_file_stops_the_batch_before_rendering(tmp_path):
    source = tmp_path / "list.csv"
    source.write_text(HEADER + ROW)
    (tmp_path / "print.pdf").write_bytes(SENTINEL)
    result = run("batch", source, "--out", tmp_path / "out", "--jobs", "1", "--quiet",
                 "--combined", tmp_path / "print.pdf")
    assert result.exit_code == 5 and "--combined" in result.stderr
    assert not (tmp_path / "out").exists()
    assert (tmp_path / "print.pdf").read_bytes() == SENTINEL


# ---- patient values never echoed ------------------------------------------------------

HEADERLESS = [
    "lumbar,Rosalind Testpatient,1958-07-14,4471902,2026-11-25\n"
    "cervical,Bob Linkcheck,1961-02-02,L-002,2026-11-25\n",
    # one cell happens to be a known column name: still not a header
    "lumbar,Rosalind Testpatient,1958-07-14,4471902,2026-11-25,RN,Name\n"
    "cervical,Bob Linkcheck,1961-02-02,L-002,2026-11-25,RN,x\n",
    "Testpatient,Rosalind,07/14/1958,4471902,Dr Ozu\nLinkcheck,Bob,02/02/1961,00000002,Dr Ozu\n",
    "Rosalind Testpatient,Lumbar myelogram,14-Jul-58,L-001,25-Nov-26\n"
    "Bob Linkcheck,Cervical myelogram,2-Feb-61,L-002,25-Nov-26\n",  # Excel's dates
]


@pytest.mark.parametrize("text", HEADERLESS)
def test_a_csv_without_a_header_row_echoes_no_value(tmp_path, text):
    source = tmp_path / "list.csv"
    source.write_text(text)
    checked = run("validate", source)
    assert checked.exit_code == 3 and "no header row" in checked.stderr
    batch = run("batch", source, "--out", tmp_path / "out", "--jobs", "1", "--quiet")
    assert batch.exit_code == 3 and "no header row" in batch.stderr
    no_phi(checked.output, batch.output)
    assert not (tmp_path / "out").exists()


def test_a_header_cell_that_is_a_value_is_named_by_its_position(tmp_path):
    source = tmp_path / "list.csv"
    source.write_text("type,patient_name,date_of_birth,mrn,procedure_date,4471902,1958-07-14\n"
                      + ROW)
    result = run("validate", source)
    assert result.exit_code == 3
    assert "column 6 (F): holds a value" in result.stderr
    assert "column 7 (G): holds a value" in result.stderr
    no_phi(result.output)


def test_row_errors_echo_no_value_in_output_or_manifest(tmp_path):
    rows = [
        HEADER.rstrip("\n") + ",medications\n",
        'lumbar,Rosalind Testpatient,1958-07-14,4471902,2026-11-25,'
        '"[{""name"": ""Warfarin"", ""name"": ""Ann Linkcheck"", ""instruction"": ""x""}]"\n',
        "lumbar,Rosalind Testpatient,1958-07-14,L-001,2026-11-25,,Bob Linkcheck\n",  # stray
        "Total: 2 patients,,,,,\n",
        "lumbar,Bob Linkcheck,1961-02-31,L-002,2026-11-25,\n",  # no such date
        "lumbar,Bob Linkcheck," + "x" * (MAX_CELL_CHARS + 1) + ",L-002,2026-11-25,\n",
    ]
    source = tmp_path / "list.csv"
    source.write_text("".join(rows))
    checked = run("validate", source)
    assert checked.exit_code == 7, checked.output
    out = tmp_path / "out"
    batch = run("batch", source, "--out", out, "--jobs", "1", "--quiet")
    assert batch.exit_code == 7, batch.output
    manifest = (out / "manifest.csv").read_text()
    errors = {line["row"]: line["error"] for line in csv.DictReader(manifest.splitlines())}
    assert 'medications[0]: has the key "name" twice' in errors["2"]
    assert "column 7 (G): holds a value" in errors["3"]
    assert "totals or summary row" in errors["4"]
    assert "date_of_birth" in errors["5"]
    assert f"holds more than {MAX_CELL_CHARS:,} characters" in errors["6"]
    no_phi(checked.output, batch.output, manifest)
    assert "Warfarin" not in manifest and "xxxx" not in manifest


def test_a_file_that_does_not_decode_echoes_no_value(tmp_path):
    source = tmp_path / "list.csv"
    source.write_bytes((HEADER + "lumbar,Ann Linkcheck Müller,1960-01-01,L-001,2026-11-25\n")
                       .encode("cp1252"))
    result = run("validate", source)
    assert result.exit_code == 3 and "--encoding cp1252" in result.stderr
    no_phi(result.output)
    assert "Müller" not in result.output


# ---- pathological shapes --------------------------------------------------------------

def validate_in_subprocess(path: Path) -> tuple[int, str, float, int]:
    """(exit code, stderr, seconds, peak resident MB) of `myelo-docs validate path`."""
    script = (
        "import runpy, sys\n"
        "sys.argv = ['myelo-docs', 'validate', sys.argv[1]]\n"
        "try:\n"
        "    runpy.run_module('myelo_docs', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "status = open('/proc/self/status').read()\n"  # VmHWM: this program's peak, not
        "peak = int(status.split('VmHWM:')[1].split()[0]) // 1024\n"  # its parent's (maxrss)
        "print(f'PEAK {peak}', file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    seconds = time.perf_counter() - started
    peak = int(done.stderr.rsplit("PEAK ", 1)[1])
    return done.returncode, done.stderr, seconds, peak


def shapes(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each pathological file and the row its error names."""
    wide = folder / "wide.csv"
    with wide.open("w") as fh:  # 2 million columns: a 17 MB header line
        fh.write(",".join(f"c{i}" for i in range(2_000_000)) + "\n" + ROW)
    endless = folder / "endless.csv"
    endless.write_text("a" * 17_000_000)  # one 17 MB line, no line break at all
    cell = folder / "cell.csv"  # a 5 MB cell
    cell.write_text(HEADER + 'lumbar,"' + "x" * 5_000_000 + '",1960-01-01,L-001,2026-11-25\n'
                    + ROW2)
    unclosed = folder / "unclosed.csv"  # a quote never closed, over many short lines
    unclosed.write_text(HEADER + 'lumbar,"Ann\n' + "more text\n" * 200_000)
    return {"wide": (wide, "row 1"), "endless": (endless, "row 1"), "cell": (cell, "row 2"),
            "unclosed": (unclosed, "row 2")}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory from /proc")
def test_pathological_csv_shapes_stop_fast_in_bounded_memory(tmp_path):
    for name, (path, row) in shapes(tmp_path).items():
        code, stderr, seconds, peak_mb = validate_in_subprocess(path)
        assert code == 3, (name, stderr)
        assert f"{row}: is longer than {MAX_ROW_CHARS:,} characters" in stderr, name
        assert "export only the columns the packet needs" in stderr, name
        assert "Traceback" not in stderr
        assert seconds < 10, (name, seconds)
        assert peak_mb < 200, (name, peak_mb)


def test_too_many_columns_is_a_header_error(tmp_path):
    source = tmp_path / "list.csv"
    source.write_text(HEADER.rstrip("\n") + "".join(f",extra {i}" for i in range(MAX_COLUMNS))
                      + "\n" + ROW)
    result = run("validate", source)
    assert result.exit_code == 3
    assert f"row 1: has {MAX_COLUMNS + 5} columns (at most {MAX_COLUMNS}" in result.stderr
    # empty columns past the last named one do not count (Excel exports them)
    source.write_text(HEADER.rstrip("\n") + "," * 1000 + "\n" + ROW)
    assert run("validate", source).exit_code == 0


def test_a_long_cell_is_a_row_error_and_the_other_rows_print(tmp_path):
    source = tmp_path / "list.csv"
    source.write_text(HEADER + 'lumbar,"' + "x" * 200_000 + '",1960-01-01,L-001,2026-11-25\n'
                      + ROW2)
    out = tmp_path / "out"
    result = run("batch", source, "--out", out, "--jobs", "1", "--quiet")
    assert result.exit_code == 7, result.output
    lines = list(csv.DictReader((out / "manifest.csv").read_text().splitlines()))
    assert [(line["row"], line["status"]) for line in lines] == [("2", "error"), ("3", "ok")]
    assert "column 2 (B): holds more than" in lines[0]["error"]


# ---- JSON: one strict reader -------------------------------------------------------------

@pytest.mark.parametrize("key", ["mrn", "patient_name"])
def test_a_json_record_with_a_key_twice_is_an_error_naming_the_key(tmp_path, key):
    first, second = BASE_RECORD[key], "Somebody Else 99887766"
    text = json.dumps(BASE_RECORD)[:-1] + f', "{key}": "{second}"' + "}"
    assert json.loads(text)[key] == second  # what json.loads would have printed
    (tmp_path / "rec.json").write_text(text)
    result = run("packet", "--input", tmp_path / "rec.json", "-o", tmp_path / "p.pdf")
    assert result.exit_code == 3, result.output
    assert f'--input: has the key "{key}" twice' in result.stderr
    assert first not in result.output and second not in result.output
    assert not (tmp_path / "p.pdf").exists()


def test_a_bundle_with_a_key_twice_is_an_error_naming_the_path(tmp_path):
    text = (ROOT / "tests/data/fhir/lumbar-procedure.json").read_text()
    doubled = text.replace('"birthDate": "1958-07-14",',
                           '"birthDate": "1958-07-14", "birthDate": "1961-01-01",', 1)
    assert doubled != text
    (tmp_path / "b.json").write_text(doubled)
    result = run("packet", "--fhir", tmp_path / "b.json", "-o", tmp_path / "p.pdf")
    assert result.exit_code == 3, result.output
    assert 'Bundle.entry[0].resource: has the key "birthDate" twice' in result.stderr
    assert "1958-07-14" not in result.output and "1961-01-01" not in result.output
    assert not (tmp_path / "p.pdf").exists()


@pytest.mark.parametrize(("data", "problem"), [
    (b'{"entry": [{"x": 1}, {"id": 1, "id": 2}]}', 'body.entry[1]: has the key "id" twice'),
    (b'{"a": [{"x": 1}, {"y": 1, "y": 2}]}', "body.?[1]: has a key twice"),  # unknown names
    (b'{"a": 1, "a": 1}', "body: has a key twice"),
    (b"\xff{}", "body: is not UTF-8 text"),
    ('{"a" 1}', "body: is not valid JSON (line 1 column 6"),
    ('{"a": NaN}', "body: has NaN, which JSON does not allow"),
    ("[" * 100_000, "body: has a number too long or nesting too deep"),
    ('{"a": ' + "1" * 5000 + "}", "body: has a number too long or nesting too deep"),
])
def test_parse_json_names_the_place_never_a_value(data, problem):
    with pytest.raises(InvalidJSON) as caught:
        parse_json(data, "body", "send one JSON object in UTF-8")
    assert isinstance(caught.value, RecordError) and caught.value.exit_code == 3
    assert problem in str(caught.value)


def test_parse_json_reads_what_json_reads():
    assert parse_json(b'\xef\xbb\xbf{"a": [1, {"b": null}]}', "body", "") == \
        {"a": [1, {"b": None}]}
    assert parse_json('\ufeff"x"', "body", "") == "x"
    assert parse_json('{"a": {"b": 1}, "c": {"b": 2}}', "body", "") == \
        {"a": {"b": 1}, "c": {"b": 2}}  # the same key in two objects is fine


# ---- review of the hardening: what else stands where our files go -------------------------

def one_row_batch(tmp_path: Path, *extra: object):
    source = tmp_path / "list.csv"
    source.write_text(HEADER + ROW)
    return run("batch", source, "--out", tmp_path / "out", "--jobs", "1", "--quiet",
               "--name-pattern", "{row}", *extra)


@pytest.mark.parametrize("kind", ["folder", "fifo"])
@pytest.mark.parametrize("flag", ["--force", "--resume"])
def test_not_a_file_where_a_pdf_goes_is_exit_5_before_anything_is_written(tmp_path, kind,
                                                                           flag):
    out = tmp_path / "out"
    out.mkdir()
    where = out / "2.pdf"  # the row's own name: was "internal error (IsADirectoryError)"
    where.mkdir() if kind == "folder" else os.mkfifo(where)
    (out / "other.PDF").mkdir()  # any *.pdf, whatever its case
    result = one_row_batch(tmp_path, flag)
    assert result.exit_code == 5, result.output
    assert f"{where} is not a file" in result.stderr
    assert f"{out / 'other.PDF'} is not a file" in result.stderr
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["2.pdf", "other.PDF"]  # nothing written


def test_write_atomic_refuses_a_folder_even_with_overwrite(tmp_path):
    (tmp_path / "p.pdf").mkdir()
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="is not a file"):
            write_atomic(tmp_path / "p.pdf", b"%PDF-new", overwrite=overwrite)
    assert (tmp_path / "p.pdf").is_dir() and sorted(os.listdir(tmp_path)) == ["p.pdf"]


@pytest.fixture
def linked_manifest(tmp_path):
    """out/manifest.csv as a second name (a hard link) of a file elsewhere, mode 0644."""
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_bytes(b"row,status,file\n")
    elsewhere.chmod(0o644)
    out = tmp_path / "out"
    out.mkdir()
    os.link(elsewhere, out / "manifest.csv")
    return out / "manifest.csv", elsewhere


@pytest.mark.parametrize("flag", ["--resume", "--force"])
def test_a_hard_linked_manifest_is_exit_5_and_its_other_name_untouched(tmp_path,
                                                                       linked_manifest, flag):
    manifest, elsewhere = linked_manifest
    result = one_row_batch(tmp_path, flag)
    assert result.exit_code == 5, result.output
    assert f"{manifest} has other names (a hard link)" in result.stderr
    assert "never writes to a file that has other names" in result.stderr
    assert elsewhere.read_bytes() == b"row,status,file\n" and mode(elsewhere) == 0o644
    assert sorted(p.name for p in manifest.parent.iterdir()) == ["manifest.csv"]


def test_the_manifest_is_checked_again_when_opened(linked_manifest):
    """The folder scan comes first; a hard link made after it is refused on open."""
    manifest, elsewhere = linked_manifest
    with pytest.raises(OutputError) as caught:
        Manifest(manifest.parent, resume=True)  # reads it, then would append
    assert f"{manifest} is not a regular file with one name" in str(caught.value)
    assert caught.value.exit_code == 5
    with pytest.raises(OutputError, match="hard link"):
        create_private(manifest, append=True)
    assert elsewhere.read_bytes() == b"row,status,file\n" and mode(elsewhere) == 0o644


def test_resume_trusts_only_a_pdf_that_is_ours_and_replaces_a_hard_link(tmp_path):
    out = tmp_path / "out"
    (out / INCOMPLETE).mkdir(parents=True)
    pdf = out / "2.pdf"
    pdf.write_bytes(b"%PDF-ours")
    digest = hashlib.sha256(b"%PDF-ours").hexdigest()
    (out / "manifest.csv").write_text("row,status,file,sha256\n" f"2,ok,2.pdf,{digest}\n")
    manifest = Manifest(out, resume=True)
    manifest._fh.close()
    plan = _Plan(2, name="2.pdf")
    assert manifest.done_before(plan, out) is not None  # a regular file with one name
    os.link(pdf, tmp_path / "shared.pdf")  # same bytes, same hash, but a second name
    assert manifest.done_before(plan, out) is None  # so it is rendered again ...
    write_atomic(pdf, b"%PDF-new", overwrite=True, tmp_dir=out / INCOMPLETE)  # and replaced:
    assert (tmp_path / "shared.pdf").read_bytes() == b"%PDF-ours"  # not written through
    assert os.stat(pdf).st_nlink == 1 and pdf.read_bytes() == b"%PDF-new"
    pdf.unlink()
    pdf.symlink_to(tmp_path / "shared.pdf")
    assert manifest.done_before(plan, out) is None


def test_the_temporary_folder_is_opened_once_and_a_swap_after_changes_nothing(
        tmp_path, victim, monkeypatch):
    """.incomplete replaced by a link between our check and our temporary file:
    the file still goes into the folder that was opened, never the link's target."""
    incomplete = tmp_path / ".incomplete"
    incomplete.mkdir()
    moved = tmp_path / "moved"
    real_open = os.open

    def swapping_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if Path(path) == incomplete and not moved.exists():
            incomplete.rename(moved)
            incomplete.symlink_to(victim)
        return fd

    monkeypatch.setattr(os, "open", swapping_open)
    write_atomic(tmp_path / "p.pdf", b"%PDF-new", overwrite=True, tmp_dir=incomplete)
    monkeypatch.undo()
    assert incomplete.is_symlink()  # the swap happened
    assert (tmp_path / "p.pdf").read_bytes() == b"%PDF-new" and mode(tmp_path / "p.pdf") == 0o600
    assert list(moved.iterdir()) == []
    untouched(victim)


def test_a_temporary_folder_that_is_a_link_or_a_file_is_refused(tmp_path, victim):
    (tmp_path / "link").symlink_to(victim)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OutputError, match="symbolic link"):
        write_atomic(tmp_path / "p.pdf", b"%PDF", tmp_dir=tmp_path / "link")
    with pytest.raises(OutputError, match="is not a folder"):
        write_atomic(tmp_path / "p.pdf", b"%PDF", tmp_dir=tmp_path / "file")
    untouched(victim)
    assert not (tmp_path / "p.pdf").exists()


@pytest.mark.parametrize("tmp_dir", [None, ".incomplete"])
def test_an_interrupted_write_leaves_no_temporary_file(tmp_path, monkeypatch, tmp_dir):
    """What a killed run does short of SIGKILL (Ctrl-C, a full disk): nothing left."""
    folder = tmp_path / tmp_dir if tmp_dir else None
    if folder:
        folder.mkdir()

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "p.pdf", b"%PDF", tmp_dir=folder)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ([tmp_dir] if tmp_dir else [])


def test_folders_we_create_are_0700_and_the_users_keep_their_mode(tmp_path):
    old_umask = os.umask(0o022)
    try:
        made = tmp_path / "new" / "out"
        _prepare_out_dir(made, resume=False, force=False)
        assert mode(made) == 0o700 and mode(made / INCOMPLETE) == 0o700
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o755)
        _prepare_out_dir(theirs, resume=False, force=False)
        assert mode(theirs) == 0o755 and mode(theirs / INCOMPLETE) == 0o700
    finally:
        os.umask(old_umask)


@pytest.fixture
def fake_combined(monkeypatch):
    """build_combined without rendering: writes a small file the way it does."""
    targets: list[Path] = []

    def build(packets, target, renderer, duplex, overwrite=False):
        targets.append(Path(target))
        write_atomic(Path(target), b"%PDF-print", overwrite=overwrite)
        return 3

    monkeypatch.setattr("myelo_docs.batch.print_file.build_combined", build)
    return targets


def test_a_print_file_inside_out_is_built_in_incomplete(tmp_path, fake_combined):
    out = tmp_path / "out"
    (out / INCOMPLETE).mkdir(parents=True)
    pages = batch_module._write_print_file([], out / "print.pdf", out, None, False, False)
    assert pages == 3 and fake_combined[0].parent == out / INCOMPLETE
    assert (out / "print.pdf").read_bytes() == b"%PDF-print" and mode(out / "print.pdf") == 0o600
    assert list((out / INCOMPLETE).iterdir()) == []
    # refused at the end (another print file appeared): nothing of ours is left behind
    with pytest.raises(OutputError, match="exists"):
        batch_module._write_print_file([], out / "print.pdf", out, None, False, False)
    assert list((out / INCOMPLETE).iterdir()) == []
    assert (out / "print.pdf").read_bytes() == b"%PDF-print"
    # elsewhere: built in place (write_atomic's temporary file is removed on any error)
    batch_module._write_print_file([], tmp_path / "print.pdf", out, None, False, False)
    assert fake_combined[-1] == tmp_path / "print.pdf"


def test_a_batch_with_its_print_file_inside_out_leaves_only_its_files(tmp_path, monkeypatch):
    from myelo_docs.batch import print_file as combined

    built_in: list[Path] = []
    real_write = combined.write_atomic

    def spy(target, data, overwrite=False, tmp_dir=None):
        built_in.append(Path(target).parent)
        real_write(target, data, overwrite=overwrite, tmp_dir=tmp_dir)

    monkeypatch.setattr(combined, "write_atomic", spy)
    out = tmp_path / "out"
    out.mkdir()
    result = one_row_batch(tmp_path, "--combined", out / "print.pdf")
    assert result.exit_code == 0, result.output
    assert built_in == [out / INCOMPLETE]
    assert sorted(p.name for p in out.iterdir()) == ["2.pdf", "manifest.csv", "print.pdf"]
    assert mode(out / "print.pdf") == 0o600


# ---- JSON keys: shown only when they are names we know ------------------------------------

@pytest.mark.parametrize(("key", "shown"), [
    ("mrn", True), ("patient_name", True), ("instruction", True), ("birthDate", True),
    ("resourceType", True), ("Warfarin", False), ("warfarin", False), ("Ann Linkcheck", False),
    ("4471902", False), ("x" * 50, False), ("mrn\u200b", False), ("", False),
])
def test_shown_key_shows_only_names_we_know(key, shown):
    assert (shown_key(key) == key) if shown else shown_key(key) is None


def test_a_key_that_could_be_patient_data_is_never_echoed(tmp_path):
    text = json.dumps(BASE_RECORD)[:-1] + ', "Warfarin": "stop", "Warfarin": "go on"}'
    (tmp_path / "rec.json").write_text(text)
    result = run("packet", "--input", tmp_path / "rec.json", "-o", tmp_path / "p.pdf")
    assert result.exit_code == 3, result.output
    assert "--input: has a key twice" in result.stderr
    assert "Warfarin" not in result.output and "stop" not in result.output
    with pytest.raises(InvalidJSON) as caught:  # nor as a step of the path
        parse_json('{"medications": [], "Ann Linkcheck": {"dose": 1, "dose": 2}}', "body", "")
    assert "body.?: has a key twice" in str(caught.value)
    assert "Ann Linkcheck" not in str(caught.value)
