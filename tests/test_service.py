"""The HTTP service: in-process calls for each rule, then the real `myelo-docs serve`."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from conftest import BASE_RECORD, ROOT, flat, pages_text, record
from myelo_docs import ConfigError
from myelo_docs.service import RenderPool, RenderSettings, ServiceSettings, create_app

PHI = ("Rosalind", "Testpatient", "4471902", "1958-07-14")


@pytest.fixture(scope="module")
def pool():
    pool = RenderPool(RenderSettings(), workers=1, queue=0).start()
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def client(pool):
    return TestClient(create_app(pool), base_url="http://127.0.0.1")


def wait_idle(pool: RenderPool) -> None:
    deadline = time.monotonic() + 60
    while pool.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)


def test_packet_is_a_pdf_with_safe_name_and_no_store(client):
    response = client.post("/v1/packets", json=BASE_RECORD)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["cache-control"] == "no-store"
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(r'inline; filename="myelogram-packet-2026-11-25-[0-9a-f]{10}\.pdf"',
                        disposition)
    texts = pages_text(response.content)
    assert len(texts) >= 5
    assert all("Rosalind Testpatient" in flat(t) and "TST-4471902" in t for t in texts)


def test_bad_record_is_422_with_every_field_and_no_values(client):
    bad = record(date_of_birth="14/07/1958", patient_nme="x", mrn="")
    del bad["type"]
    response = client.post("/v1/packets", json=bad)
    assert response.status_code == 422
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == "RecordError"
    fields = {p["field"] for p in body["problems"]}
    assert fields == {"type", "date_of_birth", "patient_nme", "mrn"}
    assert all(p["fix"] for p in body["problems"])
    assert "Rosalind" not in response.text and "14/07/1958" not in response.text


def test_body_size_limit_413_with_and_without_content_length(client):
    big = {**BASE_RECORD, "follow_up": "x" * (300 * 1024)}
    response = client.post("/v1/packets", json=big)
    assert response.status_code == 413
    assert response.json()["problems"][0]["field"] == "body"

    def chunks():
        data = json.dumps(big).encode()
        for i in range(0, len(data), 16 * 1024):
            yield data[i:i + 16 * 1024]

    response = client.post("/v1/packets", content=chunks(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_not_json_is_refused_plainly(client):
    response = client.post("/v1/packets", content=b"type=lumbar",
                           headers={"content-type": "text/plain"})
    assert response.status_code == 415
    response = client.post("/v1/packets", content=b"{not json",
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "line 1" in response.json()["problems"][0]["problem"]


@pytest.mark.parametrize("body", [
    '{"type": "lumbar", "mrn": ' + "9" * 5000 + "}",
    '{"type": "lumbar", "instructions": ' + "[" * 100_000 + "]" * 100_000 + "}",
])
def test_json_no_record_can_hold_is_400_not_500(client, body):
    response = client.post("/v1/packets", content=body.encode(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["problems"][0]["field"] == "body"


def test_a_key_given_twice_is_refused_not_the_last_one_printed(client):
    body = json.dumps(BASE_RECORD)[:-1] + ', "mrn": "TST-9999999"}'
    response = client.post("/v1/packets", content=body.encode(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    problem = response.json()["problems"][0]
    assert problem["field"].startswith("body") and '"mrn"' in problem["problem"]
    assert "twice" in problem["problem"]
    assert "TST-9999999" not in response.text and BASE_RECORD["mrn"] not in response.text
    bundle = (ROOT / "tests" / "data" / "fhir" / "lumbar-procedure.json").read_text()
    doubled = bundle.replace('"birthDate":', '"birthDate": "1900-01-01", "birthDate":', 1)
    assert doubled != bundle
    response = client.post("/v1/fhir/packets", content=doubled.encode(),
                           headers={"content-type": "application/fhir+json"})
    assert response.status_code == 400
    assert '"birthDate"' in response.json()["issue"][0]["details"]["text"]  # an OperationOutcome
    assert "1900-01-01" not in response.text


def test_handout_pdf_and_bad_type(client):
    response = client.post("/v1/handouts", json={"type": "Cervical"})
    assert response.status_code == 200
    assert response.headers["content-disposition"] == \
        'inline; filename="myelogram-handout-cervical-en.pdf"'
    assert "cervical myelogram" in flat(" ".join(pages_text(response.content))).lower()
    response = client.post("/v1/handouts", json={"type": "spinal", "colour": "red"})
    assert response.status_code == 422
    assert {p["field"] for p in response.json()["problems"]} == {"type", "colour"}


def test_types_health_openapi_and_docs(client):
    types = client.get("/v1/types").json()
    assert [t["type"] for t in types["types"]] == [
        "cervical", "thoracic", "lumbar", "cervical+thoracic", "cervical+lumbar",
        "thoracic+lumbar", "cervical+thoracic+lumbar"]
    assert "en" in types["languages"]
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["workers"] == 1
    spec = client.get("/openapi.json").json()
    operations = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(operations) == len(set(operations))  # client generators need them unique
    body = spec["paths"]["/v1/packets"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/PacketRecord"
    record_schema = spec["components"]["schemas"]["PacketRecord"]
    assert set(record_schema["required"]) == {"type", "patient_name", "date_of_birth", "mrn",
                                              "procedure_date"}
    assert "application/pdf" in spec["paths"]["/v1/packets"]["post"]["responses"]["200"]["content"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "POST /v1/packets" in docs.text and "<script" not in docs.text
    assert "default-src 'none'" in docs.headers["content-security-policy"]


class _Form(HTMLParser):
    """Collects the form's controls, labels and error messages."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: dict[str, dict[str, str]] = {}
        self.labels: set[str] = set()
        self.errors: dict[str, str] = {}
        self.textareas: dict[str, str] = {}
        self._in: str | None = None
        self._text = ""
        self.inline_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.inline_style |= "style" in a or tag in ("style", "script")
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden",):
            self.controls[a["id"]] = a
        if tag == "label":
            self.labels.add(a["for"])
        if tag == "p" and "field-error" in a.get("class", ""):
            self._in, self._text = a["id"].removesuffix("-error"), ""
        if tag == "textarea":
            self._in, self._text = "textarea:" + a["id"], ""

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._in and tag in ("p", "textarea"):
            if self._in.startswith("textarea:"):
                self.textareas[self._in.removeprefix("textarea:")] = self._text
            else:
                self.errors[self._in] = self._text.strip()
            self._in = None


