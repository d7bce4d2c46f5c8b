"""Batch: one packet per CSV row, every bad row explained, every good row printed.

The parent process reads and validates rows (cheap), names the files and
keeps the manifest; warm worker processes render. Each PDF is written to a
temporary file and renamed, then its manifest line is appended and flushed,
so a kill leaves only complete files; ``resume`` redoes whatever the manifest
does not vouch for.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from myelo_docs.content.language_check import LanguageNudge, language_nudges
from myelo_docs.formats.csv_input import ColumnMap, CsvSource, iter_rows, open_csv, row_to_data
from myelo_docs.output.filenames import DEFAULT_PATTERN, check_pattern, file_name
from myelo_docs.output.files import (
    NOFOLLOW,
    check_own,
    check_target,
    create_private,
    link_error,
    move_into_place,
    own_file,
    write_atomic,
)
from myelo_docs.render.fonts import FontSet, check_glyphs, font_set
from myelo_docs.render.options import RenderSettings, site_value
from myelo_docs.schema.errors import Interrupted, MyeloDocsError, OutputError, Problem
from myelo_docs.schema.intake import IntakeSettings
from myelo_docs.schema.messages import error, phrase, problem, title
from myelo_docs.schema.record import PacketRecord, text_fields, validate_record

if TYPE_CHECKING:
    from myelo_docs.render.document import Document
    from myelo_docs.render.engine import Renderer

MANIFEST = "manifest.csv"
INCOMPLETE = ".incomplete"  # temporary files of a run; a killed run may leave some here
NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # reading what we took for a file never hangs (a FIFO)
MANIFEST_COLUMNS = ("row", "status", "file", "pages", "sha256", "tagged", "render", "error")
ROWS_PER_TASK = 8  # rows a worker is sent at once in a long batch (see render_rows)


@dataclass
class RowResult:
    row: int
    status: str  # ok, error, skipped
    file: str = ""
    pages: int | None = None
    sha256: str = ""
    tagged: bool | None = None
    render: str = ""  # "fast", "full" or "fallback" (render.document.Document.path)
    error: str = ""

    def as_manifest(self) -> dict[str, str]:
        return {
            "row": str(self.row), "status": self.status, "file": self.file,
            "pages": "" if self.pages is None else str(self.pages), "sha256": self.sha256,
            "tagged": "" if self.tagged is None else ("yes" if self.tagged else "no"),
            "render": self.render, "error": self.error,
        }


@dataclass
class Summary:
    total: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    already_done: int = 0
    combined_pages: int = 0
    seconds: float = 0.0
    results: list[RowResult] = field(default_factory=list)
    # row -> nurse-typed text that looks like another language than its packet's
    nudges: dict[int, list[LanguageNudge]] = field(default_factory=dict)

    @property
    def rendered_per_second(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def fallbacks(self) -> int:
        """Packets the full render drew because the fast path failed on them."""
        return sum(1 for r in self.results if r.render == "fallback")


def describe(error: MyeloDocsError) -> str:
    """A manifest/report line: fields and problems, never the values."""
    if not error.problems:
        return error.message
    return "; ".join(f"{p.field}: {p.problem} (fix: {p.fix})" for p in error.problems)


# ---- worker side -----------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(settings: RenderSettings) -> None:
    # Ctrl-C reaches the whole process group: the parent stops the batch, and each
    # worker finishes the rows it is on, so every PDF written gets its line.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from myelo_docs.render.engine import renderer_for

    _WORKER["renderer"] = renderer_for(settings)


Row = tuple[int, PacketRecord, str]  # (row, record, file name)


def render_rows(rows: list[Row], out_dir: str, full_render: bool = False) -> list[RowResult]:
    """Render validated records and write each atomically (runs in a worker).

    Each file is written by a second thread while the next packet renders (a
    write is mostly waiting for the disk's fsync); returns once every file
    is in place, so no manifest line comes before its file.
    """
    renderer = _WORKER["renderer"]
    results: list[RowResult | Future[RowResult]] = []
    with ThreadPoolExecutor(max_workers=1) as writer:
        for row, record, name in rows:
            try:
                document = renderer.packet(record, full_render=full_render)
            except Exception as exc:  # reported on its row, as a failed write is
                results.append(_row_error(row, exc))
                continue
            results.append(writer.submit(_write_row, row, document, out_dir, name))
    return [r if isinstance(r, RowResult) else r.result() for r in results]


def _write_row(row: int, document: Document, out_dir: str, name: str) -> RowResult:
    try:
        write_atomic(Path(out_dir) / name, document.pdf, overwrite=True,
                     tmp_dir=Path(out_dir) / INCOMPLETE)
    except Exception as exc:  # reported on its row (_row_error)
        return _row_error(row, exc)
    return RowResult(row, "ok", file=name, pages=document.pages,
                     sha256=hashlib.sha256(document.pdf).hexdigest(), tagged=document.tagged,
                     render=document.path)


def _row_error(row: int, exc: Exception) -> RowResult:
    if isinstance(exc, MyeloDocsError):
        return RowResult(row, "error", error=describe(exc))
    # a bug must not stop the other rows
    return RowResult(row, "error", error=phrase("batch_row_internal", kind=type(exc).__name__))


# ---- parent side -----------------------------------------------------------

@dataclass
class _Plan:
    """Rows checked in the parent: either work for a worker or an immediate result."""

    row: int
    record: PacketRecord | None = None
    name: str = ""
    result: RowResult | None = None


def _plan_rows(source: CsvSource, pattern: str, fonts: FontSet,
               intake: IntakeSettings | None = None) -> Iterator[_Plan]:
    seen_visits: dict[tuple[str, str], int] = {}
    used_names: set[str] = set()
    for row, cells in iter_rows(source):
        try:
            if isinstance(cells, MyeloDocsError):  # a totals row, a stray cell
                raise cells
            record = validate_record(row_to_data(cells), intake)
            check_glyphs(text_fields(record), fonts)
        except MyeloDocsError as exc:
            yield _Plan(row, result=RowResult(row, "error", error=describe(exc)))
            continue
        visit = (record.mrn, record.procedure_date.isoformat())
        if visit in seen_visits:
            yield _Plan(row, result=RowResult(
                row, "skipped",
                error=phrase("batch_row_duplicate", row=seen_visits[visit])))
            continue
        seen_visits[visit] = row
        name = file_name(pattern, row, record)
        if name.lower() in used_names:
            name = name[:-4] + f"-row{row}.pdf"
        used_names.add(name.lower())
        yield _Plan(row, record=record, name=name)


def validate_csv(csv_path: str | Path, encoding: str | None = None,
                 font_dir: Path | None = None, *, columns: ColumnMap | str | Path | None = None,
                 intake: IntakeSettings | None = None) -> tuple[CsvSource, list[RowResult]]:
    """Check every row without rendering: the CSV-wide checks, then each row's problems.

    ``columns``: a column map (a ColumnMap or the path of a map file);
    ``intake``: the hospital's intake checks (MRN pattern, procedure date
    window; default: ours). Returns the source and a RowResult (status
    error or skipped, with the reason) for each row that would not print.
    Raises CsvError (exit 3) for a file that cannot be read as a whole (see
    open_csv), ConfigError (exit 4) for a bad map file.
    """
    source = open_csv(csv_path, encoding, columns)
    fonts = font_set(font_dir.resolve() if font_dir else None)
    problems = [plan.result for plan in _plan_rows(source, DEFAULT_PATTERN, fonts, intake)
                if plan.result is not None]
    return source, problems


class Manifest:
    """manifest.csv: appended and flushed per row, rewritten in row order at the end."""

    def __init__(self, out_dir: Path, resume: bool):
        """Open the live manifest (mode 0600, never through a link): appended to
        with ``resume``, else a new one (an old one is removed first).

        Raises OutputError (exit 5) with ``resume`` for a manifest that is a
        symbolic link, not a regular file, or a file with other names (a hard
        link: its rows would be appended to, and its mode changed in, a file
        elsewhere)."""
        self.path = out_dir / MANIFEST
        self.previous: dict[int, RowResult] = self._read() if resume else {}
        if not resume and not self.path.is_symlink():
            self.path.unlink(missing_ok=True)
        self._fh = os.fdopen(create_private(self.path, append=resume), "a", encoding="utf-8",
                             newline="")
        self._writer = csv.DictWriter(self._fh, MANIFEST_COLUMNS)
        if self._fh.tell() == 0:
            self._writer.writeheader()
            self._flush()

    def _read(self) -> dict[int, RowResult]:
        try:
            fd = os.open(self.path, os.O_RDONLY | NOFOLLOW | NONBLOCK)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise link_error(self.path, "--out", "output_link_in_out") from None
            raise
        found = {}
        with os.fdopen(fd, encoding="utf-8", newline="") as fh:
            check_own(fd, self.path)  # a hard link: appending would write elsewhere too
            for line in csv.DictReader(fh):
                try:
                    row = int(line["row"])
                except (KeyError, TypeError, ValueError):
                    continue
                found[row] = RowResult(row, line.get("status", ""), line.get("file", ""),
                                       int(line["pages"]) if line.get("pages") else None,
                                       line.get("sha256", ""),
                                       {"yes": True, "no": False}.get(line.get("tagged", "")),
                                       line.get("render", ""), line.get("error", ""))
        return found

    def done_before(self, plan: _Plan, out_dir: Path) -> RowResult | None:
        """The manifest's line for the row if its PDF is there, ours and unchanged.

        Ours: a regular file with no other name. A symbolic link or a hard
        link is not vouched for: the row is rendered again and its name
        replaced (a rename: the file the link shared stays as it was).
        """
        old = self.previous.get(plan.row)
        if not old or old.status != "ok" or old.file != plan.name:
            return None
        if _sha256_own(out_dir / old.file) == old.sha256:
            return old
        return None

    def append(self, *results: RowResult) -> None:
        """Add these rows' lines (a worker's rows come together), flushed once."""
        with _ctrl_c_held():  # never half a line
            for result in results:
                self._writer.writerow(result.as_manifest())
            self._flush()

    def _flush(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def finish(self, results: list[RowResult]) -> None:
        self._fh.close()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, MANIFEST_COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        for result in sorted(results, key=lambda r: r.row):
            writer.writerow(result.as_manifest())
        write_atomic(self.path, buffer.getvalue().encode("utf-8"), overwrite=True,
                     tmp_dir=self.path.parent / INCOMPLETE)


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def _sha256_own(path: Path) -> str | None:
    """The sha256 of path if it is our own file (see own_file; never through a
    link), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | NONBLOCK)
    except OSError:
        return None
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as fh:
        if not own_file(fd):
            return None
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _out_dir_problems(out_dir: Path) -> list[Problem]:
    """What stands where our own files go: a symbolic link (manifest.csv,
    .incomplete, any *.pdf, a temporary file), anything not a regular file
    (a folder, a FIFO) where a file goes and the reverse, a manifest with other
    names (a hard link). Looks with lstat only: follows nothing."""
    problems = []
    with os.scandir(out_dir) as entries:
        for entry in entries:
            ours = entry.name in (MANIFEST, INCOMPLETE) or entry.name.lower().endswith(".pdf")
            if ours and entry.is_symlink():
                problems.append(problem("output_link_in_out", "--out", path=entry.path))
            elif entry.name == INCOMPLETE and not entry.is_dir(follow_symlinks=False):
                problems.append(problem("batch_incomplete_not_folder", "--out", path=entry.path))
            elif entry.name != INCOMPLETE and ours and not entry.is_file(follow_symlinks=False):
                problems.append(problem("batch_not_a_file", "--out", path=entry.path))
            elif entry.name == MANIFEST and entry.stat(follow_symlinks=False).st_nlink > 1:
                problems.append(problem("batch_manifest_hard_link", "--out", path=entry.path))
    incomplete = out_dir / INCOMPLETE
    if not problems and incomplete.is_dir():
        with os.scandir(incomplete) as entries:
            problems += [problem("batch_link_in_incomplete" if entry.is_symlink() else
                                 "batch_not_file_in_incomplete", "--out", path=entry.path,
                                 folder=INCOMPLETE)
                         for entry in entries if not entry.is_file(follow_symlinks=False)]
    return problems


