"""Writing files: whole or not at all, never over an existing file unless asked."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from myelo_docs.schema.errors import OutputError
from myelo_docs.schema.messages import error
from myelo_docs.schema.record import PacketRecord

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def write_atomic(path: Path, data: bytes, overwrite: bool = False,
                 tmp_dir: Path | None = None) -> None:
    """Write data to path through a temporary file and a rename.

    A crash or kill leaves either no file or the complete one at ``path``; a
    kill can leave the temporary file (``.myelo-*.part``) behind, in
    ``tmp_dir`` (same file system) when given, else in ``path``'s folder; any
    exception removes it. The file is created mode 0600, never through a
    symbolic link: ``tmp_dir`` is opened once, without following a link, and
    the temporary file is created and renamed relative to that descriptor, so
    swapping the folder for a link meanwhile changes nothing.

    Raises OutputError: ``path`` or ``tmp_dir`` is a symbolic link (even a
    dangling one, even with ``overwrite``); ``path`` is not a regular file;
    ``path`` exists and not ``overwrite``; no folder for it.
    """
    path = Path(path)
    check_target(path, overwrite)
    with _folder(_parent(path)) as dir_fd, \
            (_folder(tmp_dir, follow=False) if tmp_dir is not None
             else contextlib.nullcontext(dir_fd)) as tmp_fd:
        name = f".myelo-{secrets.token_hex(8)}.part"
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600,
                     dir_fd=tmp_fd)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            _place(tmp_fd, name, dir_fd, path, overwrite)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=tmp_fd)
            raise


def move_into_place(src: Path, path: Path, overwrite: bool = False) -> None:
    """Rename our own finished file ``src`` to ``path``, by write_atomic's rules.

    ``src``'s folder is opened without following a link (it is ours, e.g.
    ``.incomplete``); same file system as ``path``. Raises OutputError as
    write_atomic does; ``src`` is left in place then.
    """
    check_target(path, overwrite)
    with _folder(_parent(path)) as dir_fd, _folder(src.parent, follow=False) as src_fd:
        _place(src_fd, src.name, dir_fd, path, overwrite)


def check_target(path: Path, overwrite: bool = False, option: str = "output") -> None:
    """Raise the OutputError write_atomic would, before any work is done.

    ``path`` is a symbolic link (even a dangling one, even with
    ``overwrite``); it exists and is not a regular file (a folder: even
    ``overwrite`` cannot replace it); it exists and not ``overwrite``; its
    folder is missing. ``option``: how the user named the path (``--combined``).
    """
    path = Path(path)
    if path.is_symlink():
        raise link_error(path, option)
    if path.exists():
        if not path.is_file():
            raise error(OutputError, "output_not_a_file", option, path=path)
        if not overwrite:
            raise _exists(path, option)
    folder = _parent(path)
    if not folder.is_dir():
        raise error(OutputError, "output_no_folder", option, folder=folder)


def create_private(path: Path, append: bool = False, option: str = "--out") -> int:
    """A descriptor to write ``path``: mode 0600 from the first byte, never through a link.

    ``append``: add to the file if it exists (its mode made 0600), else
    create it; otherwise create a new file. Raises OutputError for a
    symbolic link at ``path``, for something not a regular file or a file
    with other names (hard links: appending would write to them too; see
    check_own), or, without ``append``, an existing file.
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
    try:
        check_own(fd, path, option)
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def own_file(fd: int) -> bool:
    """Whether the open file is a regular file with one name only: one we
    can write or trust as ours (a hard link shares its bytes with a file
    elsewhere, maybe not ours)."""
    info = os.fstat(fd)
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1


def check_own(fd: int, path: Path, option: str = "--out") -> None:
    """Raise OutputError (exit 5, naming ``path``) unless own_file(fd)."""
    if not own_file(fd):
        raise error(OutputError, "output_not_ours", option, path=path, name=path.name)


def link_error(path: Path, option: str = "output", key: str = "output_is_link") -> OutputError:
    """The error for a symbolic link where myelo-docs writes its own file or folder;
    ``key``: the message, for a caller whose fix is another."""
    return error(OutputError, key, option, path=path)


def _exists(path: Path, option: str = "output") -> OutputError:
    return error(OutputError, "output_exists", option, path=path)


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


@contextlib.contextmanager
def _folder(folder: Path, follow: bool = True) -> Iterator[int]:
    """A descriptor of folder; ``follow=False``: a symbolic link is refused (OutputError)."""
    try:
        fd = os.open(folder, os.O_RDONLY | DIRECTORY | (0 if follow else NOFOLLOW))
    except OSError as exc:
        if not follow and exc.errno in (errno.ELOOP, errno.ENOTDIR):
            if Path(folder).is_symlink():
                raise link_error(folder) from None
            raise error(OutputError, "output_folder_not_folder", "output", folder=folder) from None
        raise
    try:
        yield fd
    finally:
        os.close(fd)


def _place(src_fd: int, name: str, dst_fd: int, path: Path, overwrite: bool) -> None:
    """Rename ``name`` (in folder src_fd) to path (in folder dst_fd).

    Without ``overwrite``, only if nothing is there, even if another process
    (a parallel batch, a second nurse) creates path meanwhile: a hard link
    refuses an existing name atomically, where a rename would replace it.
    """
    if overwrite:
        os.replace(name, path.name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return
    try:
        os.link(name, path.name, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
    except FileExistsError:
        raise _exists(path) from None
    except OSError:  # a file system without hard links: check, then rename
        if path.exists() or path.is_symlink():
            raise _exists(path) from None
        os.replace(name, path.name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return
    os.unlink(name, dir_fd=src_fd)


def record_key(record: PacketRecord) -> str:
    """A short, stable key for a record that reveals nothing about the patient."""
    material = "\x1f".join([record.mrn, record.date_of_birth.isoformat(),
                            record.procedure_date.isoformat(), record.type.value])
    return hashlib.sha256(material.encode()).hexdigest()[:10]


def default_packet_name(record: PacketRecord) -> str:
    return f"myelogram-packet-{record.procedure_date.isoformat()}-{record_key(record)}.pdf"
