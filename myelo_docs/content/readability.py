"""Reading level of the patient text, per language and per section.

The text measured is what a patient reads: the content files with every
placeholder filled in (default protocol, demo brand, each myelogram type) and
markup removed. Headings are left out (they are short questions that would
flatter the score); every paragraph and every list item counts as its own
sentence. Formulas come from textstat: Flesch-Kincaid grade and SMOG for
English, Fernández-Huerta and Szigriszt-Pazos for Spanish.

A section or a whole handout past its threshold makes ``check`` raise a
ConfigError naming it, so a hospital that edits the text gets the same guard
as we do.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from myelo_docs.content.loader import Content, localised
from myelo_docs.content.overrides import content_for
from myelo_docs.schema.brand import load_brand
from myelo_docs.schema.errors import ConfigError, Problem
from myelo_docs.schema.languages import language_folders
from myelo_docs.schema.messages import did_you_mean, error, problem, title
from myelo_docs.schema.protocol import choices, load_protocol
from myelo_docs.schema.record import ALL_TYPES
from myelo_docs.schema.settings_file import read_toml

TYPES = [t.value for t in ALL_TYPES]  # the parts, then tests of several parts

# formula name -> (label, True if a higher score means harder text)
FORMULAS = {
    "flesch_kincaid_grade": ("Flesch-Kincaid grade", True),
    "fernandez_huerta": ("Fernández-Huerta", False),
    "szigriszt_pazos": ("Szigriszt-Pazos", False),
    "flesch_reading_ease": ("Flesch reading ease", False),
}

# Our own bar: AMA and NIH ask for grade 6 or lower; Fernández-Huerta 70-80
# is "fairly easy", 80+ "easy".
DEFAULT_THRESHOLDS: dict[str, dict[str, Any]] = {
    "en": {"formula": "flesch_kincaid_grade", "section": 7.0, "whole": 6.0},
    "es": {"formula": "fernandez_huerta", "section": 70.0, "whole": 75.0},
}
# Shown alongside the main formula, never checked.
EXTRA_FORMULAS = {"en": ["smog_index"], "es": ["szigriszt_pazos"]}

_SENTENCE_END = re.compile(r"[.?!:;]$")


@dataclass(frozen=True)
class Threshold:
    formula: str
    section: float
    whole: float

    @property
    def label(self) -> str:
        return FORMULAS[self.formula][0]

    @property
    def higher_is_harder(self) -> bool:
        return FORMULAS[self.formula][1]

    def fails(self, score: float, whole: bool) -> bool:
        limit = self.whole if whole else self.section
        return score > limit if self.higher_is_harder else score < limit

    def describe(self, whole: bool) -> str:
        limit = self.whole if whole else self.section
        return f"{'≤' if self.higher_is_harder else '≥'} {limit:g}"


@dataclass
class Measure:
    """The reading level of one section (or one whole handout)."""

    name: str  # e.g. "handout what-is", "types cervical", "whole handout (lumbar)"
    file: str  # the content file to edit, e.g. "en/handout.toml"
    whole: bool
    score: float
    extra: dict[str, float]
    sentences: int
    words: int
    words_per_sentence: float
    long_words: int  # three syllables or more (SMOG's "polysyllables")
    limit: str = ""
    over: bool = False

    @property
    def long_word_percent(self) -> float:
        return 100.0 * self.long_words / self.words if self.words else 0.0


@dataclass
class LanguageReport:
    language: str
    folder: str
    formula: str | None
    measures: list[Measure] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "folder": self.folder,
            "formula": self.formula,
            "sections": [{**asdict(m), "long_word_percent": round(m.long_word_percent, 1)}
                         for m in self.measures],
        }


THRESHOLD_KEYS = ("formula", "section", "whole")


def load_thresholds(path: Path | None = None) -> dict[str, Threshold]:
    """Default thresholds, with a TOML file's [<language>] tables on top."""
    tables = {lang: dict(values) for lang, values in DEFAULT_THRESHOLDS.items()}
    if path is not None:
        data = read_toml(path, "thresholds")
        problems = []
        for lang, table in data.items():
            if not isinstance(table, dict):
                problems.append(problem("thresholds_not_table", f"thresholds {lang}",
                                        language=lang))
                continue
            for key, value in table.items():
                if key not in THRESHOLD_KEYS:
                    problems.append(problem("thresholds_unknown_key", f"thresholds [{lang}] {key}",
                                            hint=did_you_mean(key, THRESHOLD_KEYS)))
                elif key == "formula" and value not in FORMULAS:
                    problems.append(problem("thresholds_unknown_formula",
                                            f"thresholds [{lang}] formula", value=value,
                                            known=", ".join(FORMULAS)))
                elif key != "formula" and (isinstance(value, bool)
                                           or not isinstance(value, int | float)):
                    problems.append(problem("thresholds_not_number", f"thresholds [{lang}] {key}",
                                            key=key))
            tables.setdefault(lang, {}).update(table)
        for lang, table in tables.items():
            missing = [k for k in ("formula", "section", "whole") if k not in table]
            if missing:
                problems.append(problem("thresholds_missing", f"thresholds [{lang}]",
                                        missing=", ".join(missing)))
        if problems:
            raise ConfigError(title("thresholds_problems"), problems)
    return {lang: Threshold(t["formula"], float(t["section"]), float(t["whole"]))
            for lang, t in tables.items()}


