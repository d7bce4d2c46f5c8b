"""The nurse's page in a real headless Chromium, against a real `myelo-docs serve`."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader
from test_service import PHI, running_server

from conftest import flat

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (scripts/install.sh installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("browser")) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(java_script_enabled=False)  # the form must not need it
    page = context.new_page()
    yield page
    context.close()


def fill_patient(page, date_of_birth: str) -> None:
    page.get_by_label("Lumbar myelogram").check()
    page.get_by_label("Patient's full name").fill("Wilhelmina Browserpatient")
    page.get_by_label("Date of birth").fill(date_of_birth)
    page.get_by_label("Medical record number (MRN)").fill("WEB-5550123")
    page.get_by_label("Date of the myelogram").fill("2026-11-25")
    page.get_by_label("Medicine 1 name").fill("Warfarin")
    page.get_by_label("Medicine 1 instruction").fill("Restart on Friday.")


def test_fill_the_form_and_get_the_pdf(server, page):
    page.goto(server.url + "/")
    assert page.title().startswith("Print a myelogram discharge packet")
    fill_patient(page, "1958-07-14")
    # Add a medicine row with the keyboard: no JavaScript involved.
    page.get_by_role("button", name="Add a medicine row").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.get_by_label("Patient's full name").input_value() == "Wilhelmina Browserpatient"
    assert page.get_by_label("Medicine 4 name").is_visible()
    page.get_by_label("Medicine 4 name").fill("Metformin")
    page.get_by_label("Medicine 4 instruction").fill("Restart in 48 hours.")
    # Chromium shows the PDF in its viewer, whose page is all that response.body()
    # would give; so the form's answer is kept on its way to the browser.
    answers = []

    def keep(route):
        fetched = route.fetch()
        answers.append(fetched.body())
        route.fulfill(response=fetched)

    page.route("**/*", lambda route: keep(route) if route.request.method == "POST"
               else route.continue_())
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Print packet").click()
    response = answer.value
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith("inline;")
    assert response.headers["cache-control"] == "no-store"
    assert "Browserpatient" not in response.headers["content-disposition"]
    [pdf] = answers
    texts = [flat(p.extract_text()) for p in PdfReader(io.BytesIO(pdf)).pages]
    assert all("Wilhelmina Browserpatient" in t and "WEB-5550123" in t for t in texts)
    assert "Metformin" in " ".join(texts) and "Restart in 48 hours." in " ".join(texts)
    assert "Browserpatient" not in page.url


def test_a_bad_date_shows_next_to_its_field_with_values_kept(server, page):
    page.goto(server.url + "/")
    fill_patient(page, "2099-01-01")
    page.get_by_label("Large print").check()
    page.get_by_role("button", name="Print packet").click()
    error = page.locator("#date_of_birth-error")
    assert "is in the future" in error.inner_text().lower()
    # The message sits in the date of birth field's own box, and is announced with it.
    field = page.locator(".field", has=page.locator("#date_of_birth"))
    assert field.locator(".field-error").inner_text() == error.inner_text()
    assert "date_of_birth-error" in page.locator("#date_of_birth").get_attribute(
        "aria-describedby")
    assert page.locator(".error-summary a[href='#date_of_birth']").count() == 1
    assert page.get_by_label("Date of birth").input_value() == "2099-01-01"
    assert page.get_by_label("Patient's full name").input_value() == "Wilhelmina Browserpatient"
    assert page.get_by_label("Medical record number (MRN)").input_value() == "WEB-5550123"
    assert page.get_by_label("Medicine 1 instruction").input_value() == "Restart on Friday."
    assert page.get_by_label("Lumbar myelogram").is_checked()
    assert page.get_by_label("Large print").is_checked()
    log = server.log_text()
    assert not any(value in log for value in (*PHI, "Wilhelmina", "5550123"))
