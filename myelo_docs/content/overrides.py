"""A site's own patient text, layered over ours (issue #13).

A site's content folder holds ``<lang>/<file>.toml`` files, ``<file>`` one of
labels, handout, discharge, types. The rules:

- For a language we ship, a site file overrides our text **key by key**: only
  the keys it names change. A table merges key by key; a list of tables that
  each have an ``id`` (handout ``[[sections]]``, ``[[home.figures]]``) is
  matched by id, and the tables merge key by key; any other list (the blocks
  of a section, a list of items) is replaced whole.
- A site may add a language of its own: a folder for a language we do not
  ship must have every file and every key our English has.
- Placeholders: every ``{name}`` must be one we fill in, and a text must keep
  every placeholder our text has for that key (a number the protocol sets must
  never be typed into the text). ``when`` conditions must name a protocol
  choice and one of its values.
- An unknown file, key or id is an error with a "did you mean".

Every error names the file and the key. The text's "reviewed" date printed on
each page becomes the site's (site.toml ``[content] text_reviewed``).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterator
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from myelo_docs.content.loader import (
    _PLACEHOLDER,
    CONTENT_FILES,
    Content,
    load_content,
)
from myelo_docs.schema.errors import ConfigError, Problem
from myelo_docs.schema.languages import language_folders
from myelo_docs.schema.settings_file import read_toml, validate_settings

REFERENCE_LANGUAGE = "en"  # a site's own language must have every key this one has


SITE_FILE = "site.toml"  # the site folder's settings: its [content] table is read here


def _guess(name: str, known: list[str]) -> str:
    found = difflib.get_close_matches(name, known, n=1)
    listed = ", ".join(known) if len(known) <= 12 else ", ".join(known[:12]) + ", ..."
    return f"did you mean '{found[0]}'?" if found else f"use one of: {listed}"


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key not in ("when", "only", "id"):
                yield from _strings(value)


def placeholders(node: Any) -> set[str]:
    """Every {name} used in the strings of ``node`` (conditions and ids left out)."""
    return {m.group(1) for text in _strings(node) for m in _PLACEHOLDER.finditer(text)}


@cache
def known_placeholders() -> frozenset[str]:
    """The names patient text may use: every setting value, every string of a
    type's table, and every name our own text uses in any language."""
    from myelo_docs.content.loader import TYPE_KEYS, setting_values
    from myelo_docs.schema.brand import load_brand
    from myelo_docs.schema.protocol import load_protocol

    names = set(setting_values(load_protocol(), load_brand(), REFERENCE_LANGUAGE))
    names.update(TYPE_KEYS)
    for language in language_folders():
        for data in load_content(language).data.values():
            names |= placeholders(data)
    return frozenset(names)


def _is_id_list(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(item, dict) and "id" in item for item in value))


