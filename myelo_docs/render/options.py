"""The one options table: what a renderer is built from, declared once.

``RenderSettings`` lists the render options (``brand``, ``protocol``,
``font_dir``, ``paper`` and ``site``) with, per field, the flag, environment
variable, help text and kind. From it come the command line's options
(cli/options.py ``render_options``), the keyword arguments of the Python API
(``get_renderer``, ``render_packet``, ``render_handout``), and what batch and
service workers are built from (it is picklable).

Precedence, the same on every path: a value given explicitly (flag or
keyword) beats the site's value, which beats our default. ``site`` itself
comes from ``--site`` or else the environment variable ``MYELO_DOCS_SITE``
(on the command line; the Python API reads no environment).

Kept apart from engine.py so that front ends can hold settings without
importing WeasyPrint (a slow start-up).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from myelo_docs.schema.errors import ConfigError
from myelo_docs.schema.messages import error

if TYPE_CHECKING:
    from myelo_docs.schema.intake import IntakeSettings
    from myelo_docs.site import Site

SITE_VARIABLE = "MYELO_DOCS_SITE"
PAPERS = ("letter", "a4")
PRECEDENCE = "A flag beats the site's setting, which beats our default."


@dataclass(frozen=True)
class Option:
    """How one render option is shown: ``flag`` on the command line, ``env`` the
    environment variable that stands in for the flag (None: none), ``kind``
    file, folder or choice (with ``choices``), ``site_key`` the Site field
    that gives it when the flag does not (None: not a site setting)."""

    name: str
    flag: str
    help: str
    kind: Literal["file", "folder", "choice"]
    choices: tuple[str, ...] = ()
    env: str | None = None
    site_key: str | None = None


def _option(flag: str, help: str, kind: Literal["file", "folder", "choice"],
            choices: tuple[str, ...] = (), env: str | None = None,
            site_key: str | None = None) -> Any:
    spec = {"flag": flag, "help": help, "kind": kind, "choices": choices, "env": env,
            "site_key": site_key}
    return field(default=None, metadata={"option": spec})


@dataclass(frozen=True)
class RenderSettings:
    """The render options as given (None: not given). Paths may be str; they are
    kept as absolute Paths. Picklable and hashable: each worker process
    (batch, HTTP) builds its own warm renderer from them."""

    brand: Path | None = _option(
        "--brand", "Brand file (brand.toml with its logo). Default: the site's brand.toml, "
        "else the built-in demo brand.", "file", site_key="brand")
    protocol: Path | None = _option(
        "--protocol", "Protocol settings file (TOML); keys not given keep their defaults. "
        "Default: the site's protocol.toml, else ours.", "file", site_key="protocol")
    font_dir: Path | None = _option(
        "--font-dir", "Extra folder of .ttf/.otf fonts for scripts the bundled fonts lack. "
        "Default: the site's font folder, if it names one.", "folder", site_key="font_dir")
    paper: str | None = _option(
        "--paper", "Paper size. Default: the site's, else the brand's.", "choice",
        choices=PAPERS, site_key="paper")
    site: Path | None = _option(
        "--site", "A hospital's site folder (see `myelo-docs site init`): its brand, "
        f"protocol, text and defaults. Default: ${SITE_VARIABLE}, if set; --site wins over "
        f"it. {PRECEDENCE}", "folder", env=SITE_VARIABLE)

    def __post_init__(self) -> None:
        for option in OPTIONS:
            value = getattr(self, option.name)
            if value is None:
                continue
            if option.kind == "choice":
                value = str(value).strip().lower()
            elif str(value).strip() == "":
                value = None  # given empty (MYELO_DOCS_SITE=): not given
            else:
                value = Path(value).expanduser().resolve()
            object.__setattr__(self, option.name, value)

    def load_site(self) -> Site | None:
        """The site folder's settings, or None without a site. Raises ConfigError."""
        return _load_site(self.site) if self.site is not None else None

    def resolved(self) -> Resolved:
        """Every option with the site's value where none was given, checked.

        Raises ConfigError for a bad site folder or a font folder that is not
        there."""
        site = self.load_site()
        values: dict[str, Any] = {}
        for option in OPTIONS:
            value = getattr(self, option.name)
            if value is None and site is not None and option.site_key is not None:
                value = getattr(site, option.site_key)
            values[option.name] = value
        values.pop("site")
        resolved = Resolved(**values, content=site.content if site else None,
                            languages=tuple(site.languages) if site else (), site=site)
        resolved.check()
        return resolved

    def intake(self, mrn_systems: tuple[str, ...] = (), mrn_pattern: str | None = None,
               ) -> IntakeSettings:
        """The intake settings: the flags given here, else the site's."""
        return intake_for(self.load_site(), mrn_systems, mrn_pattern)


