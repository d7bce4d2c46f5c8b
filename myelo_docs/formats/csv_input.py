"""Reading patient records from a CSV export, the way hospital exports look.

- Encodings: UTF-8 with or without a byte-order mark; UTF-16 (Excel's
  "Unicode Text") or UTF-32 with a byte-order mark; or the encoding the user
  names. Nothing is guessed: a file that does not decode stops with a hint
  that fits its bytes.
- Delimiter: Excel's ``sep=;`` first line (hidden by Excel, so the header
  stays row 1), else ``,`` ``;`` tab or ``|``, whichever the header line
  has most of.
- CRLF, quoted newlines, blank lines, header names in any case; columns with
  no header and no values are ignored; cells past the header's last column
  are ignored when empty.
- A column map (ColumnMap, load_column_map) fills record fields from the
  export's own headers, joins columns (``"{First Name} {Last Name}"``) and
  ignores columns by name.

The file is read twice, streaming: open_csv checks the encoding, the header
and every row's shape before anything is rendered; iter_rows then gives each
row's cells by record field. Limits bound time and memory whatever the file
holds (MAX_COLUMNS, MAX_ROW_CHARS: the file stops; MAX_CELL_CHARS: a row
error), and a first line that is data is never echoed.

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
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from myelo_docs.formats.json_input import parse_json
from myelo_docs.schema.errors import ConfigError, Problem, RecordError
from myelo_docs.schema.messages import did_you_mean, error, phrase, problem, title
from myelo_docs.schema.record import RECORD_FIELDS, PacketRecord, parse_type
from myelo_docs.schema.settings_file import read_toml

_TRUE = {"true", "yes", "y", "1", "x"}
_FALSE = {"false", "no", "n", "0", ""}
_REQUIRED = tuple(name for name, info in PacketRecord.model_fields.items() if info.is_required())

# A byte-order mark says the encoding. UTF-32 LE's mark starts like UTF-16 LE's: test it first.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_SEP_LINE = re.compile(r'"?sep=(\\t|[^\w\s"]|\t)"?[,;\t| ]*', re.IGNORECASE)
_DELIMITERS = (",", ";", "\t", "|")
# A totals or summary line at the foot of an export: "Total: 2 patients", "Count: 2"...
_SUMMARY = re.compile(r"(grand\s*|sub\s*)?totals?\b|(sum|count|summary|average)\b"
                      r"|(number|no\.?|#)\s*of\s+(patients|rows|records)\b"
                      r"|(patients|rows|records)\s*[:=]\s*\d|\d+\s+(patients?|rows|records)\b",
                      re.IGNORECASE)
# What a first line that is data, not column names, holds: a date (2026-11-25,
# 11/25/2026, 25-Nov-26, Nov 25, 2026), a long number, a cell of only digits.
_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATA_LIKE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}|\d{5,}"
                        rf"|\b\d{{1,2}}[-\s/.]*{_MONTH}[-\s/.,]*\d{{2,4}}\b"
                        rf"|\b{_MONTH}\s*\d{{1,2}},?\s+\d{{2,4}}\b|\A[\d\s.,/:+-]+\Z",
                        re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

# Limits on the shape of a file, checked while it is read (a real export has
# tens of columns and cells of a few hundred characters).
MAX_COLUMNS = 200  # columns in the header row, up to its last named column
MAX_ROW_CHARS = 1024 * 1024  # characters in one row, its quoted line breaks included
MAX_CELL_CHARS = 64 * 1024  # characters in one cell
if csv.field_size_limit() < MAX_ROW_CHARS:  # a long cell is a row error, not csv.Error
    csv.field_size_limit(MAX_ROW_CHARS)


def _key(name: str) -> str:
    """A header reduced to letters and digits, for matching common export names."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


