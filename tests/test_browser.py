"""The nurse's page in a real headless Chromium, against a real `myelo-docs serve`."""

from __future__ import annotations

import base64
import io
import os
import time
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
    page.get_by_role("radio", name="Lumbar myelogram (lower back)", exact=True).check()
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
    # would give, and the packet link works once; so the packet is kept on its way
    # to the browser (DevTools' Fetch domain sees the GET the redirect leads to).
    answers = []
    devtools = page.context.new_cdp_session(page)

    def keep(event):
        body = devtools.send("Fetch.getResponseBody", {"requestId": event["requestId"]})
        answers.append(base64.b64decode(body["body"]) if body["base64Encoded"]
                       else body["body"].encode())
        devtools.send("Fetch.continueRequest", {"requestId": event["requestId"]})

    devtools.on("Fetch.requestPaused", keep)
    devtools.send("Fetch.enable", {"patterns": [{"urlPattern": "*/packets/*",
                                                 "requestStage": "Response"}]})
    with page.expect_response(lambda r: "/packets/" in r.url) as answer:
        page.get_by_role("button", name="Print packet").click()
    response = answer.value
    assert response.status == 200
    assert response.request.method == "GET"
    assert response.request.redirected_from.method == "POST"  # post/redirect/get
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
    assert "this date is in the future" in error.inner_text().lower()
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
    assert page.get_by_role("radio", name="Lumbar myelogram (lower back)", exact=True).is_checked()
    assert page.get_by_label("Large print").is_checked()
    log = server.log_text()
    assert not any(value in log for value in (*PHI, "Wilhelmina", "5550123"))



def settled(step):
    """Run a history step once the tab is attached again: Chromium's PDF viewer
    swaps the tab's renderer after a PDF opens, and DevTools answers "Not attached
    to an active page" until it has (the step itself was never sent then)."""
    from playwright.sync_api import Error

    for _ in range(40):
        try:
            return step()
        except Error as error:
            if "Not attached to an active page" not in str(error):
                raise
            time.sleep(0.25)
    return step()


def test_error_fix_print_then_back_and_reload_never_post(server, page):
    """The flow that used to end in "Confirm Form Resubmission": every page in the
    history is a GET, so Back, Forward and reload show a page without posting."""
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(server.url + "/")
    fill_patient(page, "2099-01-01")
    page.get_by_role("button", name="Print packet").click()
    assert page.locator("#date_of_birth-error").is_visible()
    assert "Browserpatient" not in page.url
    page.get_by_label("Date of birth").fill("1958-07-14")
    with page.expect_response(lambda r: r.headers.get("content-type") == "application/pdf"
                              ) as answer:
        page.get_by_role("button", name="Print packet").click()
    assert answer.value.status == 200 and len(posts) == 2
    page.wait_for_url("**/packets/**")
    page.wait_for_load_state("load")
    packet_url = page.url

    back = settled(page.go_back)
    assert back is not None and back.request.method == "GET" and back.ok  # no resubmission
    assert len(posts) == 2

    assert "/forms/" in back.url and "/packets/" in packet_url
    assert page.title().startswith("Print a myelogram discharge packet")
    assert page.get_by_role("alert").inner_text().startswith("The details on that page were")
    assert page.get_by_label("Patient's full name").input_value() == ""  # the next patient's
    assert "Browserpatient" not in page.content()

    reloaded = settled(page.reload)
    assert reloaded.request.method == "GET" and reloaded.ok and len(posts) == 2

    forward = settled(page.go_forward)  # the packet opened once; it is gone now
    assert forward.request.method == "GET" and forward.status == 404 and len(posts) == 2
    assert page.get_by_role("heading", level=1).inner_text() == "This packet is gone"
    assert page.url == packet_url


def test_reloading_a_page_with_problems_does_not_post(server, page):
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(server.url + "/")
    fill_patient(page, "2099-01-01")
    page.get_by_role("button", name="Print packet").click()
    assert len(posts) == 1 and page.locator(".field-error").count() == 1
    reloaded = page.reload()
    assert reloaded.request.method == "GET" and reloaded.ok and len(posts) == 1
    assert page.get_by_label("Medical record number (MRN)").input_value() == ""


LAID_OUT = ("h1, legend, label, input:not([type=hidden]), select, textarea, "
            "button:not(.default-action), p.hint, p.field-error, .page-language .current, "
            ".error-summary li")


def overlaps(a: dict, b: dict) -> bool:
    return (a["x"] + 1 < b["x"] + b["width"] and b["x"] + 1 < a["x"] + a["width"]
            and a["y"] + 1 < b["y"] + b["height"] and b["y"] + 1 < a["y"] + a["height"])


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("width", [1280, 390])  # a desktop, a phone
def test_the_page_fits_with_nothing_overlapping(server, browser, tmp_path, language, width):
    """Labels fit and nothing overlaps, in each language, with problems shown;
    PNGs of the pages go to $MYELO_DOCS_SCREENSHOTS when it is set."""
    context = browser.new_context(java_script_enabled=False, locale=language,
                                  viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        page.goto(server.url + "/")
        assert page.locator("html").get_attribute("lang") == language
        page.locator("#med_name_2").fill("Metformin")
        page.locator("#date_of_birth").fill("2099-01-01")
        page.locator("button.primary").click()
        assert page.locator(".field-error").count() >= 4
        folder = Path(os.environ.get("MYELO_DOCS_SCREENSHOTS", tmp_path))
        shot = folder / f"nurse-page-{language}-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        boxes = [(element.get_attribute("id") or element.inner_text()[:30],
                  element.bounding_box())
                 for element in page.locator(LAID_OUT).all() if element.is_visible()]
        assert len(boxes) > 40
        for name, box in boxes:
            assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, name
        for i, (name, box) in enumerate(boxes):
            for other, other_box in boxes[i + 1:]:
                assert not overlaps(box, other_box), (name, other)
    finally:
        context.close()