def parse_form(html: str) -> _Form:
    form = _Form()
    form.feed(html)
    return form


def test_nurse_page_is_labelled_branded_and_locked_down(client):
    response = client.get("/")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    # Never a referrer to another site; our own form posts carry their real Origin.
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["cache-control"] == "no-store"
    form = parse_form(response.text)
    assert not form.inline_style
    assert set(form.controls) <= form.labels, "every control has a label"
    for name in ("patient_name", "date_of_birth", "mrn", "procedure_date", "physician", "nurse",
                 "follow_up", "med_name_1", "med_instruction_3", "instruction_2", "language",
                 "large_print", "type-lumbar"):
        assert name in form.controls
    assert "Demo General Hospital" in response.text
    assert client.get("/brand.css").text.strip().startswith(":root { --primary: #1F4E79;")
    logo = client.get("/brand/logo")
    assert logo.headers["content-type"] == "image/svg+xml"
    assert logo.content.startswith(b"<svg")
    assert client.get("/static/nurse.css").headers["content-type"].startswith("text/css")


def test_form_errors_sit_next_to_fields_and_keep_every_value(client):
    typed = {"type": "thoracic", "patient_name": "Rosalind Testpatient",
             "date_of_birth": "2099-01-01", "mrn": "TST-4471902", "procedure_date": "2026-11-25",
             "follow_up": "Clinic <b>Tuesday</b>", "med_name_2": "Warfarin",
             "med_instruction_2": "", "instruction_1": "Walk daily.", "large_print": "yes",
             "language": "en", "medicine_rows": "3", "instruction_rows": "2", "action": "print"}
    posted = client.post("/", data=typed, follow_redirects=False)
    assert posted.status_code == 303  # post/redirect/get: Back and reload never post
    assert posted.headers["location"].startswith("/forms/")
    response = client.get(posted.headers["location"])
    assert response.status_code == 422
    form = parse_form(response.text)
    assert form.errors["date_of_birth"].startswith("Error: This date is in the future.")
    assert form.errors["med_instruction_2"].startswith(
        "Error: Write what the patient should do with this medicine")
    assert set(form.errors) == {"date_of_birth", "med_instruction_2"}
    assert form.controls["date_of_birth"]["aria-invalid"] == "true"
    assert "date_of_birth-error" in form.controls["date_of_birth"]["aria-describedby"]
    assert form.controls["patient_name"]["value"] == "Rosalind Testpatient"
    assert form.controls["mrn"]["value"] == "TST-4471902"
    assert form.controls["med_name_2"]["value"] == "Warfarin"
    assert form.controls["instruction_1"]["value"] == "Walk daily."
    assert "checked" in form.controls["type-thoracic"]
    assert "checked" in form.controls["large_print"]
    assert form.textareas["follow_up"] == "Clinic <b>Tuesday</b>"  # kept, and escaped
    assert '<a href="#date_of_birth">' in response.text  # the summary links to the field


