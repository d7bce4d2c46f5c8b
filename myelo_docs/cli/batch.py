"""`myelo-docs batch` and `myelo-docs validate`: thin adapters over batch.py."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from myelo_docs.batch.run import Summary, run_batch, validate_csv
from myelo_docs.cli.options import handle_errors, mrn_pattern_option, render_options
from myelo_docs.render.options import RenderSettings, site_value
from myelo_docs.schema.errors import (
    ROWS_FAILED,
    ConfigError,
    OutputError,
    RecordError,
    exit_codes_help,
)
from myelo_docs.schema.messages import title

ENCODING_HELP = ("Text encoding of the CSV. Default: the site's, else UTF-8 with or without "
                 "BOM; UTF-16 with a BOM (Excel's 'Unicode Text') is read automatically. Files "
                 "saved by Excel on Windows as plain CSV are often cp1252.")
COLUMNS_HELP = ("Column map (TOML) for an export whose headers are not the record fields: "
                'field = "Header" or "{First Name} {Last Name}" under [columns], and '
                'ignore = ["Room"] (see README). Default: the site\'s.')


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _fallbacks(count: int) -> str:
    """The summary's note of packets the fast path failed on (see the log)."""
    if not count:
        return ""
    return f" ({count} drawn in full after a fast-path error; see the log)"


class Progress:
    """A bar on a terminal; a plain line every 10 s otherwise; nothing if quiet."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, done: int, total: int, summary: Summary) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        # No rate before a packet is rendered: rows refused at once (or already
        # done) would promise a speed rendering never reaches.
        known = summary.ok > 0 and summary.seconds > 0
        rate = done / summary.seconds if known else 0.0
        left = (total - done) / rate if rate else 0.0
        if self.tty:
            width = 30
            filled = int(width * done / total) if total else width
            bar = "#" * filled + "." * (width - filled)
            speed = (f"  {rate:.1f} rows/s  {int(left // 60)}:{int(left % 60):02d} left"
                     if known else "  starting...")
            click.echo(f"\r[{bar}] {done}/{total}{speed} ", nl=False, err=True)
            if done == total:
                click.echo("", err=True)
        elif now - self.last >= 10 or done == total:
            self.last = now
            speed = f", {rate:.1f} rows/s, about {left:.0f} s left" if known else ""
            click.echo(f"{done}/{total} rows{speed}", err=True)


def _print_nudges(summary: Summary, limit: int) -> None:
    """Fields that look like another language than their packet's: named, never shown."""
    lines = [f"  row {row}: {nudge.message()}"
             for row, nudges in sorted(summary.nudges.items()) for nudge in nudges]
    if lines:
        click.echo(f"Warning: {len(lines)} nurse-typed field(s) may be in another language "
                   "than their packet:", err=True)
    for line in lines[:limit]:
        click.echo(line, err=True)
    if len(lines) > limit:
        click.echo(f"  ... and {len(lines) - limit} more", err=True)


def _print_problems(results: list, limit: int | None = None) -> None:
    bad = [r for r in results if r.status != "ok"]
    for result in bad[:limit]:
        click.echo(f"  row {result.row}: {result.status}: {result.error}", err=True)
    if limit is not None and len(bad) > limit:
        click.echo(f"  ... and {len(bad) - limit} more (see manifest.csv)", err=True)


@click.command(epilog=exit_codes_help(RecordError.exit_code, ConfigError.exit_code, ROWS_FAILED))
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--encoding", help=ENCODING_HELP)
@click.option("--columns", "columns", type=click.Path(dir_okay=False, path_type=Path),
              metavar="MAP.toml", help=COLUMNS_HELP)
@render_options("font_dir", "site")
@mrn_pattern_option
@handle_errors
def validate(csv_file: Path, encoding: str | None, render: RenderSettings,
             columns: Path | None = None, mrn_pattern: str | None = None) -> None:
    """Check every row of a CSV and print every problem; render nothing.

    Rows are numbered as a spreadsheet shows them (the header is row 1).
    """
    site = render.load_site()
    source, problems = validate_csv(csv_file, site_value(encoding, site, "csv_encoding"),
                                    render.resolved().font_dir,
                                    columns=site_value(columns, site, "column_map"),
                                    intake=render.intake(mrn_pattern=mrn_pattern))
    _print_problems(problems)
    good = source.rows - len(problems)
    click.echo(f"{_rows(source.rows)}: {good} ready, {len(problems)} with problems")
    sys.exit(ROWS_FAILED if problems else 0)


