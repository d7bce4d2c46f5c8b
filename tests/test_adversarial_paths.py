"""Hostile input through the other front ends: batch CSV, HTTP and FHIR.

test_adversarial.py covers the record model, the CLI with JSON and the
Python API in depth; this file sends the same kind of input through the
paths that parse their own formats, bounded for CI (MYELO_DOCS_HYPOTHESIS=deep
for a longer local run).
"""

from __future__ import annotations

import copy
import csv
import json
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_security import Listener

from conftest import BASE_RECORD, ROOT, flat, pages_text
from myelo_docs.batch.run import validate_csv
from myelo_docs.formats.csv_input import CsvError
from myelo_docs.formats.fhir import packet_from_bundle
from myelo_docs.schema.errors import RecordError
from myelo_docs.service import RenderPool, RenderSettings, create_app
from myelo_docs.verify.selfcheck import shows, squash

DEEP = os.environ.get("MYELO_DOCS_HYPOTHESIS") == "deep"
PARSED = 300 if DEEP else 30   # examples that only parse and validate
RENDERED = 40 if DEEP else 4   # examples that render a packet over HTTP
BUNDLE = json.loads((ROOT / "tests/data/fhir/lumbar-procedure.json").read_text())
HOSTILE = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=150) | \
    st.sampled_from(["<img src=x>", "{{ 7*7 }}", "file:///etc/passwd", "\u202eevil",
                     "a\x00b", "\u200b", "x" * 5000, "", "   ", "😀", "王小明"])


def not_echoed(value: str, message: str) -> None:
    if len(value.strip()) >= 8:
        assert value.strip() not in message


@settings(max_examples=PARSED, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["patient_name", "mrn", "physician", "instructions",
                              "medications"]), value=HOSTILE)
def test_csv_cell_is_valid_or_a_clear_row_error(tmp_path, field, value):
    row = {k: v for k, v in BASE_RECORD.items() if k not in ("instructions", "medications")}
    row[field] = value
    path = tmp_path / "rows.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, list(row))
        writer.writeheader()
        writer.writerow(row)
    try:
        source, problems = validate_csv(path)
    except CsvError as exc:  # e.g. a NUL byte: the file as a whole is refused, clearly
        assert exc.problems and exc.problems[0].fix
        not_echoed(value, str(exc))
        return
    if value.strip():
        assert source.rows == 1
    for result in problems:
        assert result.row == 2 and result.error
        not_echoed(value, result.error)


def _bundle(**patient: object) -> dict:
    bundle = copy.deepcopy(BUNDLE)
    bundle["entry"][0]["resource"].update(patient)
    return bundle


@settings(max_examples=PARSED, deadline=None, database=None)
@given(part=st.sampled_from(["family", "birthDate", "mrn"]), value=HOSTILE)
def test_fhir_field_is_read_or_a_clear_error_naming_the_path(part, value):
    if part == "family":
        bundle = _bundle(name=[{"use": "official", "family": value, "given": ["Ann"]}])
    elif part == "birthDate":
        bundle = _bundle(birthDate=value)
    else:
        patient = BUNDLE["entry"][0]["resource"]
        identifiers = copy.deepcopy(patient["identifier"])
        identifiers[1]["value"] = value
        bundle = _bundle(identifier=identifiers)
    try:
        packet = packet_from_bundle(bundle)
    except RecordError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.field.startswith(("Bundle", "Patient")) and problem.fix, problem
        not_echoed(value, json.dumps(exc.as_dict(), ensure_ascii=False))
        return
    assert packet.record.patient_name and packet.record.mrn


@pytest.fixture(scope="module")
def client():
    pool = RenderPool(RenderSettings(), workers=1, queue=4).start()
    yield TestClient(create_app(pool), base_url="http://127.0.0.1", raise_server_exceptions=False)
    pool.close()


@settings(max_examples=RENDERED, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=HOSTILE)
def test_http_name_is_printed_or_a_422_never_a_500(client, value):
    response = client.post("/v1/packets", json={**BASE_RECORD, "patient_name": value})
    assert response.status_code in (200, 422), response.text[:300]
    if response.status_code == 200:
        whole = squash("".join(pages_text(response.content)))
        assert shows(value.strip(), whole)
    else:
        problems = response.json()["problems"]
        assert problems and all(p["field"].startswith("patient_name") for p in problems)
        not_echoed(value, response.text)


def test_injection_over_http_and_fhir_reaches_nothing(client, tmp_path):
    listener = Listener()
    try:
        url = f"http://127.0.0.1:{listener.port}"
        payload = f'<img src="{url}/x"><link rel=stylesheet href="{url}/c"> {{{{ 7*7 }}}}'
        response = client.post("/v1/packets", json={**BASE_RECORD, "follow_up": payload,
                                                    "instructions": ["file:///etc/passwd"]})
        assert response.status_code == 200
        whole = flat(" ".join(pages_text(response.content)))
        assert "{{ 7*7 }}" in whole and "file:///etc/passwd" in whole
        assert "root:x:0" not in whole

        bundle = _bundle(name=[{"use": "official", "family": f'<img src="{url}/f">',
                                "given": ["{{ 7*7 }}"]}])
        response = client.post("/v1/fhir/packets", json=bundle)
        assert response.status_code == 200, response.text[:300]
        first = "".join(pages_text(response.content)[0].split())
        assert f'<imgsrc="{url}/f">' in first and "{{7*7}}" in first
        assert listener.hits == 0
    finally:
        listener.close()


def test_fhir_cli_and_batch_output_hold_no_patient_data(tmp_path):
    """stderr of the FHIR command and the batch, and the manifest: no name, DOB or MRN."""
    import subprocess
    import sys

    name, mrn = "Quillon Vexmarrow", "QX-5550001"
    bundle = _bundle(name=[{"use": "official", "family": "Vexmarrow", "given": ["Quillon"]}],
                     identifier=[{"type": {"coding": [{"system":
                                  "http://terminology.hl7.org/CodeSystem/v2-0203",
                                  "code": "MR"}]}, "value": mrn}])
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    fhir = subprocess.run([sys.executable, "-m", "myelo_docs", "packet", "--fhir", "b.json",
                           "-o", "p.pdf"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert fhir.returncode == 0, fhir.stderr
    bad_bundle = _bundle(birthDate="2999-01-01",
                         name=[{"use": "official", "family": "Vexmarrow", "given": ["Quillon"]}])
    (tmp_path / "bad.json").write_text(json.dumps(bad_bundle))
    bad = subprocess.run([sys.executable, "-m", "myelo_docs", "packet", "--fhir", "bad.json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 3 and "birthDate" in bad.stderr

    rows = tmp_path / "rows.csv"
    rows.write_text("type,patient_name,date_of_birth,mrn,procedure_date\n"
                    f"lumbar,{name},1958-07-14,{mrn},2026-11-25\n"
                    f"lumbar,{name} 王,1958-07-14,{mrn}-2,2026-11-25\n"
                    f"lumbar,{name},1958-02-30,{mrn}-3,2026-11-25\n")
    batch = subprocess.run([sys.executable, "-m", "myelo_docs", "batch", "rows.csv", "--out",
                            "out", "--jobs", "1"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    assert batch.returncode == 7
    manifest = (tmp_path / "out" / "manifest.csv").read_text()
    for output in (fhir.stdout, fhir.stderr, bad.stdout, bad.stderr, batch.stdout,
                   batch.stderr, manifest):
        for secret in ("Quillon", "Vexmarrow", mrn, "1958-07-14", "July 14, 1958", "王"):
            assert secret not in output
    assert Path(tmp_path / "p.pdf").exists()
