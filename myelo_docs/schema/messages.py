"""The words of every error a user can meet, kept in one file (messages.toml).

Each entry has a key and up to three sentences: ``title`` (the headline of an
error), ``problem`` (what is wrong, after the field's name) and ``fix`` (what
to do); or a ``phrase``, a piece other messages are built with. ``{names}``
in them are filled from the keyword values a call gives;
``tests/test_messages.py`` reads every call in the package and checks that it
names an entry and gives exactly the values that entry uses.

    raise OutputError(title("output_exists"), [problem("output_exists", "--out", path=p)])
    raise error(OutputError, "output_exists", "--out", path=p)   # the same, shorter
"""

from __future__ import annotations

import difflib
import string
import tomllib
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic_core import PydanticCustomError

from myelo_docs.schema.errors import MyeloDocsError, Problem

FILE = Path(__file__).with_name("messages.toml")
OUR_ERROR = "myelo"  # the type of the errors our validators raise with their own problem and fix
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


def problem(key: str, field: str, /, *, code: str = "",
            values: tuple[tuple[str, str], ...] = (), **fill: Any) -> Problem:
    """A Problem at ``field`` (how the user names it: a flag, a column, a key)
    with ``key``'s problem and fix, filled in from ``fill``; ``code``: its stable
    Code, if any; ``values``: the numbers a front end's own words need (Problem.values)."""
    return Problem(field, _say(key, "problem", fill), _say(key, "fix", fill), code=str(code),
                   values=values)


def error(kind: type[E], key: str, field: str, /, **values: Any) -> E:
    """An error of ``kind`` with ``key``'s title and one problem at ``field``."""
    return kind(title(key, **values), [problem(key, field, **values)])


def invalid(key: str, /, *, field: str | None = None, code: str | None = None,
            **values: Any) -> PydanticCustomError:
    """``key``'s problem and fix as the error a pydantic validator raises (read back
    by problems.problems_from); ``field`` names where it is when pydantic cannot (a
    check of the whole model); ``code``: its stable problems.Code, for a front end
    with its own words (``Problem.code``)."""
    return user_error(_say(key, "problem", values), _say(key, "fix", values), field=field,
                      code=code)


def user_error(problem: str, fix: str, field: str | None = None,
               code: str | None = None) -> PydanticCustomError:
    """The same with the sentences given (for words that are not in messages.toml;
    prefer ``invalid``)."""
    ctx = {"problem": problem, "fix": fix}
    if field:
        ctx["field"] = field
    if code:
        ctx["code"] = str(code)
    return PydanticCustomError(OUR_ERROR, "{problem}", ctx)


def phrase(key: str, /, **values: Any) -> str:
    """A piece of a sentence (``phrase``), filled in."""
    return _say(key, "phrase", values)


def did_you_mean(value: str, known: Iterable[str], cutoff: float = 0.6) -> str:
    """The start of a fix for a value close to a known one ("did you mean 'x'? "), else "";
    ``cutoff``: how close (difflib's ratio, 0 to 1)."""
    found = difflib.get_close_matches(value, list(known), n=1, cutoff=cutoff)
    return phrase("did_you_mean", guess=found[0]) if found else ""
