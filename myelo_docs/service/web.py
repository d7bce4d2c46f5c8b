"""The nurse's page: a plain HTML form that works without JavaScript.

The form posts to ``/``, and every post is answered with 303 See Other, never
with a page (post/redirect/get):

- a good "Print packet": the PDF is kept in server memory under a random id
  (``secrets.token_urlsafe(32)``) and the browser is sent to
  ``/packets/<id>``, which gives the PDF once;
- anything else (problems to fix, "Add a row", the page's language switch, a
  busy server): what was typed, with the problems, is kept the same way and
  the browser is sent to ``/forms/<id>``, which shows the form once.

Why the form with problems is redirected too, and not answered to the post
with 422: the flow that matters is error -> fix -> Print -> Back. Back from
the packet goes to the page before it; if that page were the answer to a
post, Chromium could only show it again by posting again, and asks "Confirm
Form Resubmission" (reload does the same). With a redirect after every post,
each page in the history is a plain GET, so Back and reload never post. Each
id works once and for at most a minute (``OnceStore``): going Back to a form
page that was already shown, or reloading it, gives an empty form with a
notice. So the next patient starts from an empty form, what was typed is not
shown twice, and nothing stays in memory or in the browser's cache (every
answer is ``Cache-Control: no-store``). The ids are random and carry no
patient data; the access log shows those routes by their pattern
(``/packets/{key}``), never the id. The store is in this process's memory:
a restart, or a second instance behind a balancer, makes pending links
"gone" (the nurse presses Print again).

"Add a row" buttons are ordinary submit buttons, so adding medicine rows
needs no script either. The page's words come from
``content/<language>/nurse_page.toml``; the page's language (from the
browser's Accept-Language, or the switch at the top) is separate from the
packet's language chosen in the form.
"""

from __future__ import annotations

import re
import secrets
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs

import jinja2
from babel import Locale
from babel.core import negotiate_locale
from markupsafe import Markup, escape

from myelo_docs.about import __version__
from myelo_docs.assets import content_dir
from myelo_docs.content.language_check import LanguageNudge, language_name
from myelo_docs.content.loader import Localiser
from myelo_docs.content.overrides import content_for
from myelo_docs.schema.brand import Brand
from myelo_docs.schema.errors import Problem
from myelo_docs.schema.languages import available_languages
from myelo_docs.schema.record import ALL_TYPES, MAX_INSTRUCTIONS, MAX_MEDICATIONS

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
PAGE_WORDS = "nurse_page.toml"
PACKET_PATH = "/packets/"  # + id: the PDF, once
FORM_PATH = "/forms/"  # + id: the form with what was typed, once
DEFAULT_LANGUAGE = "en"
TYPES = tuple(t.value for t in ALL_TYPES)  # one region, then the combinations
TEXT_FIELDS = ("patient_name", "date_of_birth", "mrn", "procedure_date", "physician", "nurse",
               "follow_up")
REQUIRED = ("type", "patient_name", "date_of_birth", "mrn", "procedure_date")
START_MEDICINE_ROWS = 3
START_INSTRUCTION_ROWS = 2

@cache
def page_languages() -> tuple[str, ...]:
    """The languages the page itself has words for."""
    return tuple(sorted(sub.name for sub in content_dir().iterdir()
                        if (sub / PAGE_WORDS).is_file()))


@cache
def page_words(language: str) -> dict[str, Any]:
    with (content_dir() / language / PAGE_WORDS).open("rb") as fh:
        return tomllib.load(fh)


def accepted_languages(header: str | None) -> list[str]:
    """The tags of an Accept-Language header, most wanted first (q=0 left out)."""
    wanted = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag.strip() and tag.strip() != "*" and quality > 0:
            wanted.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(wanted)]


def choose_language(chosen: str | None, accept_language: str | None) -> str:
    """The page's language: the one chosen on the page, else the browser's (Babel)."""
    languages = page_languages()
    if chosen in languages:
        return chosen
    return negotiate_locale(accepted_languages(accept_language), languages,
                            sep="-") or DEFAULT_LANGUAGE


