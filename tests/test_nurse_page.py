"""The nurse's page: post/redirect/get with once-only links, the medicine rows'
rule and labels, and the page in the nurse's language (in-process; the flow
in a real Chromium is in test_browser.py)."""

from __future__ import annotations

import ast
import base64
import logging
import re
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_service import PHI, TOKEN, parse_form

import myelo_docs
from conftest import pages_text
from myelo_docs.assets import content_dir
from myelo_docs.schema.errors import Problem
from myelo_docs.schema.problems import Code
from myelo_docs.service import RenderPool, RenderSettings, ServiceSettings, create_app, web

GOOD = {"type": "lumbar", "patient_name": "Rosalind Testpatient", "date_of_birth": "1958-07-14",
        "mrn": "TST-4471902", "procedure_date": "2026-11-25", "med_name_1": "Warfarin",
        "med_instruction_1": "Restart on Friday.", "language": "en", "medicine_rows": "3",
        "instruction_rows": "2", "action": "print"}
ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def pool():
    pool = RenderPool(RenderSettings(), workers=1, queue=2).start()
    yield pool
    pool.close()


@pytest.fixture
def client(pool):
    return TestClient(create_app(pool), base_url="http://127.0.0.1", follow_redirects=False)


# -- 1. post/redirect/get -------------------------------------------------------


def test_a_good_print_redirects_to_a_packet_link_that_works_once(client):
    posted = client.post("/", data=GOOD)
    assert posted.status_code == 303
    location = posted.headers["location"]
    key = location.removeprefix("/packets/")
    assert location.startswith("/packets/") and ID.fullmatch(key)
    assert not any(value in location for value in PHI)
    assert posted.content == b""  # no patient data in the answer to the post itself

    packet = client.get(location)
    assert packet.status_code == 200
    assert packet.headers["content-type"] == "application/pdf"
    assert packet.headers["cache-control"] == "no-store"
    assert packet.headers["content-disposition"].startswith("inline;")
    assert "Testpatient" not in packet.headers["content-disposition"]
    assert "Rosalind Testpatient" in pages_text(packet.content)[0]

    again = client.get(location)  # Back, Forward, reload, or someone else with the link
    assert again.status_code == 404
    assert again.headers["content-type"].startswith("text/html")
    assert "This packet is gone" in again.text and "Testpatient" not in again.text
    assert "<script" not in again.text
    other = client.post("/", data=GOOD).headers["location"]
    assert other != location  # a new random id each time


def test_a_form_with_problems_redirects_and_is_shown_once(client):
    typed = {**GOOD, "date_of_birth": "2099-01-01"}
    posted = client.post("/", data=typed)
    assert posted.status_code == 303
    location = posted.headers["location"]
    assert re.fullmatch(r"/forms/[A-Za-z0-9_-]{43}\?lang=en", location)
    assert not any(value in location for value in PHI)
    shown = client.get(location)
    assert shown.status_code == 422
    form = parse_form(shown.text)
    assert set(form.errors) == {"date_of_birth"}
    assert form.controls["patient_name"]["value"] == "Rosalind Testpatient"
    # Back to it after printing, or a reload: an empty form, said plainly.
    later = client.get(location)
    assert later.status_code == 200
    assert "Testpatient" not in later.text and "2099-01-01" not in later.text
    assert "The details on that page were cleared" in later.text
    assert not parse_form(later.text).errors


def test_add_a_row_redirects_too_and_focuses_the_new_row(client):
    posted = client.post("/", data={"patient_name": "Rosalind Testpatient",
                                    "medicine_rows": "3", "action": "add_medicine"})
    assert posted.status_code == 303
    form = parse_form(client.get(posted.headers["location"]).text)
    assert "med_name_4" in form.controls and "autofocus" in form.controls["med_name_4"]
    assert form.controls["patient_name"]["value"] == "Rosalind Testpatient"


