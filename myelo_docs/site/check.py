"""``myelo-docs site check DIR`` and ``site warm DIR``: is this site ready to print?

The check, in order (a step that cannot run for an earlier failure is skipped):
site.toml, brand, protocol, text (ours with the site's overrides, every
offered language), reading level (the limits of check-content), topics (every
topic of the content brief still covered, content/topics.toml), previews (one
packet per type and offered language, rendered in full and self-checked,
written to the preview folder), and the fast path's templates (every type,
language and print size, so the first packet of the day is fast).
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from myelo_docs.schema.errors import ConfigError, MyeloDocsError, Problem

Status = Literal["ok", "warn", "fail", "skip"]
PREVIEW_FOLDER = "preview"
TOPICS_FILE = Path(__file__).resolve().parent.parent / "content" / "topics.toml"
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


@dataclass
class Step:
    name: str
    status: Status = "ok"
    detail: str = ""
    problems: list[Problem] = field(default_factory=list)


@dataclass
class CheckResult:
    folder: Path
    name: str = ""
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.status != "fail" for step in self.steps)

    @property
    def problems(self) -> list[Problem]:
        return [p for step in self.steps if step.status == "fail" for p in step.problems]


def _run(result: CheckResult, name: str, work: Callable[[Step], Any]) -> Any:
    """Run one step; a user error becomes its problems, the step failed."""
    step = Step(name)
    result.steps.append(step)
    try:
        return work(step)
    except MyeloDocsError as exc:
        step.status = "fail"
        step.detail = exc.message
        step.problems = exc.problems or [Problem(name, exc.message, "see above")]
        return None


def _skip(result: CheckResult, name: str, why: str) -> None:
    result.steps.append(Step(name, "skip", why))


def check_site(folder: Path | str, preview: Path | None = None, warm: bool = True,
               thresholds: Path | None = None) -> CheckResult:
    """Check every part of a site; see the module's doc. Never raises for a user
    error: each lands in its step (``result.ok`` False means exit 4)."""
    from myelo_docs.site import load_site

    result = CheckResult(Path(folder))
    site = _run(result, "site.toml", lambda step: load_site(folder))
    if site is None:
        return result
    result.folder, result.name = site.folder, site.name
    result.steps[-1].detail = f"{site.name}"
    brand = _run(result, "brand", lambda step: _brand(site, step))
    protocol = _run(result, "protocol", lambda step: _protocol(site, step))
    languages = _run(result, "text", lambda step: _text(site, step))
    if languages is None:
        for name in ("reading level", "topics", "previews", "fast path"):
            _skip(result, name, "the text has problems")
        return result
    _run(result, "reading level", lambda step: _reading(site, languages, thresholds, step))
    if protocol is not None and brand is not None:
        _run(result, "topics", lambda step: _topics(site, languages, protocol, brand, step))
    else:
        _skip(result, "topics", "the brand or protocol has problems")
    if protocol is None or brand is None:
        for name in ("previews", "fast path"):
            _skip(result, name, "the brand or protocol has problems")
        return result
    renderer = _run(result, "previews", lambda step: _previews(
        site, languages, preview or site.folder / PREVIEW_FOLDER, step))
    if not warm:
        _skip(result, "fast path", "--no-warm")
    elif renderer is None:
        _skip(result, "fast path", "the previews failed")
    else:
        _run(result, "fast path", lambda step: _warm(renderer, languages, step))
    return result


def site_renderer(site: Any) -> Any:
    """The renderer every path builds for this site (the public get_renderer)."""
    from myelo_docs.render.engine import get_renderer

    return get_renderer(site=site.folder)


def _brand(site: Any, step: Step) -> Any:
    from myelo_docs.schema.brand import load_brand

    brand = load_brand(site.brand)
    demo = load_brand()
    if site.brand is None:
        step.status, step.detail = "warn", "no brand.toml: our made-up demo brand is printed"
    elif (brand.hospital_name, brand.department_phone) == (demo.hospital_name,
                                                           demo.department_phone):
        step.status = "warn"
        step.detail = (f"{site.brand.name} still has the demo hospital's name and phone "
                       "numbers: put in your own")
    else:
        step.detail = f"{brand.hospital_name}, day {brand.department_phone}, " \
                      f"after hours {brand.after_hours_phone}"
    return brand


def _protocol(site: Any, step: Step) -> Any:
    from myelo_docs.schema.protocol import load_protocol

    protocol = load_protocol(site.protocol)
    ours = load_protocol()
    changed = [f"{key}={value}" for key, value in protocol.model_dump().items()
               if key != "version" and value != getattr(ours, key)
               and not isinstance(value, list | tuple | dict)]
    listed = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6
                                       else "")
    step.detail = f"version {protocol.version}; " + (
        f"changed: {listed}" if changed else "our defaults")
    return protocol


def _text(site: Any, step: Step) -> list[str]:
    """The offered languages, each with its text loaded (overrides checked)."""
    from myelo_docs.content.overrides import content_for, site_files, site_languages
    from myelo_docs.schema.languages import available_languages
    from myelo_docs.site import offered_languages

    offered = offered_languages(site)
    own = site_languages(site.content)
    problems: list[Problem] = []
    for code in offered:
        if code not in available_languages() and code not in own:
            problems.append(Problem(
                "site.toml languages", f"'{code}' has no patient text",
                f"add a folder content/{code}/ with every file, or remove '{code}'"))
    counts = []
    changed = [p.name for p in site.content.iterdir() if p.is_dir()] if site.content else []
    missing = {code for code in offered if code not in available_languages() and code not in own}
    for code in sorted({*offered, *own, *changed} - missing):
        try:
            content_for(code, site.content)
        except ConfigError as exc:
            problems += exc.problems
            continue
        files = len(site_files(site.content, code)) if site.content else 0
        if code in own:
            counts.append(f"{code}: the site's own")
        elif files:
            counts.append(f"{code}: {files} file{'s' if files > 1 else ''} changed"
                          + ("" if code in offered else " (not offered)"))
    if problems:
        raise ConfigError("The site's text has problems", problems)
    step.detail = ("; ".join(counts) if counts else "our text, unchanged") + \
        f" (offered: {', '.join(offered)})"
    return offered


def _reading(site: Any, languages: list[str], thresholds: Path | None, step: Step) -> None:
    from myelo_docs.content.readability import (
        FORMULAS,
        failures,
        load_thresholds,
        measure_language,
    )

    limits = load_thresholds(thresholds)
    reports = [measure_language(code, None, limits, overrides=site.content)
               for code in languages]
    problems = failures(reports)
    parts = []
    for report in reports:
        wholes = [m for m in report.measures if m.name.startswith("whole")]
        if report.formula and wholes:
            worst = max(wholes, key=lambda m: m.score if FORMULAS[report.formula][1]
                        else -m.score)
            parts.append(f"{report.language} {worst.score:.1f} (limit {worst.limit})")
        else:
            parts.append(f"{report.language}: no formula (counts only)")
    step.detail = "hardest whole packet: " + ", ".join(parts)
    if problems:
        raise ConfigError("Some patient text is above its reading level", problems)


def load_topics() -> dict[str, dict[str, Any]]:
    with TOPICS_FILE.open("rb") as fh:
        return tomllib.load(fh)


def plain_text(content: Any, type_name: str, protocol: Any, brand: Any) -> str:
    """Everything a patient reads in one type's packet, lower case, markup removed."""
    from myelo_docs.content.loader import localised

    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            parts.append(str(node))
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key not in ("when", "only", "id"):
                    walk(value)

    walk(localised(content, type_name, protocol, brand))
    text = _TAG.sub("", " ".join(parts)).replace("&#39;", "'")
    return _SPACE.sub(" ", text).lower()