class _Checker:
    """Walks one site file against ours, collecting problems."""

    def __init__(self, where: str):
        self.where = where
        self.problems: list[Problem] = []
        from myelo_docs.schema.protocol import choices

        self.choices = choices()

    def problem(self, path: str, problem: str, fix: str) -> None:
        """``path``: dotted (home.blocks); said as the TOML file shows it: [home] blocks."""
        table, _, key = path.rpartition(".")
        where = f"[{table}] {key}" if table else key
        self.problems.append(Problem(f"{self.where} {where}".strip(), problem, fix))

    def merge(self, ours: Any, theirs: Any, path: str, complete: bool) -> Any:
        """``theirs`` over ``ours``; with ``complete`` (a language of the site's own)
        every key of ours must be given."""
        if isinstance(ours, dict):
            if not isinstance(theirs, dict):
                self.problem(path, f"is {_kind(theirs)}, ours is a table",
                             "write it as a table, with the same keys as ours")
                return ours
            # a language of its own keeps our conditions and ids where it gives none
            out = dict(ours) if not complete else {
                key: value for key, value in ours.items() if key in ("when", "only", "id")}
            for key, value in theirs.items():
                here = f"{path}.{key}" if path else key
                if key in ("when", "only"):  # a condition is the site's own, checked
                    out[key] = value
                    self.condition(key, value, here)
                    continue
                if key not in ours:
                    self.problem(here, "is not a key of this text",
                                 _guess(key, [k for k in ours if k not in ("when", "only")]))
                    continue
                out[key] = self.merge(ours[key], value, here, complete)
            if complete:
                for key in ours:
                    if key not in theirs and key not in ("when", "only"):
                        here = f"{path}.{key}" if path else key
                        self.problem(here, "is missing (a language of the site's own needs "
                                     "every key)", f"add {key}, translated from our "
                                     f"{REFERENCE_LANGUAGE} text")
            return out
        if isinstance(ours, list):
            if not isinstance(theirs, list):
                self.problem(path, f"is {_kind(theirs)}, ours is a list",
                             "write it as a list [ ... ]")
                return ours
            if _is_id_list(ours):
                return self.merge_by_id(ours, theirs, path, complete)
            self.placeholders(ours, theirs, path)
            self.conditions(theirs, path)
            return theirs
        if isinstance(ours, str):
            if not isinstance(theirs, str):
                self.problem(path, f"is {_kind(theirs)}, ours is text", 'write it as "text"')
                return ours
            self.placeholders(ours, theirs, path)
            return theirs
        if type(theirs) is not type(ours):
            self.problem(path, f"is {_kind(theirs)}, ours is {_kind(ours)}",
                         f"write it like ours: {ours!r}")
            return ours
        return theirs

    def merge_by_id(self, ours: list[dict[str, Any]], theirs: list[Any], path: str,
                    complete: bool) -> list[Any]:
        by_id = {item["id"]: item for item in ours}
        given: dict[str, Any] = {}
        for n, item in enumerate(theirs, start=1):
            if not isinstance(item, dict) or "id" not in item:
                self.problem(f"{path}[#{n}]", "has no id",
                             "give the id of the part it changes: " + ", ".join(by_id))
                continue
            if item["id"] not in by_id:
                self.problem(f"{path}[id={item['id']}]", "is not one of our ids",
                             _guess(str(item["id"]), list(by_id)))
                continue
            given[item["id"]] = item
        if complete:
            for missing in by_id.keys() - given.keys():
                self.problem(f"{path}[id={missing}]", "is missing (a language of the site's "
                             "own needs every part)", f"add it, translated from our "
                             f"{REFERENCE_LANGUAGE} text")
        return [self.merge(item, given[item["id"]], f"{path}[id={item['id']}]", complete)
                if item["id"] in given else item for item in ours]

    def placeholders(self, ours: Any, theirs: Any, path: str) -> None:
        used, known = placeholders(theirs), known_placeholders()
        for name in sorted(used - known):
            self.problem(path, f"uses {{{name}}}, which is not a known placeholder",
                         _guess(name, sorted(known)))
        for name in sorted(placeholders(ours) - used):
            self.problem(path, f"leaves out {{{name}}}, which our text has",
                         f"keep {{{name}}} in the text: it is filled in from the settings "
                         "(never type the value itself)")

    def conditions(self, items: list[Any], path: str) -> None:
        for n, item in enumerate(items, start=1):
            if isinstance(item, dict) and "when" in item:
                self.condition("when", item["when"], f"{path}[#{n}].when")

    def condition(self, key: str, value: Any, path: str) -> None:
        if key != "when":
            return
        if not isinstance(value, dict):
            self.problem(path, "is not a table", 'write it like when = { position = "flat" }')
            return
        for name, wanted in value.items():
            if name not in self.choices:
                self.problem(f"{path}.{name}", "is not a protocol choice",
                             _guess(name, sorted(self.choices)))
                continue
            for option in wanted if isinstance(wanted, list) else [wanted]:
                if option not in self.choices[name]:
                    self.problem(f"{path}.{name}", f"'{option}' is not one of its choices",
                                 "use " + ", ".join(self.choices[name]))