class Words:
    """The page's words in one language: ``words("page", "title")``, with
    ``{placeholders}`` filled and ``**bold**`` as the only markup."""

    def __init__(self, language: str):
        self.language = language
        self.data = page_words(language)

    def __call__(self, section: str, key: str, **values: Any) -> Markup:
        where = f"content {self.language}/{PAGE_WORDS} [{section}] {key}"
        return Localiser({k: str(v) for k, v in values.items()}, where).text(
            self.data[section][key])

    def label(self, form_id: str) -> Markup:
        for prefix in ("med_name", "med_instruction", "instruction"):
            if re.fullmatch(rf"{prefix}_\d+", form_id):
                return self("labels", prefix, number=form_id.rsplit("_", 1)[1])
        return self("labels", form_id)


@dataclass
class FormState:
    """What the nurse typed, exactly as typed, and how many rows the form shows."""

    values: dict[str, str] = field(default_factory=dict)
    medicine_rows: int = START_MEDICINE_ROWS
    instruction_rows: int = START_INSTRUCTION_ROWS
    action: str = "print"
    page_language: str = ""

    @classmethod
    def from_body(cls, body: bytes) -> FormState:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)

        def one(name: str) -> str:
            return fields.get(name, [""])[0]

        def rows(name: str, start: int, most: int) -> int:
            try:
                return min(max(int(one(name)), 1), most)
            except ValueError:
                return start

        state = cls(medicine_rows=rows("medicine_rows", START_MEDICINE_ROWS, MAX_MEDICATIONS),
                    instruction_rows=rows("instruction_rows", START_INSTRUCTION_ROWS,
                                          MAX_INSTRUCTIONS),
                    action=one("action") or "print", page_language=one("page_language"))
        if state.action.startswith("page_language:"):  # the switch at the top of the page
            state.page_language = state.action.partition(":")[2]
        names = ["type", "language", "large_print", *TEXT_FIELDS]
        names += [f"instruction_{i}" for i in range(1, state.instruction_rows + 1)]
        for i in range(1, state.medicine_rows + 1):
            names += [f"med_name_{i}", f"med_instruction_{i}"]
        state.values = {name: one(name) for name in names if name in fields}
        if state.action == "add_medicine" and state.medicine_rows < MAX_MEDICATIONS:
            state.medicine_rows += 1
        if state.action == "add_instruction" and state.instruction_rows < MAX_INSTRUCTIONS:
            state.instruction_rows += 1
        return state

    def size(self) -> int:
        return sum(len(k) + len(v) for k, v in self.values.items()) + 64

    def record_data(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The record to validate, and which form field each record field came from."""
        v = self.values
        data: dict[str, Any] = {k: v[k] for k in ("type", *TEXT_FIELDS) if v.get(k, "").strip()}
        data["language"] = v.get("language") or "en"
        data["large_print"] = bool(v.get("large_print"))
        where = {k: k for k in ("type", "language", *TEXT_FIELDS)}
        where["record"] = "procedure_date"  # the one whole-record check: test before birth
        data["instructions"] = []
        for row in range(1, self.instruction_rows + 1):
            text = v.get(f"instruction_{row}", "")
            if text.strip():
                data["instructions"].append(text)
                where[f"instructions #{len(data['instructions'])}"] = f"instruction_{row}"
        data["medications"] = []
        for row in range(1, self.medicine_rows + 1):
            name, how = v.get(f"med_name_{row}", ""), v.get(f"med_instruction_{row}", "")
            if name.strip() or how.strip():
                data["medications"].append({"name": name, "instruction": how})
                n = len(data["medications"])
                where.update({f"medications #{n}": f"med_name_{row}",
                              f"medications #{n} name": f"med_name_{row}",
                              f"medications #{n} instruction": f"med_instruction_{row}"})
        return data, where

    def empty_fields(self) -> dict[str, str]:
        """Boxes that must be filled and are not: form id -> message key.

        A medicine row is optional as a whole, but a medicine printed without
        what to do with it leaves the patient guessing (stop the blood
        thinner? for how long?), so a name needs its instruction, as the
        record requires (``Medication.instruction``), and the other way round.
        """
        v = self.values
        empty = {name: f"empty_{name}" for name in REQUIRED if not v.get(name, "").strip()}
        for row in range(1, self.medicine_rows + 1):
            name = v.get(f"med_name_{row}", "").strip()
            how = v.get(f"med_instruction_{row}", "").strip()
            if name and not how:
                empty[f"med_instruction_{row}"] = "med_instruction_missing"
            elif how and not name:
                empty[f"med_name_{row}"] = "med_name_missing"
        return empty


def problem_message(problem: Problem, words: Words) -> Markup:
    """One record problem in the page's words, found by its code (``problems.Code``;
    the numbers it needs come with it); one without a code, or with a code the page
    has no words for, is kept as it is, marked as English, after the page's "check
    this"."""
    said = words.data.get("problems", {})
    values = dict(problem.values)
    if problem.code in said and set(re.findall(r"\{([a-z_]+)\}", said[problem.code])) <= set(
            values):
        return words("problems", problem.code, **values)
    english = f"{problem.problem[:1].upper()}{problem.problem[1:]}. " \
              f"{problem.fix[:1].upper()}{problem.fix[1:]}."
    if words.language == "en":
        return Markup(escape(english))
    return Markup(f'{words("messages", "other")} <span lang="en">{escape(english)}</span>')