def test_once_store_forgets_when_read_after_a_minute_and_when_full():
    now = [0.0]
    store: web.OnceStore[str] = web.OnceStore(ttl=60, max_items=3, max_bytes=100,
                                              clock=lambda: now[0])
    first = store.put("first", 10)
    assert ID.fullmatch(first)
    assert store.take(first) == "first" and store.take(first) is None  # once
    late = store.put("late", 10)
    now[0] += 60
    assert store.take(late) is None  # a minute old: gone
    keys = [store.put(f"item {i}", 10) for i in range(4)]  # one more than max_items
    assert store.take(keys[0]) is None and len(store) == 3  # the oldest went
    big = store.put("big", 85)  # over max_bytes: the oldest go until it fits
    assert store.take(keys[1]) is None and store.take(keys[2]) is None
    assert store.take(keys[3]) == "item 3"  # 10 + 85 fit; 10 + 10 + 85 did not
    assert store.take(big) == "big" and len(store) == 0


def test_the_links_need_the_token_and_the_browser_is_asked_for_it(pool):
    secured = TestClient(create_app(pool, ServiceSettings(host="10.0.0.5", token=TOKEN)),
                         base_url="http://10.0.0.5:8000", follow_redirects=False)
    basic = {"authorization": "Basic " + base64.b64encode(f"nurse:{TOKEN}".encode()).decode(),
             "origin": "http://10.0.0.5:8000"}
    location = secured.post("/", data=GOOD, headers=basic).headers["location"]
    for path in (location, "/forms/" + "x" * 43, "/packets/" + "x" * 43):
        refused = secured.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"].startswith("Basic"), path
    assert secured.get(location, headers=basic).status_code == 200


def test_the_access_log_never_has_the_ids(client, caplog):
    caplog.set_level(logging.INFO)
    packet = client.post("/", data=GOOD).headers["location"]
    form = client.post("/", data={**GOOD, "mrn": ""}).headers["location"]
    client.get(packet)
    client.get(form)
    access = [r.getMessage() for r in caplog.records if r.name == "myelo_docs.access"]
    assert [line.split()[1:4] for line in access] == [
        ["POST", "/", "303"], ["POST", "/", "303"], ["GET", "/packets/{key}", "200"],
        ["GET", "/forms/{key}", "422"]]
    keys = (packet.rsplit("/", 1)[1], form.rsplit("/", 1)[1].split("?")[0])
    server_side = [r.getMessage() for r in caplog.records  # httpx is the test's own client
                   if not r.name.startswith(("httpx", "httpcore"))]
    for line in server_side:
        assert not any(key in line for key in keys), line
        assert not any(value in line for value in PHI), line


# -- 2. medicine rows: the label and the rule agree ---------------------------------


def test_medicine_boxes_are_not_called_optional_and_the_problem_says_what_to_write(client):
    page = client.get("/").text
    for label in re.findall(r'<label for="med_[a-z_]+\d+">(.*?)</label>', page):
        assert "optional" not in label, label
    assert re.search(r'<label for="instruction_1">[^<]*<span class="optional">', page)
    assert "Both boxes are needed" in page

    typed = {**GOOD, "med_name_2": "Metformin", "med_instruction_3": "Take at night."}
    shown = client.get(client.post("/", data=typed).headers["location"])
    errors = parse_form(shown.text).errors
    assert set(errors) == {"med_instruction_2", "med_name_3"}
    assert errors["med_instruction_2"] == (
        "Error: Write what the patient should do with this medicine, for example “Keep "
        "taking it as usual” or “Restart on Friday”. If the patient does not need it, "
        "clear the name.")
    assert errors["med_name_3"] == ("Error: Write the name of the medicine, or clear its "
                                    "instruction.")
    assert "Is empty" not in shown.text and "Give a value" not in shown.text


def test_every_empty_required_box_says_what_to_write(client):
    shown = client.get(client.post("/", data={"action": "print"}).headers["location"])
    errors = parse_form(shown.text).errors
    assert errors == {
        "type": "Error: Choose the type of myelogram.",
        "patient_name": "Error: Write the patient's full name.",
        "date_of_birth": "Error: Write the date of birth.",
        "mrn": "Error: Write the MRN.",
        "procedure_date": "Error: Write the date of the myelogram."}
    assert "Please fix 5 problems" in shown.text


# -- 3. the page in the nurse's language --------------------------------------------


def page_words(language: str) -> dict:
    return tomllib.loads((content_dir() / language / web.PAGE_WORDS).read_text("utf-8"))


