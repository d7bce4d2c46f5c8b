"""Pydantic's validation errors as plain problems: field, problem, fix.

One translator for every model a user fills in (the patient record, brand and
protocol files, HTTP request bodies), so each names its own fields.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from .errors import Problem

OUR_ERROR = "myelo"  # the type of errors our validators raise with their own problem and fix


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"#{item + 1}")
        else:
            parts.append(str(item))
    text = " ".join(parts).replace(" #", " #")
    return text or "record"


_PLAIN = {
    "missing": ("is required but missing", "add a value for it"),
    "string_type": ("must be text", "write it as text"),
    "list_type": ("must be a list", "give a list of items"),
    "dict_type": ("must be an object with name and instruction", "give name and instruction"),
    "model_type": ("must be an object with name and instruction", "give name and instruction"),
    "bool_type": ("must be true or false", "write true or false"),
    "bool_parsing": ("must be true or false", "write true or false"),
    "date_from_datetime_inexact": ("is not a date", "write the date like 1961-03-24"),
}


def problems_from(exc: ValidationError, known: Sequence[str],
                  what: str = "fields") -> list[Problem]:
    """Turn pydantic's errors into plain problems a nurse can act on.

    ``known``: the model's field names, offered for an unknown one ("did you
    mean"); ``what``: what to call them ("fields" of a record, "keys" of a
    settings file).
    """
    problems = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        field = _field_path(loc)
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == OUR_ERROR:
            problem, fix = ctx["problem"], ctx["fix"]
            if not loc:  # model-level check names its own fields
                field = "record"
        elif kind == "extra_forbidden":
            guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
            problem = "is not a known field"
            fix = (f"did you mean '{guess[0]}'? " if guess else "") + (
                f"known {what} are: " + ", ".join(known)
            )
        elif kind == "string_too_long" or (
            kind == "too_long" and isinstance(err.get("input"), str)
        ):
            problem = f"is longer than {ctx['max_length']} characters"
            fix = "shorten it"
        elif kind == "string_too_short":
            problem = "is empty"
            fix = "give a value"
        elif kind == "too_long":
            problem = f"has more than {ctx['max_length']} items"
            fix = "combine or remove items"
        elif kind in ("enum", "literal_error"):
            problem, fix = "is not a myelogram type", "use cervical, thoracic or lumbar"
        elif kind in _PLAIN:
            problem, fix = _PLAIN[kind]
        else:
            problem, fix = err["msg"].lower(), "correct the value"
        problems.append(Problem(field=field, problem=problem, fix=fix))
    return problems