@dataclass
class Draft:
    """A form to show once: what was typed, its problems or a notice, its status."""

    state: FormState
    language: str
    problems: list[Problem] = field(default_factory=list)
    where: dict[str, str] = field(default_factory=dict)
    notice: tuple[str, dict[str, Any]] | None = None
    focus: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # A packet made from text that may be in the wrong language: the link to it,
    # and the warnings to show next to the boxes (never a block).
    packet_link: str | None = None
    nudges: list[LanguageNudge] = field(default_factory=list)


@dataclass(frozen=True)
class Packet:
    pdf: bytes
    name: str


Kept = TypeVar("Kept")


class OnceStore(Generic[Kept]):
    """Things kept in memory to be read once, each under a random id.

    An entry is gone when it is read, ``ttl`` seconds after it was put, or
    when the store holds more than ``max_items`` entries or ``max_bytes``
    bytes (the oldest go first).
    """

    def __init__(self, ttl: float = 60.0, max_items: int = 50, max_bytes: int = 64 * 2**20,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl, self.max_items, self.max_bytes, self.clock = ttl, max_items, max_bytes, clock
        self._kept: OrderedDict[str, tuple[float, int, Kept]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        self._expire()
        return len(self._kept)

    def put(self, value: Kept, size: int) -> str:
        self._expire()
        key = secrets.token_urlsafe(32)
        self._kept[key] = (self.clock() + self.ttl, size, value)
        self._bytes += size
        while len(self._kept) > 1 and (len(self._kept) > self.max_items
                                       or self._bytes > self.max_bytes):
            self._drop(next(iter(self._kept)))
        return key

    def take(self, key: str) -> Kept | None:
        self._expire()
        if key not in self._kept:
            return None
        value = self._kept[key][2]
        self._drop(key)
        return value

    def _drop(self, key: str) -> None:
        self._bytes -= self._kept.pop(key)[1]

    def _expire(self) -> None:
        now = self.clock()
        while self._kept:
            key, (until, _, _) = next(iter(self._kept.items()))
            if until > now:
                break
            self._drop(key)


class NursePage:
    """Renders the form for one brand, and keeps the packets and forms to show once."""

    def __init__(self, brand: Brand, clock: Callable[[], float] = time.monotonic,
                 languages: list[str] | tuple[str, ...] | None = None,
                 content_overrides: Path | None = None):
        """``languages``: the packet languages offered (a site's; default: every
        one we have text for); ``content_overrides``: a site's text folder, for
        the type names the form shows."""
        self.brand = brand
        self.content_overrides = content_overrides
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                      undefined=jinja2.StrictUndefined, trim_blocks=True,
                                      lstrip_blocks=True)
        # Each language's name in that language: "English", "Español".
        self.languages = [(code, Locale.parse(code).get_display_name(code).capitalize())
                          for code in (languages or available_languages())]
        self.page_languages = [(code, name) for code, name in self.languages
                               if code in page_languages()]
        self.packets: OnceStore[Packet] = OnceStore(max_items=50, max_bytes=64 * 2**20,
                                                    clock=clock)
        self.drafts: OnceStore[Draft] = OnceStore(max_items=200, max_bytes=16 * 2**20,
                                                  clock=clock)

    def types(self, language: str) -> list[tuple[str, str, str]]:
        code = language if language in available_languages() else "en"
        words = content_for(code, self.content_overrides)
        types = words.data["types"]
        return [(t, types[t]["title"], types[t]["region"]) for t in TYPES]

    def html(self, state: FormState, language: str = DEFAULT_LANGUAGE,
             problems: list[Problem] | None = None, where: dict[str, str] | None = None,
             notice: tuple[str, dict[str, Any]] | None = None,
             focus: str | None = None, nudges: list[LanguageNudge] | None = None,
             packet_link: str | None = None) -> str:
        words = Words(language)
        warnings = {(where or {}).get(n.field, ""): [words(
            "warnings", "mixed_language", language=language_name(n.language, language),
            packet_language=language_name(n.packet_language, language))] for n in nudges or []}
        messages: dict[str, Markup] = {form_id: words("messages", key)
                                       for form_id, key in state.empty_fields().items()
                                       } if problems is not None else {}
        general = []
        for p in problems or []:
            form_id = (where or {}).get(p.field)
            if form_id in messages:
                continue  # its own message, which says what to write, is already there
            if form_id:
                messages[form_id] = problem_message(p, words)
            else:
                general.append(problem_message(p, words))
        errors: dict[str, list[Markup]] = {}
        summary = []
        for form_id in self._order(state):
            if form_id in messages:
                errors[form_id] = [messages[form_id]]
                anchor = f"type-{TYPES[0]}" if form_id == "type" else form_id
                summary.append({"anchor": anchor,
                                "text": Markup(f"{words.label(form_id)}: {messages[form_id]}")})
        summary += [{"anchor": None, "text": text} for text in general]
        return self.env.get_template("nurse.html.j2").render(
            brand=self.brand.for_language(language), form=state, values=state.values,
            errors=errors, summary=summary,
            types=self.types(language), languages=self.languages,
            page_languages=self.page_languages, page_language=language, w=words,
            label=words.label,
            notice=words("notices", notice[0], **notice[1]) if notice else None,
            warnings=warnings, packet_link=packet_link, focus=focus,
            max_medicines=MAX_MEDICATIONS, max_instructions=MAX_INSTRUCTIONS,
            version=__version__)

    @staticmethod
    def _order(state: FormState) -> list[str]:
        """Form ids in the order the form shows them (for the list of problems)."""
        order = ["type", "patient_name", "date_of_birth", "mrn", "procedure_date", "physician",
                 "nurse", "follow_up"]
        for row in range(1, state.medicine_rows + 1):
            order += [f"med_name_{row}", f"med_instruction_{row}"]
        order += [f"instruction_{row}" for row in range(1, state.instruction_rows + 1)]
        return [*order, "language", "large_print"]

    def draft_html(self, draft: Draft) -> str:
        return self.html(draft.state, draft.language, draft.problems, draft.where,
                         draft.notice, draft.focus, draft.nudges, draft.packet_link)

    def packet_gone_html(self, language: str) -> str:
        return self._notice_html(language, "packet_gone")

    def form_refused_html(self, language: str) -> str:
        """A form posted from another page or site: not used, and nothing of it shown."""
        return self._notice_html(language, "form_refused")

    def _notice_html(self, language: str, key: str) -> str:
        """A page that only says something (``key``, ``key``_title, ``key``_next)."""
        return self.env.get_template("packet_gone.html.j2").render(
            brand=self.brand.for_language(language), w=Words(language), page_language=language,
            page_languages=self.page_languages, version=__version__, key=key)

    def brand_css(self) -> str:
        return (f":root {{ --primary: {self.brand.primary_colour}; "
                f"--accent: {self.brand.accent_colour}; }}\n")