OPTIONS: tuple[Option, ...] = tuple(
    Option(name=f.name, **f.metadata["option"]) for f in fields(RenderSettings))


@dataclass(frozen=True)
class Resolved:
    """The settings a Renderer is built from: flags and site merged (see
    RenderSettings.resolved). ``content``: the site's text-override folder;
    ``languages``: the languages the site offers (() = every one we ship)."""

    brand: Path | None = None
    protocol: Path | None = None
    font_dir: Path | None = None
    paper: str | None = None
    content: Path | None = None
    languages: tuple[str, ...] = ()
    site: Site | None = field(default=None, compare=False, hash=False)

    def check(self) -> None:
        """The font folder must be there (the Renderer checks the rest)."""
        if self.font_dir is not None and not self.font_dir.is_dir():
            raise error(ConfigError, "font_dir_missing", "font_dir", path=self.font_dir)

    def offered(self) -> list[str]:
        """The languages printed with these settings (see offered_languages)."""
        return offered_languages(self.languages, self.content)

    def key(self) -> Resolved:
        """What makes renderers differ (the site model itself does not)."""
        return replace(self, site=None)


def offered_languages(languages: tuple[str, ...] = (),
                      content: Path | None = None) -> list[str]:
    """The languages a site offers (``languages``), else every one with
    patient text: ours and those of the site's ``content`` folder."""
    from myelo_docs.schema.languages import available_languages

    if languages:
        return list(languages)
    if content is None:
        return available_languages()
    from myelo_docs.content.overrides import site_languages

    return sorted({*available_languages(), *site_languages(content)})


def site_value(given: Any, site: Site | None, key: str, default: Any = None) -> Any:
    """The precedence rule for a setting outside the table (--encoding,
    --columns, --name-pattern, large print...): the given value, else the
    site's, else the default."""
    if given not in (None, ()):
        return given
    if site is not None:
        value = getattr(site, key)
        if value not in (None, ()):
            return value
    return default


def intake_for(site: Site | None, mrn_systems: tuple[str, ...] = (),
               mrn_pattern: str | None = None) -> IntakeSettings:
    """IntakeSettings from the --mrn-system/--mrn-pattern flags, else the site's;
    the site's large-print default and offered languages."""
    from myelo_docs.schema.intake import IntakeSettings

    systems = tuple(mrn_systems)
    if not systems and site is not None:
        given = getattr(site, "mrn_systems", None) or getattr(site, "mrn_system", None)
        systems = (given,) if isinstance(given, str) else tuple(given or ())
    return IntakeSettings(mrn_systems=systems,
                          mrn_pattern=site_value(mrn_pattern, site, "mrn_pattern"),
                          large_print=bool(site is not None and site.large_print),
                          languages=tuple(site.languages) if site is not None else ())


def _load_site(folder: Path) -> Site:
    """load_site, read again only when site.toml changes (it is asked for on
    every API call; reading and checking it takes a few milliseconds)."""
    from myelo_docs.site import SITE_FILE

    try:
        found = (folder / SITE_FILE).stat()
        stamp: tuple[int, int] | None = (found.st_mtime_ns, found.st_size)
    except OSError:
        stamp = None  # load_site says what is missing
    return _site_as_of(folder, stamp)


@lru_cache(maxsize=16)
def _site_as_of(folder: Path, stamp: tuple[int, int] | None) -> Site:
    from myelo_docs.site import load_site

    return load_site(folder)


