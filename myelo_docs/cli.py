"""The command line: thin adapters over the core in render.py."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import MyeloDocsError, OutputError, Problem, RecordError
from .output import default_packet_name, write_atomic

EXIT_CODES = """\b
Exit codes:
  0  success
  1  internal error (a bug: please report it)
  2  usage error (unknown option, missing argument)
  3  invalid record (a field is missing or wrong; the message names it)
  4  bad configuration (brand, protocol, content or font folder)
  5  output problem (file exists, folder missing)
  6  the PDF failed its safety self-check; nothing was written
"""


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user errors into a clear message and exit code; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MyeloDocsError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("MYELO_DOCS_DEBUG"):
                raise
            click.echo(
                f"Internal error ({type(exc).__name__}). This is a bug in myelo-docs; "
                "run again with MYELO_DOCS_DEBUG=1 to see details.",
                err=True,
            )
            sys.exit(1)

    return wrapper


def settings_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--brand", type=click.Path(dir_okay=False, path_type=Path),
                     help="Brand file (brand.toml with its logo). Default: the built-in demo brand."),
        click.option("--protocol", type=click.Path(dir_okay=False, path_type=Path),
                     help="Protocol settings file (TOML); keys not given keep their defaults."),
        click.option("--font-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Extra folder of .ttf/.otf fonts for scripts the bundled fonts lack."),
        click.option("--paper", type=click.Choice(["letter", "a4"]),
                     help="Paper size. Default: the brand's."),
        click.option("-o", "--output", type=str,
                     help="Output PDF file, or - for standard output."),
        click.option("--force", is_flag=True, help="Replace the output file if it exists."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _write_output(pdf: bytes, output: str | None, default_name: str, force: bool) -> str:
    if output == "-":
        sys.stdout.buffer.write(pdf)
        sys.stdout.buffer.flush()
        return "standard output"
    path = Path(output or default_name)
    write_atomic(path, pdf, overwrite=force)
    return str(path)


def _read_input(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise RecordError("The input file was not found",
                          [Problem("--input", f"no file {source}", "check the path")]) from None
    except UnicodeDecodeError:
        raise RecordError("The input file is not UTF-8 text",
                          [Problem("--input", "is not UTF-8", "save the JSON file as UTF-8")]
                          ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError("The input is not valid JSON", [
            Problem("--input", f"line {exc.lineno} column {exc.colno}: {exc.msg}",
                    "fix the JSON at that place")
        ]) from None
    if not isinstance(data, dict):
        raise RecordError("The input must be one JSON object",
                          [Problem("--input", "is not an object", 'use {"type": ..., ...}')])
    return data


def _medication(text: str) -> dict[str, str]:
    name, sep, instruction = text.partition(":")
    if not sep:
        raise RecordError("A --medication has no instruction", [
            Problem("--medication", "needs NAME: INSTRUCTION",
                    'write it like --medication "Warfarin: Restart on 2026-12-12"')
        ])
    return {"name": name.strip(), "instruction": instruction.strip()}


@click.group(epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="myelo-docs")
def main() -> None:
    """Print the handout and discharge packet a myelogram patient takes home."""


@main.command(epilog=EXIT_CODES)
@click.option("--input", "input_file", metavar="FILE.json",
              help="Read the record from a JSON file (- for standard input). "
                   "Flags below add to or replace its fields.")
@click.option("--type", "type_", help="cervical, thoracic or lumbar.")
@click.option("--patient-name", help="The patient's full name, as on their wristband.")
@click.option("--date-of-birth", metavar="YYYY-MM-DD", help="Date of birth.")
@click.option("--mrn", help="Medical record number, printed as given.")
@click.option("--procedure-date", metavar="YYYY-MM-DD", help="Date of the myelogram.")
@click.option("--physician", help="The doctor who did the test.")
@click.option("--nurse", help="The discharging nurse.")
@click.option("--follow-up", help="Follow-up appointment or plan.")
@click.option("--instruction", "instructions", multiple=True,
              help="An extra recovery instruction (repeat for more).")
@click.option("--medication", "medications", multiple=True, metavar='"NAME: INSTRUCTION"',
              help="A medicine and what to do with it (repeat for more).")
@click.option("--language", help="Language of the packet (default en).")
@click.option("--large-print", is_flag=True, default=None, help="Large print (18 pt text).")
@settings_options
@handle_errors
def packet(input_file: str | None, type_: str | None, instructions: tuple[str, ...],
           medications: tuple[str, ...], brand: Path | None, protocol: Path | None,
           font_dir: Path | None, paper: str | None, output: str | None, force: bool,
           **fields: Any) -> None:
    """Write the discharge packet for one patient.

    Give the record with flags, or with --input FILE.json using the same field
    names (type, patient_name, date_of_birth, mrn, procedure_date, physician,
    nurse, follow_up, instructions, medications, language, large_print).
    """
    from .record import validate_record
    from .render import get_renderer

    data = _read_input(input_file) if input_file else {}
    if type_ is not None:
        data["type"] = type_
    data.update({key: value for key, value in fields.items() if value is not None})
    if instructions:
        data["instructions"] = list(instructions)
    if medications:
        data["medications"] = [_medication(m) for m in medications]
    record = validate_record(data)
    document = get_renderer(brand, protocol, font_dir, paper).packet(record)
    where = _write_output(document.pdf, output, default_packet_name(record), force)
    if output != "-":
        click.echo(f"Wrote {document.pages}-page packet to {where}", err=True)


@main.command(epilog=EXIT_CODES)
@click.option("--type", "type_", required=True, help="cervical, thoracic or lumbar.")
@click.option("--language", default="en", show_default=True, help="Language of the handout.")
@click.option("--large-print", is_flag=True, help="Large print (18 pt text).")
@settings_options
@handle_errors
def handout(type_: str, language: str, large_print: bool, brand: Path | None,
            protocol: Path | None, font_dir: Path | None, paper: str | None,
            output: str | None, force: bool) -> None:
    """Write the education handout for one myelogram type (no patient details)."""
    from .render import get_renderer, validate_type

    kind = validate_type(type_)
    document = get_renderer(brand, protocol, font_dir, paper).handout(kind, language, large_print)
    where = _write_output(document.pdf, output, f"myelogram-handout-{kind.value}-{language}.pdf",
                          force)
    if output != "-":
        click.echo(f"Wrote {document.pages}-page handout to {where}", err=True)


@main.command(epilog=EXIT_CODES)
@click.option("-o", "--output", default="myelo-demo-packet.pdf", show_default=True,
              help="Where to write the demo packet.")
@handle_errors
def demo(output: str) -> None:
    """Write a packet for a made-up patient on the built-in demo brand."""
    from .demo import DEMO_RECORD
    from .render import get_renderer

    document = get_renderer().packet(DEMO_RECORD)
    try:
        where = _write_output(document.pdf, output, output, force=True)
    except OSError as exc:
        raise OutputError("Could not write the demo packet",
                          [Problem("output", exc.strerror or "cannot write", "pick another path")]
                          ) from None
    click.echo(f"Wrote a {document.pages}-page demo packet to {where}")
