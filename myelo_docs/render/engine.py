"""The core: record + brand + protocol + content -> verified PDF bytes.

A ``Renderer`` is built once per brand/protocol/font setting (fonts, CSS,
templates and content are loaded then) and reused for every packet; the CLI,
the Python API, batch and HTTP all go through it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from babel.dates import format_date

from myelo_docs.about import __version__
from myelo_docs.assets import templates_dir
from myelo_docs.content.loader import Content, load_content, localised
from myelo_docs.render.document import Document, display_identifiers
from myelo_docs.render.fetcher import LockedFetcher
from myelo_docs.render.fonts import FontSet, check_glyphs, font_set, header_lines
from myelo_docs.render.stamp import PayloadFor, payloads_for, stamp_pages
from myelo_docs.render.tagging import finish_tags
from myelo_docs.schema.brand import Brand, load_brand
from myelo_docs.schema.errors import ConfigError, MissingGlyphError, Problem
from myelo_docs.schema.protocol import Protocol, load_protocol
from myelo_docs.schema.record import (
    MyelogramType,
    PacketRecord,
    language_code,
    text_fields,
    validate_record,
)
from myelo_docs.verify.provenance import (
    CODE_FORMAT,
    add_info,
    content_provenance,
    renderer_provenance,
)
from myelo_docs.verify.selfcheck import verify_pdf

if TYPE_CHECKING:
    from weasyprint import CSS


class _MissingGlyphWatch(logging.Handler):
    """Catches WeasyPrint's ".notdef glyph rendered" warning during a render.

    The fonts are checked before rendering; this is the second line of
    defence, so that a box never reaches paper. It keeps only the code point.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith(".notdef glyph") and len(record.args or ()) == 2:
            seen = getattr(self.local, "codepoints", None)
            if seen is not None:
                seen.append(record.args[1])  # type: ignore[index]

    @contextmanager
    def watching(self) -> Iterator[list[int]]:
        self.local.codepoints = []
        try:
            yield self.local.codepoints
        finally:
            self.local.codepoints = None


_GLYPH_WATCH = _MissingGlyphWatch()
# WeasyPrint's warnings can quote document text; patient text must not reach logs.
for _name in ("weasyprint", "weasyprint.progress", "fontTools", "pypdf"):
    _logger = logging.getLogger(_name)
    _logger.handlers[:] = [logging.NullHandler()]
    _logger.propagate = False
logging.getLogger("weasyprint").addHandler(_GLYPH_WATCH)

PDF_VARIANT = "pdf/ua-1"
# --archive: PDF/A-3u for the record, still tagged (WeasyPrint writes one
# identification per file, so it claims PDF/A-3u, not PDF/UA as well).
ARCHIVE_VARIANT = "pdf/a-3u"


