"""The command line: thin adapters over the core (render/engine.py); the render
options and --site come from the one options table (render/options.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from myelo_docs.about import __version__
from myelo_docs.cli.batch import batch, validate
from myelo_docs.cli.options import handle_errors, intake_options, render_options
from myelo_docs.cli.site import site
from myelo_docs.output.files import check_target, default_packet_name, write_atomic
from myelo_docs.render.options import RenderSettings
from myelo_docs.schema.errors import (
    EXIT_CODES,
    ConfigError,
    MyeloDocsError,
    OutputError,
    RecordError,
    SelfCheckError,
    exit_codes_help,
)
from myelo_docs.schema.languages import available_languages
from myelo_docs.schema.messages import error, phrase, title
from myelo_docs.schema.problems import relabel
from myelo_docs.schema.record import MAX_INSTRUCTIONS, MAX_MEDICATIONS

RECORD_ERR, CONFIG_ERR = RecordError.exit_code, ConfigError.exit_code
OUTPUT_ERR, SELF_CHECK_ERR = OutputError.exit_code, SelfCheckError.exit_code


LANGUAGES = available_languages()
LANGUAGE_HELP = (f"Language: {', '.join(LANGUAGES)}; any case, a region tag counts as its "
                 "language (es-MX is es).")

# The record's fields as flags of `packet`, declared once: the options are made
# from this table, and errors about a field given by flag name the flag
# ("--mrn: is required but missing. Fix: add --mrn").
RECORD_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "type": ("--type", {"metavar": "TYPE",
                        "help": "cervical, thoracic or lumbar (any case); a test of several "
                                "parts joins them with +, like cervical+lumbar."}),
    "patient_name": ("--patient-name", {"help": "The patient's full name, as on their "
                                                "wristband."}),
    "date_of_birth": ("--date-of-birth", {"metavar": "YYYY-MM-DD", "help": "Date of birth."}),
    "mrn": ("--mrn", {"help": "Medical record number, printed as given."}),
    "procedure_date": ("--procedure-date", {"metavar": "YYYY-MM-DD",
                                            "help": "Date of the myelogram."}),
    "physician": ("--physician", {"help": "The doctor who did the test."}),
    "nurse": ("--nurse", {"help": "The discharging nurse."}),
    "follow_up": ("--follow-up", {"help": "Follow-up appointment or plan."}),
    "instructions": ("--instruction", {
        "multiple": True,
        "help": f"An extra recovery instruction (repeat for more, up to {MAX_INSTRUCTIONS})."}),
    "medications": ("--medication", {
        "multiple": True, "metavar": '"NAME: INSTRUCTION"',
        "help": f"A medicine and what to do with it (repeat for more, up to "
                f"{MAX_MEDICATIONS})."}),
    "language": ("--language", {"help": LANGUAGE_HELP + " Default: en."}),
    "large_print": ("--large-print", {"is_flag": True, "default": None,
                                      "help": "Large print (18 pt text)."}),
}


def flag_of(field: str) -> str:
    """The flag that gives a record field (instructions -> --instruction)."""
    return RECORD_FLAGS[field][0] if field in RECORD_FLAGS else "--" + field.replace("_", "-")


def record_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """One option per record field, from RECORD_FLAGS; each arrives under its field name."""
    for field, (flag, kwargs) in reversed(RECORD_FLAGS.items()):
        func = click.option(flag, field, **kwargs)(func)
    return func


def warn_languages(record: Any, names: dict[str, str]) -> None:
    """On stderr, each nurse-typed field that looks like another language than the
    packet's (content/language_check.py), by flag or field name, never its text."""
    from myelo_docs.content.language_check import language_nudges

    for nudge in language_nudges(record):
        head, sep, rest = nudge.field.partition(" ")
        click.echo(f"Warning: {nudge.message(names.get(head, head) + sep + rest)}.", err=True)


def in_flags(exc: MyeloDocsError, names: dict[str, str],
             missing: dict[str, str] | None = None) -> MyeloDocsError:
    """The same error naming the flags the user typed instead of record fields."""
    return type(exc)(exc.message, relabel(exc.problems, names, missing))


ARCHIVE_HELP = ("Write PDF/A-3u for archiving in the record (still tagged; "
                "cannot be combined with --encrypt).")


