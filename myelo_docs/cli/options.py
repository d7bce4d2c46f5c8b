"""What every command shares: the one rule for choices, error handling, and the
option groups several commands take; the render options (--site among them)
are made from the one options table in render/options.py. (Commands live in
cli/main.py, cli/batch.py and cli/site.py; they import from here, never from
each other's side.)"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from myelo_docs.render.options import OPTIONS, Option, RenderSettings
from myelo_docs.schema.errors import Interrupted, MyeloDocsError
from myelo_docs.schema.messages import phrase


class Choice(click.Choice):
    """The one rule for a choice on the command line, as in the record: any case,
    spaces around it trimmed (--paper ' A4' is a4)."""

    def __init__(self, choices: list[str]):
        super().__init__(choices, case_sensitive=False)

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        return super().convert(value.strip() if isinstance(value, str) else value, param, ctx)


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
            click.echo(phrase("cli_stopped"), err=True)
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


def _click_type(option: Option) -> Any:
    if option.kind == "choice":
        return Choice(list(option.choices))
    if option.kind == "file":
        return click.Path(dir_okay=False, path_type=Path)
    return click.Path(file_okay=False, path_type=Path)


def render_options(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The render options of the one table (render/options.py: --brand, --protocol,
    --font-dir, --paper, --site; or only ``names``), given to the command as one
    RenderSettings in its ``render`` parameter."""
    chosen = [o for o in OPTIONS if not names or o.name in names]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(func)
        def collect(*args: Any, **kwargs: Any) -> Any:
            given = {o.name: kwargs.pop(o.name) for o in chosen}
            return func(*args, render=RenderSettings(**given), **kwargs)

        command = collect
        for option in reversed(chosen):
            command = click.option(option.flag, option.name, type=_click_type(option),
                                   envvar=option.env, show_envvar=option.env is not None,
                                   help=option.help)(command)
        return command

    return decorate


def mrn_pattern_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--mrn-pattern: the hospital's MRN pattern (intake.py), for every input."""
    from myelo_docs.schema.intake import MRN_PATTERN_HELP

    return click.option("--mrn-pattern", metavar="REGEX",
                        help=MRN_PATTERN_HELP + " Default: the site's.")(func)


def intake_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--mrn-system and --mrn-pattern: the hospital's intake settings, for FHIR input."""
    from myelo_docs.schema.intake import MRN_SYSTEM_HELP

    func = mrn_pattern_option(func)
    return click.option("--mrn-system", "mrn_systems", multiple=True, metavar="URI",
                        help=MRN_SYSTEM_HELP + " Default: the site's.")(func)


