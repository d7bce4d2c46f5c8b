"""A rendered packet or handout, and the identifiers it shows: what the full render
(render.py) and the fast path (fastpath/) both make."""

from __future__ import annotations

from dataclasses import dataclass

from myelo_docs.content.loader import long_date
from myelo_docs.schema.record import PacketRecord
from myelo_docs.verify.selfcheck import Identifiers


@dataclass(frozen=True)
class Document:
    """A rendered, self-checked PDF."""

    pdf: bytes
    pages: int
    kind: str  # "packet" or "handout"
    language: str
    tagged: bool = True  # a tagged (PDF/UA) structure tree is kept
    # "fast": from a cached template (fastpath/); "full": WeasyPrint; "fallback":
    # WeasyPrint, because the fast path failed on this packet (logged, counted).
    path: str = "full"


def display_identifiers(record: PacketRecord, locale: str | None = None) -> Identifiers:
    """The identifiers as printed; ``locale``: the one the dates are written in
    (Renderer.identifiers gives the brand's: es_US), None for the record's language."""
    return Identifiers(
        name=record.patient_name,
        dob=long_date(record.date_of_birth, locale or record.language),
        mrn=record.mrn,
    )
