"""Writing files: whole or not at all, never over an existing file unless asked."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path

from .errors import OutputError, Problem
from .record import PacketRecord

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def write_atomic(path: Path, data: bytes, overwrite: bool = False,
                 tmp_dir: Path | None = None) -> None:
    """Write data to path through a temporary file and a rename.

    A crash or kill leaves either no file or the complete one at ``path``; a
    kill can leave the temporary file behind, in ``tmp_dir`` (same file
    system) when given, for the next run to clear. The file is created
    mode 0600, never through a symbolic link.

    Raises OutputError: ``path`` or ``tmp_dir`` is a symbolic link (even a
    dangling one, even with ``overwrite``); ``path`` exists and not
    ``overwrite``; no folder for it.
    """
    path = Path(path)
    check_target(path, overwrite)
    if tmp_dir is not None and tmp_dir.is_symlink():
        raise link_error(tmp_dir)
    folder = path.parent if str(path.parent) else Path(".")
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


def check_target(path: Path, overwrite: bool = False, option: str = "output") -> None:
    """Raise the OutputError write_atomic would, before any work is done.

    ``path`` is a symbolic link (even a dangling one, even with
    ``overwrite``); it exists and not ``overwrite``; its folder is missing.
    ``option``: how the user named the path (``--combined``).
    """
    path = Path(path)
    if path.is_symlink():
        raise link_error(path, option)
    if path.exists() and not overwrite:
        raise _exists(path, option)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError("The output folder does not exist", [
            Problem(option, f"no folder {folder}", "create the folder first")
        ])


def create_private(path: Path, append: bool = False) -> int:
    """A descriptor to write ``path``: mode 0600 from the first byte, never through a link.

    ``append``: add to the file if it exists (its mode made 0600), else
    create it; otherwise create a new file. Raises OutputError for a
    symbolic link at ``path`` or, without ``append``, an existing file.
    """
    flags = os.O_WRONLY | os.O_CREAT | NOFOLLOW | (os.O_APPEND if append else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise (link_error(path) if path.is_symlink() else _exists(path)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise link_error(path) from None
        raise
    os.fchmod(fd, 0o600)
    return fd


def link_error(path: Path, option: str = "output",
               fix: str = "remove the link or choose another path; myelo-docs never writes "
                          "through a symbolic link") -> OutputError:
    """The error for a symbolic link where myelo-docs writes its own file or folder."""
    return OutputError("A symbolic link is where myelo-docs writes", [
        Problem(option, f"{path} is a symbolic link", fix)])


def _exists(path: Path, option: str = "output") -> OutputError:
    return OutputError("The output file already exists", [
        Problem(option, f"{path} exists", "choose another name, or add --force to replace it")
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
