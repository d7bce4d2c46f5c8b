"""Pydantic's validation errors as plain problems: field, problem, fix.

One translator for every model a user fills in (the patient record, brand and
protocol files, HTTP request bodies), so each names its own fields, and one
place that renames fields to what the user typed (``relabel``: a CLI flag).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import annotated_types
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import PydanticCustomError

from myelo_docs.schema.errors import Problem

OUR_ERROR = "myelo"  # the type of errors our validators raise with their own problem and fix
MISSING = "is required but missing"
UNIT = "unit"  # key of a Field's json_schema_extra: what its number counts ("hours", "°F")


class Code(StrEnum):
    """The stable codes of the problems a nurse can cause from a form: declared once,
    raised by the validators, and each given words on every language's nurse page
    (a test checks). The English problem text may change; a code does not."""

    # pydantic's own kinds, named by problems_from
    missing = "missing"
    too_long = "too_long"
    too_short = "too_short"
    too_many = "too_many"
    not_a_choice = "not_a_choice"
    out_of_range = "out_of_range"
    wrong_type = "wrong_type"
    unknown_field = "unknown_field"
    # record.py
    starts_with_mark = "starts_with_mark"
    mark_twice = "mark_twice"
    direction_override = "direction_override"
    soft_hyphen = "soft_hyphen"
    control_character = "control_character"
    damaged_text = "damaged_text"  # damaged.py: lost letters, question marks, mojibake
    not_a_date = "not_a_date"
    not_real_date = "not_real_date"
    not_a_type = "not_a_type"
    invisible_character = "invisible_character"
    mrn_excel_scientific = "mrn_excel_scientific"
    mrn_decimal = "mrn_decimal"
    bad_language = "bad_language"
    future_date = "future_date"
    before_1900 = "before_1900"
    test_before_birth = "test_before_birth"
    # intake.py
    mrn_pattern = "mrn_pattern"
    too_long_ago = "too_long_ago"
    too_far_ahead = "too_far_ahead"
    # fonts.py
    no_font = "no_font"


def user_error(problem: str, fix: str, field: str | None = None,
               code: Code | None = None) -> PydanticCustomError:
    """An error for a validator to raise with its own problem and fix; ``field``
    names where it is when pydantic cannot (a check of the whole model); ``code``:
    its stable code, for a front end with its own words (``Problem.code``)."""
    ctx = {"problem": problem, "fix": fix}
    if field:
        ctx["field"] = field
    if code:
        ctx["code"] = str(code)
    return PydanticCustomError(OUR_ERROR, "{problem}", ctx)


def counted(unit: str, **limits: Any) -> Any:
    """A number Field that counts ``unit`` (its errors say it): counted("hours", ge=1)."""
    return Field(json_schema_extra={UNIT: unit}, **limits)


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"#{item + 1}")
        else:
            parts.append(str(item))
    return " ".join(parts) or "record"


_PLAIN = {
    "missing": (MISSING, "add a value for it"),
    "string_type": ("must be text", "write it as text"),
    "list_type": ("must be a list", "give a list of items"),
    "dict_type": ("must be an object with name and instruction", "give name and instruction"),
    "model_type": ("must be an object with name and instruction", "give name and instruction"),
    "bool_type": ("must be true or false", "write true or false"),
    "bool_parsing": ("must be true or false", "write true or false"),
    "date_from_datetime_inexact": ("is not a date", "write the date like 1961-03-24"),
    "int_parsing": ("must be a whole number", "write digits only, like 24"),
    "int_type": ("must be a whole number", "write digits only, like 24"),
    "int_from_float": ("must be a whole number", "leave out the decimal part"),
    "float_parsing": ("must be a number", "write a number, like 100.4"),
    "float_type": ("must be a number", "write a number, like 100.4"),
}
_BOUNDS = {"greater_than_equal": "ge", "greater_than": "gt",
           "less_than_equal": "le", "less_than": "lt"}
_PREFIXES = ("Value error, ", "Assertion failed, ")


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _amount(value: Any, unit: str) -> str:
    """99 °F, 24 hours, 1 hour."""
    if not unit:
        return _number(value)
    if value == 1 and unit.endswith("s"):
        unit = unit[:-1]
    return f"{_number(value)} {unit}"


def _limits(model: type[BaseModel] | None, name: Any) -> tuple[dict[str, Any], str]:
    """The bounds (ge, gt, le, lt) and the unit of a model's number field."""
    if model is None or name not in model.model_fields:
        return {}, ""
    info = model.model_fields[name]
    bounds: dict[str, Any] = {}
    for item in info.metadata:
        for key, kind in (("ge", annotated_types.Ge), ("gt", annotated_types.Gt),
                          ("le", annotated_types.Le), ("lt", annotated_types.Lt)):
            if isinstance(item, kind):
                bounds[key] = getattr(item, key)
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return bounds, str(extra.get(UNIT, ""))


