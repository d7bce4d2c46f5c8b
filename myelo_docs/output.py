"""Writing files: whole or not at all, never over an existing file unless asked."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from .errors import OutputError, Problem
from .record import PacketRecord


def write_atomic(path: Path, data: bytes, overwrite: bool = False,
                 tmp_dir: Path | None = None) -> None:
    """Write data to path through a temporary file and a rename.

    A crash or kill leaves either no file or the complete one at ``path``; a
    kill can leave the temporary file behind, in ``tmp_dir`` (same file
    system) when given, for the next run to clear.
    """
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise _exists(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError("The output folder does not exist", [
            Problem("output", f"no folder {folder}", "create the folder first")
        ])
    fd, tmp = tempfile.mkstemp(prefix=".myelo-", suffix=".part", dir=tmp_dir or folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _place_new(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _exists(path: Path) -> OutputError:
    return OutputError("The output file already exists", [
        Problem("output", f"{path} exists", "choose another name, or add --force to replace it")
    ])


def _place_new(tmp: str, path: Path) -> None:
    """Move tmp to path only if nothing is there, even if another process (a
    parallel batch, a second nurse) creates path meanwhile: a hard link refuses
    an existing name atomically, where a rename would replace it."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _exists(path) from None
    except OSError:  # a file system without hard links: check, then rename
        if path.exists() or path.is_symlink():
            raise _exists(path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def record_key(record: PacketRecord) -> str:
    """A short, stable key for a record that reveals nothing about the patient."""
    material = "\x1f".join([record.mrn, record.date_of_birth.isoformat(),
                            record.procedure_date.isoformat(), record.type.value])
    return hashlib.sha256(material.encode()).hexdigest()[:10]


def default_packet_name(record: PacketRecord) -> str:
    return f"myelogram-packet-{record.procedure_date.isoformat()}-{record_key(record)}.pdf"
