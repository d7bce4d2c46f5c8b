"""``myelo-docs inspect``: which versions made a PDF, from its metadata alone.

Reads only the document-level metadata (never page text), so it shows
nothing about the patient: not the name, the date of birth or the MRN.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from myelo_docs.schema.errors import RecordError
from myelo_docs.schema.messages import error
from myelo_docs.verify.provenance import KEYS

# pypdf's warnings can quote bytes of the file; they never reach the logs.
_PYPDF_LOG = logging.getLogger("pypdf")
_PYPDF_LOG.handlers[:] = [logging.NullHandler()]
_PYPDF_LOG.propagate = False


def inspect_pdf(path: str | Path, password: str | None = None) -> dict[str, Any]:
    """Provenance, page count, kind and language of a PDF, as a flat dict."""
    path = Path(path)
    try:
        reader = PdfReader(path)
        encrypted = reader.is_encrypted
        if encrypted and password is None:
            return {"file": path.name, "encrypted": True, "readable": False}
        if encrypted and not reader.decrypt(password or ""):
            raise error(RecordError, "inspect_wrong_password", "password")
        info = reader.metadata or {}
        result: dict[str, Any] = {
            "file": path.name,
            "encrypted": encrypted,
            "readable": True,
            "pages": len(reader.pages),
            "title": str(info.get("/Title", "")),
            "document_language": str(reader.trailer["/Root"].get("/Lang", "")),
            "producer": str(info.get("/Producer", "")),
        }
        for key in KEYS:
            result[key] = str(info.get(f"/{key}", ""))
    except (PdfReadError, OSError, ValueError, KeyError):
        raise error(RecordError, "inspect_not_pdf", "FILE", name=path.name) from None
    result["made_by_myelo_docs"] = bool(result["MyeloDocsVersion"])
    return result


def format_report(result: dict[str, Any]) -> str:
    lines = [f"File: {result['file']}"]
    if not result["readable"]:
        lines.append("Encrypted: yes (AES). Give --password-file or --password-env to read it.")
        return "\n".join(lines)
    lines += [
        f"Encrypted: {'yes' if result['encrypted'] else 'no'}",
        f"Pages: {result['pages']}",
        f"Title: {result['title']}",
        f"Document language: {result['document_language']}",
    ]
    if not result["made_by_myelo_docs"]:
        lines.append("No myelo-docs provenance: this PDF was not made by myelo-docs "
                     f"(producer: {result['producer'] or 'unknown'}).")
        return "\n".join(lines)
    width = max(len(label) for label in KEYS.values())
    for key, label in KEYS.items():
        if result[key]:
            lines.append(f"{label[:1].upper() + label[1:]:<{width}}  {result[key]}")
    return "\n".join(lines)
