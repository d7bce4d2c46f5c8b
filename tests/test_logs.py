"""Logs, standard error and error messages never hold the patient's name, DOB or MRN.

Runs the CLI as a separate process (what a terminal or a log collector sees)
and the Python API with every logger at DEBUG, on recognisable fake data, for
success and for each kind of failure.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from conftest import record
from myelo_docs import RecordError, SelfCheckError
from myelo_docs.output.encrypt import encrypt_pdf
from myelo_docs.render import engine as render
from myelo_docs.render.stamp import payloads_for, stamp_pages

PATIENT = record(patient_name="Zebulon Quixotic-Testperson", date_of_birth="1947-02-19",
                 mrn="ZQX-5550417", nurse="Nurse Ophelia Markwell")
SECRETS = ["Zebulon", "Quixotic", "Testperson", "1947-02-19", "February 19, 1947",
           "19/02/1947", "ZQX-5550417", "5550417"]


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} found in {where}"


def run_cli(args: list[str], cwd) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MYELO_DOCS_DEBUG"}
    return subprocess.run([sys.executable, "-m", "myelo_docs", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def test_cli_process_output_holds_no_patient_data(tmp_path):
    (tmp_path / "good.json").write_text(json.dumps(PATIENT))
    bad = {**PATIENT, "date_of_birth": "19/02/1947", "patient_name": "Zebulon 王 Testperson",
           "mrn": "ZQX-5550417" + "7" * 40, "type": "Zebulon", "procedur_date": "x"}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    runs = {
        "success": (["packet", "--input", "good.json", "-o", "p.pdf"], 0),
        "invalid record": (["packet", "--input", "bad.json", "-o", "q.pdf"], 3),
        "file exists": (["packet", "--input", "good.json", "-o", "p.pdf"], 5),
        "inspect": (["inspect", "p.pdf"], 0),
    }
    for what, (args, code) in runs.items():
        result = run_cli(args, tmp_path)
        assert result.returncode == code, (what, result.stderr)
        assert_clean(result.stdout + result.stderr, what)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "q.pdf").exists()


@pytest.fixture
def every_log(caplog):
    """Every record any logger emits at DEBUG and up, WeasyPrint's own included."""
    caplog.set_level(logging.DEBUG)
    for name in ("weasyprint", "weasyprint.progress", "fontTools", "pypdf", "myelo_docs"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_api_logs_and_errors_hold_no_patient_data(renderer, every_log, monkeypatch):
    seen: list[str] = []

    document = renderer.packet(PATIENT)
    encrypt_pdf(document.pdf, "long enough password")

    failures = [
        record(**{**PATIENT, "date_of_birth": "1947-02-31"}),
        {**PATIENT, "type": PATIENT["patient_name"]},  # a shifted column: name in "type"
        {**PATIENT, "mrn": PATIENT["mrn"] * 5},
        {**PATIENT, "patient_name": "Zebulon 王 Testperson"},  # MissingGlyphError
        {**PATIENT, "nurse": "Ophelia \ud800 Markwell"},
    ]
    for data in failures:
        with pytest.raises(RecordError) as caught:
            renderer.packet(data)
        seen += [str(caught.value), json.dumps(caught.value.as_dict(), ensure_ascii=False)]

    wrong = payloads_for("packet", "OTHER-1")
    monkeypatch.setattr(render, "stamp_pages", lambda pdf, codes: stamp_pages(pdf, wrong))
    with pytest.raises(SelfCheckError) as caught:
        renderer.packet(PATIENT, full_render=True)
    seen += [str(caught.value), json.dumps(caught.value.as_dict(), ensure_ascii=False)]

    messages = [f"{r.name}: {r.getMessage()}" for r in every_log.records]
    assert any(m.startswith("weasyprint") for m in messages)  # the capture does see them
    for text in messages + seen:
        assert_clean(text, text[:80])