class Renderer:
    """Everything loaded once for one brand, protocol and font setting."""

    def __init__(
        self,
        brand: Brand | None = None,
        protocol: Protocol | None = None,
        font_dir: Path | None = None,
        paper: str | None = None,
    ):
        self.brand = brand or load_brand()
        self.protocol = protocol or load_protocol()
        self.fonts: FontSet = font_set(font_dir)
        self.paper = paper or self.brand.paper
        if self.paper not in ("letter", "a4"):
            raise ConfigError("Unknown paper size", [
                Problem("paper", f"'{self.paper}' is not known", "use letter or a4")])
        self._check_brand_glyphs()
        templates = templates_dir()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.fetcher = LockedFetcher(
            folders=[templates, *self.fonts.folders], files=[self.brand.logo_path]
        )
        self._page_css: dict[str, CSS] = {}
        self._margin_css: dict[int, CSS] = {}
        self.provenance = renderer_provenance(self.brand, self.protocol, self.fonts)
        # The fast path draws with the bundled faces only; a hospital's own
        # fonts (--font-dir) always get the full render.
        self.fast_path = font_dir is None
        self._fast: Any = None

    # WeasyPrint is loaded on the first full render: a worker drawing packets
    # from cached templates (fastpath/) never needs it.
    @cached_property
    def font_config(self) -> Any:
        from weasyprint.text.fonts import FontConfiguration

        return FontConfiguration()

    @cached_property
    def stylesheets(self) -> list[CSS]:
        from weasyprint import CSS

        options = {"font_config": self.font_config, "url_fetcher": self.fetcher}
        return [CSS(string=self.fonts.font_face_css(), **options),
                CSS(filename=str(templates_dir() / "print.css"), **options),
                CSS(string=self._brand_css(), **options)]

    def _brand_css(self) -> str:
        size = "letter" if self.paper == "letter" else "A4"
        return (
            f"@page {{ size: {size}; }}\n"
            f":root {{ --primary: {self.brand.primary_colour}; "
            f"--accent: {self.brand.accent_colour}; }}\n"
            f"html {{ font-family: {self.fonts.css_stack()}; }}\n"
        )

    def _check_brand_glyphs(self) -> None:
        fields = {f"brand {k}": v for k, v in self.brand.model_dump().items()
                  if isinstance(v, str)}
        try:
            check_glyphs(fields, self.fonts)
        except MissingGlyphError as exc:  # the brand file, not the record, is at fault
            raise ConfigError(exc.message, exc.problems) from None

    def content(self, language: str) -> Content:
        return load_content(language)

    def _language_css(self, language: str) -> CSS:
        """Page numbering words ("Page 1 of 9") for one language, built once."""
        from weasyprint import CSS

        if language not in self._page_css:
            labels = self.content(language).data["labels"]["labels"]
            page, of = (_css_string(labels[k]) for k in ("page", "of"))
            self._page_css[language] = CSS(
                string=f"@page {{ @bottom-right {{ content: {page} \" \" counter(page) "
                       f"\" \" {of} \" \" counter(pages); }} }}",
                font_config=self.font_config, url_fetcher=self.fetcher)
        return self._page_css[language]

    def _context(self, type_name: str, language: str, large_print: bool) -> dict[str, Any]:
        content = self.content(language)
        text = localised(content, type_name, self.protocol, self.brand)
        labels = text["labels"]["labels"]
        return {
            "C": text,
            "L": labels,
            "T": text["types"][type_name],
            "brand": self.brand,
            "large_print": large_print,
            "version": __version__,
            "type_name": type_name,
            "slots": None,  # fast-path templates only (fastpath/template.py)
            "plan_pages": 1,
            "reviewed": format_date(content.last_reviewed, format="medium", locale=language),
            "logo_url": self.brand.logo_path.as_uri(),
            "spine_url": (templates_dir() / "images" / f"spine-{type_name}.svg").as_uri(),
        }

    def _header_room(self, context: dict[str, Any]) -> list[CSS]:
        """A taller top margin when long identifiers need more header lines.

        The header sits in the top margin and grows upwards; without room, a
        long name would run off the top edge of the paper. A fast-path
        template is given the margin its patient needs ("header_margin").
        """
        if "header_margin" in context:
            margin = context["header_margin"]
        elif context.get("patient"):
            margin = self.header_margin(context["L"], context["patient"], context["large_print"])
        else:
            margin = None
        if margin is None:
            return []
        if margin not in self._margin_css:
            from weasyprint import CSS

            self._margin_css[margin] = CSS(string=f"@page {{ margin-top: {margin}mm; }}",
                                           font_config=self.font_config,
                                           url_fetcher=self.fetcher)
        return [self._margin_css[margin]]

    def header_margin(self, labels: dict[str, str], patient: dict[str, Any],
                      large_print: bool) -> int | None:
        """The top margin in mm for these identifiers, None for the standard one."""
        size_pt = 15 if large_print else 10  # .running-header font sizes
        page_mm = 216 if self.paper == "letter" else 210
        column_pt = (page_mm - 32) * 0.53 * 72 / 25.4 * 0.95  # .identifiers, with slack
        lines = sum(header_lines(f"{labels[label]}: {patient[key]}", size_pt, column_pt)
                    for key, label in (("name", "name_short"), ("dob", "dob_short"),
                                       ("mrn", "mrn_short")))
        if lines <= 3:  # what the standard 32 mm margin holds
            return None
        return 32 + 4 * math.ceil((lines - 3) * size_pt * 1.25 * 25.4 / 72 / 4)

    def _write(self, template: str, context: dict[str, Any], language: str,
               codes: PayloadFor | None = None, archive: bool = False) -> bytes:
        """Render a template to PDF with provenance metadata and, given codes,
        a scannable code on every page (stamp.py)."""
        from weasyprint import HTML

        markup = self.env.get_template(template).render(context)
        html = HTML(string=markup, base_url=templates_dir().as_uri() + "/",
                    url_fetcher=self.fetcher)
        info = {"MyeloDocsKind": template.removesuffix(".html.j2"),
                "MyeloDocsType": context["type_name"], "MyeloDocsLanguage": language,
                **self.provenance, **content_provenance(self.content(language))}
        if codes is not None:
            info["MyeloDocsCode"] = CODE_FORMAT

        def finish(_document: Any, pdf: Any) -> None:
            add_info(pdf, info)
            if codes is not None:
                stamp_pages(pdf, codes)

        with _GLYPH_WATCH.watching() as missing:
            pdf = html.write_pdf(
                stylesheets=[*self.stylesheets, self._language_css(language),
                             *self._header_room(context)],
                font_config=self.font_config,
                pdf_variant=ARCHIVE_VARIANT if archive else PDF_VARIANT,
                pdf_tags=True,
                presentational_hints=False,
                finisher=finish,
            )
        if missing:
            shown = ", ".join(sorted({f"U+{cp:04X}" for cp in missing}))
            raise MissingGlyphError("A character could not be drawn with the chosen fonts", [
                Problem("fonts", f"no glyph for {shown}",
                        "use a font folder whose fonts cover these characters (and spaces)")
            ])
        return finish_tags(pdf)

    def packet(self, record: PacketRecord | dict[str, Any], archive: bool = False,
               full_render: bool = False) -> Document:
        """The discharge packet for one patient, checked page by page.

        Drawn from a cached template (fastpath/) when the record allows it,
        else, or with ``full_render`` or ``archive``, rendered in full.
        """
        record = validate_record(record)
        check_glyphs(text_fields(record), self.fonts)
        if self.fast_path and not (archive or full_render):
            from myelo_docs.fastpath.plan import Unsure

            try:
                return self.fast_packets().packet(record)
            except Unsure:
                pass  # this record needs the full render
        ids = display_identifiers(record)
        lang = record.language
        patient = {
            "name": ids.name,
            "dob": ids.dob,
            "mrn": ids.mrn,
            "procedure_date": format_date(record.procedure_date, format="long", locale=lang),
            "physician": record.physician,
            "nurse": record.nurse,
            "follow_up": record.follow_up,
            "instructions": record.instructions,
            "medications": record.medications,
        }
        context = self._context(record.type.value, lang, record.large_print)
        context.update(
            patient=patient,
            title=context["L"]["packet_title"],
            subject=context["L"]["packet_subject"],
        )
        codes = payloads_for("packet", record.mrn)
        pdf = self._write("packet.html.j2", context, lang, codes=codes, archive=archive)
        pages = verify_pdf(pdf, ids, codes=codes)
        return Document(pdf=pdf, pages=pages, kind="packet", language=lang)

    def fast_packets(self) -> Any:
        if self._fast is None:
            from myelo_docs.fastpath.packet import FastPackets

            self._fast = FastPackets(self)
        return self._fast

    def blank_page(self, record: PacketRecord) -> Document:
        """A padding page for double-sided printing: the patient's identifiers only."""
        ids = display_identifiers(record)
        context = self._context(record.type.value, record.language, record.large_print)
        context.update(patient={"name": ids.name, "dob": ids.dob, "mrn": ids.mrn},
                       title=context["L"]["blank_page"], subject=context["L"]["packet_subject"])
        codes = payloads_for("blank", record.mrn)
        pdf = self._write("blank.html.j2", context, record.language, codes=codes)
        pages = verify_pdf(pdf, ids, numbered=False, codes=codes)
        return Document(pdf=pdf, pages=pages, kind="blank", language=record.language)

    def handout(self, type_name: MyelogramType | str, language: str = "en",
                large_print: bool = False, archive: bool = False) -> Document:
        """The education handout alone, for before the test: no patient details."""
        record_type = validate_type(type_name)
        lang = validate_language(language)
        context = self._context(record_type.value, lang, large_print)
        context.update(
            patient=None,
            title=context["L"]["handout_title"],
            subject=context["L"]["handout_subject"],
        )
        pdf = self._write("handout.html.j2", context, lang, archive=archive)
        pages = verify_pdf(pdf, None)
        return Document(pdf=pdf, pages=pages, kind="handout", language=lang)