def uncovered(content: Any, protocol: Any, brand: Any,
              topics: dict[str, dict[str, Any]] | None = None) -> tuple[list[str], list[str]]:
    """(topics no type's text covers in full, topics with no words for the language)."""
    from myelo_docs.schema.record import ALL_TYPES

    topics = topics if topics is not None else load_topics()
    texts = [plain_text(content, t.value, protocol, brand) for t in ALL_TYPES]
    missing, unchecked = [], []
    for topic, table in topics.items():
        words = [w.lower() for w in table.get(content.language, [])]
        if not words:
            unchecked.append(topic)
        elif not all(any(w in text for w in words) for text in texts):
            missing.append(topic)
    return missing, unchecked


def _topics(site: Any, languages: list[str], protocol: Any, brand: Any, step: Step) -> None:
    from myelo_docs.content.overrides import content_for

    topics = load_topics()
    problems, unchecked = [], []
    for code in languages:
        missing, none = uncovered(content_for(code, site.content), protocol, brand,
                                  topics)
        if none:
            unchecked.append(code)
        for topic in missing:
            table = topics[topic]
            problems.append(Problem(
                f"content {code} (topic {topic})",
                f"no longer covers \"{table['brief']}\" in every packet",
                "put the text about it back (words that show it: "
                + ", ".join(f'"{w}"' for w in table[code]) + ")"))
    step.detail = f"{len(topics)} topics in {', '.join(languages)}"
    if unchecked:
        step.status = "warn"
        step.detail += f"; not checked in {', '.join(unchecked)} (no topic words: see " \
                       "content/topics.toml)"
    if problems:
        raise ConfigError("The site's text leaves out topics patients need", problems)