def _clear_stale(folder: Path) -> None:
    """Delete the regular files in folder (a killed run's temporary files),
    through a descriptor of the folder itself: never through a link."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise link_error(folder, "--out", "output_link_in_out") from None
        raise
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)


def _prepare_out_dir(out_dir: Path, resume: bool, force: bool) -> None:
    """Check out_dir, then clear a killed run's temporary files.

    In this order, each before anything is deleted or written: OutputError
    (exit 5) for out_dir being a file, for a symbolic link or the wrong kind
    of file where our own go (every one named; see _out_dir_problems), for
    a manifest already there without ``resume`` or ``force``. ``out_dir``
    itself may be a link the user chose. A folder we create (``out_dir``,
    ``.incomplete``) is mode 0700: with a name pattern like
    ``{mrn}-{patient_name}`` the file names are patient data. A folder the
    user made keeps its mode.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise error(OutputError, "batch_out_is_file", "--out", path=out_dir)
    problems = _out_dir_problems(out_dir) if out_dir.is_dir() else []
    if problems:
        raise OutputError(title("batch_out_not_ours"), problems)
    if (out_dir / MANIFEST).exists() and not (resume or force):
        raise error(OutputError, "batch_exists", "--out", path=out_dir / MANIFEST)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # file names can be patient data
    with contextlib.suppress(FileExistsError):
        (out_dir / INCOMPLETE).mkdir(mode=0o700)
    _clear_stale(out_dir / INCOMPLETE)