def _css_string(text: str) -> str:
    """A CSS string literal: quotes and backslashes escaped, no line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def validate_type(value: MyelogramType | str) -> MyelogramType:
    from myelo_docs.schema.errors import RecordError

    try:
        return MyelogramType(str(value).strip().lower())
    except ValueError:
        raise RecordError("Unknown myelogram type", [
            Problem("type", "is not a myelogram type", "use cervical, thoracic or lumbar")
        ]) from None


def validate_language(value: str) -> str:
    from myelo_docs.content.loader import available_languages
    from myelo_docs.schema.errors import RecordError

    code = language_code(value or "")
    if code not in available_languages():
        raise RecordError("Unknown language", [
            Problem("language", f"'{code}' has no patient text",
                    "use one of: " + ", ".join(available_languages()))
        ])
    return code


@cache
def _renderer_for(brand: Path | None, protocol: Path | None, font_dir: Path | None,
                  paper: str | None) -> Renderer:
    return Renderer(
        brand=load_brand(brand),
        protocol=load_protocol(protocol),
        font_dir=font_dir,
        paper=paper,
    )


def get_renderer(brand: str | Path | None = None, protocol: str | Path | None = None,
                 font_dir: str | Path | None = None, paper: str | None = None) -> Renderer:
    """A warm renderer for these settings, built on first use and then reused."""
    def norm(p: str | Path | None) -> Path | None:
        return Path(p).resolve() if p is not None else None

    if font_dir is not None and not Path(font_dir).is_dir():
        raise ConfigError("The font folder was not found",
                          [Problem("font_dir", f"no folder at {font_dir}", "check the path")])
    return _renderer_for(norm(brand), norm(protocol), norm(font_dir), paper)


def render_packet(record: PacketRecord | dict[str, Any], *, brand: str | Path | None = None,
                  protocol: str | Path | None = None, font_dir: str | Path | None = None,
                  paper: str | None = None) -> bytes:
    """The discharge packet PDF for one patient record, self-checked.

    Raises RecordError for a bad record, ConfigError for a bad brand or
    protocol file, SelfCheckError if the PDF failed its identifier check.
    """
    return get_renderer(brand, protocol, font_dir, paper).packet(record).pdf


def render_handout(type: MyelogramType | str, language: str = "en", large_print: bool = False,
                   *, brand: str | Path | None = None, protocol: str | Path | None = None,
                   font_dir: str | Path | None = None, paper: str | None = None) -> bytes:
    """The education handout PDF for one myelogram type (no patient details)."""
    renderer = get_renderer(brand, protocol, font_dir, paper)
    return renderer.handout(type, language, large_print).pdf