# Common export names (as _key gives them) -> the record field they usually hold.
_ALIASES = {
    **{_key(name): name for name in RECORD_FIELDS},
    **dict.fromkeys(["dob", "birthdate", "birthday", "patientdob", "patientdateofbirth"],
                    "date_of_birth"),
    **dict.fromkeys(["medicalrecordnumber", "medicalrecordno", "medicalrecord", "mrnumber",
                     "mrno", "mrnnumber", "patientmrn"], "mrn"),
    **dict.fromkeys(["name", "patient", "fullname", "patientfullname"], "patient_name"),
    **dict.fromkeys(["myelogramtype", "proceduretype", "examtype"], "type"),
    **dict.fromkeys(["dateofprocedure", "procdate", "examdate", "studydate", "dateofservice",
                     "servicedate", "myelogramdate"], "procedure_date"),
    **dict.fromkeys(["doctor", "radiologist", "performingphysician", "attending",
                     "attendingphysician"], "physician"),
    **dict.fromkeys(["dischargenurse", "dischargingnurse", "rn"], "nurse"),
    **dict.fromkeys(["followupappointment", "followupplan"], "follow_up"),
    **dict.fromkeys(["preferredlanguage", "patientlanguage", "lang"], "language"),
    **dict.fromkeys(["largetext"], "large_print"),
}
# Parts of a name kept in separate columns, in the order they join into patient_name.
_NAME_PARTS = {
    "first": {"firstname", "first", "givenname", "given", "givennames", "forename",
              "patientfirstname"},
    "middle": {"middlename", "middle", "middleinitial", "patientmiddlename"},
    "last": {"lastname", "last", "familyname", "family", "surname", "patientlastname"},
    "suffix": {"suffix", "namesuffix"},
}


class CsvError(RecordError):
    """The CSV file as a whole cannot be read (encoding, header, structure).

    ``suggestion``: text printed after the problems, such as a column map
    ready to paste.
    """

    def __init__(self, message: str, problems: list[Problem] | None = None,
                 suggestion: str = ""):
        super().__init__(message, problems)
        self.suggestion = suggestion

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n{self.suggestion}" if self.suggestion else text