@click.command(epilog=exit_codes_help(RecordError.exit_code, ConfigError.exit_code,
                                    OutputError.exit_code, ROWS_FAILED))
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the PDFs and manifest.csv (created if missing).")
@render_options()
@click.option("--encoding", help=ENCODING_HELP)
@click.option("--columns", "columns", type=click.Path(dir_okay=False, path_type=Path),
              metavar="MAP.toml", help=COLUMNS_HELP)
@click.option("--jobs", type=click.IntRange(1, 64), default=None,
              help="Worker processes (default: the number of cores).")
@click.option("--dry-run", is_flag=True, help="Only check every row (same as `validate`).")
@click.option("--resume", is_flag=True,
              help="Finish an interrupted batch: keep rows whose file matches the manifest hash.")
@click.option("--force", is_flag=True, help="Redo a batch in a folder that already has one.")
@click.option("--name-pattern", help="File names, e.g. '{row}-{mrn}'. Fields: row, key, type, "
              "procedure_date, mrn, patient_name, date_of_birth, language. Default: the "
              "site's, else packet-{procedure_date}-{key} (no patient data).")
@click.option("--combined", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write all packets, in row order, into this one PDF for printing.")
@click.option("--duplex", is_flag=True,
              help="With --combined: pad packets with an odd page count with a blank page "
              "(showing the identifiers) so each packet starts on a front side.")
@click.option("--quiet", is_flag=True, help="No progress output, only the summary.")
@click.option("--full-render", is_flag=True,
              help="Render every packet in full with WeasyPrint instead of from cached "
                   "templates (slower; the text is the same).")
@mrn_pattern_option
@handle_errors
def batch(csv_file: Path, out_dir: Path, render: RenderSettings, encoding: str | None,
          columns: Path | None, jobs: int | None, dry_run: bool, resume: bool, force: bool,
          name_pattern: str | None, combined: Path | None, duplex: bool, quiet: bool,
          full_render: bool, mrn_pattern: str | None) -> None:
    """Write one packet per CSV row into a folder, with a manifest.csv.

    Headers are the record field names (any case), or the export's own
    names with --columns MAP.toml. In a cell, `instructions` holds one
    instruction per line and `medications` one "name: instruction" per line.
    Bad rows are reported and never stop the good ones.
    """
    if duplex and not combined:
        raise click.UsageError(title("cli_duplex_needs_combined"))
    if dry_run:
        validate.callback(csv_file, encoding, font_dir=render.font_dir,  # type: ignore[misc]
                          site=render.site, columns=columns, mrn_pattern=mrn_pattern)
        return
    summary = run_batch(csv_file, out_dir, settings=render, jobs=jobs, resume=resume,
                        force=force, name_pattern=name_pattern, encoding=encoding,
                        progress=Progress(quiet), combined=combined, duplex=duplex,
                        full_render=full_render, columns=columns,
                        intake=render.intake(mrn_pattern=mrn_pattern))
    _print_problems(summary.results, limit=20)
    _print_nudges(summary, limit=20)
    done = f", {summary.already_done} already done" if summary.already_done else ""
    if combined:
        click.echo(f"Print file: {combined} ({summary.combined_pages} pages)")
    click.echo(f"{_rows(summary.total)}: {summary.ok} ok, {summary.failed} failed, "
               f"{summary.skipped} skipped{done}; {summary.seconds:.1f} s, "
               f"{summary.rendered_per_second:.1f} packets/s{_fallbacks(summary.fallbacks)}. "
               f"Manifest: "
               f"{out_dir / 'manifest.csv'}")
    sys.exit(ROWS_FAILED if summary.failed or summary.skipped else 0)