def test_add_medicine_row_without_javascript(client):
    response = client.post("/", data={"patient_name": "Rosalind Testpatient",
                                      "medicine_rows": "3", "action": "add_medicine"})
    assert response.status_code == 200
    form = parse_form(response.text)
    assert "med_name_4" in form.controls and "med_name_5" not in form.controls
    assert "autofocus" in form.controls["med_name_4"]
    assert form.controls["patient_name"]["value"] == "Rosalind Testpatient"


@pytest.mark.parametrize("headers", [
    {"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"},
    {"origin": "null"},  # a sandboxed frame or a data: page
    {"origin": "http://evil.example"}, {"origin": "http://127.0.0.1.evil.example"},
    {"sec-fetch-site": "cross-site", "origin": "http://127.0.0.1"},
])
def test_form_posted_from_another_site_is_refused(client, headers):
    response = client.post("/", data={"action": "print", "patient_name": "Rosalind Testpatient"},
                           headers=headers)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "Send the form from this page" in response.text
    assert "Testpatient" not in response.text and "<form" not in response.text.lower()


def test_form_posted_from_another_site_is_refused_in_the_page_language(client):
    response = client.post("/", data={"action": "print", "patient_name": "Rosalind Testpatient"},
                           headers={"sec-fetch-site": "cross-site", "accept-language": "es"})
    assert response.status_code == 403 and '<html lang="es">' in response.text
    assert "Envíe el formulario desde esta página" in response.text
    assert "Testpatient" not in response.text


def test_form_posted_from_our_own_page_is_served(client):
    for headers in ({"sec-fetch-site": "same-origin"}, {"origin": "http://127.0.0.1"}, {}):
        assert client.post("/", data={"action": "print"}, headers=headers).status_code == 422


TOKEN = "kq3V9-pXw2Lr7ZtYb0HnCs4FdJg8MeUa"  # 32 characters, as a secrets.token_urlsafe