def _plain(value: Any) -> str:
    """Filled-in content text as a reader sees it: no tags, entities decoded."""
    return Markup(str(value)).striptags()


def _units(node: Any, skip: tuple[str, ...] = ("title", "id", "only", "type_list")) -> list[str]:
    """Every paragraph and list item in a content block, headings left out."""
    if isinstance(node, str):
        return [_plain(node)]
    if isinstance(node, list):
        return [u for item in node for u in _units(item, skip)]
    if isinstance(node, dict):
        return [u for key, value in node.items() if key not in skip for u in _units(value, skip)]
    return []


def _sentences(units: list[str]) -> str:
    """One text where each unit ends as a sentence (a list item without a full stop)."""
    parts = [u.strip() for u in units if u.strip()]
    return " ".join(p if _SENTENCE_END.search(p) else p + "." for p in parts)


def _sections(text: dict[str, Any], type_name: str) -> list[tuple[str, str, list[str]]]:
    """(name, file, units) for each section of one type's localised content."""
    sections = []
    for section in text["handout"].get("sections", []):
        sections.append((f"handout {section.get('id', '?')}", "handout.toml",
                         _units(section.get("blocks", []))))
    for name, table in text["discharge"].items():
        sections.append((f"discharge {name}", "discharge.toml", _units(table)))
    type_table = text["types"][type_name]
    sections.append((f"types {type_name}", "types.toml",
                     [u for key, value in type_table.items() if isinstance(value, list)
                      or key.endswith("_alt") for u in _units(value)]))
    labels = [u for u in _units(text["labels"].get("labels", {}))
              if _SENTENCE_END.search(u.strip())]
    sections.append(("labels", "labels.toml", labels))
    return sections


def _handout_units(text: dict[str, Any], type_name: str) -> list[str]:
    """Everything a patient reads in the stand-alone handout of one type."""
    units = []
    for section in text["handout"].get("sections", []):
        for block in section.get("blocks", []):
            if "type_list" in block:
                units += _units(text["types"][type_name].get(block["type_list"], []))
            else:
                units += _units(block)
    units += _units(text["discharge"])
    units += _units(text["types"][type_name].get("home_note", []))
    units += _units(text["labels"].get("labels", {}).get("summary", []))  # the recap box
    return units


class _Scorer:
    """textstat's formulas for one language (its own instance: no global state)."""

    def __init__(self, language: str):
        from textstat.textstat import textstatistics

        self.stats = textstatistics()
        self.stats.set_lang(language)
        self.stats.set_rounding_points(None)

    def measure(self, name: str, file: str, text: str, whole: bool,
                threshold: Threshold | None, extras: list[str]) -> Measure:
        s = self.stats
        sentences = s.sentence_count(text)
        words = s.lexicon_count(text)
        score = getattr(s, threshold.formula)(text) if threshold else float("nan")
        measure = Measure(
            name=name, file=file, whole=whole, score=round(score, 1),
            extra={f: round(getattr(s, f)(text), 1) for f in extras},
            sentences=sentences, words=words,
            words_per_sentence=round(words / sentences, 1) if sentences else 0.0,
            long_words=s.polysyllabcount(text),
        )
        if threshold:
            measure.limit = threshold.describe(whole)
            measure.over = threshold.fails(score, whole)
        return measure


def _check_files(content: Content) -> None:
    """Enough structure to measure; a hospital's folder may be incomplete."""
    problems = []
    if "labels" not in content.data["labels"]:
        problems.append(problem("content_no_labels", f"content {content.language}/labels.toml"))
    if not isinstance(content.data["handout"].get("sections"), list):
        problems.append(problem("content_no_sections",
                                f"content {content.language}/handout.toml"))
    if problems:
        raise ConfigError(title("content_problems", language=content.language), problems)