def settings_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("-o", "--output", type=str,
                     help="Output PDF file, or - for standard output."),
        click.option("--force", is_flag=True, help="Replace the output file if it exists."),
    ]
    for option in reversed(options):
        func = option(func)
    return render_options()(func)


def password_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="File whose first line is the password (keep it readable only by you)."),
        click.option("--password-env", metavar="NAME",
                     help="Environment variable that holds the password."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _password(file: Path | None, env: str | None, required: bool) -> str | None:
    """The password from --password-file or --password-env; never a command-line value."""
    from myelo_docs.output.encrypt import read_password

    if file is not None and env is not None:
        raise click.UsageError(title("cli_passwords_both"))
    if file is None and env is None and not required:
        return None
    return read_password(file, env, new=required)


def check_output(output: str | None, stdout: Any = None) -> None:
    """Before any work: refuse -o - when standard output is a terminal (a PDF
    there is screenfuls of raw bytes), and warn about a name not ending in .pdf."""
    if output == "-":
        stream = stdout if stdout is not None else sys.stdout
        if stream.isatty():
            raise error(OutputError, "cli_stdout_terminal", "-o -")
    elif output is not None and not output.lower().endswith(".pdf"):
        click.echo(phrase("cli_not_pdf_name", output=output), err=True)


def _write_output(pdf: bytes, output: str | None, default_name: str, force: bool) -> str:
    if output == "-":
        sys.stdout.buffer.write(pdf)
        sys.stdout.buffer.flush()
        return "standard output"
    path = Path(output or default_name)
    try:
        write_atomic(path, pdf, overwrite=force)
    except OutputError as exc:
        raise (in_flags(exc, {"output": "-o"}) if output else exc) from None
    return str(path)


def _read_text(source: str, option: str, what: str) -> str:
    """A UTF-8 file (BOM allowed), or standard input for -."""
    try:
        return sys.stdin.read() if source == "-" else \
            Path(source).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(RecordError, "cli_file_missing", option, what=what,
                    source=source) from None
    except UnicodeDecodeError:
        raise error(RecordError, "cli_not_utf8", option, what=what) from None


def _read_input(source: str) -> dict[str, Any]:
    from myelo_docs.formats.json_input import parse_json

    text = _read_text(source, "--input", "input file")
    data = parse_json(text, "--input", phrase("json_fix_input"))
    if not isinstance(data, dict):
        raise error(RecordError, "cli_input_not_object", "--input")
    return data


def _given_fields(flags: dict[str, Any]) -> dict[str, Any]:
    """The record fields given by flag, as the record takes them."""
    given = {key: value for key, value in flags.items() if value not in (None, ())}
    if "instructions" in given:
        given["instructions"] = list(given["instructions"])
    if "medications" in given:
        given["medications"] = [_medication(m) for m in given["medications"]]
    return given


def _medication(text: str) -> dict[str, str]:
    name, sep, instruction = text.partition(":")
    if not sep:
        raise error(RecordError, "cli_medication_no_colon", "--medication")
    return {"name": name.strip(), "instruction": instruction.strip()}


def _fhir_source(fhir_file: str, flags: dict[str, Any], intake: Any) -> Any:
    from myelo_docs.formats.fhir import packet_from_bundle

    text = _read_text(fhir_file, "--fhir", "FHIR file")
    return packet_from_bundle(text, overrides=flags, intake_settings=intake, give=flag_of)


def _write_document_reference(pdf: bytes, source: Any, fhir_out: str, force: bool,
                              brand: Any, subject: str | None, binary: bool) -> None:
    from myelo_docs.formats.fhir_out import document_reference, transaction

    build = transaction if binary else document_reference
    resource = build(pdf, source, brand, patient_reference=subject)
    body = (json.dumps(resource, indent=2) + "\n").encode()
    if fhir_out == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return
    write_atomic(Path(fhir_out), body, overwrite=force)
    click.echo(f"Wrote the DocumentReference to {fhir_out}", err=True)


@click.group(epilog=exit_codes_help(*EXIT_CODES),
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="myelo-docs")
def main() -> None:
    """Print the handout and discharge packet a myelogram patient takes home."""


@main.command(epilog=exit_codes_help(RECORD_ERR, CONFIG_ERR, OUTPUT_ERR, SELF_CHECK_ERR))
@click.option("--input", "input_file", metavar="FILE.json",
              help="Read the record from a JSON file (- for standard input). "
                   "Flags below add to or replace its fields.")
@click.option("--fhir", "fhir_file", metavar="BUNDLE.json",
              help="Read the patient and the myelogram from a FHIR R4 Bundle (- for standard "
                   "input). Flags below add to or replace what it says.")
@click.option("--fhir-out", metavar="DOCREF.json",
              help="Write a FHIR DocumentReference carrying the PDF (- for standard output) "
                   "instead of the PDF file; add -o to write the PDF as well. Needs --fhir.")
@click.option("--fhir-subject", metavar="Patient/ID",
              help="The Patient's id on the FHIR server the DocumentReference goes to; "
                   "without it, the subject is the MRN identifier.")
@click.option("--fhir-binary", is_flag=True,
              help="With --fhir-out: write a transaction Bundle of the PDF as a Binary and "
                   "the DocumentReference pointing at it, for servers that refuse large "
                   "inline data.")
@record_options
@click.option("--encrypt", is_flag=True,
              help="Encrypt the PDF with AES-256 (for packets that leave the building); "
                   "needs --password-file or --password-env.")
@password_options
@click.option("--full-render", is_flag=True,
              help="Render in full with WeasyPrint, not from a cached template.")
@click.option("--archive", is_flag=True, help=ARCHIVE_HELP)
@intake_options
@settings_options
@handle_errors
def packet(input_file: str | None, render: RenderSettings, output: str | None, force: bool,
           encrypt: bool, password_file: Path | None, password_env: str | None,
           fhir_file: str | None, fhir_out: str | None, fhir_subject: str | None,
           fhir_binary: bool, archive: bool, full_render: bool,
           mrn_systems: tuple[str, ...], mrn_pattern: str | None, **fields: Any) -> None:
    """Write the discharge packet for one patient.

    Give the record with flags, or with --input FILE.json using the same field
    names (type, patient_name, date_of_birth, mrn, procedure_date, physician,
    nurse, follow_up, instructions, medications, language, large_print).
    """
    from myelo_docs.schema.record import validate_record

    password = _password(password_file, password_env, required=encrypt)
    if password is not None and not encrypt:
        raise click.UsageError(title("cli_password_without_encrypt"))
    if input_file and fhir_file:
        raise click.UsageError(title("cli_input_and_fhir"))
    if fhir_out and not fhir_file:
        raise click.UsageError(title("cli_fhir_out_needs_fhir"))
    if (fhir_subject or fhir_binary) and not fhir_out:
        raise click.UsageError(title("cli_fhir_subject_needs_out"))
    if fhir_out and fhir_out != "-":
        check_target(Path(fhir_out), overwrite=force, option="--fhir-out")  # before the render
    if fhir_subject:
        from myelo_docs.formats.fhir_out import check_patient_reference

        check_patient_reference(fhir_subject, "--fhir-subject")
    if archive and encrypt:
        raise click.UsageError(title("cli_archive_encrypt"))
    check_output(output)
    data = _read_input(input_file) if input_file else {}
    given = _given_fields(fields)
    data.update(given)
    # Errors name what the user typed: the flag, else the JSON key (the field name);
    # a missing field, the flag unless the record came from a file.
    names = {field: flag_of(field) for field in RECORD_FLAGS
             if field in given or not input_file}
    missing = {field: f"add {flag_of(field)}" + (f", or \"{field}\" to {input_file}"
                                                  if input_file else "")
               for field in RECORD_FLAGS}
    from myelo_docs.render.engine import renderer_for

    intake = render.intake(mrn_systems, mrn_pattern)
    renderer = renderer_for(render)
    source = None
    try:
        source = _fhir_source(fhir_file, data, intake) if fhir_file else None
        record = source.record if source else validate_record(data, intake)
        document = renderer.packet(record, archive=archive, full_render=full_render)
    except RecordError as exc:
        raise (source.explain(exc) if source else in_flags(exc, names, missing)) from None
    warn_languages(record, names)
    pdf = document.pdf
    if password is not None:
        from myelo_docs.output.encrypt import ALGORITHM, encrypt_pdf

        pdf = encrypt_pdf(pdf, password)
    if source is not None and fhir_out:
        _write_document_reference(pdf, source, fhir_out, force, renderer.brand, fhir_subject,
                                  fhir_binary)
        if output is None:
            return
    where = _write_output(pdf, output, default_packet_name(record), force)
    if output != "-":
        note = f" ({ALGORITHM} encrypted)" if password is not None else ""
        click.echo(f"Wrote {document.pages}-page packet to {where}{note}", err=True)


@main.command(epilog=exit_codes_help(RECORD_ERR, CONFIG_ERR, OUTPUT_ERR, SELF_CHECK_ERR))
@click.option("--type", "type_", required=True, metavar="TYPE",
              help=RECORD_FLAGS["type"][1]["help"])
@click.option("--language", default="en", show_default=True, help=LANGUAGE_HELP)
@click.option("--large-print/--regular-print", default=None,
              help="Large print (18 pt text). Default: the site's choice, else regular.")
@click.option("--archive", is_flag=True, help=ARCHIVE_HELP)
@settings_options
@handle_errors
def handout(type_: str, language: str, large_print: bool | None, render: RenderSettings,
            output: str | None, force: bool, archive: bool) -> None:
    """Write the education handout for one myelogram type (no patient details)."""
    from myelo_docs.render.engine import renderer_for, validate_language, validate_type

    check_output(output)
    renderer = renderer_for(render)
    flags = {field: flag_of(field) for field in ("type", "language")}
    try:
        kind = validate_type(type_)
        language = validate_language(language, renderer.available_languages())
    except RecordError as exc:
        raise in_flags(exc, flags) from None
    if large_print is None:
        large_print = render.intake().large_print
    document = renderer.handout(kind, language, large_print, archive=archive)
    where = _write_output(document.pdf, output, f"myelogram-handout-{kind.value}-{language}.pdf",
                          force)
    if output != "-":
        click.echo(f"Wrote {document.pages}-page handout to {where}", err=True)


@main.command(epilog=exit_codes_help(OUTPUT_ERR, SELF_CHECK_ERR))
@click.option("-o", "--output", default="myelo-demo-packet.pdf", show_default=True,
              help="Where to write the demo packet (- for standard output).")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@render_options("site")
@handle_errors
def demo(output: str, force: bool, render: RenderSettings) -> None:
    """Write a packet for a made-up patient on the built-in demo brand (or the site's)."""
    from myelo_docs.cli.demo import DEMO_RECORD
    from myelo_docs.render.engine import renderer_for

    check_output(output)
    if output != "-":
        check_target(Path(output), overwrite=force, option="-o")  # before the render
    document = renderer_for(render).packet(DEMO_RECORD)
    try:
        where = _write_output(document.pdf, output, output, force=force)
    except OSError as exc:
        raise error(OutputError, "cli_demo_unwritable", "-o",
                    reason=exc.strerror or phrase("cli_cannot_write")) from None
    if output != "-":
        click.echo(f"Wrote a {document.pages}-page demo packet to {where}", err=True)


@main.command("inspect", epilog=exit_codes_help(RECORD_ERR, CONFIG_ERR))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the details as JSON.")
@password_options
@handle_errors
def inspect_command(file: Path, as_json: bool, password_file: Path | None,
                    password_env: str | None) -> None:
    """Show which versions made a PDF: tool, patient text, templates, brand, protocol.

    Reads only the file's metadata: it shows no patient details. An encrypted
    packet needs its password to be read.
    """
    from myelo_docs.verify.inspect_pdf import format_report, inspect_pdf

    result = inspect_pdf(file, _password(password_file, password_env, required=False))
    click.echo(json.dumps(result, indent=2) if as_json else format_report(result))


@main.command("check-content", epilog=exit_codes_help(CONFIG_ERR))
@click.option("--content-dir", type=click.Path(file_okay=False, path_type=Path),
              help="A hospital's content folder (en/, es/, ... subfolders). Default: ours.")
@click.option("--language", "languages", multiple=True,
              help="Check only this language (repeat for more; any case, es-MX is es). "
                   "Default: every one found.")
@click.option("--thresholds", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file of limits: [en] formula, section, whole (see README).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@render_options("site")
@handle_errors
def check_content(content_dir: Path | None, languages: tuple[str, ...],
                  thresholds: Path | None, as_json: bool, render: RenderSettings) -> None:
    """Report the reading level of the patient text, per language and section.

    With --site, the text measured is ours with the site's overrides on top,
    in the languages the site offers (--language narrows it).
    Exits with code 4 if a section or a whole handout is over its limit.
    """
    from myelo_docs.content.readability import check, failures, format_report
    from myelo_docs.render.options import site_value
    from myelo_docs.schema.errors import ConfigError
    from myelo_docs.schema.record import language_code

    loaded = render.load_site()
    chosen = site_value(tuple(language_code(code) for code in languages), loaded, "languages", ())
    reports = check(content_dir, list(chosen) or None, thresholds,
                    overrides=loaded.content if loaded else None)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in reports], ensure_ascii=False, indent=2))
    else:
        click.echo(format_report(reports))
    problems = failures(reports)
    if problems:
        raise ConfigError(title("cli_readability_failed"), problems)


