"""One strict JSON reader for every JSON a user gives us (--input, --fhir, the service).

Stricter than ``json.loads``: an object with the same key twice is an error
(json.loads keeps the last value silently, which for ``mrn`` chooses an
identifier), and so are ``NaN`` and ``Infinity`` (not JSON). Messages name
the place, the line and column or the key, never a value.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from .errors import InvalidJSON, Problem

_SHOWN_KEY = 60  # characters of a doubled key shown in a message


class _Twice(dict):  # type: ignore[type-arg]
    """An object that had a key twice (``key``: the first such key)."""

    key = ""


def _constant(name: str) -> Any:
    raise ValueError(name)


def _doubled(data: Any) -> tuple[str, str]:
    """(path like ``.entry[0].resource``, key) of the first object with a key twice."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _Twice):
            return path, value.key
        if isinstance(value, dict):
            stack += reversed([(f"{path}.{k}", v) for k, v in value.items()])
        elif isinstance(value, list):
            stack += reversed([(f"{path}[{i}]", v) for i, v in enumerate(value)])
    raise AssertionError("no object with a key twice")


def parse_json(data: str | bytes, where: str, fix: str) -> Any:
    """JSON text (str, or UTF-8 bytes; a byte-order mark is allowed) as Python data.

    ``where``: how the user names the input in a message (``--input``,
    ``Bundle``, ``body``); ``fix``: what to give instead when the input is
    not UTF-8, too deep or has a number too long (e.g. "give one JSON object
    of the record's fields, in UTF-8").

    Raises InvalidJSON (a RecordError, exit 3) with one Problem: not UTF-8;
    not valid JSON (line and column); NaN or Infinity; nesting deeper than
    Python's parser allows or a number of more than 4300 digits; an object
    with the same key twice (the path of that object and the key, e.g.
    ``Bundle.entry[0].resource`` has the key "birthDate" twice).
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidJSON("The JSON is not UTF-8 text", [
                Problem(where, "is not UTF-8 text", fix)]) from None
    twice: list[_Twice] = []

    def pairs_to_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        marked = _Twice(obj)
        marked.key = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        twice.append(marked)
        return marked

    try:
        value = json.loads(data.removeprefix("\ufeff"), object_pairs_hook=pairs_to_object,
                           parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise InvalidJSON("The JSON is not valid", [
            Problem(where, f"is not valid JSON (line {exc.lineno} column {exc.colno}: "
                    f"{exc.msg})", "fix the JSON at that place")]) from None
    except (ValueError, RecursionError) as exc:  # NaN; a 5000-digit number; 100000 [
        if isinstance(exc, ValueError) and str(exc) in ("NaN", "Infinity", "-Infinity"):
            raise InvalidJSON("The JSON is not valid", [
                Problem(where, f"has {exc}, which JSON does not allow",
                        "write the number, or leave the field out")]) from None
        raise InvalidJSON("The JSON is nested too deep or has a number too long", [
            Problem(where, "has a number too long or nesting too deep", fix)]) from None
    if twice:
        path, key = _doubled(value)
        shown = json.dumps(key[:_SHOWN_KEY], ensure_ascii=False)
        place = f"{where} {path.lstrip('.')}" if where.startswith("-") and path else where + path
        raise InvalidJSON("The JSON has a key twice", [
            Problem(place, f"has the key {shown} twice",
                    f"keep one {shown} and remove the other")])
    return value