def measure_language(language: str, content_dir: Path | None = None,
                     thresholds: dict[str, Threshold] | None = None,
                     overrides: Path | None = None) -> LanguageReport:
    """Reading level of every section of one language's content.

    Sections whose text depends on the type or on a protocol choice are
    measured for each type and each choice (one changed at a time from the
    defaults), and the hardest is kept; each type's whole handout is measured
    on its own (the hardest choice kept).
    """
    thresholds = thresholds if thresholds is not None else load_thresholds()
    content = content_for(language, overrides, content_dir)  # a site's text over ours
    _check_files(content)
    threshold = thresholds.get(language)
    extras = EXTRA_FORMULAS.get(language, [])
    scorer = _Scorer(language)
    brand, protocol = load_brand(), load_protocol()
    report = LanguageReport(language, str(content.folder),
                            threshold.formula if threshold else None)
    worst: dict[str, Measure] = {}
    wholes: dict[str, Measure] = {}

    def keep(kept: dict[str, Measure], m: Measure) -> None:
        if m.name not in kept or _harder(m, kept[m.name], threshold):
            kept[m.name] = m

    variants = [protocol] + [protocol.model_copy(update={key: option})
                             for key, options in choices().items()
                             for option in options if option != getattr(protocol, key)]
    for type_name in TYPES:
        for variant in variants:
            text = localised(content, type_name, variant, brand)
            for name, file, units in _sections(text, type_name):
                if units:
                    keep(worst, scorer.measure(name, f"{language}/{file}", _sentences(units),
                                               False, threshold, extras))
            keep(wholes, scorer.measure(f"whole handout ({type_name})", f"{language}/*.toml",
                                        _sentences(_handout_units(text, type_name)), True,
                                        threshold, extras))
    order = ("handout", "discharge", "types", "labels")
    sections = sorted(worst.values(), key=lambda m: order.index(m.name.split()[0]))
    report.measures = [*sections, *wholes.values()]
    return report


def _harder(a: Measure, b: Measure, threshold: Threshold | None) -> bool:
    if threshold is None:
        return a.words_per_sentence > b.words_per_sentence
    return a.score > b.score if threshold.higher_is_harder else a.score < b.score


def check(content_dir: Path | None = None, languages: list[str] | None = None,
          thresholds_file: Path | None = None,
          overrides: Path | None = None) -> list[LanguageReport]:
    """Measure each language (those in ``content_dir`` if given, else ours);
    ``overrides``: a site's text-override folder, measured layered over ours."""
    thresholds = load_thresholds(thresholds_file)
    if content_dir is not None:
        if not content_dir.is_dir():
            raise error(ConfigError, "content_dir_missing", "--content-dir", path=content_dir)
        found = sorted(p.name for p in content_dir.iterdir() if (p / "labels.toml").is_file())
        if not found:
            raise error(ConfigError, "content_dir_empty", "--content-dir")
    else:
        found = sorted(language_folders())
    chosen = languages or found
    unknown = [lang for lang in chosen if lang not in found]
    if unknown:
        raise ConfigError(title("content_no_language"), [
            problem("content_no_language", "--language", language=lang, known=", ".join(found))
            for lang in unknown])
    return [measure_language(lang, content_dir, thresholds, overrides) for lang in chosen]


def failures(reports: list[LanguageReport]) -> list[Problem]:
    """One problem per section past its threshold, naming the file to edit."""
    problems = []
    for report in reports:
        label = FORMULAS[report.formula][0] if report.formula else ""
        for m in report.measures:
            if m.over:
                problems.append(problem("readability_over", f"content {m.file} [{m.name}]",
                                        label=label, score=f"{m.score:g}", limit=m.limit))
    return problems


def format_report(reports: list[LanguageReport]) -> str:
    lines = []
    for report in reports:
        if report.formula:
            main = FORMULAS[report.formula][0]
        else:
            main = "no formula set for this language (counts only)"
        lines.append(f"{report.language}: {report.folder}  ({main})")
        extras = list(report.measures[0].extra) if report.measures else []
        header = (f"  {'section':<30} {'score':>6} {'limit':>6} "
                  + "".join(f"{_short(e):>6} " for e in extras)
                  + f"{'sent':>5} {'words':>6} {'w/sent':>7} {'3+syl':>11}")
        lines.append(header)
        for m in report.measures:
            flag = "  OVER" if m.over else ""
            score = "" if m.score != m.score else f"{m.score:.1f}"  # NaN: no formula
            lines.append(
                f"  {m.name:<30} {score:>6} {m.limit:>6} "
                + "".join(f"{v:>6.1f} " for v in m.extra.values())
                + f"{m.sentences:>5} {m.words:>6} {m.words_per_sentence:>7.1f} "
                f"{m.long_words:>4} ({m.long_word_percent:>4.1f}%){flag}")
        lines.append("")
    return "\n".join(lines)


def _short(formula: str) -> str:
    return {"smog_index": "SMOG", "szigriszt_pazos": "SzP"}.get(formula, formula[:6])
