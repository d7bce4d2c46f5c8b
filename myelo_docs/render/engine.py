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
from pydantic_core import PydanticCustomError

from myelo_docs.about import __version__
from myelo_docs.assets import templates_dir
from myelo_docs.content.loader import (
    Content,
    load_content,
    locale_for,
    localised,
    long_date,
)
from myelo_docs.content.overrides import content_for
from myelo_docs.render.document import Document, display_identifiers
from myelo_docs.render.fetcher import LockedFetcher
from myelo_docs.render.fonts import FontSet, check_glyphs, font_set
from myelo_docs.render.options import RenderSettings, Resolved, offered_languages
from myelo_docs.render.stamp import PayloadFor, payloads_for, stamp_pages
from myelo_docs.render.tagging import finish_tags, lists_continued
from myelo_docs.schema.brand import Brand, load_brand
from myelo_docs.schema.errors import ConfigError, MissingGlyphError, Problem
from myelo_docs.schema.messages import error, title
from myelo_docs.schema.protocol import Protocol, load_protocol
from myelo_docs.schema.record import (
    ExamType,
    MyelogramType,
    PacketRecord,
    language_code,
    parse_type,
    text_fields,
    validate_record,
)
from myelo_docs.verify.provenance import (
    CODE_FORMAT,
    add_info,
    content_provenance,
    renderer_provenance,
)
from myelo_docs.verify.selfcheck import Identifiers, verify_pdf

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

