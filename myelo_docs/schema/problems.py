"""Pydantic's validation errors as plain problems: field, problem, fix.

One translator for every model a user fills in (the patient record, brand and
protocol files, HTTP request bodies), so each names its own fields, and one
place that renames fields to what the user typed (``relabel``: a CLI flag).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, Field, ValidationError

from myelo_docs.schema.errors import Problem
from myelo_docs.schema.messages import OUR_ERROR, did_you_mean, phrase, problem
from myelo_docs.schema.messages import user_error as user_error  # site/ still imports it here

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


# pydantic's kind of error -> its entry in messages.toml
_PLAIN = {
    "missing": "plain_missing",
    "string_type": "plain_text",
    "list_type": "plain_list",
    "dict_type": "plain_object",
    "model_type": "plain_object",
    "bool_type": "plain_bool",
    "bool_parsing": "plain_bool",
    "date_from_datetime_inexact": "plain_not_date",
    "int_parsing": "plain_whole",
    "int_type": "plain_whole",
    "int_from_float": "plain_whole_from_float",
    "float_parsing": "plain_number",
    "float_type": "plain_number",
}
_BOUNDS = {"greater_than_equal": "ge", "greater_than": "gt",
           "less_than_equal": "le", "less_than": "lt"}
_RANGE_PROBLEM = {"ge": "range_below", "gt": "range_not_above", "le": "range_above",
                  "lt": "range_not_below"}
# unit kind -> the fix for (both ends, a low end only, a high end only)
_RANGE_FIX = {
    "": ("range_fix_between", "range_fix_at_least", "range_fix_at_most"),
    "of": ("range_fix_of_unit_between", "range_fix_of_unit_at_least",
           "range_fix_of_unit_at_most"),
    "in": ("range_fix_in_unit_between", "range_fix_in_unit_at_least",
           "range_fix_in_unit_at_most"),
}
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
    """(problem, fix) for a number out of its range, from the range_* phrases."""
    bounds = {**bounds, _BOUNDS[kind]: ctx[_BOUNDS[kind]]}
    key = _BOUNDS[kind]
    low, high = bounds.get("ge", bounds.get("gt")), bounds.get("le", bounds.get("lt"))
    ends = 0 if low is not None and high is not None else 1 if low is not None else 2
    # °F: the number is read in that unit, not another; hours: a number of them
    how = "" if not unit else "in" if not unit[0].isalpha() else "of"
    return (phrase(_RANGE_PROBLEM[key], amount=_amount(ctx[key], unit)),
            phrase(_RANGE_FIX[how][ends], unit=unit, low=_number(low), high=_number(high)))


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
                  what: Literal["fields", "keys"] = "fields",
                  model: type[BaseModel] | None = None) -> list[Problem]:
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
        if kind == OUR_ERROR:  # our validators' own words (messages.invalid)
            if ctx.get("field"):
                field = ctx["field"]
            elif not loc:  # model-level check names its own fields
                field = "record"
            found = Problem(field, ctx["problem"], ctx["fix"], code=ctx.get("code", ""))
        elif kind == "extra_forbidden":
            here = _known_at(model, loc[:-1]) or known
            found = problem("unknown_key" if what == "keys" else "unknown_field", field,
                            hint=did_you_mean(str(loc[-1]), here), known=", ".join(here),
                            code=Code.unknown_field)
        elif kind == "string_too_long" or (
            kind == "too_long" and isinstance(err.get("input"), str)
        ):
            found = problem("text_too_long", field, count=ctx["max_length"], code=Code.too_long,
                            values=(("count", str(ctx["max_length"])),))
        elif kind == "string_too_short" or (
            kind == "too_short" and isinstance(err.get("input"), str)
        ):
            if not err.get("input"):
                found = problem("text_empty", field, code=Code.too_short)
            else:
                found = problem("text_too_short", field, count=ctx["min_length"],
                                code=Code.too_short)
        elif kind == "too_long":
            found = problem("list_too_long", field, count=ctx["max_length"], code=Code.too_many)
        elif kind in ("enum", "literal_error"):
            if "expected" in ctx:
                found = problem("not_a_choice", field, expected=ctx["expected"],
                                code=Code.not_a_choice)
            else:
                found = problem("not_a_choice_unlisted", field, code=Code.not_a_choice)
        elif kind in _BOUNDS:
            said, fix = _out_of_range(kind, ctx, *_limits(model, loc[-1] if loc else None))
            found = Problem(field, said, fix, code=str(Code.out_of_range))
        elif kind in _PLAIN:
            code = {"missing": Code.missing, "date_from_datetime_inexact": Code.not_a_date}.get(
                kind, Code.wrong_type)
            found = problem(_PLAIN[kind], field, code=code)
        else:
            found = problem("plain_other", field, message=_plain_message(err["msg"]))
        problems.append(found)
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
        said, fix = p.problem, p.fix
        if p.code == Code.missing and missing and head in missing and not rest:
            fix = missing[head]  # only the field itself: not a key missing inside it
        if head == "record" and words is not None:
            said = words.sub(lambda m: names[m.group(1)], said)
        out.append(Problem(field, said, fix, p.code, p.values))
    return out