def keys(node: dict, path: str = "") -> set[str]:
    found = set()
    for key, value in node.items():
        found.add(f"{path}.{key}")
        if isinstance(value, dict):
            found |= keys(value, f"{path}.{key}")
    return found


def test_page_words_have_the_same_keys_and_placeholders_in_every_language():
    assert set(web.page_languages()) >= {"en", "es"}
    english = page_words("en")
    for language in web.page_languages():
        words = page_words(language)
        assert keys(words) == keys(english), language
        assert words["meta"]["language"] == language
        for section, table in english.items():
            for key, text in table.items():
                if isinstance(text, str):
                    used = set(re.findall(r"\{([a-z_]+)\}", words[section][key]))
                    assert used == set(re.findall(r"\{([a-z_]+)\}", text)), (language, key)


@pytest.mark.parametrize(("header", "language"), [
    ("es-MX,es;q=0.9,en;q=0.8", "es"), ("es", "es"), ("en-US,en;q=0.9", "en"),
    ("fr-CA,fr;q=0.9,es;q=0.5", "es"), ("fr", "en"), (None, "en"), ("", "en"),
    ("en;q=0.2, es;q=0.8", "es"), ("es;q=0, en", "en"), ("*", "en"), ("es;q=x, en", "en"),
])
def test_page_language_from_accept_language(header, language):
    assert web.choose_language(None, header) == language


def test_chosen_language_wins_over_the_browser():
    assert web.choose_language("en", "es") == "en"
    assert web.choose_language("es", "en") == "es"
    assert web.choose_language("xx", "es") == "es"  # not one we have: the browser's
    assert web.accepted_languages("de;q=0.5, es-MX, en;q=0.7") == ["es-MX", "en", "de"]


ENGLISH_ON_THE_PAGE = ("Print a myelogram discharge packet", "Patient's full name", "Date of birth",
                       "Medicines", "Extra instructions", "Print packet", "(optional)",
                       "Large print", "Language of the packet", "Skip to the form",
                       "Lumbar myelogram", "lower back", "Nothing you type")


def test_the_page_in_spanish_from_the_browser_with_a_switch_to_english(client):
    page = client.get("/", headers={"accept-language": "es-MX,es;q=0.9,en;q=0.5"})
    text = page.text
    assert '<html lang="es">' in text
    assert "Imprimir el paquete de alta de una mielografía" in text
    assert "Nombre completo del paciente" in text and "Mielografía lumbar" in text
    for english in ENGLISH_ON_THE_PAGE:
        assert english not in text, english
    form = parse_form(text)
    assert set(form.controls) <= form.labels
    # The switch: a button of the form, so what was typed is kept.
    assert re.search(r'<li lang="en">\s*<button type="submit" name="action" '
                     r'value="page_language:en"[^>]*>English</button>', text)
    assert '<span class="current" aria-current="true">Español</span>' in text
    # The packet's language is separate, each name in its own language.
    assert '<option value="en" lang="en" selected>English</option>' in text
    assert '<option value="es" lang="es">Español</option>' in text
    english = client.get("/?lang=en", headers={"accept-language": "es"}).text
    assert '<html lang="en">' in english and "Print a myelogram discharge packet" in english


def test_switching_the_page_language_keeps_what_was_typed(client):
    typed = {**GOOD, "language": "en", "action": "page_language:es"}
    posted = client.post("/", data=typed)
    assert posted.status_code == 303
    shown = client.get(posted.headers["location"])
    assert shown.status_code == 200 and '<html lang="es">' in shown.text
    form = parse_form(shown.text)
    assert not form.errors
    assert form.controls["patient_name"]["value"] == "Rosalind Testpatient"
    assert form.controls["med_instruction_1"]["value"] == "Restart on Friday."
    assert '<input type="hidden" name="page_language" value="es">' in shown.text
    assert '<option value="en" lang="en" selected>English</option>' in shown.text  # packet


