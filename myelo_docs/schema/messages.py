"""The words of every error a user can meet, kept in one file (messages.toml).

Each entry has a key and up to three sentences: ``title`` (the headline of an
error), ``problem`` (what is wrong, after the field's name) and ``fix`` (what
to do). ``{names}`` in them are filled from the keyword values a call gives;
``tests/test_messages.py`` reads every call in the package and checks that it
names an entry and gives exactly the values that entry uses.

    raise OutputError(title("output_exists"), [problem("output_exists", "--out", path=p)])
    raise error(OutputError, "output_exists", "--out", path=p)   # the same, shorter
"""

from __future__ import annotations

import string
import tomllib
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from myelo_docs.schema.errors import MyeloDocsError, Problem

FILE = Path(__file__).with_name("messages.toml")
E = TypeVar("E", bound=MyeloDocsError)


@cache
def entries() -> dict[str, dict[str, str]]:
    """key -> {"title"?, "problem"?, "fix"?}, as written in messages.toml."""
    with FILE.open("rb") as fh:
        return tomllib.load(fh)


def names_in(text: str) -> set[str]:
    """The ``{names}`` a sentence uses."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _say(key: str, part: str, values: dict[str, Any]) -> str:
    return entries()[key][part].format_map({k: str(v) for k, v in values.items()})


def title(key: str, /, **values: Any) -> str:
    """The headline of ``key``'s error, filled in."""
    return _say(key, "title", values)


def problem(key: str, field: str, /, *, code: str = "", **values: Any) -> Problem:
    """A Problem at ``field`` (how the user names it: a flag, a column, a key)
    with ``key``'s problem and fix, filled in; ``code``: its stable Code, if any."""
    return Problem(field, _say(key, "problem", values), _say(key, "fix", values), code=code)


def error(kind: type[E], key: str, field: str, /, **values: Any) -> E:
    """An error of ``kind`` with ``key``'s title and one problem at ``field``."""
    return kind(title(key, **values), [problem(key, field, **values)])