def _out_of_range(kind: str, ctx: dict[str, Any], bounds: dict[str, Any],
                  unit: str) -> tuple[str, str]:
    bounds = {**bounds, _BOUNDS[kind]: ctx[_BOUNDS[kind]]}
    words = {"ge": "below", "gt": "not above", "le": "above", "lt": "not below"}
    key = _BOUNDS[kind]
    problem = f"is {words[key]} {_amount(ctx[key], unit)}"
    low, high = bounds.get("ge", bounds.get("gt")), bounds.get("le", bounds.get("lt"))
    if low is not None and high is not None:
        fix = f"from {_number(low)} to {_number(high)}"
    elif low is not None:
        fix = f"of {_number(low)} or more"
    else:
        fix = f"of {_number(high)} or less"
    if unit and not unit[0].isalpha():  # °F: the number is read in that unit, not another
        return problem, f"give it in {unit}, {fix}"
    return problem, f"give a number of {unit} {fix}" if unit else f"give a number {fix}"


def _plain_message(message: str) -> str:
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


def _known_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The field names of the model found by following ``loc`` from ``model`` (for an
    unknown key inside a medication: the medication's own); () when it cannot."""
    if model is None or not loc:
        return ()
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return ()
        annotation = fields[part].annotation
        inner = [a for a in getattr(annotation, "__args__", ()) if isinstance(a, type)
                 and issubclass(a, BaseModel)]
        current = inner[0] if inner else annotation
    fields = getattr(current, "model_fields", None)
    return tuple(fields) if fields else ()


def problems_from(exc: ValidationError, known: Sequence[str],
                  what: str = "fields", model: type[BaseModel] | None = None) -> list[Problem]:
    """Turn pydantic's errors into plain problems a nurse can act on.

    ``known``: the model's field names, offered for an unknown one ("did you
    mean"); ``what``: what to call them ("fields" of a record, "keys" of a
    settings file); ``model``: where to find a number's range and unit
    (``counted``), for a fix that says both.
    """
    problems = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        field = _field_path(loc)
        kind = err["type"]
        ctx = err.get("ctx") or {}
        code, values = "", ()
        if kind == OUR_ERROR:
            problem, fix, code = ctx["problem"], ctx["fix"], ctx.get("code", "")
            if ctx.get("field"):
                field = ctx["field"]
            elif not loc:  # model-level check names its own fields
                field = "record"
        elif kind == "extra_forbidden":
            here = _known_at(model, loc[:-1]) or known
            guess = difflib.get_close_matches(str(loc[-1]), here, n=1)
            problem, code = f"is not a known {what[:-1]}", Code.unknown_field
            fix = (f"did you mean '{guess[0]}'? " if guess else "") + (
                f"known {what} are: " + ", ".join(here)
            )
        elif kind == "string_too_long" or (
            kind == "too_long" and isinstance(err.get("input"), str)
        ):
            problem = f"is longer than {ctx['max_length']} characters"
            fix, code, values = "shorten it", Code.too_long, (("count", str(ctx["max_length"])),)
        elif kind == "string_too_short" or (
            kind == "too_short" and isinstance(err.get("input"), str)
        ):
            problem = "is empty" if not err.get("input") else \
                f"is shorter than {ctx['min_length']} characters"
            fix, code = "give a value", Code.too_short
        elif kind == "too_long":
            problem = f"has more than {ctx['max_length']} items"
            fix, code = "combine or remove items", Code.too_many
        elif kind in ("enum", "literal_error"):
            problem, fix = "is not one of the choices", f"use {ctx.get('expected', 'another')}"
            code = Code.not_a_choice
        elif kind in _BOUNDS:
            problem, fix = _out_of_range(kind, ctx, *_limits(model, loc[-1] if loc else None))
            code = Code.out_of_range
        elif kind in _PLAIN:
            problem, fix = _PLAIN[kind]
            code = {"missing": Code.missing, "date_from_datetime_inexact": Code.not_a_date}.get(
                kind, Code.wrong_type)
        else:
            problem, fix = _plain_message(err["msg"]), "correct the value"
        problems.append(Problem(field=field, problem=problem, fix=fix, code=str(code),
                                values=values))
    return problems


def relabel(problems: Sequence[Problem], names: Mapping[str, str],
            missing: Mapping[str, str] | None = None) -> list[Problem]:
    """The same problems in the user's words.

    ``names``: field -> how the user gave it (``mrn`` -> ``--mrn``), applied to
    the first word of each problem's field (``instructions #2`` ->
    ``--instruction #2``) and to field names inside a whole-record problem;
    ``missing``: field -> the fix for a missing field (``add --mrn``).
    """
    words = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b") if names else None
    out = []
    for p in problems:
        head, sep, rest = p.field.partition(" ")
        field = names[head] + sep + rest if head in names else p.field
        problem, fix = p.problem, p.fix
        if problem == MISSING and missing and head in missing and not rest:
            fix = missing[head]  # only the field itself: not a key missing inside it
        if head == "record" and words is not None:
            problem = words.sub(lambda m: names[m.group(1)], problem)
        out.append(Problem(field, problem, fix, p.code, p.values))
    return out