def test_problems_in_spanish(client):
    typed = {**GOOD, "page_language": "es", "date_of_birth": "2099-01-01", "mrn": "",
             "med_name_2": "Metformina"}
    posted = client.post("/", data=typed, headers={"accept-language": "en"})
    shown = client.get(posted.headers["location"])
    assert '<html lang="es">' in shown.text
    errors = parse_form(shown.text).errors
    assert errors == {
        "date_of_birth": "Error: Esta fecha está en el futuro. Revise el año.",
        "mrn": "Error: Escriba el MRN.",
        "med_instruction_2": "Error: Escriba qué debe hacer el paciente con esta medicina, por "
                             "ejemplo “Siga tomándola como siempre” o “Vuelva a tomarla el "
                             "viernes”. Si el paciente no la necesita, borre el nombre."}
    assert "Corrija 3 problemas" in shown.text
    assert ('<a href="#mrn">Número de expediente médico (MRN): Escriba el MRN.</a>'
            in shown.text)
    # A Spanish page's notices are Spanish too, and the gone page follows the browser.
    assert "Se borraron los datos" in client.get(posted.headers["location"]).text
    old = client.post("/", data={**GOOD, "page_language": "es", "procedure_date": "2001-01-01"})
    assert parse_form(client.get(old.headers["location"]).text).errors == {
        "procedure_date": "Error: Esta fecha es de hace más de 5 años. Revise el año."}
    gone = client.get("/packets/" + "x" * 43, headers={"accept-language": "es"})
    assert gone.status_code == 404 and "Este paquete ya no está" in gone.text


def test_record_problems_in_the_page_words_and_unknown_ones_marked_english():
    english, spanish = web.Words("en"), web.Words("es")
    long = Problem("patient_name", "is longer than 120 characters", "shorten it",
                   code="too_long", values=(("count", "120"),))
    assert web.problem_message(long, english) == "This is too long. Make it 120 letters or shorter."
    assert web.problem_message(long, spanish) == "Es demasiado largo. Use 120 letras o menos."
    odd = Problem("mrn", "is <odd>", "do something")
    assert web.problem_message(odd, english) == "Is &lt;odd&gt;. Do something."
    assert web.problem_message(odd, spanish) == (
        'Revise este dato. <span lang="en">Is &lt;odd&gt;. Do something.</span>')
    # The English wording does not matter, the code does; a code the page has no words
    # for, or one without the number its words need, stays as today.
    reworded = Problem("date_of_birth", "lies after today", "look again", code="future_date")
    assert web.problem_message(reworded, spanish) == "Esta fecha está en el futuro. Revise el año."
    for unknown in (Problem("mrn", "is <odd>", "do something", code="no_such_code"),
                    Problem("mrn", "is <odd>", "do something", code="too_long")):
        assert web.problem_message(unknown, spanish) == web.problem_message(odd, spanish)


def test_every_problem_code_has_page_words_in_every_language():
    """Each code is declared once (problems.Code); every one the validators raise, and
    every one declared, has words in each language's [problems], so no problem a nurse
    can cause falls back to English on a page in another language."""
    raised = set()
    for source in (Path(myelo_docs.__file__).parent).rglob("*.py"):
        raised |= set(re.findall(r"\bCode\.([a-z_0-9]+)", source.read_text("utf-8")))
    declared = {code.value for code in Code}
    assert raised == declared, "a code declared and never raised, or raised and not declared"
    for language in web.page_languages():
        said = page_words(language)["problems"]
        assert declared <= set(said), (language, declared - set(said))
        assert set(said) <= declared, (language, "words for a code no one raises")


def test_every_record_check_gives_its_problem_a_code():
    """Each error record.py's validators raise names its code (an AST walk, so a new
    check without one fails here)."""
    import myelo_docs.schema.record as record

    tree = ast.parse(Path(record.__file__).read_text("utf-8"))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name) and node.func.id in ("invalid", "user_error")]
    assert len(calls) >= 15
    for call in calls:
        assert any(k.arg == "code" for k in call.keywords), f"line {call.lineno}: no code="


def spanish_errors(client, **typed: str) -> tuple[dict[str, str], str]:
    posted = client.post("/", data={**GOOD, "page_language": "es", **typed})
    assert posted.status_code == 303 and posted.headers["location"].startswith("/forms/")
    shown = client.get(posted.headers["location"])
    assert shown.status_code == 422
    return parse_form(shown.text).errors, shown.text


