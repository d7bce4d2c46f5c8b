"""Reading patient records from a CSV export, the way hospital exports look.

UTF-8 with or without BOM (or another encoding the user names), ``,`` ``;``
or tab delimiters, CRLF, quoted newlines, blank lines, header names in any
case. The file is read twice, streaming: a first pass checks the encoding,
the header and the row count before anything is rendered.

CSV form of the list fields (lossless both ways):
- ``instructions``: one instruction per line inside the cell.
- ``medications``: one medicine per line, ``name: instruction``; if a name
  itself contains a colon, the cell holds a JSON list of
  ``{"name": ..., "instruction": ...}`` objects instead.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import Problem, RecordError
from .record import RECORD_FIELDS, PacketRecord

_TRUE = {"true", "yes", "y", "1", "x"}
_FALSE = {"false", "no", "n", "0", ""}


class CsvError(RecordError):
    """The CSV file as a whole cannot be read (encoding, header, structure)."""


@dataclass(frozen=True)
class CsvSource:
    path: Path
    encoding: str
    delimiter: str
    columns: tuple[str, ...]
    rows: int  # data rows, blank ones not counted


def normalise_header(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").split())


def _detect_encoding(path: Path, encoding: str | None) -> str:
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise CsvError("Unknown encoding", [
                Problem("--encoding", f"'{encoding}' is not an encoding Python knows",
                        "use utf-8, cp1252 (Excel on Windows) or latin-1")]) from None
        return encoding
    with path.open("rb") as fh:
        return "utf-8-sig" if fh.read(3) == codecs.BOM_UTF8 else "utf-8"


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _reader(path: Path, encoding: str, delimiter: str) -> Iterator[list[str]]:
    with path.open("r", encoding=encoding, newline="", errors="strict") as fh:
        yield from csv.reader(fh, delimiter=delimiter, strict=True)


def open_csv(path: str | Path, encoding: str | None = None) -> CsvSource:
    """Check the whole file once (encoding, header, rows) without keeping it."""
    path = Path(path)
    if not path.is_file():
        raise CsvError("The CSV file was not found",
                       [Problem("CSV", f"no file at {path}", "check the path")])
    chosen = _detect_encoding(path, encoding)
    try:
        with path.open("r", encoding=chosen, newline="") as fh:
            first = fh.readline()
        delimiter = _sniff_delimiter(first)
        rows = _reader(path, chosen, delimiter)
        header = next(rows, None)
        if not header or not any(cell.strip() for cell in header):
            raise CsvError("The CSV file is empty",
                           [Problem("CSV", "has no header row", "export the file with headers")])
        columns = tuple(normalise_header(h) for h in header)
        _check_columns(columns)
        count = 0
        for line_no, cells in enumerate(rows, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(columns):
                raise CsvError("A row has more cells than the header", [
                    Problem(f"row {line_no}", f"has {len(cells)} cells, the header has "
                            f"{len(columns)}", "check for a stray delimiter in that row")])
            count += 1
    except UnicodeDecodeError as exc:
        hint = ("if the file came from Excel on Windows, run again with --encoding cp1252"
                if not encoding else "check the --encoding you gave")
        raise CsvError(f"The CSV file is not valid {chosen}", [
            Problem("CSV", f"byte 0x{exc.object[exc.start]:02X} cannot be read as {chosen}",
                    hint)]) from None
    except csv.Error as exc:
        raise CsvError("The CSV file is malformed",
                       [Problem("CSV", str(exc), "check the quoting in the file")]) from None
    return CsvSource(path, chosen, delimiter, columns, count)


def _check_columns(columns: tuple[str, ...]) -> None:
    problems = []
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            problems.append(Problem(f"column {column}", "appears twice", "remove one of them"))
        seen.add(column)
        if column not in RECORD_FIELDS:
            guess = difflib.get_close_matches(column, RECORD_FIELDS, n=1)
            fix = (f"did you mean '{guess[0]}'? " if guess else "") + "known columns are: " + \
                ", ".join(RECORD_FIELDS)
            problems.append(Problem(f"column {column or '(empty)'}", "is not a known field", fix))
    if problems:
        raise CsvError("The CSV header has problems; nothing was rendered", problems)


def iter_rows(source: CsvSource) -> Iterator[tuple[int, dict[str, str]]]:
    """(spreadsheet row number, cells by column) for each non-blank row."""
    rows = _reader(source.path, source.encoding, source.delimiter)
    next(rows)
    for line_no, cells in enumerate(rows, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        yield line_no, dict(zip(source.columns, cells, strict=False))


def _split_lines(cell: str) -> list[str]:
    return [line.strip() for line in cell.replace("\r\n", "\n").split("\n") if line.strip()]


def _medications(cell: str) -> Any:
    text = cell.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise RecordError("Bad medications cell", [
                Problem("medications", "starts with [ but is not a valid JSON list",
                        'use lines like "Warfarin: Restart on Friday"')]) from None
    meds = []
    for number, line in enumerate(_split_lines(text), start=1):
        name, sep, instruction = line.partition(":")
        if not sep:
            raise RecordError("Bad medications cell", [
                Problem(f"medications #{number}", "has no colon between name and instruction",
                        'write one medicine per line, like "Warfarin: Restart on Friday"')])
        meds.append({"name": name.strip(), "instruction": instruction.strip()})
    return meds


def row_to_data(cells: dict[str, str]) -> dict[str, Any]:
    """Cells of one row -> a record dict (blank cells are left out)."""
    data: dict[str, Any] = {}
    for column, value in cells.items():
        if column == "instructions":
            if value.strip():
                data[column] = _split_lines(value)
        elif column == "medications":
            if value.strip():
                data[column] = _medications(value)
        elif column == "large_print":
            flag = value.strip().lower()
            data[column] = flag in _TRUE if flag in _TRUE | _FALSE else value
        elif value.strip():
            data[column] = value
    return data


def record_to_row(record: PacketRecord) -> dict[str, str]:
    """The CSV cells for a record; row_to_data(record_to_row(r)) gives r back."""
    meds = record.medications
    if any(":" in med.name for med in meds):
        med_cell = json.dumps([med.model_dump() for med in meds], ensure_ascii=False)
    else:
        med_cell = "\n".join(f"{med.name}: {med.instruction}" for med in meds)
    return {
        "type": record.type.value,
        "patient_name": record.patient_name,
        "date_of_birth": record.date_of_birth.isoformat(),
        "mrn": record.mrn,
        "procedure_date": record.procedure_date.isoformat(),
        "physician": record.physician or "",
        "nurse": record.nurse or "",
        "follow_up": record.follow_up or "",
        "instructions": "\n".join(record.instructions),
        "medications": med_cell,
        "language": record.language,
        "large_print": "true" if record.large_print else "false",
    }