def test_token_required_off_loopback_and_checked_before_the_body(pool):
    with pytest.raises(ConfigError) as caught:
        create_app(pool, ServiceSettings(host="10.0.0.5"))
    assert "MYELO_DOCS_TOKEN" in str(caught.value)
    settings = ServiceSettings(host="10.0.0.5", token=TOKEN)
    secured = TestClient(create_app(pool, settings), base_url="http://10.0.0.5:8000")
    response = secured.post("/v1/packets", json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    # The door is on the headers: a body over the limit, without the token, is a 401, not 413.
    huge = secured.post("/v1/packets", content=b"x" * (300 * 1024),
                        headers={"content-type": "application/json"})
    assert huge.status_code == 401
    good = {"authorization": f"Bearer {TOKEN}"}
    assert secured.post("/v1/packets", json={}, headers=good).status_code == 422  # past the door
    assert secured.post("/v1/packets", content=b"x" * (300 * 1024),
                        headers={**good, "content-type": "application/json"}).status_code == 413
    page = secured.get("/")
    assert page.status_code == 401 and page.headers["www-authenticate"].startswith("Basic")
    basic = base64.b64encode(f"nurse:{TOKEN}".encode()).decode()
    assert secured.get("/", headers={"authorization": f"Basic {basic}"}).status_code == 200
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/static/nurse.css").status_code == 200
    assert secured.get("/v1/types").status_code == 401
    assert secured.get("/no/such/page").status_code == 401  # nothing to probe without it


@pytest.mark.parametrize("token", ["a", "s3cret-token", "x" * 40, "12" * 20,
                                   TOKEN[:31]])
def test_a_token_that_can_be_guessed_is_refused(pool, token):
    with pytest.raises(ConfigError) as caught:
        create_app(pool, ServiceSettings(host="10.0.0.5", token=token))
    problem = caught.value.problems[0]
    assert problem.field == "MYELO_DOCS_TOKEN"
    assert "32" in problem.problem and "secrets.token_urlsafe" in problem.fix
    assert len(token) < 4 or token not in str(caught.value.as_dict())  # never echoed


def test_wrong_tokens_are_slowed_down_per_client(pool, caplog):
    caplog.set_level(logging.INFO)
    secured = TestClient(create_app(pool, ServiceSettings(host="10.0.0.5", token=TOKEN)),
                         base_url="http://10.0.0.5")
    for _ in range(8):  # a browser's first visits send no token: never counted as wrong
        assert secured.get("/").status_code == 401
    statuses = [secured.get("/v1/types", headers={"authorization": f"Bearer {guess:04d}"})
                .status_code for guess in range(8)]
    assert statuses == [401] * 5 + [429] * 3
    blocked = secured.get("/v1/types", headers={"authorization": "Bearer 0009"})
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    assert blocked.json()["error"] == "TooManyAttempts"
    # The right token still gets in: a colleague's typos at the same address lock nobody out.
    right = secured.get("/v1/types", headers={"authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200
    other = TestClient(secured.app, base_url="http://10.0.0.5", client=("10.0.0.9", 4000))
    assert other.get("/v1/types", headers={"authorization": "Bearer 0000"}
                     ).status_code == 401  # another client is not held up
    access = [r.getMessage() for r in caplog.records if r.name == "myelo_docs.access"]
    assert sum(" GET / 401 " in line for line in access) == 8
    assert sum(line.startswith("testclient GET /v1/types 401 ") for line in access) == 5
    assert sum(" GET /v1/types 429 " in line for line in access) == 4
    assert any(line.startswith("10.0.0.9 GET /v1/types 401 ") for line in access)
    assert not any(TOKEN in r.getMessage() for r in caplog.records)


def test_websocket_requests_are_refused(client):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/v1/packets") as ws:
        ws.receive_text()


@pytest.mark.parametrize("host", ["[::1]evil.example", "localhost:8000@evil.example",
                                  "localhost:http", "local host"])
def test_malformed_host_headers_are_refused(pool, host):
    app = create_app(pool)
    response = TestClient(app, base_url="http://127.0.0.1").get("/healthz",
                                                               headers={"host": host})
    assert response.status_code == 400


def test_login_throttle_counts_an_ipv6_block_as_one_client():
    from myelo_docs.service.door import LoginThrottle

    throttle = LoginThrottle(attempts=3, window=60)
    for n in range(3):  # three addresses of one /64: one guesser
        throttle.failed(f"2001:db8:1:2::{n + 1}")
    assert throttle.wait("2001:db8:1:2::99") > 0
    assert throttle.wait("2001:db8:1:3::1") == 0
    assert throttle.wait("10.0.0.1") == 0


def test_login_throttle_forgets_after_the_window():
    from myelo_docs.service.door import LoginThrottle

    now = [1000.0]
    throttle = LoginThrottle(attempts=3, window=60, clients=2, clock=lambda: now[0])
    for _ in range(3):
        throttle.failed("10.0.0.1")
    assert throttle.wait("10.0.0.1") == 60
    now[0] += 45
    assert throttle.wait("10.0.0.1") == 15
    now[0] += 15
    assert throttle.wait("10.0.0.1") == 0
    throttle.failed("10.0.0.2")
    throttle.failed("10.0.0.3")  # only two clients are remembered: the oldest goes
    assert "10.0.0.1" not in throttle._failed


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example",
                                  "localhost.evil.example", ""])
def test_requests_to_other_host_names_are_refused(pool, host):
    """DNS rebinding: another site's page, its name now pointing at us, sends its own Host."""
    app = create_app(pool)
    response = TestClient(app, base_url="http://127.0.0.1").post(
        "/v1/packets", json=BASE_RECORD, headers={"host": host, "origin": f"http://{host}"})
    assert response.status_code == 400
    assert response.json()["error"] == "UnknownHost"
    assert "--allowed-host" in response.json()["problems"][0]["fix"]


def test_allowed_host_names(pool):
    settings = ServiceSettings(allowed_hosts=("Myelo.Hospital.Example",))
    app = create_app(pool, settings)
    for base in ("http://localhost:8000", "http://127.0.0.1", "http://[::1]:8000",
                 "http://myelo.hospital.example:8443"):
        assert TestClient(app, base_url=base).get("/healthz").status_code == 200, base
    assert TestClient(app, base_url="http://other.example").get("/healthz").status_code == 400
    with pytest.raises(ConfigError) as caught:  # every address, but no name said
        create_app(pool, ServiceSettings(host="0.0.0.0", token=TOKEN))
    assert caught.value.problems[0].field == "--allowed-host"
    anywhere = create_app(pool, ServiceSettings(host="0.0.0.0", token=TOKEN,
                                                allowed_hosts=("*",)))
    assert TestClient(anywhere, base_url="http://any.example").get("/healthz").status_code == 200


def test_busy_workers_answer_503_with_retry_after(client, pool):
    wait_idle(pool)
    first: dict[str, int] = {}
    slow = {"type": "lumbar", "large_print": True}  # a full render: the worker stays busy
    thread = threading.Thread(
        target=lambda: first.update(status=client.post("/v1/handouts", json=slow)
                                    .status_code))
    thread.start()
    deadline = time.monotonic() + 30
    while pool.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    second = client.post("/v1/packets", json=BASE_RECORD)
    thread.join()
    assert second.status_code == 503
    assert int(second.headers["retry-after"]) >= 1
    assert second.json()["error"] == "Busy"
    assert first["status"] == 200




def test_fhir_endpoint_gives_pdf_or_document_reference(client):
    bundle = (ROOT / "tests" / "data" / "fhir" / "cervical-servicerequest.json").read_bytes()
    headers = {"content-type": "application/fhir+json", "accept": "application/fhir+json"}
    # Its one identifier has no type: never printed as the MRN unless the caller says so.
    response = client.post("/v1/fhir/packets", content=bundle, headers=headers)
    assert response.status_code == 422
    [issue] = response.json()["issue"]  # an OperationOutcome
    assert issue["expression"] == ["Bundle.entry.resource.ofType(Patient).identifier"]
    assert "record.mrn" in issue["details"]["text"]
    wrapped = json.dumps({"bundle": json.loads(bundle), "record": {"mrn": "TST-5520117"}})
    response = client.post("/v1/fhir/packets", content=wrapped, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    reference = response.json()
    assert reference["resourceType"] == "DocumentReference"
    pdf = base64.b64decode(reference["content"][0]["attachment"]["data"])
    assert "Cedric Servicerequest" in flat(pages_text(pdf)[0])
    assert "cervical myelogram" in flat(" ".join(pages_text(pdf))).lower()

    broken = json.loads(wrapped)
    del broken["bundle"]["entry"][0]["resource"]["birthDate"]
    response = client.post("/v1/fhir/packets", json=broken)
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == [
        "Bundle.entry.resource.ofType(Patient).birthDate"]


def test_access_log_has_no_patient_data(client, caplog):
    caplog.set_level(logging.DEBUG)
    client.post("/v1/packets", json=record(mrn="TST-4471902x"))
    client.post("/v1/packets", json=record(date_of_birth="1958-07-14x"))
    client.post("/", data={"patient_name": "Rosalind Testpatient", "date_of_birth": "1958-07-14",
                           "action": "print"})
    client.get("/?patient=Rosalind+Testpatient&mrn=TST-4471902")
    client.get("/patients/Rosalind-Testpatient")
    # Everything logged on the server side (httpx is the test's own client).
    lines = [r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    access = [r.getMessage() for r in caplog.records if r.name == "myelo_docs.access"]
    assert re.fullmatch(r"testclient POST /v1/packets 200 \d+ms", access[0])
    assert re.fullmatch(r"testclient POST /v1/packets 422 \d+ms", access[1])
    assert re.fullmatch(r"testclient POST / 303 \d+ms", access[2])
    assert re.fullmatch(r"testclient GET /forms/\{key\} 422 \d+ms", access[3])  # never the id
    assert re.fullmatch(r"testclient GET / 200 \d+ms", access[4])
    assert re.fullmatch(r"testclient GET - 404 \d+ms", access[5])
    for line in lines:
        assert not any(value in line for value in PHI), line






# -- the real thing: `myelo-docs serve` as its own process ------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def serve_command() -> list[str]:
    script = Path(sys.executable).parent / "myelo-docs"
    return [str(script)] if script.exists() else [sys.executable, "-m", "myelo_docs"]


def _start_server(tmp_path: Path, args: tuple[str, ...], env: dict[str, str] | None,
                  popen: dict[str, Any]) -> Server | None:
    """A server that answers /healthz, or None if its port was taken before it bound it."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([*serve_command(), "serve", "--port", str(port),
                                    "--workers", "1", *args],
                                   stdout=sink, stderr=subprocess.STDOUT, env=env, **popen)
    scheme = "https" if "--ssl-certfile" in args else "http"
    server = Server(f"{scheme}://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                text = server.log_text()
                if f"{port} is in use" in text or "address already in use" in text.lower():
                    return None
                raise AssertionError(text)
            try:
                if httpx.get(server.url + "/healthz", timeout=2, verify=False
                             ).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
    except BaseException:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        raise


@contextmanager
def running_server(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                   **popen: Any) -> Iterator[Server]:
    # free_port() lets its port go before the server binds it: a server or a client of
    # another test (in another pytest-xdist worker) may take it meanwhile. Then another.
    server = None
    for _ in range(3):
        server = _start_server(tmp_path, args, env, popen)
        if server:
            break
    assert server, "three free ports in a row were taken before the server bound them"
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(timeout=60)


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_myelo_docs_serve_over_http(tmp_path):
    with running_server(tmp_path) as server:
        response = httpx.post(server.url + "/v1/packets", json=BASE_RECORD, timeout=60)
        assert response.status_code == 200
        assert "Rosalind Testpatient" in flat(pages_text(response.content)[0])

        # The README's curl examples, pointed at this server's port.
        assert shutil.which("curl"), "scripts/install.sh installs curl"
        port = server.url.rsplit(":", 1)[1]
        commands = re.findall(r"```sh\n(curl .*?)\n```",
                              readme_section("HTTP service") + readme_section("FHIR"), re.S)
        assert len(commands) == 2
        for command in commands:
            command = command.replace("8000", port).replace("@tests/", f"@{ROOT}/tests/") \
                .replace("@examples/", f"@{ROOT}/examples/")
            done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True,
                                  timeout=60)
            assert done.returncode == 0, done.stderr
        pdf = (tmp_path / "packet.pdf").read_bytes()
        example = json.loads((ROOT / "examples" / "record.json").read_text())
        assert example["patient_name"] in flat(PdfReader(io.BytesIO(pdf)).pages[0].extract_text())
        reference = json.loads((tmp_path / "docref-http.json").read_text())
        attached = base64.b64decode(reference["content"][0]["attachment"]["data"])
        assert "Rosalind Maria Fhirpatient" in flat(pages_text(attached)[0])
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0
    log = server.log_text()
    assert re.search(r"myelo_docs.access: 127\.0\.0\.1 POST /v1/packets 200 \d+ms", log)
    assert not any(value in log for value in PHI)
    assert "Traceback" not in log


def test_serve_refuses_network_address_without_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MYELO_DOCS_TOKEN"}
    done = subprocess.run([*serve_command(), "serve", "--host", "0.0.0.0", "--port",
                           str(free_port())], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 4
    assert "MYELO_DOCS_TOKEN" in done.stderr