def test_an_mrn_excel_changed_is_told_in_spanish_on_the_spanish_page(client):
    errors, text = spanish_errors(client, mrn="1.23E+11")
    assert errors == {"mrn": "Error: Parece un número que Excel cambió. Escriba el MRN tal "
                             "como aparece en la pulsera."}
    assert '<span lang="en">' not in text and "Revise este dato" not in text
    assert "spreadsheet" not in text  # no advice for a spreadsheet on a typed form


@pytest.mark.parametrize(("typed", "code"), [
    ({"mrn": "123456.0"}, "mrn_decimal"),
    ({"mrn": "TST-447\u200b1902"}, "invisible_character"),
    ({"patient_name": "Ros\ufffdlind Testpatient"}, "damaged_text"),
    ({"patient_name": "Ros?lind Testpatient"}, "damaged_text"),
    ({"patient_name": "Siobh\u00c3\u00a1n Testpatient"}, "damaged_text"),  # mojibake
    ({"med_instruction_1": "Questions?? Call us"}, "damaged_text"),
    ({"patient_name": "\u0301Rosalind Testpatient"}, "starts_with_mark"),
    ({"patient_name": "Rosq\u0301\u0301lind Testpatient"}, "mark_twice"),
    ({"physician": "Dr\u00ad Jones"}, "soft_hyphen"),
    ({"date_of_birth": "2099-01-01"}, "future_date"),
])
def test_record_problems_are_spanish_on_the_spanish_page(client, typed, code):
    errors, text = spanish_errors(client, **typed)
    (form_id,) = typed
    assert errors == {form_id: f"Error: {page_words('es')['problems'][code]}"}
    assert '<span lang="en">' not in text


@pytest.mark.parametrize(("typed", "form_id", "message"), [
    ({"procedure_date": "1950-01-01"}, "procedure_date",
     "The myelogram is before the date of birth. Check both dates."),
    ({"date_of_birth": "1958-02-30"}, "date_of_birth",
     "This date is not on the calendar. Check the month and the day."),
    ({"date_of_birth": "14/07/1958"}, "date_of_birth",
     "This is not a date. Write it as year-month-day, for example 1961-03-24."),
    ({"date_of_birth": "1899-12-31"}, "date_of_birth", "This date is before 1900. Check the year."),
    ({"patient_name": "R" * 121}, "patient_name",
     "This is too long. Make it 120 letters or shorter."),
    ({"med_instruction_1": "Restart\u202e Friday."}, "med_instruction_1",
     "This has a hidden character, maybe from copying and pasting. Type it again."),
    ({"patient_name": "Ros?lind Testpatient"}, "patient_name",
     "Some letters are damaged (a ?, a box or odd letters where a letter should be), maybe "
     "from copying and pasting. Type it again."),
])
def test_the_record_checks_reach_the_form_in_the_page_words(client, typed, form_id, message):
    """Each problem the record model finds in what a nurse can type, in the page's own
    words (a change of wording in record.py shows here, not as stray English)."""
    shown = client.get(client.post("/", data={**GOOD, **typed}).headers["location"])
    assert parse_form(shown.text).errors == {form_id: f"Error: {message}"}


def test_the_nurse_can_print_a_packet_of_several_regions(client):
    page = client.get("/")
    assert 'value="cervical+lumbar"' in page.text  # offered with the one-region types
    posted = client.post("/", data={**GOOD, "type": "cervical+lumbar"})
    assert posted.status_code == 303 and posted.headers["location"].startswith("/packets/")
    first = " ".join(pages_text(client.get(posted.headers["location"]).content)[0].split())
    assert "cervical and lumbar" in first.lower()


def test_the_api_gives_every_type_and_a_handout_of_several_regions(client):
    listed = [t["type"] for t in client.get("/v1/types").json()["types"]]
    assert listed[:3] == ["cervical", "thoracic", "lumbar"] and "cervical+lumbar" in listed
    handout = client.post("/v1/handouts", json={"type": "lumbar+cervical"})
    assert handout.status_code == 200 and handout.headers["content-type"] == "application/pdf"
    wrong = client.post("/v1/handouts", json={"type": "lumbar+lumbar"})
    assert wrong.status_code == 422 and "twice" in wrong.text
