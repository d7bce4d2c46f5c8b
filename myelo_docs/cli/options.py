"""What every command shares: the one rule for choices, error handling, and the
option groups several commands take. (Commands live in cli.py and cli_batch.py;
both import from here, never from each other's side.)"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from myelo_docs.schema.errors import Interrupted, MyeloDocsError


class Choice(click.Choice):
    """The one rule for a choice on the command line, as in the record: any case,
    spaces around it trimmed (--paper ' A4' is a4)."""

    def __init__(self, choices: list[str]):
        super().__init__(choices, case_sensitive=False)

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        return super().convert(value.strip() if isinstance(value, str) else value, param, ctx)


PAPER = Choice(["letter", "a4"])


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user errors into a clear message and exit code; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MyeloDocsError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:  # files are written whole or not at all
            click.echo("Stopped with Ctrl-C; nothing half-written is left.", err=True)
            sys.exit(Interrupted.exit_code)
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


def render_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--brand, --protocol, --font-dir and --paper: what a Renderer is built from."""
    options = [
        click.option("--brand", type=click.Path(dir_okay=False, path_type=Path),
                     help="Brand file (brand.toml with its logo). "
                     "Default: the built-in demo brand."),
        click.option("--protocol", type=click.Path(dir_okay=False, path_type=Path),
                     help="Protocol settings file (TOML); keys not given keep their defaults."),
        click.option("--font-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Extra folder of .ttf/.otf fonts for scripts the bundled fonts lack."),
        click.option("--paper", type=PAPER, help="Paper size. Default: the brand's."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def mrn_pattern_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--mrn-pattern: the hospital's MRN pattern (intake.py), for every input."""
    from myelo_docs.schema.intake import MRN_PATTERN_HELP

    return click.option("--mrn-pattern", metavar="REGEX", help=MRN_PATTERN_HELP)(func)


def intake_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--mrn-system and --mrn-pattern: the hospital's intake settings, for FHIR input."""
    from myelo_docs.schema.intake import MRN_SYSTEM_HELP

    func = mrn_pattern_option(func)
    return click.option("--mrn-system", "mrn_systems", multiple=True, metavar="URI",
                        help=MRN_SYSTEM_HELP)(func)


def intake_settings(mrn_systems: tuple[str, ...] = (), mrn_pattern: str | None = None) -> Any:
    """The IntakeSettings the --mrn-system/--mrn-pattern flags describe."""
    from myelo_docs.schema.intake import IntakeSettings

    return IntakeSettings(mrn_systems=mrn_systems, mrn_pattern=mrn_pattern)
