"""Writing files: whole or not at all, never over an existing file unless asked."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from .errors import OutputError, Problem
from .record import PacketRecord


def write_atomic(path: Path, data: bytes, overwrite: bool = False) -> None:
    """Write data to path through a temporary file and a rename.

    A crash or kill leaves either no file or the complete one.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError("The output file already exists", [
            Problem("output", f"{path} exists", "choose another name, or add --force to replace it")
        ])
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError("The output folder does not exist", [
            Problem("output", f"no folder {folder}", "create the folder first")
        ])
    fd, tmp = tempfile.mkstemp(prefix=".myelo-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_key(record: PacketRecord) -> str:
    """A short, stable key for a record that reveals nothing about the patient."""
    material = "\x1f".join([record.mrn, record.date_of_birth.isoformat(),
                            record.procedure_date.isoformat(), record.type.value])
    return hashlib.sha256(material.encode()).hexdigest()[:10]


def default_packet_name(record: PacketRecord) -> str:
    return f"myelogram-packet-{record.procedure_date.isoformat()}-{record_key(record)}.pdf"