# Document.path of a packet the full render drew because the fast path failed on it.
FALLBACK = "fallback"
_LOG = logging.getLogger("myelo_docs.render.fastpath")

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
        templates: Path | None = None,
        content_overrides: Path | None = None,
        languages: tuple[str, ...] = (),
    ):
        """``templates``: a folder to use instead of the bundled templates/ (the
        same file names: packet.html.j2, print.css, images/...), e.g. a site's
        restyled copy; the fast path derives its layout from whatever it holds.
        ``content_overrides``: a site's text-override folder (content/<lang>/
        *.toml, layered key by key over ours); ``languages``: the languages the
        site offers (() = every one we ship). Build renderers with
        get_renderer() or RenderSettings (render/options.py), which fill these
        from a site folder."""
        self.content_overrides = content_overrides
        self.languages = tuple(languages)
        self.brand = brand or load_brand()
        self.protocol = protocol or load_protocol()
        self.fonts: FontSet = font_set(font_dir)
        self.paper = paper or self.brand.paper
        if self.paper not in ("letter", "a4"):
            raise error(ConfigError, "paper_unknown", "paper", paper=self.paper)
        self._check_brand_glyphs()
        self.templates = Path(templates) if templates is not None else templates_dir()
        templates = self.templates
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
        self._margin_css: dict[int, CSS] = {}  # by top margin, mm
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
                CSS(filename=str(self.templates / "print.css"), **options),
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
        fields = {f"brand {k}": v for k, v in self.brand.strings().items()}
        try:
            check_glyphs(fields, self.fonts)
        except MissingGlyphError as exc:  # the brand file, not the record, is at fault
            raise ConfigError(exc.message, exc.problems) from None

    def locale(self, language: str) -> str:
        """The locale numbers and dates are written in: the language in the brand's
        country (es_US), see content/loader.py locale_for."""
        return locale_for(language, self.brand.country)

    def identifiers(self, record: PacketRecord) -> Identifiers:
        """The identifiers as this renderer prints them (the date of birth in its locale)."""
        return display_identifiers(record, self.locale(record.language))

    def content(self, language: str) -> Content:
        """Our patient text for a language, with the site's overrides layered on."""
        if self.content_overrides is None:
            return load_content(language)
        return content_for(language, self.content_overrides)

    def available_languages(self) -> list[str]:
        """The languages this renderer prints: the site's offered ones, else
        every language with patient text (ours and the site's own)."""
        return offered_languages(self.languages, self.content_overrides)

    def language_css(self, language: str) -> CSS:
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

    def template_context(self, type_name: str, language: str,
                         large_print: bool) -> dict[str, Any]:
        """What every template is rendered with (texts, labels, brand); the caller
        adds the patient, title and subject."""
        content = self.content(language)
        text = localised(content, type_name, self.protocol, self.brand)
        labels = text["labels"]["labels"]
        return {
            "C": text,
            "L": labels,
            "T": text["types"][type_name],
            "brand": self.brand.for_language(language),
            "large_print": large_print,
            # The PDF's /Lang and the HTML's lang (BCP 47): es-MX for a Mexican brand.
            "document_language": self.locale(language).replace("_", "-"),
            "version": __version__,
            "type_name": type_name,
            "slots": None,  # fast-path templates only (fastpath/template.py)
            "plan_pages": 1,
            "reviewed": format_date(content.last_reviewed, format="medium",
                                    locale=self.locale(language)),
            "logo_url": self.brand.logo_path.as_uri(),
            "spine_url": (self.templates / "images" / f"spine-{type_name}.svg").as_uri(),
        }

    def _margin_top(self, mm: int) -> CSS:
        if mm not in self._margin_css:
            from weasyprint import CSS

            self._margin_css[mm] = CSS(string=f"@page {{ margin-top: {mm}mm; }}",
                                       font_config=self.font_config, url_fetcher=self.fetcher)
        return self._margin_css[mm]

    def layout(self, template: str, context: dict[str, Any], language: str,
               archive: bool = False) -> Any:
        """WeasyPrint's layout of a template (a weasyprint Document: its pages'
        box trees, ready for write_pdf). Used by the full render and, to build
        and measure its templates, by the fast path."""
        html = self._html(template, context)
        stylesheets = [*self.stylesheets, self.language_css(language)]
        with _GLYPH_WATCH.watching() as missing:
            document = html.render(stylesheets=stylesheets, font_config=self.font_config,
                                   presentational_hints=False, **_pdf_options(archive))
            # The header sits at the bottom of the top margin and grows upwards:
            # long identifiers that need more lines than the margin holds (above
            # its clear band, print.css) get a taller margin, laid out again.
            needed = _header_room_needed(document)
            if needed:
                document = html.render(stylesheets=[*stylesheets, self._margin_top(needed)],
                                       font_config=self.font_config,
                                       presentational_hints=False, **_pdf_options(archive))
        _refuse_missing(missing)
        return document

    def _html(self, template: str, context: dict[str, Any]) -> Any:
        from weasyprint import HTML

        return HTML(string=self.env.get_template(template).render(context),
                    base_url=self.templates.as_uri() + "/", url_fetcher=self.fetcher)

    def computed_styles(self, template: str, context: dict[str, Any], language: str
                        ) -> tuple[Any, Any]:
        """WeasyPrint's cascade of a template, without layout (about 30 ms for a
        packet): its root element (ElementTree) and ``style_for(element)``, the
        computed style. The fast path asks it what a block alone in its list
        or table would have, which no calibration lays out."""
        from weasyprint import DEFAULT_OPTIONS
        from weasyprint.css.counters import CounterStyle
        from weasyprint.document import Document

        html = self._html(template, context)
        options = {**DEFAULT_OPTIONS, "presentational_hints": False,
                   "stylesheets": [*self.stylesheets, self.language_css(language)]}
        layout_context = Document._build_layout_context(html, self.font_config, CounterStyle(),
                                                        {}, options)
        return html.etree_element, layout_context.style_for

    def write_pdf(self, document: Any, template: str, context: dict[str, Any], language: str,
                  codes: PayloadFor | None = None, archive: bool = False) -> bytes:
        """A laid-out document (layout()) as tagged PDF bytes with provenance
        metadata and, given codes, a scannable code on every page (stamp.py).
        Raises MissingGlyphError if a character was drawn as a box."""
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
            pdf = document.write_pdf(finisher=finish, **_pdf_options(archive))
        _refuse_missing(missing)
        return finish_tags(pdf, lists_continued(document))

    def _write(self, template: str, context: dict[str, Any], language: str,
               codes: PayloadFor | None = None, archive: bool = False) -> bytes:
        """Render a template to PDF: layout() then write_pdf()."""
        document = self.layout(template, context, language, archive=archive)
        return self.write_pdf(document, template, context, language, codes=codes,
                              archive=archive)

    def packet(self, record: PacketRecord | dict[str, Any], archive: bool = False,
               full_render: bool = False) -> Document:
        """The discharge packet for one patient, checked page by page.

        Drawn from a cached template (fastpath/) when the record allows it,
        else, or with ``full_render`` or ``archive``, rendered in full.
        """
        record = validate_record(record)
        check_glyphs(text_fields(record), self.fonts)
        path = "full"
        if self.fast_path and not (archive or full_render):
            from myelo_docs.render.fastpath.unsure import Unsure

            try:
                return self.fast_packets().packet(record)
            except Unsure:
                pass  # this record needs the full render
            except Exception as exc:  # a fast-path bug never fails a packet
                _LOG.warning("fast path failed (%s at %s); this packet is rendered in full",
                             type(exc).__name__, _where(exc))
                path = FALLBACK
        ids = self.identifiers(record)
        lang = record.language
        patient = {
            "name": ids.name,
            "dob": ids.dob,
            "mrn": ids.mrn,
            "procedure_date": long_date(record.procedure_date, self.locale(lang)),
            "physician": record.physician,
            "nurse": record.nurse,
            "follow_up": record.follow_up,
            "instructions": record.instructions,
            "medications": record.medications,
        }
        context = self.template_context(record.type.value, lang, record.large_print)
        context.update(
            patient=patient,
            title=context["L"]["packet_title"],
            subject=context["L"]["packet_subject"],
        )
        codes = payloads_for("packet", record.mrn)
        pdf = self._write("packet.html.j2", context, lang, codes=codes, archive=archive)
        pages = verify_pdf(pdf, ids, codes=codes)
        return Document(pdf=pdf, pages=pages, kind="packet", language=lang, path=path)

    def fast_packets(self) -> Any:
        if self._fast is None:
            from myelo_docs.render.fastpath.packet import FastPackets

            self._fast = FastPackets(self)
        return self._fast

    def blank_page(self, record: PacketRecord) -> Document:
        """A padding page for double-sided printing: the patient's identifiers only."""
        ids = self.identifiers(record)
        context = self.template_context(record.type.value, record.language, record.large_print)
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
        lang = validate_language(language, self.available_languages())
        context = self.template_context(record_type.value, lang, large_print)
        context.update(
            patient=None,
            title=context["L"]["handout_title"],
            subject=context["L"]["handout_subject"],
        )
        pdf = self._write("handout.html.j2", context, lang, archive=archive)
        pages = verify_pdf(pdf, None)
        return Document(pdf=pdf, pages=pages, kind="handout", language=lang)


