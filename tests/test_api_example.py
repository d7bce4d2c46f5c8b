"""The README's library example runs as written, and the public API is what it says."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import jsonschema
import pytest
from click.testing import CliRunner

import myelo_docs
from conftest import BASE_RECORD, ROOT, flat, pages_text
from myelo_docs.cli.main import main


def readme_python(section: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.search(r"```python\n(.*?)```", text[start:end], re.S).group(1)


def test_readme_library_example_runs(tmp_path):
    done = subprocess.run([sys.executable, "-c", readme_python("Using as a library")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    texts = pages_text((tmp_path / "packet.pdf").read_bytes())
    assert all("Ana García" in flat(t) and "00123456" in t for t in texts)
    assert "Warfarin" in flat(" ".join(texts))
    lines = done.stdout.splitlines()
    assert lines == ["date_of_birth: is not a date in the form YYYY-MM-DD. Fix: write the date "
                     "like 1961-03-24 (year-month-day)", "RecordError"]


def test_public_api_names():
    for name in ("render_packet", "render_handout", "get_renderer", "PacketRecord",
                 "validate_record", "record_schema", "RecordError", "ConfigError",
                 "MyeloDocsError", "Problem", "Document"):
        assert name in myelo_docs.__all__
        assert hasattr(myelo_docs, name)
    assert sorted(myelo_docs.__all__) == myelo_docs.__all__


def test_schema_command_prints_a_schema_that_validates_records():
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema == myelo_docs.record_schema()
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    validator.validate(BASE_RECORD)
    myelo_docs.validate_record(BASE_RECORD)  # and the model agrees
    for bad in ({**BASE_RECORD, "patient_nme": "x"},
                {k: v for k, v in BASE_RECORD.items() if k != "mrn"},
                {**BASE_RECORD, "date_of_birth": "14/07/1958"},
                {**BASE_RECORD, "type": "spinal"},
                {**BASE_RECORD, "medications": [{"name": "Warfarin"}]}):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(bad)
        with pytest.raises(myelo_docs.RecordError):
            myelo_docs.validate_record(bad)
