"""Spreadsheets as hospitals export them: encodings, Excel's sep= line, empty
columns, totals rows, column maps, Excel-mangled values, the MRN pattern.

Every test writes a real file (real bytes) and reads it through validate_csv,
run_batch or the CLI; the files in shared/cases/intake/ are tested as their
README says. Rendering is slow, so few rows are rendered.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, flat, pages_text
from myelo_docs.batch.run import run_batch, validate_csv
from myelo_docs.cli.main import main
from myelo_docs.formats.csv_input import (
    ColumnMap,
    CsvError,
    column_label,
    iter_rows,
    load_column_map,
    open_csv,
    row_to_data,
)
from myelo_docs.schema.errors import ConfigError
from myelo_docs.schema.intake import IntakeSettings
from myelo_docs.schema.record import validate_record

CASES = ROOT.parent / "shared" / "cases" / "intake"
FIELDS = ["type", "patient_name", "date_of_birth", "mrn", "procedure_date"]
ANN = ["lumbar", "Ann Intake", "1960-01-01", "I-1001", "2026-11-25"]
BOB = ["cervical", "Chloé Démo", "1955-07-02", "I-1002", "2026-11-26"]
PATIENT_VALUES = ["Ann Intake", "Chloé", "Démo", "I-1001", "I-1002", "1960-01-01",
                  "1955-07-02", "Mara", "Testwell", "A1001", "A1002", "1961-03-24"]


def table(rows: list[list[str]], delimiter: str = ",", newline: str = "\r\n") -> str:
    """Rows as CSV text, quoting what needs it."""
    lines = []
    for row in rows:
        cells = [f'"{c}"' if any(ch in c for ch in (delimiter, "\n", '"')) else c for c in row]
        lines.append(delimiter.join(cells))
    return newline.join(lines) + newline


def write(path: Path, data: str | bytes, encoding: str = "utf-8") -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def names(source) -> list[str]:
    return [validate_record(row_to_data(cells)).patient_name for _, cells in iter_rows(source)]


def no_patient_values(text: str, values: list[str] = PATIENT_VALUES) -> None:
    for value in values:
        assert value not in text, value


def read_manifest(folder: Path) -> list[dict[str, str]]:
    with (folder / "manifest.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def case(name: str) -> Path:
    if not CASES.is_dir():
        pytest.skip(f"no intake cases at {CASES}")
    return CASES / name


# ---- encodings -----------------------------------------------------------------

@pytest.mark.parametrize(("encoding", "bom", "delimiter"), [
    ("utf-16-le", b"\xff\xfe", "\t"),  # Excel "Unicode Text"
    ("utf-16-le", b"\xff\xfe", ","),
    ("utf-16-be", b"\xfe\xff", "\t"),
    ("utf-32-le", b"\xff\xfe\x00\x00", ","),
    ("utf-8", b"\xef\xbb\xbf", ";"),
])
def test_a_byte_order_mark_says_the_encoding(tmp_path, encoding, bom, delimiter):
    text = table([FIELDS + ["instructions"], ANN + ["Rest today.\nDrink water."],
                  BOB + [""]], delimiter)
    path = write(tmp_path / "list.csv", bom + text.encode(encoding))
    source, problems = validate_csv(path)
    assert problems == [] and source.rows == 2 and source.delimiter == delimiter
    assert names(source) == ["Ann Intake", "Chloé Démo"]
    (_, cells), _ = list(iter_rows(source))
    assert validate_record(row_to_data(cells)).instructions == ["Rest today.", "Drink water."]
    result = run("validate", path)
    assert result.exit_code == 0 and "2 rows: 2 ready" in result.stdout


HINT_CASES = {
    # a UTF-16 file without its byte-order mark: NUL bytes, never cp1252
    "utf16-le-no-bom": (lambda t: t.encode("utf-16-le"), None, ["utf-16-le", "UTF-16"]),
    "utf16-le-no-bom-ascii": (lambda t: t.replace("é", "e").encode("utf-16-le"), None,
                              ["utf-16-le", "UTF-16"]),
    "utf16-be-no-bom": (lambda t: t.encode("utf-16-be"), None, ["utf-16-be"]),
    "utf16-no-bom-read-as-utf16": (lambda t: t.encode("utf-16-le"), "utf-16", ["utf-16-le"]),
    "utf16-bom-read-as-cp1252": (lambda t: t.encode("utf-16"), "cp1252",
                                 ["without --encoding"]),
    "utf16-bom-read-as-utf8": (lambda t: t.encode("utf-16"), "utf-8", ["without --encoding"]),
    # Windows-1252 bytes that decode cleanly: cp1252 is suggested
    "cp1252": (lambda t: t.encode("cp1252"), None, ["--encoding cp1252"]),
    "cp1252-read-as-utf8": (lambda t: t.encode("cp1252"), "utf-8", ["--encoding cp1252"]),
    # 0x81 is not a cp1252 character: re-export, no cp1252
    "neither": (lambda t: t.encode("cp1252").replace(b"\xe9", b"\x81\xe9"), None,
                ["UTF-8", "Save As"]),
    # a UTF-8 file read with a wrong --encoding
    "utf8-read-as-ascii": (lambda t: t.encode("utf-8"), "ascii", ["without --encoding"]),
}


@pytest.mark.parametrize("kind", list(HINT_CASES))
def test_the_encoding_hint_fits_the_bytes(tmp_path, kind):
    encode, given, expected = HINT_CASES[kind]
    path = write(tmp_path / "list.csv", encode(table([FIELDS, BOB])))
    with pytest.raises(CsvError) as caught:
        open_csv(path, given)
    message = str(caught.value)
    for text in expected:
        assert text in message, message
    if kind.startswith("utf16") or kind == "neither":
        assert "cp1252" not in message.replace("Windows-1252 (cp1252)", "")
    no_patient_values(message)
    args = ["--encoding", given] if given else []
    for command in (["validate", path], ["batch", path, "--out", tmp_path / "out"]):
        result = run(*command, *args)
        assert result.exit_code == 3, result.output
        assert expected[0] in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_encoding_help_says_utf16_is_read_automatically():
    for command in ("validate", "batch"):
        text = flat(run(command, "--help").stdout)
        assert "UTF-16" in text and "read automatically" in text
        assert "--columns" in text and "--mrn-pattern" in text


# ---- Excel's sep= line -----------------------------------------------------------

@pytest.mark.parametrize(("line", "delimiter"), [
    ("sep=;", ";"), ("sep=,", ","), ("sep=\t", "\t"), ("sep=\\t", "\t"), ("sep=|", "|"),
    ('"sep=;"', ";"), ("SEP=;", ";"), ("sep=;;;;", ";"),
])
def test_excel_sep_line_sets_the_delimiter_and_the_header_stays_row_1(tmp_path, line,
                                                                       delimiter):
    bad = ["lumbar", "Cat Intake", "1961-02-30", "I-1003", "2026-11-25"]
    # commas inside a cell show the sep= line wins over counting delimiters
    rows = [FIELDS + ["follow_up"], ANN + ["Clinic, room 3, at 10:30"], bad + [""]]
    path = write(tmp_path / "list.csv", "\ufeff" + line + "\r\n" + table(rows, delimiter))
    source, problems = validate_csv(path)
    assert source.delimiter == delimiter and source.rows == 2
    assert [(p.row, p.error.split(":")[0]) for p in problems] == [(3, "date_of_birth")]
    (_, cells), _ = list(iter_rows(source))
    assert validate_record(row_to_data(cells)).follow_up == "Clinic, room 3, at 10:30"
    result = run("validate", path)
    assert result.exit_code == 7 and "row 3: error: date_of_birth" in result.stderr


def test_a_sep_line_in_a_utf16_file(tmp_path):
    path = write(tmp_path / "list.csv", ("sep=;\r\n" + table([FIELDS, ANN], ";"))
                 .encode("utf-16"))
    source, problems = validate_csv(path)
    assert source.delimiter == ";" and problems == [] and names(source) == ["Ann Intake"]


# ---- empty columns, extra cells, totals rows --------------------------------------

def test_columns_with_no_header_and_no_values_are_ignored(tmp_path):
    rows = [["", *FIELDS[:2], "", *FIELDS[2:], "", ""],
            ["", *ANN[:2], "", *ANN[2:], "", ""],
            ["", *BOB[:2], "", *BOB[2:]],  # short row: Excel leaves trailing cells out
            ["", "", "", "", "", "", "", "", "", "", ""]]  # past the header too, all empty
    path = write(tmp_path / "list.csv", table(rows))
    source, problems = validate_csv(path)
    assert problems == [] and source.rows == 2
    assert names(source) == ["Ann Intake", "Chloé Démo"]


def test_a_column_with_no_header_but_values_is_a_header_error(tmp_path):
    rows = [FIELDS + ["", "physician"], ANN + ["", "Dr. Lee"], BOB + ["Room 12", "Dr. Lee"]]
    path = write(tmp_path / "list.csv", table(rows))
    with pytest.raises(CsvError) as caught:
        open_csv(path)
    message = str(caught.value)
    assert "column 6 (F): has no header but holds values (first in row 3)" in message
    assert "give the column a name" in message and "delete the column" in message
    assert "Room 12" not in message
    result = run("batch", path, "--out", tmp_path / "out")
    assert result.exit_code == 3 and "column 6 (F)" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("index", "label"), [(0, "1 (A)"), (6, "7 (G)"), (25, "26 (Z)"),
                                              (26, "27 (AA)"), (701, "702 (ZZ)"),
                                              (702, "703 (AAA)")])
def test_column_label_as_a_spreadsheet_names_it(index, label):
    assert column_label(index) == label


SUMMARY_ROWS = [
    ["", "Total: 2 patients", "", "", ""],
    ["TOTAL", "2", "", "", ""],
    ["Grand Total", "", "", "", "2"],
    ["", "", "", "Count: 2", ""],
    ["2 patients", "", "", "", ""],
    ["", "Number of patients", "2", "", ""],
    ["Subtotal", "", "", "", ""],
]


@pytest.mark.parametrize("summary", SUMMARY_ROWS)
def test_a_totals_row_is_a_row_error_and_the_patients_are_fine(tmp_path, summary):
    path = write(tmp_path / "list.csv", table([FIELDS + ["", ""], ANN + ["", ""], BOB,
                                               summary]))
    source, problems = validate_csv(path)
    assert source.rows == 3
    assert [(p.row, p.status) for p in problems] == [(4, "error")]
    assert "looks like a totals or summary row, not a patient" in problems[0].error
    assert "delete the row" in problems[0].error
    no_patient_values(problems[0].error, ["Total", "2 patients", "Count"])


def test_a_patient_row_that_starts_with_total_is_still_a_patient(tmp_path):
    rows = [FIELDS + ["instructions"], ANN + ["Total bed rest today."],
            ["lumbar", "Total Summers", "", "I-1009", "2026-11-25", ""]]
    source, problems = validate_csv(write(tmp_path / "list.csv", table(rows)))
    assert [(p.row, p.error.split(":")[0]) for p in problems] == [(3, "date_of_birth")]


def test_cells_past_the_header(tmp_path):
    rows = [FIELDS, ANN + ["", "  "], BOB + ["", "stray, value"]]
    path = write(tmp_path / "list.csv", table(rows))
    source, problems = validate_csv(path)
    assert source.rows == 2
    assert [p.row for p in problems] == [3]
    assert "column 7 (G): holds a value but the header has no column there" in \
        problems[0].error
    assert "stray" not in problems[0].error


# ---- a header and no rows; no header at all ------------------------------------------

@pytest.mark.parametrize("text", ["type,patient_name,date_of_birth,mrn,procedure_date\r\n",
                                  "sep=;\r\ntype;patient_name;date_of_birth;mrn;procedure_date"
                                  "\r\n;;;;\r\n\r\n"])
def test_a_header_and_no_rows_is_an_error(tmp_path, text):
    path = write(tmp_path / "list.csv", text)
    with pytest.raises(CsvError, match="no patient rows"):
        validate_csv(path)
    assert run("validate", path).exit_code == 3
    result = run("batch", path, "--out", tmp_path / "out")
    assert result.exit_code == 3 and "no rows under it" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("first", [ANN, ["Ann", "Intake", "1960-01-01", "I-1001", "lumbar"],
                                   ["Intake", "Ann", "01/02/1960", "00123456", "Dr Ozu"]])
def test_a_file_without_a_header_row_is_named_and_not_echoed(tmp_path, first):
    path = write(tmp_path / "list.csv", table([first, BOB]))
    for columns in (None, ColumnMap({"date_of_birth": "DOB"})):
        with pytest.raises(CsvError) as caught:
            open_csv(path, columns=columns)
        assert "seems to have no header row" in str(caught.value)
        no_patient_values(str(caught.value), [*first, *BOB])
    result = run("validate", path)
    assert result.exit_code == 3 and "no header row" in result.stderr
    no_patient_values(result.output, [*first, *BOB])


# ---- the column map --------------------------------------------------------------------

EXPORT = ["Type", "Last Name", "First Name", "DOB", "MRN", "Procedure Date", "Room", "Phone"]
EXPORT_ROW = ["lumbar", "Testwell", "Mara", "1961-03-24", "A1001", "2026-11-27", "12", "555"]
EXPORT_MAP = ('ignore = ["room", " PHONE "]\n\n[columns]\n'
              'patient_name = "{First Name} {Last Name}"\ndate_of_birth = "dob"\n')


def test_a_column_map_maps_joins_and_ignores(tmp_path):
    path = write(tmp_path / "export.csv", table([EXPORT, EXPORT_ROW]))
    map_file = write(tmp_path / "columns.toml", EXPORT_MAP)
    column_map = load_column_map(map_file)
    assert column_map.ignore == ("room", " PHONE ")
    for columns in (column_map, map_file, str(map_file)):
        source, problems = validate_csv(path, columns=columns)
        assert problems == [] and names(source) == ["Mara Testwell"]
    (_, cells), = list(iter_rows(open_csv(path, columns=column_map)))
    assert cells == {"type": "lumbar", "patient_name": "Mara Testwell",
                     "date_of_birth": "1961-03-24", "mrn": "A1001",
                     "procedure_date": "2026-11-27"}
    result = run("validate", path, "--columns", map_file)
    assert result.exit_code == 0 and "1 ready" in result.stdout


def test_ignore_may_sit_inside_the_columns_table(tmp_path):
    path = write(tmp_path / "export.csv", table([EXPORT, EXPORT_ROW]))
    map_file = write(tmp_path / "columns.toml", '[columns]\npatient_name = "{First Name} '
                     '{Last Name}"\ndate_of_birth = "DOB"\nignore = ["Room", "Phone"]\n')
    assert validate_csv(path, columns=map_file)[1] == []


@pytest.mark.parametrize(("template", "cells", "expected"), [
    ("{First Name} {Last Name}", ["  Mara ", "Testwell"], "Mara Testwell"),
    ("{First Name} {Middle} {Last Name}", ["Mara", "Testwell"], "Mara Testwell"),
    ("{Last Name}, {First Name}", ["", "Testwell"], "Testwell"),
    ("{First Name}   {Last Name}", ["Mara  Jo", "Testwell"], "Mara Jo Testwell"),
    ("{First Name} {Last Name} {Suffix}", ["Mara", "Testwell", "Jr."], "Mara Testwell Jr."),
])
def test_templates_drop_blank_parts_and_collapse_spaces(tmp_path, template, cells, expected):
    header = ["type", "First Name", "Last Name", "Middle", "Suffix", "DOB", "mrn",
              "procedure_date"]
    first, last, *suffix = cells
    row = ["lumbar", first, last, "", *(suffix or [""]), "1961-03-24", "A1001", "2026-11-27"]
    path = write(tmp_path / "export.csv", table([header, row]))
    ignore = tuple(h for h in ("Middle", "Suffix") if "{" + h + "}" not in template)
    columns = ColumnMap({"patient_name": template, "date_of_birth": "DOB"}, ignore=ignore)
    source, problems = validate_csv(path, columns=columns)
    assert problems == [] and names(source) == [expected]


def test_all_parts_blank_is_a_missing_field(tmp_path):
    rows = [["type", "First", "Last", "DOB", "MRN", "Procedure Date"],
            ["lumbar", " ", "", "1961-03-24", "A1001", "2026-11-27"],
            ["lumbar", "Mara", "Testwell", "1961-03-24", "A1002", "2026-11-27"]]
    path = write(tmp_path / "export.csv", table(rows))
    columns = ColumnMap({"patient_name": "{First} {Last}", "date_of_birth": "DOB"})
    source, problems = validate_csv(path, columns=columns)
    assert [(p.row, p.error) for p in problems] == [
        (2, "patient_name: is required but missing (fix: add a value for it)")]


def test_a_mapped_column_the_file_lacks_is_named(tmp_path):
    path = write(tmp_path / "export.csv", table([EXPORT, EXPORT_ROW]))
    columns = ColumnMap({"patient_name": "{Given} {Last Name}", "date_of_birth": "DOB"},
                        ignore=("Room", "Phone", "First Name"), source="site.toml")
    with pytest.raises(CsvError) as caught:
        open_csv(path, columns=columns)
    message = str(caught.value)
    assert "column Given: is named in the column map (site.toml, patient_name) but the CSV " \
        "has no such column" in message
    assert "Last Name, First Name, DOB" in message  # the file's own headers, to compare
    no_patient_values(message)


def test_a_record_field_column_and_a_map_for_the_same_field(tmp_path):
    header = ["type", "patient_name", "First Name", "Last Name", "DOB", "mrn",
              "procedure_date"]
    path = write(tmp_path / "export.csv", table([header, ["lumbar", "Mara Testwell", "Mara",
                                                          "Testwell", "1961-03-24", "A1001",
                                                          "2026-11-27"]]))
    columns = ColumnMap({"patient_name": "{First Name} {Last Name}", "date_of_birth": "DOB"})
    with pytest.raises(CsvError, match="column patient_name: is a record field, but the "
                                       "column map"):
        open_csv(path, columns=columns)
    columns = ColumnMap(columns.fields, ignore=("patient_name",))
    assert validate_csv(path, columns=columns)[1] == []


@pytest.mark.parametrize(("text", "expected"), [
    ('[columns]\npatient_nme = "Name"\n', "[columns] patient_nme: is not a record field. "
     "Fix: did you mean 'patient_name'?"),
    ('[colums]\npatient_name = "Name"\n', "colums: is not a known key here. Fix: did you "
     "mean 'columns'?"),
    ('date_of_birth = "DOB"\n', "date_of_birth: is not a known key here. Fix: put it under "
     "[columns]"),
    ('[columns]\npatient_name = "{First Name} {Last Name"\n', "[columns] patient_name: has a "
     "brace"),
    ('[columns]\npatient_name = "{}"\n', "[columns] patient_name: has a brace"),
    ('[columns]\nmrn = 12\n', "[columns] mrn: is not text"),
    ('[columns]\nmrn = " "\n', "[columns] mrn: is not a column name"),
    ('ignore = "Room"\n', "ignore: is not a list"),
    ('ignore = ["Room", 3]\n', "ignore: has an entry that is not a column name"),
    ('ignore = ["dob"]\n[columns]\ndate_of_birth = "DOB"\n', "ignore: lists column 'DOB', "
     "which [columns] also uses"),
    ('[columns\n', "is not valid TOML"),
    ('columns = 3\n', "columns: is not a table"),
])
def test_a_bad_column_map_is_a_configuration_error_naming_file_and_key(tmp_path, text,
                                                                       expected):
    map_file = write(tmp_path / "site-map.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_column_map(map_file)
    message = str(caught.value)
    assert expected in message and "site-map.toml" in message
    path = write(tmp_path / "list.csv", table([FIELDS, ANN]))
    for command in (["validate", path], ["batch", path, "--out", tmp_path / "out"]):
        result = run(*command, "--columns", map_file)
        assert result.exit_code == 4 and expected in result.stderr, result.output
    assert not (tmp_path / "out").exists()


def test_a_missing_map_file_is_a_configuration_error(tmp_path):
    path = write(tmp_path / "list.csv", table([FIELDS, ANN]))
    result = run("validate", path, "--columns", tmp_path / "nowhere.toml")
    assert result.exit_code == 4 and "nowhere.toml" in result.stderr


# ---- without a map: an unknown column stops the batch, with a map to paste ----------------

@pytest.mark.parametrize(("header", "expected"), [
    (["Type", "Surname", "Given Name", "Birth Date", "Medical Record Number",
      "Procedure Date"],
     ['patient_name = "{Given Name} {Surname}"', 'date_of_birth = "Birth Date"',
      'mrn = "Medical Record Number"']),
    (["type", "Family Name", "First Name", "Middle Name", "Birthdate", "MRN",
      "procedure_date", "Room", "Phone"],
     ['patient_name = "{First Name} {Middle Name} {Family Name}"',
      'date_of_birth = "Birthdate"', 'ignore = ["Room", "Phone"]']),
    (["Type", "Patient Name", "DOB", "MRN", "Procedure Date", "Bed"],
     ['date_of_birth = "DOB"', 'ignore = ["Bed"]']),
])
def test_unknown_columns_stop_with_hints_and_a_map_that_works(tmp_path, header, expected):
    values = {"type": "lumbar", "surname": "Testwell", "familyname": "Testwell",
              "givenname": "Mara", "firstname": "Mara", "middlename": "",
              "patientname": "Mara Testwell", "birthdate": "1961-03-24",
              "dob": "1961-03-24", "medicalrecordnumber": "A1001", "mrn": "A1001",
              "proceduredate": "2026-11-27", "room": "12", "phone": "555", "bed": "3"}
    row = [values[re.sub(r"[^a-z]", "", h.lower())] for h in header]
    path = write(tmp_path / "export.csv", table([header, row]))
    with pytest.raises(CsvError) as caught:
        validate_csv(path)
    error = caught.value
    message = str(error)
    for text in expected:
        assert text in message, message
    assert all(p.problem == "is not a known field" for p in error.problems)
    no_patient_values(message)
    result = run("batch", path, "--out", tmp_path / "out")
    assert result.exit_code == 3 and expected[0] in result.stderr
    assert not (tmp_path / "out").exists()
    # the map in the message, pasted into a file as it is, reads the export
    map_file = write(tmp_path / "columns.toml", error.suggestion.split(":\n", 1)[1])
    source, problems = validate_csv(path, columns=map_file)
    assert problems == [] and names(source) == ["Mara Testwell"]


def test_a_close_name_is_a_did_you_mean_not_a_guess_in_the_map(tmp_path):
    header = ["type", "patient_nam", "date_of_birth", "mrn", "procedure_date",
              "Physician Phone"]
    path = write(tmp_path / "list.csv", table([header, ANN + ["555"]]))
    with pytest.raises(CsvError) as caught:
        open_csv(path)
    message = str(caught.value)
    assert "column patient_nam: is not a known field. Fix: did you mean 'patient_name'?" in \
        message
    # never mapped for the user: the lines to check are comments
    assert '# patient_name = "patient_nam"' in message
    assert '# physician = "Physician Phone"' in message
    assert "\nphysician =" not in message and "\npatient_name =" not in message


def test_with_a_map_an_unknown_column_says_to_add_it_to_that_map(tmp_path):
    path = write(tmp_path / "export.csv", table([EXPORT, EXPORT_ROW]))
    columns = ColumnMap({"patient_name": "{First Name} {Last Name}", "date_of_birth": "DOB"},
                        ignore=("Room",), source="site.toml")
    with pytest.raises(CsvError) as caught:
        open_csv(path, columns=columns)
    message = str(caught.value)
    assert "column Phone: is not a known field" in message
    assert "in the column map site.toml" in message
    assert 'ignore = ["Room", "Phone"]' in message  # the whole map, with the column added


# ---- values Excel and encodings damaged: row errors, the other rows print ---------------

@pytest.mark.parametrize(("field", "value", "expected"), [
    ("mrn", "1.23457E+11", "mrn: was changed by Excel"),
    ("mrn", "1,23457E+11", "mrn: was changed by Excel"),
    ("mrn", "123456.0", "mrn: ends in a decimal part"),
    ("patient_name", "Siobh\N{REPLACEMENT CHARACTER}n Intake", "patient_name: has a "
     "character that was lost"),
    ("patient_name", "???? Intake", "patient_name: has question marks"),
    ("patient_name", "SiobhÃ¡n Intake", "patient_name: has letters that were changed"),
    ("physician", "Dr. Garc?a", "physician: has question marks"),
])
def test_damaged_values_are_row_errors_naming_the_field(tmp_path, field, value, expected):
    header = FIELDS + ["physician"]
    bad = dict(zip(header, ANN + ["Dr. Lee"], strict=True)) | {field: value}
    path = write(tmp_path / "list.csv", table([header, list(bad.values()), BOB + ["Dr. Lee"]]))
    source, problems = validate_csv(path)
    assert source.rows == 2 and [p.row for p in problems] == [2]
    assert problems[0].error.startswith(expected), problems[0].error
    assert value not in problems[0].error


# ---- intake settings: MRN pattern, procedure date window -------------------------------

def test_mrn_pattern_applies_to_every_row(tmp_path):
    rows = [FIELDS, ANN[:3] + ["00123456"] + ANN[4:], BOB[:3] + ["123456"] + BOB[4:]]
    path = write(tmp_path / "list.csv", table(rows))
    assert validate_csv(path)[1] == []
    source, problems = validate_csv(path, intake=IntakeSettings(mrn_pattern="[0-9]{8}"))
    assert [p.row for p in problems] == [3]
    assert "mrn: does not match the hospital's MRN pattern [0-9]{8}" in problems[0].error
    assert "123456" not in problems[0].error.replace("[0-9]{8}", "")
    result = run("validate", path, "--mrn-pattern", "[0-9]{8}")
    assert result.exit_code == 7 and "row 3: error: mrn: does not match" in result.stderr
    dry = run("batch", path, "--out", tmp_path / "x", "--dry-run", "--mrn-pattern", "[0-9]{8}")
    assert dry.exit_code == 7 and "row 3: error: mrn: does not match" in dry.stderr
    assert run("validate", path, "--mrn-pattern", "[0-9").exit_code == 4
    assert run("batch", path, "--out", tmp_path / "x", "--mrn-pattern", "[0-9").exit_code == 4


def test_mrn_pattern_in_a_batch(tmp_path):
    """Every row fails the pattern: nothing is rendered, the manifest says why."""
    path = write(tmp_path / "list.csv", table([FIELDS, ANN, BOB]))
    out = tmp_path / "out"
    summary = run_batch(path, out, jobs=1, intake=IntakeSettings(mrn_pattern="[0-9]{8}"))
    assert (summary.ok, summary.failed) == (0, 2)
    result = run("batch", path, "--out", out, "--force", "--quiet", "--jobs", "1",
                 "--mrn-pattern", "[0-9]{8}")
    assert result.exit_code == 7
    manifest = read_manifest(out)
    assert all("MRN pattern [0-9]{8}" in line["error"] for line in manifest)
    no_patient_values((out / "manifest.csv").read_text(encoding="utf-8"))
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv"]


def test_procedure_date_window(tmp_path):
    rows = [FIELDS, ANN[:4] + ["2020-11-25"], BOB[:4] + ["2028-11-25"]]
    source, problems = validate_csv(write(tmp_path / "list.csv", table(rows)))
    assert [(p.row, p.error.split(":")[0]) for p in problems] == [
        (2, "procedure_date"), (3, "procedure_date")]
    wide = IntakeSettings(procedure_years_back=10, procedure_years_ahead=3)
    assert validate_csv(tmp_path / "list.csv", intake=wide)[1] == []


# ---- the intake cases (shared/cases/intake, see its README) ------------------------------

def test_case_c01_excel_scientific_mrn(tmp_path):
    path = case("c01-excel-sci-mrn.csv")
    source, problems = validate_csv(path)
    assert source.rows == 2 and [p.row for p in problems] == [2]
    assert problems[0].error.startswith("mrn: was changed by Excel")
    out = tmp_path / "out"
    result = run("batch", path, "--out", out, "--jobs", "1", "--quiet")
    assert result.exit_code == 7, result.output
    assert "row 2: error: mrn: was changed by Excel" in result.stderr
    manifest = {line["row"]: line for line in read_manifest(out)}
    assert manifest["2"]["status"] == "error" and manifest["3"]["status"] == "ok"
    assert "Otto Example" in flat(pages_text((out / manifest["3"]["file"]).read_bytes())[0])
    no_patient_values((out / "manifest.csv").read_text(encoding="utf-8") + result.output,
                      ["1.23457E+11", "Mara", "Otto", "123456"])


def test_case_c03_trailing_empty_columns_and_totals_row(tmp_path):
    path = case("c03-trailing-cols-totals.csv")
    source, problems = validate_csv(path)
    assert source.rows == 3
    assert [(p.row, p.error) for p in problems] == [
        (4, "whole row: looks like a totals or summary row, not a patient (fix: delete the "
            "row from the export)")]
    out = tmp_path / "out"
    result = run("batch", path, "--out", out, "--jobs", "1", "--quiet")
    assert result.exit_code == 7, result.output
    assert "2 ok, 1 failed" in result.stdout
    lines = read_manifest(out)
    assert [(line["row"], line["status"]) for line in lines] == [
        ("2", "ok"), ("3", "ok"), ("4", "error")]
    printed = [flat(pages_text((out / line["file"]).read_bytes())[0]) for line in lines[:2]]
    assert "Mara Testwell" in printed[0] and "Otto Example" in printed[1]
    no_patient_values((out / "manifest.csv").read_text(encoding="utf-8"),
                      ["Mara", "Otto", "Total"])


def test_case_c05_excel_unicode_text(tmp_path):
    path = case("c05-excel-unicode-text-utf16.csv")
    source, problems = validate_csv(path)
    assert problems == [] and source.rows == 2 and source.delimiter == "\t"
    assert names(source) == ["Mara Testwell", "Chloé Démo"]
    result = run("validate", path)
    assert result.exit_code == 0 and "2 rows: 2 ready, 0 with problems" in result.stdout
    wrong = run("validate", path, "--encoding", "cp1252")
    assert wrong.exit_code == 3 and "without --encoding" in wrong.stderr
    assert "--encoding cp1252" not in wrong.stderr


def test_case_c07_excel_sep_line(tmp_path):
    path = case("c07-sep-hint.csv")
    source, problems = validate_csv(path)
    assert problems == [] and source.rows == 1 and source.delimiter == ";"
    out = tmp_path / "out"
    result = run("batch", path, "--out", out, "--jobs", "1", "--quiet")
    assert result.exit_code == 0, result.output
    (line,) = read_manifest(out)
    assert line["row"] == "2" and line["status"] == "ok"
    assert "Mara Testwell" in flat(pages_text((out / line["file"]).read_bytes())[0])


def test_case_c12_first_and_last_name_columns(tmp_path):
    path = case("c12-first-last-separate-columns.csv")
    out = tmp_path / "out"
    result = run("batch", path, "--out", out)
    assert result.exit_code == 3 and not out.exists()
    assert result.stderr.count("Error:") == 1
    assert 'patient_name = "{First Name} {Last Name}"' in result.stderr
    assert 'date_of_birth = "DOB"' in result.stderr
    assert "column DOB" in result.stderr and "column First Name" in result.stderr
    no_patient_values(result.output, ["Mara", "Testwell", "A1001", "1961-03-24"])

    map_file = write(tmp_path / "columns.toml", '[columns]\npatient_name = "{First Name} '
                     '{Last Name}"\ndate_of_birth = "DOB"\n')
    assert run("validate", path, "--columns", map_file).exit_code == 0
    dry = run("batch", path, "--out", out, "--columns", map_file, "--dry-run")
    assert dry.exit_code == 0 and "1 ready" in dry.stdout and not out.exists()
    result = run("batch", path, "--out", out, "--columns", map_file, "--jobs", "1", "--quiet")
    assert result.exit_code == 0, result.output
    (line,) = read_manifest(out)
    assert "Mara Testwell" in flat(pages_text((out / line["file"]).read_bytes())[0])


# ---- any file: read, or a clear error; never a crash ------------------------------------

FRAGMENTS = [b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"sep=;", b"sep=", b",", b";", b"\t",
             b"|", b'"', b"\r\n", b"\n", b"\x00", b"\x81", b"\xe9", b"type", b"patient_name",
             b"date_of_birth", b"mrn", b"procedure_date", b"DOB", b"First Name", b"Total: 2",
             b"lumbar", b"Ann", b"1960-01-01", b"2026-11-25", b"{", b" "]


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(st.sampled_from(FRAGMENTS), max_size=40),
       encoding=st.sampled_from([None, "utf-8", "cp1252", "utf-16"]))
def test_any_file_is_read_or_refused_clearly(tmp_path, pieces, encoding):
    path = write(tmp_path / "any.csv", b"".join(pieces))
    try:
        source, problems = validate_csv(path, encoding)
    except CsvError as exc:
        assert exc.problems and all(p.fix for p in exc.problems)
        return
    assert len(list(iter_rows(source))) == source.rows
    assert all(p.error for p in problems)