def _where(exc: BaseException) -> str:
    """file:line where an exception was raised: for the log, never its message
    (which may quote patient text)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"


def _header_room_needed(document: Any) -> int | None:
    """The top margin (whole mm) the running header needs, when it runs above
    the content area of its margin box (into the clear band the stylesheet
    keeps at the paper's top edge) on any page; None when it fits."""
    from weasyprint.formatting_structure import boxes

    needed = 0.0
    for page in document.pages:
        for box in page._page_box.children:
            if isinstance(box, boxes.MarginBox) and box.children:
                over = box.content_box_y() - min(child.position_y for child in box.children)
                if over > 0.01:
                    needed = max(needed, page._page_box.margin_top + over)
    return math.ceil(needed * 25.4 / 96) if needed else None  # px to mm


def _pdf_options(archive: bool) -> dict[str, Any]:
    return {"pdf_variant": ARCHIVE_VARIANT if archive else PDF_VARIANT, "pdf_tags": True}


def _refuse_missing(missing: list[int]) -> None:
    if missing:
        shown = ", ".join(sorted({f"U+{cp:04X}" for cp in missing}))
        raise error(MissingGlyphError, "glyph_missing", "fonts", characters=shown)


def _css_string(text: str) -> str:
    """A CSS string literal: quotes and backslashes escaped, no line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def validate_type(value: ExamType | str) -> ExamType:
    """A type as a record takes it (one part, or several: "cervical+lumbar")."""
    from myelo_docs.schema.errors import RecordError

    try:
        return parse_type(value)
    except PydanticCustomError as exc:
        context = exc.context or {}  # parse_type's problem and fix (messages.invalid)
        raise RecordError(title("type_refused"), [
            Problem("type", str(context["problem"]), str(context["fix"]))
        ]) from None


def validate_language(value: str, languages: list[str] | tuple[str, ...] | None = None) -> str:
    """The language code for ``value`` (es-MX is es), one of ``languages``
    (default: every language we ship). Raises RecordError."""
    from myelo_docs.schema.errors import RecordError
    from myelo_docs.schema.languages import available_languages

    known = list(languages) if languages is not None else available_languages()
    code = language_code(value or "")
    if code not in known:
        raise error(RecordError, "language_unknown", "language", language=code,
                    known=", ".join(known))
    return code


def get_renderer(brand: str | Path | None = None, protocol: str | Path | None = None,
                 font_dir: str | Path | None = None, paper: str | None = None, *,
                 site: str | Path | None = None) -> Renderer:
    """A warm renderer for these settings, built on first use and then reused.

    ``site``: a hospital's site folder; its brand, protocol, fonts, paper and
    text overrides apply where the other keywords give none (a keyword beats
    the site, which beats our default). Raises ConfigError for a bad site,
    brand, protocol or font folder. The keywords are RenderSettings' fields
    (render/options.py, the one options table)."""
    return renderer_for(RenderSettings(brand=brand, protocol=protocol, font_dir=font_dir,
                                       paper=paper, site=site))


def render_packet(record: PacketRecord | dict[str, Any], *, brand: str | Path | None = None,
                  protocol: str | Path | None = None, font_dir: str | Path | None = None,
                  paper: str | None = None, site: str | Path | None = None) -> bytes:
    """The discharge packet PDF for one patient record, self-checked.

    The keywords are get_renderer's; with ``site``, the site's intake checks
    (MRN pattern) apply and its large-print default fills a record that does
    not say. Raises RecordError for a bad record, ConfigError for a bad site,
    brand or protocol file, SelfCheckError if the PDF failed its identifier
    check.
    """
    settings = RenderSettings(brand=brand, protocol=protocol, font_dir=font_dir,
                              paper=paper, site=site)
    renderer = renderer_for(settings)
    return renderer.packet(validate_record(record, settings.intake())).pdf


def render_handout(type: MyelogramType | str, language: str = "en",
                   large_print: bool | None = None, *, brand: str | Path | None = None,
                   protocol: str | Path | None = None, font_dir: str | Path | None = None,
                   paper: str | None = None, site: str | Path | None = None) -> bytes:
    """The education handout PDF for one myelogram type (no patient details).

    ``large_print`` None: the site's default (else regular print). The other
    keywords are get_renderer's."""
    settings = RenderSettings(brand=brand, protocol=protocol, font_dir=font_dir,
                              paper=paper, site=site)
    if large_print is None:
        large_print = settings.intake().large_print
    return renderer_for(settings).handout(type, language, large_print).pdf


def renderer_for(settings: RenderSettings) -> Renderer:
    """A warm renderer for these settings (flags and site merged), built on first
    use and then reused by the process: the one way every front end gets one.
    Raises ConfigError for a bad site, brand, protocol or font folder."""
    return _built(settings.resolved().key())


@cache
def _built(resolved: Resolved) -> Renderer:
    return Renderer(brand=load_brand(resolved.brand), protocol=load_protocol(resolved.protocol),
                    font_dir=resolved.font_dir, paper=resolved.paper,
                    content_overrides=resolved.content, languages=resolved.languages)