@main.command(epilog=exit_codes_help(CONFIG_ERR))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs the environment "
                   "variable MYELO_DOCS_TOKEN (the API's bearer token).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port to listen on.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Render worker processes; one per CPU core is right.")
@click.option("--queue", default=8, show_default=True, type=click.IntRange(0, 1000),
              help="Requests that may wait for a free worker; past that the answer is 503.")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds a request may wait for its PDF (queue included); then 504, and "
                   "a render still running is stopped (its worker replaced).")
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False),
              help="TLS certificate (PEM), to serve HTTPS without a proxy in front.")
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False),
              help="TLS private key (PEM) for --ssl-certfile.")
@click.option("--fhir-max-mb", default=16.0, show_default=True,
              type=click.FloatRange(min=0.1, max=1024),
              help="Largest FHIR Bundle POST /v1/fhir/packets takes, in MB (EHR patient "
                   "bundles are 0.3-4 MB); other routes keep their 256 KB limit.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="A host name clients use to reach the service (repeatable; '*' for any, "
                   "only behind a proxy that checks it). Loopback names and --host are "
                   "always allowed; requests to other names get 400.")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="ADDRESS",
              help="Address of a reverse proxy whose X-Forwarded-For names the client, for "
                   "the access log and the wrong-token limit (repeatable). Default: none; "
                   "without it every client is logged and limited by its own address.")
