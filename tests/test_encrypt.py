"""`packet --encrypt`: AES-256 only, the password never on the command line or in output."""

from __future__ import annotations

import io
import json

import pypdfium2 as pdfium
import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from conftest import BASE_RECORD, flat, pages_text
from myelo_docs.cli.main import main
from myelo_docs.output.encrypt import encrypt_pdf

PASSWORD = "Orchid-Lantern-93"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.json").write_text(json.dumps(BASE_RECORD))
    (tmp_path / "pw.txt").write_text(PASSWORD + "\n")
    return CliRunner()


def decrypted_texts(pdf: bytes, password: str) -> list[str]:
    reader = PdfReader(io.BytesIO(pdf))
    assert reader.decrypt(password)
    return [page.extract_text() for page in reader.pages]


def test_encrypted_packet_needs_the_password_and_keeps_everything(cli, tmp_path):
    result = cli.invoke(main, ["packet", "--input", "r.json", "--encrypt",
                               "--password-file", "pw.txt", "-o", "e.pdf"])
    assert result.exit_code == 0, result.output
    assert "AES-256 encrypted" in result.stderr and PASSWORD not in result.output
    pdf = (tmp_path / "e.pdf").read_bytes()

    reader = PdfReader(io.BytesIO(pdf))
    assert reader.is_encrypted
    encrypt = reader.trailer["/Encrypt"]
    # AES-256 (PDF 2.0 / ISO 32000-2 security handler revision 6), never RC4
    assert (encrypt["/V"], encrypt["/R"]) == (5, 6)
    assert encrypt["/CF"]["/StdCF"]["/CFM"] == "/AESV3"
    assert encrypt["/StmF"] == encrypt["/StrF"] == "/StdCF"
    assert BASE_RECORD["patient_name"].encode() not in pdf

    with pytest.raises(pdfium.PdfiumError):
        pdfium.PdfDocument(pdf)
    assert not PdfReader(io.BytesIO(pdf)).decrypt("wrong-password")

    texts = decrypted_texts(pdf, PASSWORD)
    for number, text in enumerate(texts, start=1):
        page = flat(text)
        assert BASE_RECORD["patient_name"] in page and BASE_RECORD["mrn"] in page
        assert f"Page {number} of {len(texts)}" in page
    opened = PdfReader(io.BytesIO(pdf))
    opened.decrypt(PASSWORD)
    root = opened.trailer["/Root"]
    assert "/StructTreeRoot" in root and root["/Lang"] == "en-US"
    assert opened.metadata["/MyeloDocsKind"] == "packet"

    shown = cli.invoke(main, ["inspect", "e.pdf"])
    assert shown.exit_code == 0 and "Encrypted: yes" in shown.output
    assert "Pages" not in shown.output
    shown = cli.invoke(main, ["inspect", "e.pdf", "--password-file", "pw.txt"])
    assert shown.exit_code == 0 and "MyeloDocsContent" not in shown.output
    assert "Patient text (hash)" in shown.output and PASSWORD not in shown.output


def test_password_from_environment(cli, tmp_path):
    result = cli.invoke(main, ["packet", "--input", "r.json", "--encrypt", "--password-env",
                               "MYELO_TEST_PW", "-o", "e.pdf"], env={"MYELO_TEST_PW": PASSWORD})
    assert result.exit_code == 0, result.output
    assert decrypted_texts((tmp_path / "e.pdf").read_bytes(), PASSWORD)


@pytest.mark.parametrize(("args", "env", "code", "message"), [
    (["--encrypt"], {}, 4, "needs a password"),
    (["--encrypt", "--password-env", "MYELO_TEST_PW"], {}, 4, "MYELO_TEST_PW is empty or not set"),
    (["--encrypt", "--password-env", "MYELO_TEST_PW"], {"MYELO_TEST_PW": "short"}, 4,
     "fewer than 8 characters"),
    (["--encrypt", "--password-file", "missing.txt"], {}, 4, "no file missing.txt"),
    (["--password-file", "pw.txt"], {}, 2, "go with --encrypt"),
    (["--encrypt", "--password-file", "pw.txt", "--password-env", "X"], {}, 2, "not both"),
])
def test_password_problems_write_nothing(cli, tmp_path, args, env, code, message):
    result = cli.invoke(main, ["packet", "--input", "r.json", *args, "-o", "e.pdf"],
                        env={"MYELO_TEST_PW": None, **env})
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert not (tmp_path / "e.pdf").exists()
    assert "short" not in result.stderr.replace("too short", "")


def test_encryption_is_not_deterministic_so_hash_the_plain_pdf(packets):
    """Random salts: two encryptions differ, so a manifest hashes the unencrypted PDF."""
    plain = packets["cervical"].pdf
    first, second = encrypt_pdf(plain, PASSWORD), encrypt_pdf(plain, PASSWORD)
    assert first != second
    assert decrypted_texts(first, PASSWORD) == decrypted_texts(second, PASSWORD) == \
        pages_text(plain)
