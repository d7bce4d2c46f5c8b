from __future__ import annotations

import atexit
import fcntl
import io
import os
import shutil
import tempfile
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfReader

from myelo_docs import get_renderer
from myelo_docs.schema import intake

ROOT = Path(__file__).resolve().parent.parent
# Fast-path templates go to a cache of this test run's own (shared by its
# subprocesses), never the user's: each run starts cold and leaves nothing.
if "MYELO_DOCS_CACHE_DIR" not in os.environ:
    os.environ["MYELO_DOCS_CACHE_DIR"] = tempfile.mkdtemp(prefix="myelo-docs-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MYELO_DOCS_CACHE_DIR"], ignore_errors=True)

BASE_RECORD = {
    "type": "lumbar",
    "patient_name": "Rosalind Testpatient",
    "date_of_birth": "1958-07-14",
    "mrn": "TST-4471902",
    "procedure_date": "2026-11-25",
    "physician": "Dr. Imogen Fieldwork",
    "nurse": "Theo Checkmark, RN",
    "follow_up": "Spine clinic on 2026-12-09 at 10:30.",
    "instructions": ["Wear your back brace when you walk."],
    "medications": [
        {"name": "Warfarin", "instruction": "Restart on 2026-11-27 unless told otherwise."},
    ],
}


TODAY = date(2026, 11, 30)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "serial: runs alone, the other pytest-xdist workers waiting meanwhile (a test "
        "that measures time against a render it timed first, so another test's load skews it)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Under pytest-xdist (scripts/test.sh), a test marked serial runs alone: it takes
    the run's lock for itself while every other test, in any worker, holds it shared
    for its setup, call and teardown. The serial test first closes a gate that the
    others pass on their way in, so a busy worker cannot keep it waiting forever."""
    if not hasattr(item.config, "workerinput"):  # one process: nothing runs beside it
        return (yield)
    serial = item.get_closest_marker("serial") is not None
    folder = Path(item.config.option.basetemp).parent  # the run's, shared by its workers
    with open(folder / "serial-gate.lock", "a") as gate, \
            open(folder / "serial-run.lock", "a") as run:
        fcntl.flock(gate, fcntl.LOCK_EX if serial else fcntl.LOCK_SH)
        if not serial:
            fcntl.flock(gate, fcntl.LOCK_UN)
        fcntl.flock(run, fcntl.LOCK_EX if serial else fcntl.LOCK_SH)
        return (yield)  # closing the files lets both locks go


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch):
    """Every in-process test sees the same today, so date rules (the procedure date
    window, which FHIR myelogram is current) give the same answer on any day."""
    monkeypatch.setattr(intake, "today", lambda: TODAY)


def record(**changes: object) -> dict[str, object]:
    return {**BASE_RECORD, **changes}


def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages]


def flat(text: str) -> str:
    return " ".join(text.split())


def embedded_fonts(pdf: bytes) -> set[str]:
    names = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            target = descendants[0].get_object() if descendants else font
            descriptor = target["/FontDescriptor"].get_object()
            assert any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")), (
                f"{font['/BaseFont']} is not embedded"
            )
            names.add(str(font["/BaseFont"]))
    return names


@pytest.fixture(scope="session")
def renderer():
    return get_renderer()


@pytest.fixture(scope="session")
def packets(renderer):
    """One packet per type, rendered once for the session."""
    return {t: renderer.packet(record(type=t)) for t in ("cervical", "thoracic", "lumbar")}