def normalise_header(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").split())


def column_label(index: int) -> str:
    """A column as a spreadsheet names it: index 6 -> '7 (G)'."""
    letters, number = "", index + 1
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return f"{index + 1} ({letters})"


# ---- the column map ----------------------------------------------------------

def _template(spec: str) -> list[str]:
    """A map value split as [text, header, text, header, ..., text]."""
    if "{" not in spec and "}" not in spec:
        return ["", spec, ""]
    return _PLACEHOLDER.split(spec)


@dataclass(frozen=True)
class ColumnMap:
    """How an export's own columns fill the record fields.

    - ``fields``: record field -> the export's header name (``"DOB"``) or a
      template joining columns (``"{First Name} {Last Name}"``). In a
      template each ``{Header}`` becomes that cell, runs of spaces become one
      and spaces and commas at the ends go, so blank parts drop out; if every
      cell in it is blank, the field is missing.
    - ``ignore``: header names of columns to leave out.
    - ``source``: where the map came from (its file name), for messages.

    Header names match in any case and spacing (normalise_header). A column
    whose header is a record field fills that field without a map.

    Raises ConfigError (exit 4) naming ``source`` and the key: a key that is
    not a record field (with a did-you-mean), a value that is empty or not
    a well-formed template, a column both mapped and ignored.
    """

    fields: dict[str, str] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    source: str = "column map"

    def __post_init__(self) -> None:
        problems = []
        for name, spec in self.fields.items():
            where = f"{self.source} [columns] {name}"
            if name not in RECORD_FIELDS:
                problems.append(problem("colmap_not_field", where,
                                        hint=did_you_mean(name, RECORD_FIELDS),
                                        known=", ".join(RECORD_FIELDS)))
            elif not isinstance(spec, str) or not spec.strip():
                problems.append(problem("colmap_not_column", where))
            elif any(not normalise_header(h) for h in _template(spec)[1::2]) or any(
                    "{" in text or "}" in text for text in _template(spec)[0::2]):
                problems.append(problem("colmap_stray_brace", where))
        ignored = {normalise_header(name) for name in self.ignore if isinstance(name, str)}
        if any(not isinstance(name, str) or not name.strip() for name in self.ignore):
            problems.append(problem("colmap_ignore_not_name", f"{self.source} ignore"))
        for header in self.headers():
            if normalise_header(header) in ignored:
                problems.append(problem("colmap_ignored_and_used", f"{self.source} ignore",
                                        header=header))
        if problems:
            raise ConfigError(title("colmap_problems", source=self.source), problems)

    def headers(self) -> list[str]:
        """The header names the map reads."""
        return [header for spec in self.fields.values() if isinstance(spec, str)
                for header in _template(spec)[1::2]]

    def as_toml(self) -> str:
        """The map as the lines of a map file."""
        lines = []
        if self.ignore:
            lines.append("ignore = [" + ", ".join(_toml(n) for n in self.ignore) + "]")
            lines.append("")
        lines.append("[columns]")
        lines += [f"{name} = {_toml(spec)}" for name, spec in self.fields.items()]
        return "\n".join(lines)


def _toml(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string


def load_column_map(path: str | Path) -> ColumnMap:
    """Read a column map file (TOML).

    Shape::

        ignore = ["Room", "Phone"]          # columns to leave out, by header

        [columns]                           # record field = header or template
        date_of_birth = "DOB"
        patient_name = "{First Name} {Last Name}"

    ``ignore`` may also sit inside ``[columns]``. Raises ConfigError (exit 4)
    naming the file and the key for a missing file, bad TOML, an unknown key
    or record field, or a value of the wrong kind.
    """
    path = Path(path)
    data = read_toml(path, "column map")
    where = path.name
    problems = []
    columns = data.get("columns", {})
    if not isinstance(columns, dict):
        problems.append(problem("colmap_columns_not_table", f"{where} columns"))
        columns = {}
    for key in data:
        if key in ("columns", "ignore"):
            continue
        if key in RECORD_FIELDS:
            problems.append(problem("colmap_field_at_top", f"{where} {key}"))
        else:
            problems.append(problem("colmap_unknown_key", f"{where} {key}",
                                    hint=did_you_mean(key, ["columns", "ignore"])))
    ignore = []
    for place, value in (("ignore", data.get("ignore", [])),
                         ("[columns] ignore", columns.get("ignore", []))):
        if not isinstance(value, list):
            problems.append(problem("colmap_ignore_not_list", f"{where} {place}"))
        else:
            ignore += value
    fields = {}
    for key, value in columns.items():
        if key == "ignore":
            continue
        if isinstance(value, str):
            fields[key] = value
        else:
            problems.append(problem("colmap_value_not_text", f"{where} [columns] {key}"))
    try:
        column_map = ColumnMap(fields, tuple(ignore), source=where)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(title("colmap_problems", source=where), problems)
    return column_map


def _as_map(columns: ColumnMap | str | Path | None) -> ColumnMap:
    if columns is None:
        return ColumnMap()
    return columns if isinstance(columns, ColumnMap) else load_column_map(columns)


# ---- the header ---------------------------------------------------------------

@dataclass(frozen=True)
class _Fill:
    """How one record field is filled from a row's cells."""

    parts: tuple[str | int, ...]  # text, or the index of a column
    joined: bool = False  # a template: cells stripped, spaces collapsed

    def value(self, cells: list[str]) -> str:
        def cell(index: int) -> str:
            return cells[index] if index < len(cells) else ""

        if not self.joined:
            return cell(int(self.parts[0]))
        found = [cell(p).strip() for p in self.parts if isinstance(p, int)]
        if not any(found):
            return ""
        text = "".join(cell(p).strip() if isinstance(p, int) else p for p in self.parts)
        lines = (" ".join(line.split()) for line in text.splitlines())
        return "\n".join(line for line in lines if line).strip(" ,")


def _looks_like_data(cell: str) -> bool:
    text = cell.strip()
    return bool(_DATA_LIKE.search(text)) or _is_type(text)


def _is_type(text: str) -> bool:
    """A type cell ("lumbar", "cervical+lumbar"), which no header is."""
    try:
        parse_type(text)
    except ValueError:
        return False
    return True


def _name_part(header: str) -> str | None:
    return next((part for part, keys in _NAME_PARTS.items() if _key(header) in keys), None)


def _layout(header: list[str], column_map: ColumnMap) -> tuple[dict[str, _Fill], list[int]]:
    """Which columns fill which record field, and the columns with no header.

    Raises CsvError for a header that is really data, or with unknown,
    doubled or missing columns (with a column map ready to paste).
    """
    names = [normalise_header(h) for h in header]
    ignored = {normalise_header(name) for name in column_map.ignore}
    wanted = {normalise_header(h) for h in column_map.headers()}
    known = set(RECORD_FIELDS) | ignored | wanted
    data_like = {i for i, cell in enumerate(header)
                 if normalise_header(cell) not in known and _looks_like_data(cell)}
    named = [n for n in names if n]
    recognised = sum(bool(n in known or _key(n) in _ALIASES or _name_part(n)) for n in named)
    # a cell that looks like a value is shown by its position, never as it is spelled
    spelled = [f"column {column_label(i)}" if i in data_like else h.strip()
               for i, h in enumerate(header)]
    if data_like and recognised * 2 < len(named):
        raise error(CsvError, "csv_no_header", "row 1")
    where: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        where.setdefault(name, []).append(index)
    problems: list[Problem] = []
    fills: dict[str, _Fill] = {}
    used: set[int] = set()
    for name, spec in column_map.fields.items():
        parts: list[str | int] = []
        for number, piece in enumerate(_template(spec)):
            if number % 2 == 0:
                parts.append(piece)
                continue
            found = where.get(normalise_header(piece), [])
            if not found:
                problems.append(problem("csv_mapped_missing", f"column {piece}",
                                        source=column_map.source, record_field=name,
                                        columns=", ".join(s for s in spelled if s)))
                continue
            if len(found) > 1:
                problems.append(problem("csv_mapped_twice", f"column {piece}",
                                        source=column_map.source, record_field=name))
                continue
            parts.append(found[0])
            used.add(found[0])
        joined = "{" in spec
        fills[name] = _Fill(tuple(p for p in parts if p != ""), joined=joined)
    unnamed, unknown, direct = [], [], set()
    for index, name in enumerate(names):
        if not name:
            unnamed.append(index)
        elif name in ignored or index in used:
            continue
        elif name not in RECORD_FIELDS:
            unknown.append(index)
        elif name in column_map.fields:
            problems.append(problem("csv_field_also_mapped", f"column {spelled[index]}",
                                    source=column_map.source, record_field=name,
                                    column=spelled[index]))
        elif name in direct:
            problems.append(problem("csv_column_twice", f"column {spelled[index]}"))
        else:
            direct.add(name)
            fills[name] = _Fill((index,))
    suggestion = ""
    problems += [problem("csv_value_in_header", spelled[i])
                 for i in unknown if i in data_like]
    unknown = [i for i in unknown if i not in data_like]
    if unknown:
        more, suggestion = _unknown_columns([spelled[i] for i in unknown], set(fills),
                                            column_map)
        problems += more
    if problems:
        raise CsvError(title("csv_header_problems"), problems, suggestion)
    return fills, unnamed


def _unknown_columns(headers: list[str], filled: set[str],
                     column_map: ColumnMap) -> tuple[list[Problem], str]:
    """A problem per unknown column, saying how to map or ignore it, and the map to use."""
    fields = dict(column_map.fields)
    ignore = list(column_map.ignore)
    unsure: list[str] = []  # lines the user must check before taking them
    plain = [h for h in dict.fromkeys(headers) if "{" not in h and "}" not in h]
    parts = {}
    for header in plain:
        part = _name_part(header)
        if part and part not in parts:
            parts[part] = header
    join = "patient_name" not in filled | set(fields) and {"first", "last"} <= set(parts)
    if join:
        fields["patient_name"] = " ".join(
            "{" + parts[p] + "}" for p in _NAME_PARTS if p in parts)
    mapped = bool(column_map.fields or column_map.ignore)
    if mapped:
        how = phrase("csv_how_in_map", source=column_map.source)
    else:
        how = phrase("csv_how_new_map")
    problems = []
    for header in dict.fromkeys(headers):
        alias = _ALIASES.get(_key(header)) if header in plain else None
        guess = difflib.get_close_matches(normalise_header(header), RECORD_FIELDS, n=1)
        place = f"column {header}"
        if join and header in parts.values():
            problems.append(problem("csv_unknown_join_name", place, how=how,
                                    template=_toml(fields["patient_name"])))
        elif header in plain and _name_part(header):
            problems.append(problem("csv_unknown_name_part", place, how=how))
            unsure.append(phrase("csv_suggest_name_part", template=_toml("{" + header + "}")))
        elif alias and alias not in filled and alias not in fields:
            fields[alias] = header
            problems.append(problem("csv_unknown_alias", place, alias=alias,
                                    header=_toml(header), how=how))
        elif alias:
            problems.append(problem("csv_unknown_alias_taken", place, alias=alias,
                                    header=_toml(header), how=how))
            unsure.append(phrase("csv_suggest_alias_taken", header=_toml(header), alias=alias))
        elif guess:
            problems.append(problem("csv_unknown_close", place, how=how,
                                    hint=phrase("did_you_mean", guess=guess[0])))
            unsure.append(phrase("csv_suggest_close", guess=guess[0], header=_toml(header)))
        else:
            ignore.append(header)
            problems.append(problem("csv_unknown_other", place, header=_toml(header), how=how,
                                    known=", ".join(RECORD_FIELDS)))
    text = ColumnMap(fields, tuple(ignore), column_map.source).as_toml()
    if unsure:
        text += "\n" + phrase("csv_suggest_check") + "\n" + "\n".join(unsure)
    if mapped:
        where = phrase("csv_suggest_replace", source=column_map.source)
    else:
        where = phrase("csv_suggest_new")
    return problems, f"{where}:\n\n{text}\n"


# ---- reading -------------------------------------------------------------------

@dataclass(frozen=True)
class CsvSource:
    """A CSV file checked by open_csv.

    ``columns``: the header as the file spells it; ``rows``: the rows that
    are not blank (patients, and rows iter_rows reports as errors);
    ``fields``: how each record field is filled; ``sep_line``: the file
    starts with Excel's ``sep=`` line.
    """

    path: Path
    encoding: str
    delimiter: str
    columns: tuple[str, ...]
    rows: int
    fields: dict[str, _Fill] = field(default_factory=dict)
    sep_line: bool = False


def _detect_encoding(path: Path, encoding: str | None) -> str:
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise error(CsvError, "csv_encoding_unknown", "--encoding",
                        encoding=encoding) from None
        return encoding
    with path.open("rb") as fh:
        start = fh.read(4)
    return next((name for bom, name in _BOMS if start.startswith(bom)), "utf-8")


def _encoding_hint(path: Path, chosen: str, given: str | None) -> str:
    """What to do about a file that does not decode: what fits its bytes."""
    raw = path.read_bytes()
    bom = next((name for bom, name in _BOMS if raw.startswith(bom)), None)
    if bom and given:
        return phrase("csv_hint_bom_given", bom=_encoding_name(bom))
    if bom:
        return phrase("csv_hint_damaged")
    if b"\x00" in raw:
        # Python's plain utf-16 needs the mark, so name the byte order: the NUL
        # of an ASCII letter comes second in little-endian, first in big-endian.
        order = "le" if raw[1::2].count(0) >= raw[0::2].count(0) else "be"
        return phrase("csv_hint_utf16", order=order)
    for candidate, hint in (("utf-8", "csv_hint_utf8"), ("cp1252", "csv_hint_cp1252")):
        if codecs.lookup(candidate).name == codecs.lookup(chosen).name:
            continue
        try:
            raw.decode(candidate)
        except UnicodeDecodeError:
            continue
        return phrase(hint)
    return phrase("csv_hint_unknown")


def _dialect(path: Path, encoding: str) -> tuple[str, bool]:
    """(delimiter, whether the first line is Excel's sep= line)."""
    with path.open("r", encoding=encoding, newline="") as fh:
        first = fh.readline(MAX_ROW_CHARS).lstrip("\ufeff")
    sep = _SEP_LINE.fullmatch(first.rstrip("\r\n"))
    if sep:
        return ("\t" if sep[1] == "\\t" else sep[1]), True
    counts = {d: first.count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return (best if counts[best] else ","), False


class _RowTooLong(Exception):
    pass


class _Lines:
    """The lines of a text file for csv.reader, at most MAX_ROW_CHARS per row.

    Reads in bounded pieces, so a 17 MB line costs 1 MB, not 17. ``row_start()``
    is called after each row; _RowTooLong when a row passes the limit.
    """

    def __init__(self, fh: Any):
        self.fh = fh
        self.used = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.fh.readline(MAX_ROW_CHARS + 1 - self.used)
        if not line:
            raise StopIteration
        self.used += len(line)
        if self.used > MAX_ROW_CHARS:
            raise _RowTooLong
        return line

    def row_start(self) -> None:
        self.used = 0


def _read(path: Path, encoding: str, delimiter: str,
          sep_line: bool) -> Iterator[tuple[int, list[str]]]:
    """(spreadsheet row number, cells) for every row; the header is row 1.

    Raises CsvError for a row longer than MAX_ROW_CHARS: the file stops
    there, as no reader can tell where such a row ends (it is most often a
    quote that is never closed).
    """
    number = 0
    with path.open("r", encoding=encoding, newline="", errors="strict") as fh:
        lines = _Lines(fh)
        if sep_line:
            next(lines)
            lines.row_start()
        try:
            for number, cells in enumerate(csv.reader(lines, delimiter=delimiter, strict=True),
                                           start=1):
                lines.row_start()
                yield number, cells
        except _RowTooLong:
            row = number + 1
            raise error(CsvError, "csv_header_row_too_long" if row == 1 else "csv_row_too_long",
                        f"row {row}", most=f"{MAX_ROW_CHARS:,}") from None


def _blank(cells: list[str]) -> bool:
    return not any(cell.strip() for cell in cells)


def _row_values(cells: list[str], fields: dict[str, _Fill],
                width: int) -> dict[str, str] | RecordError:
    """A row's cells by record field, or why the row is not a patient."""
    for index, cell in enumerate(cells):
        if len(cell) > MAX_CELL_CHARS:
            return error(RecordError, "csv_cell_too_long", f"column {column_label(index)}",
                         most=f"{MAX_CELL_CHARS:,}")
    for index in range(width, len(cells)):
        if cells[index].strip():
            return error(RecordError, "csv_cells_past_header", f"column {column_label(index)}")
    values = {name: fill.value(cells) for name, fill in fields.items()}
    missing = sum(not values.get(name, "").strip() for name in _REQUIRED)
    if missing > len(_REQUIRED) // 2 and any(_SUMMARY.match(cell.strip()) for cell in cells):
        return error(RecordError, "csv_summary_row", "whole row")
    return values


def open_csv(path: str | Path, encoding: str | None = None,
             columns: ColumnMap | str | Path | None = None) -> CsvSource:
    """Check the whole file once (encoding, header, rows) without keeping it.

    ``encoding``: None reads UTF-8 and any file with a byte-order mark
    (UTF-8, UTF-16, UTF-32). ``columns``: a ColumnMap or the path of a map
    file (load_column_map); without one, headers must be record fields.

    Raises CsvError (exit 3), naming no patient value: no such file; the
    bytes do not decode (with a hint that fits them); bad quoting; a header
    with unknown, doubled or missing columns (with a column map ready to
    paste), or that is data rather than names; a column with no header that
    holds values; a header and no rows; more than MAX_COLUMNS columns, a
    header cell past MAX_CELL_CHARS, any row past MAX_ROW_CHARS (read in
    bounded pieces). ConfigError (exit 4) for a bad map file.
    """
    path = Path(path)
    column_map = _as_map(columns)
    if not path.is_file():
        raise error(CsvError, "csv_missing", "CSV", path=path)
    chosen = _detect_encoding(path, encoding)
    try:
        delimiter, sep_line = _dialect(path, chosen)
        rows = _read(path, chosen, delimiter, sep_line)
        _, header = next(rows, (1, []))
        if header:
            header[0] = header[0].lstrip("\ufeff")
        if _blank(header):
            raise error(CsvError, "csv_empty", "CSV")
        _check_shape(header)
        if any("\x00" in cell for cell in header):
            raise error(CsvError, "csv_nul_in_header", "CSV",
                        hint=_encoding_hint(path, chosen, encoding))
        fields, unnamed = _layout(header, column_map)
        count = 0
        stray: dict[int, int] = {}  # a column with no header -> the first row with a value
        for number, cells in rows:
            if _blank(cells):
                continue
            count += 1
            if isinstance(_row_values(cells, fields, len(header)), RecordError):
                continue  # reported as a row error
            for index in unnamed:
                if index < len(cells) and cells[index].strip():
                    stray.setdefault(index, number)
    except UnicodeError as exc:  # a byte that does not decode; UTF-16 with no mark
        hint = _encoding_hint(path, chosen, encoding)
        if isinstance(exc, UnicodeDecodeError):
            raise error(CsvError, "csv_byte_undecodable", "CSV", encoding=_encoding_name(chosen),
                        byte=f"{exc.object[exc.start]:02X}", hint=hint) from None
        raise error(CsvError, "csv_undecodable", "CSV", encoding=_encoding_name(chosen),
                    hint=hint) from None
    except csv.Error as exc:
        raise error(CsvError, "csv_malformed", "CSV", detail=exc) from None
    if stray:
        raise CsvError(title("csv_header_problems"), [
            problem("csv_unnamed_column", f"column {column_label(index)}", row=row)
            for index, row in stray.items()])
    if not count:
        raise error(CsvError, "csv_no_rows", "CSV")
    return CsvSource(path, chosen, delimiter, tuple(h.strip() for h in header), count,
                     fields, sep_line)


def _check_shape(header: list[str]) -> None:
    """CsvError for a header past MAX_COLUMNS or with a cell past MAX_CELL_CHARS."""
    width = max((i + 1 for i, cell in enumerate(header) if cell.strip()), default=0)
    if width > MAX_COLUMNS:
        raise error(CsvError, "csv_too_many_columns", "row 1", width=f"{width:,}",
                    most=MAX_COLUMNS)
    long = [i for i, cell in enumerate(header) if len(cell) > MAX_CELL_CHARS]
    if long:
        raise CsvError(title("csv_header_problems"), [
            problem("csv_long_header", f"column {column_label(i)}", most=f"{MAX_CELL_CHARS:,}")
            for i in long])


def _encoding_name(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    return {"utf-8-sig": "UTF-8", "utf-8": "UTF-8", "utf-16": "UTF-16",
            "utf-32": "UTF-32"}.get(name, encoding)


def iter_rows(source: CsvSource) -> Iterator[tuple[int, dict[str, str] | RecordError]]:
    """(spreadsheet row number, cells by record field) for each non-blank row.

    A row that cannot be a patient comes as a RecordError instead of its
    cells (naming the column, never a value): a totals or summary row, or
    a value past the header's last column.
    """
    rows = _read(source.path, source.encoding, source.delimiter, source.sep_line)
    next(rows)
    for number, cells in rows:
        if not _blank(cells):
            yield number, _row_values(cells, source.fields, len(source.columns))


def _split_lines(cell: str) -> list[str]:
    return [line.strip() for line in cell.replace("\r\n", "\n").split("\n") if line.strip()]


def _medications(cell: str) -> Any:
    text = cell.strip()
    if text.startswith("["):
        return parse_json(text, "medications", phrase("json_fix_medications"))
    meds = []
    for number, line in enumerate(_split_lines(text), start=1):
        name, sep, instruction = line.partition(":")
        if not sep:
            raise error(RecordError, "csv_medication_no_colon", f"medications #{number}")
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
            if flag:  # blank: the site's default (validate_record), else regular print
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
