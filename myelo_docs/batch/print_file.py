"""One print file for a batch: every packet in row order, each starting on a
front side when printed double-sided.

The file is built from the packets already written and checked, and checked
again as a whole (every page shows its own packet's identifiers and carries
its own scannable code; padding pages carry a "blank" code). It is held
in memory while built: meant for a day's or a week's list, not 10,000 rows.
Merging drops the packets' tag trees; the per-patient files stay tagged.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from pypdf import PdfReader, PdfWriter

from myelo_docs.output.files import write_atomic
from myelo_docs.render.engine import Renderer
from myelo_docs.render.stamp import check_codes, payloads_for
from myelo_docs.schema.errors import Problem, SelfCheckError
from myelo_docs.schema.messages import error, problem, title
from myelo_docs.schema.record import PacketRecord
from myelo_docs.verify.selfcheck import check_pages, page_texts


def build_combined(packets: list[tuple[Path, str, PacketRecord]], target: Path,
                   renderer: Renderer, duplex: bool, overwrite: bool = False) -> int:
    """packets: (file, its sha256 from the manifest, record) in print order.

    Returns the page count of the print file.
    """
    writer = PdfWriter()
    segments: list[tuple[PacketRecord, int, str]] = []  # record, pages, kind
    for path, sha256, record in packets:
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise error(SelfCheckError, "print_file_changed", str(path.name))
        reader = PdfReader(io.BytesIO(data))
        writer.append(reader)
        segments.append((record, len(reader.pages), "packet"))
        if duplex and len(reader.pages) % 2:
            blank = renderer.blank_page(record)
            writer.append(PdfReader(io.BytesIO(blank.pdf)))
            segments.append((record, blank.pages, "blank"))
    buffer = io.BytesIO()
    writer.write(buffer)
    pdf = buffer.getvalue()

    texts = page_texts(pdf)
    problems: list[Problem] = []
    start = 0
    for record, count, kind in segments:
        problems += check_pages(texts[start:start + count], renderer.identifiers(record),
                                numbered=kind == "packet", first_page=start + 1)
        problems += check_codes(pdf, payloads_for(kind, record.mrn), first=start, count=count)
        start += count
    if start != len(texts):
        problems.append(problem("print_file_pages", "print file", pages=len(texts),
                                expected=start))
    if problems:
        raise SelfCheckError(title("print_file_failed"), problems)
    write_atomic(target, pdf, overwrite=overwrite)
    return len(texts)