def site_files(overrides: Path, language: str) -> list[Path]:
    """The site's text files for one language (an unknown file name is an error)."""
    folder = overrides / language
    if not folder.is_dir():
        return []
    files, problems = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name.lower().startswith("readme"):
            continue
        if path.suffix != ".toml" or path.stem not in CONTENT_FILES:
            problems.append(Problem(f"content/{language}/{path.name}",
                                    "is not a patient text file",
                                    _guess(path.stem, list(CONTENT_FILES))
                                    + " (the files are labels, handout, discharge and "
                                    "types, each .toml)"))
            continue
        files.append(path)
    if problems:
        raise ConfigError("The site's content folder has problems", problems)
    return files


def site_languages(overrides: Path | None) -> list[str]:
    """Languages a site adds of its own (a content/<lang>/ for a language we do not ship)."""
    if overrides is None or not overrides.is_dir():
        return []
    ours = language_folders()
    return sorted(p.name for p in overrides.iterdir()
                  if p.is_dir() and p.name not in ours and not p.name.startswith("."))


class ContentTable(BaseModel):
    """[content] of site.toml: the site's text overrides and who reviewed them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    folder: str | None = None       # default: content/ if present
    text_reviewed: date | None = None
    reviewed_by: str = Field(default="", max_length=200)


def review_of(overrides: Path) -> tuple[date | None, str]:
    """The review date and reviewer of a content-overrides folder: its site's
    ``[content] text_reviewed`` and ``reviewed_by`` (site.toml in the folder above,
    or the one above that; ``(None, "")`` when there is none)."""
    found = [folder / SITE_FILE for folder in (overrides.parent, overrides.parent.parent)
             if (folder / SITE_FILE).is_file()]
    if not found:
        return None, ""
    site_file = found[0]
    data = read_toml(site_file, SITE_FILE)
    table = data.get("content", {}) if isinstance(data.get("content", {}), dict) else {}
    content = validate_settings(ContentTable, table, f"{SITE_FILE} [content]")
    return content.text_reviewed, content.reviewed_by


@cache
def content_for(language: str, overrides: Path | None = None,
                extra_dir: Path | None = None) -> Content:
    """The text a packet in ``language`` is made from: ours (load_content), with a
    site's content folder ``overrides`` layered over it key by key when given."""
    if overrides is None:
        return load_content(language, extra_dir)
    return layered(language, Path(overrides), extra_dir)


def layered(language: str, overrides: Path, extra_dir: Path | None = None) -> Content:
    """Our text for ``language`` with the site's overrides applied (see the module's doc).

    Raises ConfigError naming the file and key of every problem.
    """
    ours_available = language in language_folders(extra_dir)
    files = site_files(overrides, language)
    if ours_available and not files:
        return load_content(language, extra_dir)
    if not ours_available and not files:
        return load_content(language, extra_dir)  # its own error: no such language
    reference = load_content(language if ours_available else REFERENCE_LANGUAGE, extra_dir)
    complete = not ours_available
    data = copy.deepcopy(reference.data)
    problems: list[Problem] = []
    given = {path.stem: path for path in files}
    if complete:
        problems += [Problem(f"content/{language}/{name}.toml", "is missing (a language of "
                             "the site's own needs every file)",
                             f"copy our {REFERENCE_LANGUAGE}/{name}.toml and translate it")
                     for name in CONTENT_FILES if name not in given]
    for name, path in given.items():
        where = f"content/{language}/{path.name}"
        checker = _Checker(where)
        theirs = read_toml(path, where)
        data[name] = checker.merge(reference.data[name], theirs, "", complete)
        problems += checker.problems
    if problems:
        raise ConfigError(f"The site's {language} text has problems", problems)
    reviewed, by = review_of(overrides)
    meta = data["labels"].setdefault("meta", {})
    if reviewed is not None:
        meta["last_reviewed"] = reviewed
        if by:
            meta["reviewed_by"] = by
    elif meta.get("last_reviewed") == reference.data["labels"]["meta"]["last_reviewed"]:
        raise ConfigError("The site changes patient text but gives no review date", [Problem(
            "site.toml content text_reviewed", "is missing",
            "write the date your clinical reviewer signed the text off, like "
            "text_reviewed = 2026-11-01 (it is printed on every page)")])
    if complete:
        meta["language"] = language
    folder = overrides / language if complete else reference.folder
    return Content(language=language, folder=folder, data=data,
                   overrides=tuple(files), overrides_root=overrides)
