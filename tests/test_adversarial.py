"""Hostile input at every entry point that exists (Python API, JSON file, CLI flags).

The result is a valid PDF whose text shows the value, or a clear RecordError
naming the field, never another exception, a box for a missing glyph, a
partial file, a network request, a local file's content or executed template
syntax. Property-based tests run a bounded number of cases in CI; set
MYELO_DOCS_HYPOTHESIS=deep for a long local run.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import shutil
import threading
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader
from test_security import Listener

from conftest import BASE_RECORD, pages_text, record
from myelo_docs import (
    ConfigError,
    MissingGlyphError,
    OutputError,
    RecordError,
    get_renderer,
    validate_record,
)
from myelo_docs.assets import builtin_brands_dir
from myelo_docs.cli.main import main
from myelo_docs.output.files import write_atomic
from myelo_docs.render.fonts import check_glyphs
from myelo_docs.schema.record import (
    MAX_FOLLOW_UP,
    MAX_FREE_TEXT,
    MAX_INSTRUCTIONS,
    MAX_MEDICATIONS,
    MAX_MRN,
    MAX_NAME,
    text_fields,
)
from myelo_docs.verify.selfcheck import shows, squash

settings.register_profile("ci", max_examples=25, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("MYELO_DOCS_HYPOTHESIS", "ci")
settings.load_profile(PROFILE)
DEEP = PROFILE == "deep"
RENDERED = 150 if DEEP else 6  # examples that render a whole packet (~0.6 s each)
# Shrinking a failing example re-renders many times: in CI report it as found.
RENDER_PHASES = list(Phase) if DEEP else [Phase.explicit, Phase.reuse, Phase.generate]

# field label as errors name it -> longest accepted value
LIMITS = {
    "patient_name": MAX_NAME,
    "mrn": MAX_MRN,
    "physician": MAX_NAME,
    "nurse": MAX_NAME,
    "follow_up": MAX_FOLLOW_UP,
    "instructions #1": MAX_FREE_TEXT,
    "medications #1 name": MAX_NAME,
    "medications #1 instruction": MAX_FREE_TEXT,
}
FIELDS = list(LIMITS)
BIDI_OVERRIDES = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

PIECES = [
    "\x00", "\n", "\t", "\r", "\x1b[31m", "\x7f", "\u0085", "\u2028",  # controls, separators
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u00ad", "\ufeff", "\u2060",  # invisible
    "\u202e", "\u2066", "\u2069",  # direction overrides
    "\u0301", "e\u0301", "\u0336\u0336", "a\u0308\u0323", "\u0e33",  # combining marks
    "😀", "👩\u200d⚕️", "\U0001f1fa\U0001f1f8", "\u2764\ufe0f",  # emoji
    "王", "한", "अ", "ศ",  # scripts our fonts lack
    "\ud800", "\udfff",  # lone surrogates
    "\uffff", "\ue000", "\U000e0001", "\U0010fffd",  # noncharacter, private use, tag
    "ש", "محمد", "Ж", "ễ", "ǅ", "ﬁ", "Ⅻ", "\u3000", "\u00a0", " ",
    "<b>", "&amp;", "{{ 7*7 }}", "{%", "%}", "\\", "'", '"', "|",
]
hostile = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)),
                   max_size=10).map("".join)
long = st.builds(lambda ch, n: ch * n, st.sampled_from(["a", "é", "W", "ש", "0", " ", "\u0301"]),
                 st.sampled_from([39, 40, 41, 119, 120, 121, 299, 300, 301, 499, 500, 501,
                                  5000]))
any_text = st.one_of(hostile, long, st.text())


def put(field: str, value: object) -> dict[str, object]:
    """A good record with one text field set to value."""
    if field.startswith("instructions"):
        return record(instructions=[value])
    if field.startswith("medications"):
        med: dict[str, object] = {"name": "Warfarin", "instruction": "Take it."}
        med[field.split()[-1]] = value
        return record(medications=[med])
    return record(**{field: value})


def on_paper(value: str, texts: list[str]) -> bool:
    """Whether pypdf's text of the pages shows value (spaces and invisible marks aside;
    right-to-left runs in any order, as verify.shows documents)."""
    return shows(value, squash("".join(texts)))


def check(renderer, data):
    """What Renderer.packet() does before rendering: (record, None) or (None, error)."""
    try:
        parsed = validate_record(data)
        check_glyphs(text_fields(parsed), renderer.fonts)
        return parsed, None
    except RecordError as exc:
        return None, exc


def assert_clear_error(error: RecordError, field: str, value: str) -> None:
    assert error.problems
    for problem in error.problems:
        assert problem.field.startswith(field) and problem.fix, problem
    if len(value.strip()) >= 8:  # the value is never echoed back
        assert value.strip() not in str(error)
        assert value.strip() not in json.dumps(error.as_dict(), ensure_ascii=False)


@pytest.mark.parametrize("field", FIELDS)
@given(value=any_text)
def test_any_text_is_taken_whole_or_refused_by_field(renderer, field, value):
    parsed, error = check(renderer, put(field, value))
    if error is not None:
        assert_clear_error(error, field, value)
        return
    expected = unicodedata.normalize("NFC", value).strip()  # nothing else silently dropped
    if not expected and field in ("physician", "nurse", "follow_up"):
        assert field not in text_fields(parsed)  # blank optional text is absent
        return
    stored = text_fields(parsed)[field]
    assert stored == expected
    assert 1 <= len(stored) <= LIMITS[field]
    for ch in stored:
        assert unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn") and ch not in BIDI_OVERRIDES
    assert renderer.fonts.missing(stored) == []


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)
ALL_FIELDS = ["type", "patient_name", "date_of_birth", "mrn", "procedure_date", "physician",
              "nurse", "follow_up", "instructions", "medications", "language", "large_print"]


@pytest.mark.parametrize("field", ALL_FIELDS)
@given(value=json_values)
def test_any_json_value_in_any_field_is_a_record_or_a_record_error(field, value):
    try:
        validate_record(record(**{field: value}))
    except RecordError as exc:
        assert exc.problems and all(p.field.startswith(field) for p in exc.problems), exc


@given(instructions=st.integers(0, 40), medications=st.integers(0, 40))
def test_list_sizes_are_enforced(instructions, medications):
    data = record(instructions=["Rest."] * instructions,
                  medications=[{"name": "A", "instruction": "B"}] * medications)
    too_many = instructions > MAX_INSTRUCTIONS or medications > MAX_MEDICATIONS
    try:
        validate_record(data)
        assert not too_many
    except RecordError as exc:
        assert too_many
        assert all("more than" in p.problem for p in exc.problems)


@functools.cache
def printable() -> tuple[str, ...]:
    """Every character our fonts draw that a record may hold."""
    return tuple(ch for ch in map(chr, sorted(get_renderer().fonts.covered))
                 if unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn", "Zl", "Zp")
                 and ch not in BIDI_OVERRIDES)


@settings(max_examples=RENDERED, phases=RENDER_PHASES,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_rendered_sample_shows_the_value_on_paper(renderer, data):
    field = data.draw(st.sampled_from(FIELDS), label="field")
    parts = st.one_of(st.sampled_from(printable()), st.sampled_from(PIECES))
    value = "".join(data.draw(st.lists(parts, min_size=1, max_size=30), label="parts"))
    value = value[:LIMITS[field]]
    parsed, _ = check(renderer, put(field, value))
    assume(parsed is not None and field in text_fields(parsed))  # blank optional: absent
    try:
        document = renderer.packet(parsed)
    except MissingGlyphError:
        return  # WeasyPrint found no glyph after all: refused, never a box on paper
    texts = pages_text(document.pdf)
    assert len(texts) == document.pages
    assert on_paper(text_fields(parsed)[field], texts)


# Cases these suites found, kept so every run checks them (see README, Safety and security).
FOUND = [
    ("patient_name", "\u08ba("),  # right-to-left letter + bracket: came out mirrored
    ("patient_name", "Ana (\u0645\u062d\u0645\u062f)"),  # mixed directions, brackets
    ("patient_name", "\u0645\u062d\u0645\u062f 2"),  # digits after Arabic: reordered
    ("patient_name", "Ana\u200bLee\u2060"),  # invisible characters: not in the text layer
    ("mrn", "\u0416" * MAX_MRN),  # a wide 40-character MRN ran off the page in the header
    ("patient_name", "\u05e9\u0317ab"),  # a mark from another font: extracted before its letter
    ("nurse", "Ana \u0301Lee"),  # a mark after a space is drawn on a dotted circle
    ("patient_name", "\u05e9%}\u0301"),  # punctuation after Hebrew: extracted on the other side
    ("patient_name", "Lee \u02fa\u0611\u200e\u0362"),  # an Arabic mark on a symbol
    ("patient_name", "\u020dM\u05e9\u200f\ufb7e"),  # Hebrew then Arabic: two fonts, two chunks
    # a mark the Arabic font lacks, inside an Arabic run: drawn from another font, the
    # run came out as two chunks in swapped order
    ("patient_name", "Ana \u062e\u0649\u0336\u0645\u062d\u062c"),
    ("patient_name", "\u2c7f\ufd78\u0301\ufc47"),
    # a line PDFium reads as right-to-left: the subscript digit came out before its letter
    ("patient_name", "\u2c7f\u2083\ufed1\u2e31\ufd78\u0301\ufc47"),
    # an Arabic five-pointed star (punctuation of right-to-left class): came out before
    # the letters
    ("medications #1 instruction", "\u063c\ufcd3\u066d"),
]


@pytest.mark.parametrize(("field", "value"), FOUND)
def test_found_cases_print_whole_and_pass_the_self_check(renderer, field, value):
    document = renderer.packet(put(field, value))
    assert on_paper(value, pages_text(document.pdf))


def test_invisible_characters_in_an_mrn_are_refused():
    with pytest.raises(RecordError, match="mrn: contains an invisible character"):
        validate_record(record(mrn="123\u200b456"))


def test_a_value_starting_with_a_mark_is_refused():
    """Found by the deep run: a name of two combining strokes lost one in the text layer."""
    with pytest.raises(RecordError, match="patient_name: starts with an accent or mark"):
        validate_record(record(patient_name="\u0336\u0336"))


@pytest.mark.parametrize("field", FIELDS)
def test_a_soft_hyphen_is_refused(field):
    """Found by the rendered sample: where a line breaks at a soft hyphen a hyphen is
    drawn that is not in the value (the self-check refused the name)."""
    with pytest.raises(RecordError, match=f"{re.escape(field)}: contains a soft hyphen"):
        validate_record(put(field, "A" * 60 + "\u00ad" + "B" * 50))


@pytest.mark.parametrize("value", ["A\u0336\u0336", "\ua749\u01ea\u0336\u0336{{ 7*7 }}",
                                   "a\u0308\u0323\u0308"])
def test_the_same_mark_twice_in_a_row_is_refused(value):
    """Found by the rendered sample: two strokes drawn at one place came out of PDFium's
    text layer as one (or as other letters), and the self-check refused the name."""
    with pytest.raises(RecordError, match="patient_name: has the same accent or mark"):
        validate_record(record(patient_name=value))


@settings(max_examples=RENDERED * 2, phases=RENDER_PHASES)
@given(field=st.sampled_from(FIELDS), value=any_text)
def test_cli_json_input_writes_a_whole_packet_or_nothing(tmp_path_factory, field, value):
    folder = tmp_path_factory.mktemp("json")
    (folder / "r.json").write_text(json.dumps(put(field, value)))  # lone surrogates as \ud800
    result = CliRunner().invoke(main, ["packet", "--input", str(folder / "r.json"),
                                       "-o", str(folder / "out.pdf")])
    assert result.exit_code in (0, 3), result.output
    assert "Traceback" not in result.output and "Internal error" not in result.output
    files = sorted(p.name for p in folder.iterdir())
    if result.exit_code == 0:
        assert files == ["out.pdf", "r.json"]
        pdf = (folder / "out.pdf").read_bytes()
        stored = text_fields(validate_record(put(field, value))).get(field)
        assert stored is None or on_paper(stored, pages_text(pdf))  # None: blank optional
    else:
        assert files == ["r.json"]
        assert re.search(rf"- {re.escape(field.split()[0])}", result.stderr), result.stderr
        if len(value.strip()) >= 8:
            assert value.strip() not in result.output


FLAG = {"patient_name": "--patient-name", "mrn": "--mrn", "physician": "--physician",
        "nurse": "--nurse", "follow_up": "--follow-up", "instructions #1": "--instruction"}


@settings(max_examples=RENDERED * 2, phases=RENDER_PHASES)
@given(field=st.sampled_from(list(FLAG)), value=hostile.filter(lambda v: "\x00" not in v))
def test_cli_flags_write_a_whole_packet_or_nothing(tmp_path_factory, field, value):
    folder = tmp_path_factory.mktemp("flags")
    args = {"--type": "lumbar", "--patient-name": "Rosalind Testpatient",
            "--date-of-birth": "1958-07-14", "--mrn": "TST-4471902",
            "--procedure-date": "2026-11-25", FLAG[field]: value}
    argv = ["packet", *[x for pair in args.items() for x in pair], "-o", str(folder / "o.pdf")]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code in (0, 3), result.output
    assert "Traceback" not in result.output
    made = (folder / "o.pdf").exists()
    assert made == (result.exit_code == 0)
    assert sorted(p.name for p in folder.iterdir()) == (["o.pdf"] if made else [])


@pytest.mark.parametrize("text", ["[" * 100_000, '{"mrn": ' + "1" * 5000 + "}",
                                  '{"a": "\\ud800"', "\x00", "", "null", "[]"])
def test_json_files_that_break_parsers_fail_clearly(tmp_path, text):
    (tmp_path / "r.json").write_text(text)
    result = CliRunner().invoke(main, ["packet", "--input", str(tmp_path / "r.json")])
    assert result.exit_code == 3, result.output
    assert "--input" in result.stderr and "Traceback" not in result.output


LONGEST = record(
    patient_name=("Maximiliana " * 11)[:MAX_NAME - 1] + "Z",
    mrn="W" * MAX_MRN,
    physician="P" * MAX_NAME, nurse="N" * MAX_NAME, follow_up="F " * (MAX_FOLLOW_UP // 2),
    instructions=[f"{i:02d} " + "word " * 59 for i in range(MAX_INSTRUCTIONS)],
    medications=[{"name": f"Med{i:02d}" + "m" * (MAX_NAME - 5), "instruction": "dose " * 60}
                 for i in range(MAX_MEDICATIONS)],
)


def bodies(pdf: bytes) -> list[str]:
    """Each page's text without the running header and footer (the page text ends
    with them) and the list bullets (extracted before the page's text), so that a
    paragraph split over two pages reads on."""
    texts = [text[:text.rindex("Demo General Hospital")] for text in pages_text(pdf)]
    return [re.sub(r"(?m)^\s*•\s*$", "", text) for text in texts]


def test_longest_record_fits_and_prints_everything(renderer):
    """Every field at its limit, every list at its size: still a checked packet."""
    parsed = validate_record(LONGEST)
    document = renderer.packet(parsed)  # the self-check proves name, DOB, MRN on every page
    texts = bodies(document.pdf)
    for value in text_fields(parsed).values():
        assert on_paper(value, texts)


def test_longest_record_in_large_print_prints_everything(renderer):
    """Large print has room for fewer header lines: the top margin grows with them, and
    the self-check would refuse a header pushed off the page."""
    parsed = validate_record({**LONGEST, "large_print": True})
    texts = bodies(renderer.packet(parsed).pdf)
    for value in text_fields(parsed).values():
        assert on_paper(value, texts)


# --- injection: markup, URLs and template syntax in every field and settings file ---


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def canary(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("CANARY-7f3a9 local file content")
    return secret


def payloads(port: int, canary: Path) -> list[str]:
    url = f"http://127.0.0.1:{port}"
    return [
        f'<img src="{url}/img">',
        f'<link rel=stylesheet href="{url}/l.css">',
        f'<style>@import url("{url}/i.css"); body{{background:url({url}/b)}}</style>',
        f'<div style="background:url({url}/s)">',
        f'<object data="{canary.as_uri()}"></object>',
        f'<svg><image href="{url}/svg"/><use href="{canary.as_uri()}#x"/></svg>',
        f"<iframe src={canary.as_uri()}>",
        f"data:text/html,<img src={url}/d>",
        f"{url}/plain",
        canary.as_uri(),
        "{{ 7*7 }}{{ config }}",
        "{% for x in range(3) %}X{% endfor %}",
        "{fever} {hospital} ${7*7} #{7*7}",
    ]


def test_injection_in_every_field_prints_literally_and_reaches_nothing(renderer, listener,
                                                                         canary):
    hostile_values = payloads(listener.port, canary)
    for shift in range(len(hostile_values)):
        # each field gets each payload once over the loop (the MRN the ones that fit in it)
        pick = {f: hostile_values[(i + shift) % len(hostile_values)][:LIMITS[f]]
                for i, f in enumerate(FIELDS)}
        data = put("patient_name", pick["patient_name"])
        data.update(mrn=pick["mrn"], physician=pick["physician"], nurse=pick["nurse"],
                    follow_up=pick["follow_up"], instructions=[pick["instructions #1"]],
                    medications=[{"name": pick["medications #1 name"],
                                  "instruction": pick["medications #1 instruction"]}])
        document = renderer.packet(data)
        texts = pages_text(document.pdf)
        for value in pick.values():
            assert on_paper(value, texts), value
        whole = " ".join(texts)
        assert "CANARY" not in whole and " 49 " not in whole and "XXX" not in whole
        assert "100.0 °F" not in pick["patient_name"]
    assert listener.hits == 0


def test_injection_in_brand_and_protocol_files(tmp_path, listener, canary):
    port = listener.port
    brand_dir = tmp_path / "brand"
    shutil.copytree(builtin_brands_dir() / "demo", brand_dir)
    inner = (f'<svg xmlns="http://www.w3.org/2000/svg"><image href="http://127.0.0.1:{port}/in"'
             ' width="5" height="5"/></svg>')
    import base64

    (brand_dir / "logo.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'width="10" height="10">'
        f'<image href="data:image/svg+xml;base64,{base64.b64encode(inner.encode()).decode()}"'
        ' width="10" height="10"/>'
        f'<use href="{canary.as_uri()}#x"/>'
        f'<rect width="10" height="10" fill="url(http://127.0.0.1:{port}/fill#g)"/>'
        f'<foreignObject width="10" height="10"><img xmlns="http://www.w3.org/1999/xhtml" '
        f'src="http://127.0.0.1:{port}/fo"/></foreignObject>'
        f'<style>@import url("http://127.0.0.1:{port}/css"); rect {{ fill: '
        f'url("{canary.as_uri()}") }}</style></svg>')
    text = {
        "hospital_name": "{{ 7*7 }} {fever} <b>H</b>",
        "department": f'<img src="http://127.0.0.1:{port}/d">',
        "logo_alt": f"{canary.as_uri()} \" onload=x",
        "department_phone": "{% raw %}555",
        "after_hours_phone": "<script>alert(1)</script>",
        "emergency_number": "9{{1}}1",
        "address": f"@import url(http://127.0.0.1:{port}/a);",
        "website": f"http://127.0.0.1:{port}/w",
    }
    lines = [line for line in (brand_dir / "brand.toml").read_text().splitlines()
             if line.split(" = ")[0] not in text]
    lines += [f"{key} = {json.dumps(value)}" for key, value in text.items()]
    (brand_dir / "brand.toml").write_text("\n".join(lines) + "\n")
    version = f"{{{{ 7*7 }}}} ) /Root (x) <img src=http://127.0.0.1:{port}/v>"
    protocol = tmp_path / "protocol.toml"
    protocol.write_text(f"version = {json.dumps(version)}\n")

    document = get_renderer(brand=brand_dir / "brand.toml", protocol=protocol).packet(record())
    texts = pages_text(document.pdf)
    for key in ("hospital_name", "department", "department_phone", "after_hours_phone",
                "emergency_number"):  # (address and website are not printed)
        assert on_paper(text[key], texts), key
    whole = " ".join(texts)
    assert "CANARY" not in whole and " 49 " not in whole
    meta = PdfReader(io.BytesIO(document.pdf)).metadata
    assert meta["/MyeloDocsProtocolVersion"] == version
    assert listener.hits == 0


def test_logo_symlinked_outside_the_brand_folder_is_refused(tmp_path, canary):
    brand_dir = tmp_path / "brand"
    shutil.copytree(builtin_brands_dir() / "demo", brand_dir)
    outside = tmp_path / "outside.svg"
    shutil.copy(brand_dir / "logo.svg", outside)
    (brand_dir / "logo.svg").unlink()
    (brand_dir / "logo.svg").symlink_to(outside)
    with pytest.raises(ConfigError, match="outside"):
        get_renderer(brand=brand_dir / "brand.toml")


# --- files: names stay in the folder; nothing is replaced unless asked ---


@pytest.mark.parametrize("mrn", ["../../../../tmp/evil", "/etc/passwd", "C:\\x\\..\\y", "a/b"])
def test_default_name_stays_in_the_folder_whatever_the_record(tmp_path, monkeypatch, mrn):
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    data = {**BASE_RECORD, "mrn": mrn}
    (tmp_path / "r.json").write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["packet", "--input", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    made = [p.name for p in work.iterdir()]
    assert len(made) == 1 and re.fullmatch(r"myelogram-packet-2026-11-25-[0-9a-f]{10}\.pdf",
                                           made[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "work"]


def test_no_overwrite_even_if_the_file_appears_after_the_check(tmp_path, monkeypatch):
    """Another process creates the file between our check and our rename."""
    target = tmp_path / "p.pdf"
    real_exists = Path.exists

    def racing_exists(self, *args, **kwargs):
        if self == target and not real_exists(self):
            self.write_bytes(b"the other nurse's packet")
            return False
        return real_exists(self, *args, **kwargs)

    monkeypatch.setattr(Path, "exists", racing_exists)
    with pytest.raises(OutputError, match="already exists"):
        write_atomic(target, b"%PDF-new")
    assert target.read_bytes() == b"the other nurse's packet"
    assert [p.name for p in tmp_path.iterdir()] == ["p.pdf"]


def test_parallel_writers_one_wins_none_overwrites(tmp_path):
    target = tmp_path / "p.pdf"
    outcomes: list[str] = []

    def write(i: int) -> None:
        try:
            write_atomic(target, f"writer {i}".encode())
            outcomes.append("wrote")
        except OutputError:
            outcomes.append("refused")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 7 + ["wrote"]
    assert [p.name for p in tmp_path.iterdir()] == ["p.pdf"]


def test_dangling_symlink_is_not_followed_or_replaced(tmp_path):
    link = tmp_path / "p.pdf"
    link.symlink_to(tmp_path / "elsewhere.pdf")
    with pytest.raises(OutputError):
        write_atomic(link, b"%PDF-new")
    assert link.is_symlink() and not (tmp_path / "elsewhere.pdf").exists()
