"""`myelo-docs site init|check|warm`: a hospital's site folder (issue #13)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from myelo_docs.cli.options import handle_errors
from myelo_docs.schema.errors import ConfigError, OutputError, exit_codes_help

FOLDER = click.Path(file_okay=False, path_type=Path)


@click.group("site")
def site() -> None:
    """Set up a hospital's own site folder: brand, protocol, text, defaults.

    Start with `site init DIR`, edit the files it writes, then run
    `site check DIR` after every edit. Use the folder with --site DIR (or
    MYELO_DOCS_SITE=DIR) on any command.
    """


@site.command("init", epilog=exit_codes_help(OutputError.exit_code))
@click.argument("folder", type=FOLDER)
@click.option("--force", is_flag=True,
              help="Write into a folder that is not empty (replaces only the files "
                   "`site init` writes).")
@handle_errors
def init(folder: Path, force: bool) -> None:
    """Write a new site folder, commented, from our defaults."""
    from myelo_docs.site.init import init_site

    written = init_site(folder, force=force)
    click.echo(f"Wrote a site folder in {folder}:")
    for path in written:
        click.echo(f"  {path.relative_to(folder)}")
    click.echo(f"Next: edit site.toml, brand.toml (and logo.svg) and protocol.toml, then run\n"
               f"  myelo-docs site check {folder}")


@site.command("check", epilog=exit_codes_help(ConfigError.exit_code))
@click.argument("folder", type=FOLDER)
@click.option("--preview", type=FOLDER,
              help="Where to write the preview packets. Default: DIR/preview.")
@click.option("--no-warm", is_flag=True,
              help="Do not build the fast path's templates (see `site warm`).")
@click.option("--thresholds", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file of reading-level limits, as for check-content.")
@handle_errors
def check(folder: Path, preview: Path | None, no_warm: bool, thresholds: Path | None) -> None:
    """Check a site: every file, the reading level and topics of its text, one
    preview packet per type and language (self-checked), and the fast path's
    templates. Prints a one-screen summary; exits 4 if anything must be fixed."""
    from myelo_docs.site.check import check_site, format_summary

    result = check_site(folder, preview=preview, warm=not no_warm, thresholds=thresholds)
    click.echo(format_summary(result))
    sys.exit(0 if result.ok else ConfigError.exit_code)


@site.command("warm", epilog=exit_codes_help(ConfigError.exit_code))
@click.argument("folder", type=FOLDER)
@handle_errors
def warm(folder: Path) -> None:
    """Build the fast path's cached templates for every type, offered language and
    print size, so the first packet of the day is as fast as the rest (run it after
    an install or a site change, e.g. from the batch job's first step)."""
    from myelo_docs.site import load_site, offered_languages
    from myelo_docs.site.check import site_renderer
    from myelo_docs.site.check import warm as warm_templates

    loaded = load_site(folder)
    done = warm_templates(site_renderer(loaded), offered_languages(loaded))
    if done.error:
        click.echo(f"Templates not built ({done.built} done): {done.error}. Packets are "
                   "still right; the first of each kind is slower.", err=True)
        return
    where = done.folder or "memory only (MYELO_DOCS_CACHE_DIR=off)"
    click.echo(f"{done.built} templates ready in {where} ({done.seconds:.0f} s).")
    if done.full:
        click.echo(f"{len(done.full)} kinds are left to the full render by the fast path: "
                   + ", ".join(done.full))
