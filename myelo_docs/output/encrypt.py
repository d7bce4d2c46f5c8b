"""Optional encryption for packets that leave the building: AES-256 only.

The password comes from a file or an environment variable, never from the
command line (where other users and shell history could see it). Encryption
is not deterministic (random salts), so callers hash the unencrypted PDF for
their records before calling ``encrypt_pdf``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from pypdf import PdfReader, PdfWriter

from myelo_docs.schema.errors import ConfigError, SelfCheckError
from myelo_docs.schema.messages import error
from myelo_docs.verify.selfcheck import page_texts

MIN_PASSWORD = 8
ALGORITHM = "AES-256"


def read_password(file: str | Path | None = None, env: str | None = None,
                  new: bool = True) -> str:
    """The password from a file (first line) or an environment variable.

    ``new``: a password to encrypt with, which must be long enough; to open a
    file, any non-empty password is tried.
    """
    if file is not None:
        where = "--password-file"
        try:
            lines = Path(file).read_text(encoding="utf-8-sig").splitlines()
        except FileNotFoundError:
            raise error(ConfigError, "password_file_missing", where, file=file) from None
        except (OSError, UnicodeDecodeError):
            raise error(ConfigError, "password_file_unreadable", where) from None
        password = lines[0] if lines else ""
    elif env is not None:
        where = "--password-env"
        password = os.environ.get(env, "")
        if not password:
            raise error(ConfigError, "password_env_empty", where, env=env)
    else:
        raise error(ConfigError, "password_none", "--encrypt")
    if len(password) < (MIN_PASSWORD if new else 1):
        raise error(ConfigError, "password_short", where, least=MIN_PASSWORD)
    return password


def encrypt_pdf(pdf: bytes, password: str) -> bytes:
    """The same PDF, AES-256 encrypted; opening it needs the password.

    The result is read back with PDFium: it must open with the password only
    and show the same text on the same pages, or nothing is returned.
    """
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=password, owner_password=None, algorithm=ALGORITHM)
    out = io.BytesIO()
    writer.write(out)
    encrypted = out.getvalue()
    if page_texts(encrypted, password) != page_texts(pdf) or _opens(encrypted, None):
        raise error(SelfCheckError, "encrypted_differs", "encryption")
    return encrypted


def _opens(pdf: bytes, password: str | None) -> bool:
    import pypdfium2 as pdfium

    try:
        pdfium.PdfDocument(pdf, password=password).close()
    except pdfium.PdfiumError:
        return False
    return True