def _previews(site: Any, languages: list[str], folder: Path, step: Step) -> Any:
    """One packet per type and language, in full, self-checked; the renderer."""
    from myelo_docs.cli.demo import DEMO_RECORD
    from myelo_docs.output.files import write_atomic
    from myelo_docs.schema.record import ALL_TYPES

    renderer = site_renderer(site)
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for type_ in ALL_TYPES:
        for code in languages:
            record = {**DEMO_RECORD, "type": type_.value, "language": code,
                      "large_print": site.large_print}
            document = renderer.packet(record, full_render=True)  # self-checked inside
            name = f"packet-{type_.value.replace('+', '-')}-{code}.pdf"
            write_atomic(folder / name, document.pdf, overwrite=True)
            count += 1
    step.detail = f"{count} packets, self-checked, in {folder}"
    return renderer


@dataclass
class WarmResult:
    built: int = 0
    seconds: float = 0.0
    folder: Path | None = None
    error: str = ""
    full: list[str] = field(default_factory=list)  # kinds the fast path leaves to full renders


def warm(renderer: Any, languages: list[str], types: list[str] | None = None) -> WarmResult:
    """Build (or load) the fast path's cached templates for every type, language and
    print size, as the first packet of each would. ``error`` says why not, if the fast
    path cannot (a site's own fonts always get the full render)."""
    from myelo_docs.schema.record import ALL_TYPES

    out = WarmResult()
    if not renderer.fast_path:
        out.error = "the site's own fonts are always rendered in full (no templates)"
        return out
    start = time.perf_counter()
    try:
        from myelo_docs.render.fastpath.plan import Unsure

        cache = renderer.fast_packets().cache  # fastpath/packet.py FastPackets
        out.folder = cache.folder
        for type_name in types or [t.value for t in ALL_TYPES]:
            for code in languages:
                for large_print in (False, True):
                    try:
                        cache.get(type_name, code, large_print, plan_pages=1)
                        out.built += 1
                    except Unsure:  # this kind is always rendered in full
                        out.full.append(f"{type_name}/{code}{'/large' if large_print else ''}")
    except MyeloDocsError:
        raise
    except Exception as exc:  # the fast path is being rebuilt; say so, not a traceback
        out.error = f"{type(exc).__name__}: {exc}"
    out.seconds = time.perf_counter() - start
    return out


def _warm(renderer: Any, languages: list[str], step: Step) -> None:
    done = warm(renderer, languages)
    where = f" in {done.folder}" if done.folder else " (in memory only)"
    if done.error:
        step.status = "warn"
        step.detail = f"templates not built ({done.built} done): {done.error}; packets are " \
                      "still right, the first of each kind is slower"
    else:
        step.detail = f"{done.built} templates ready{where}, {done.seconds:.0f} s"
        if done.full:
            step.detail += f"; {len(done.full)} kinds left to the full render " \
                           f"({', '.join(done.full[:3])}{', ...' if len(done.full) > 3 else ''})"


_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def format_summary(result: CheckResult, limit: int = 12) -> str:
    """One screen: a line per step, then the problems (file, key, fix), then the verdict."""
    lines = [f"Site: {result.name or '?'} ({result.folder})"]
    for step in result.steps:
        lines.append(f"  {_MARK[step.status]}  {step.name:<14} {step.detail}")
    problems = result.problems
    if problems:
        lines.append("")
        lines.append(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} to fix:")
        lines += [f"  - {p}" for p in problems[:limit]]
        if len(problems) > limit:
            lines.append(f"  ... and {len(problems) - limit} more (fix these, then check again)")
        lines.append("Not ready: fix the problems above and run `myelo-docs site check` again.")
    else:
        lines.append("Ready to print. Look at the previews before the first patient.")
    return "\n".join(lines)