@click.option("--read-timeout", default=20.0, show_default=True,
              type=click.FloatRange(min=0.5, max=600),
              help="Seconds a client has to send its headers, then its body; then 408.")
@click.option("--max-connections", default=200, show_default=True,
              type=click.IntRange(1, 100_000),
              help="Connections open at once; past that, new ones get 503 with Retry-After.")
@click.option("--max-connections-per-client", default=50, show_default=True,
              type=click.IntRange(1, 100_000),
              help="Connections open at once from one address (a --trusted-proxy is not "
                   "limited); past that, 503.")
@intake_options
@render_options()
@handle_errors
def serve(host: str, port: int, workers: int, queue: int, timeout: float,
          ssl_certfile: str | None, ssl_keyfile: str | None, fhir_max_mb: float,
          allowed_hosts: tuple[str, ...], trusted_proxies: tuple[str, ...],
          read_timeout: float, max_connections: int, max_connections_per_client: int,
          mrn_systems: tuple[str, ...], mrn_pattern: str | None,
          render: RenderSettings) -> None:
    """Run the HTTP service: the nurse's page at /, the JSON API under /v1/.

    Listens on 127.0.0.1 unless --host says otherwise (then MYELO_DOCS_TOKEN must
    hold a secret of at least 32 random characters). The access log shows client
    address, method, route, status and time, never patient data or the token.
    Stop with Ctrl-C.
    """
    from myelo_docs import service

    settings = service.ServiceSettings(host=host, token=service.token_from_environment(),
                                       render_timeout=timeout, allowed_hosts=allowed_hosts,
                                       trusted_proxies=trusted_proxies,
                                       read_timeout=read_timeout,
                                       max_connections=max_connections,
                                       max_connections_per_client=max_connections_per_client,
                                       fhir_max_body=int(fhir_max_mb * 1024 * 1024),
                                       intake=render.intake(mrn_systems, mrn_pattern))
    service.serve(settings, render, port=port,
                  workers=workers, queue=queue, ssl_certfile=ssl_certfile,
                  ssl_keyfile=ssl_keyfile)


@main.command(epilog=exit_codes_help())
@handle_errors
def schema() -> None:
    """Print the JSON Schema of the patient record (for validating before sending)."""
    from myelo_docs.schema.json_schema import record_schema

    click.echo(json.dumps(record_schema(), indent=2))


main.add_command(batch)
main.add_command(validate)
main.add_command(site)