ProgressFn = Callable[[int, int, Summary], None]


def run_batch(csv_path: str | Path, out_dir: str | Path, *, settings: RenderSettings | None = None,
              jobs: int | None = None, resume: bool = False, force: bool = False,
              name_pattern: str | None = None, encoding: str | None = None,
              progress: ProgressFn | None = None, combined: Path | None = None,
              duplex: bool = False, full_render: bool = False,
              columns: ColumnMap | str | Path | None = None,
              intake: IntakeSettings | None = None) -> Summary:
    """Render a packet for every good row of the CSV into out_dir.

    With ``combined``, also write every ok packet, in row order, into one
    print file (``duplex``: each packet starts on a front side). Packets come
    from cached templates where they can (the manifest's render column says
    which); ``full_render`` renders every one in full. ``columns``: a column
    map (a ColumnMap or the path of a map file); ``intake``: the hospital's
    intake checks (default: the site's, else ours). With a site in
    ``settings``, its file-name pattern, CSV encoding and column map apply
    where the arguments give none.

    A bad row never stops the others: it gets a manifest line naming the
    field and the fix. Raises, before anything is rendered or the folder is
    touched, CsvError (exit 3) for a file that cannot be read as a whole
    (see open_csv) and ConfigError (exit 4) for a bad map file; OutputError
    (exit 5) for the output folder (see _prepare_out_dir: a symbolic link
    where our own files go is one) and for the print file (a symbolic link,
    or a file already there without ``force`` or ``resume``). Every file
    written is mode 0600.
    """
    settings = settings or RenderSettings()
    site = settings.load_site()
    pattern = site_value(name_pattern, site, "file_name_pattern", DEFAULT_PATTERN)
    check_pattern(pattern)
    intake = intake or settings.intake()
    source = open_csv(csv_path, site_value(encoding, site, "csv_encoding"),
                      site_value(columns, site, "column_map"))
    out = Path(out_dir)
    if combined is not None and Path(combined).parent.resolve() != out.resolve():
        check_target(Path(combined), overwrite=force or resume, option="--combined")
    _prepare_out_dir(out, resume, force)
    if combined is not None:  # inside --out: checked once the folder is there
        check_target(Path(combined), overwrite=force or resume, option="--combined")
    from myelo_docs.render.engine import renderer_for

    renderer = renderer_for(settings)  # built here too: a bad brand fails before any row

    jobs = max(1, jobs or os.cpu_count() or 1)
    manifest = Manifest(out, resume)
    records: dict[int, PacketRecord] = {}  # kept only for the print file
    summary = Summary(total=source.rows)
    started = time.perf_counter()

    def record(*results: RowResult, already: bool = False) -> None:
        if not already:
            manifest.append(*results)
        for result in results:
            summary.results.append(result)
            if already:
                summary.already_done += 1
            elif result.status == "ok":
                summary.ok += 1
            elif result.status == "error":
                summary.failed += 1
            else:
                summary.skipped += 1
            summary.seconds = time.perf_counter() - started
            if progress:
                progress(len(summary.results), summary.total, summary)

    pending: set[Future[list[RowResult]]] = set()
    # Rows go to the workers a few at a time (see render_rows), but one at a time
    # in a short batch, so each worker still gets many tasks.
    per_task = max(1, min(ROWS_PER_TASK, source.rows // (jobs * 16)))
    rows: list[Row] = []
    try:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker,
                                 initargs=(settings,)) as pool:

            def collect(future: Future[list[RowResult]]) -> None:
                results = future.result()
                with _ctrl_c_held():  # _stop records what is still pending: once each
                    record(*results)
                    pending.discard(future)

            def submit() -> None:
                pending.add(pool.submit(render_rows, rows.copy(), str(out), full_render))
                rows.clear()
                if len(pending) >= jobs * 4:  # bounded: rows stream, packets don't pile up
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        collect(future)

            try:
                for plan in _plan_rows(source, pattern, renderer.fonts, intake):
                    if plan.result is not None:
                        record(plan.result)
                        continue
                    if combined is not None and plan.record is not None:
                        records[plan.row] = plan.record
                    if plan.record is not None and (nudges := language_nudges(plan.record)):
                        summary.nudges[plan.row] = nudges
                    done = manifest.done_before(plan, out) if resume else None
                    if done is not None:
                        record(done, already=True)
                        continue
                    assert plan.record is not None
                    rows.append((plan.row, plan.record, plan.name))
                    if len(rows) == per_task:
                        submit()
                if rows:
                    submit()
                for future in list(pending):
                    collect(future)
            except KeyboardInterrupt:
                _stop(pending, record)
                raise error(Interrupted, "batch_interrupted", "batch",
                            done=len(summary.results), total=summary.total) from None
    finally:
        summary.seconds = time.perf_counter() - started
        if len(summary.results) == source.rows:
            manifest.finish(summary.results)
    summary.results.sort(key=lambda r: r.row)
    try:
        if combined is not None:
            packets = [(out / r.file, r.sha256, records[r.row]) for r in summary.results
                       if r.status == "ok"]
            summary.combined_pages = _write_print_file(packets, Path(combined), out, renderer,
                                                       duplex, overwrite=force or resume)
    finally:
        _remove_if_empty(out / INCOMPLETE)
    return summary


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Run the block whole: a Ctrl-C that arrives inside takes effect as it ends.

    A task's manifest lines and its leaving ``pending`` are one step, so a
    Ctrl-C can neither record a task twice nor cut a line in half. Outside
    the main thread (where Python delivers no signal) the block just runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt


def _stop(pending: set[Future[list[RowResult]]], record: Callable[..., None]) -> None:
    """Ctrl-C: drop the rows not started, let the workers finish the rows they are
    on (they ignore the signal), and record those: every PDF written has its line."""
    for future in pending:
        future.cancel()
    finished, _ = wait(pending)
    for future in finished:
        if not future.cancelled() and future.exception() is None:
            record(*future.result())


def _write_print_file(packets: list[tuple[Path, str, PacketRecord]], target: Path, out: Path,
                      renderer: Renderer, duplex: bool, overwrite: bool) -> int:
    """build_combined into target; returns its page count.

    Inside the output folder, the print file is built in ``.incomplete`` and
    then renamed into place, so a killed run leaves its temporary file where
    the next run clears it. Elsewhere, write_atomic's temporary file is in
    the print file's own folder: removed on any error or interrupt, but a
    kill (SIGKILL, power loss) can leave a ``.myelo-*.part`` there.
    """
    from myelo_docs.batch.print_file import build_combined

    if not _inside(target, out):
        return build_combined(packets, target, renderer, duplex, overwrite=overwrite)
    staged = out / INCOMPLETE / f"print-{secrets.token_hex(8)}.pdf"
    try:
        pages = build_combined(packets, staged, renderer, duplex)
        move_into_place(staged, target, overwrite=overwrite)
    except BaseException:
        staged.unlink(missing_ok=True)  # a random name: nothing else can be called so
        raise
    return pages


def _inside(path: Path, out: Path) -> bool:
    """Whether path's folder is out or a folder in it, on the same file system."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        return (folder.resolve().is_relative_to(out.resolve())
                and os.stat(folder).st_dev == os.stat(out).st_dev)
    except OSError:
        return False
