"""A rendered packet or handout, and the identifiers it shows: what the full render
(render.py) and the fast path (fastpath/) both make."""

from __future__ import annotations

from dataclasses import dataclass

from babel.dates import format_date

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
    path: str = "full"  # "fast": from a cached template (fastpath/); "full": WeasyPrint


def display_identifiers(record: PacketRecord) -> Identifiers:
    return Identifiers(
        name=record.patient_name,
        dob=format_date(record.date_of_birth, format="long", locale=record.language),
        mrn=record.mrn,
    )
