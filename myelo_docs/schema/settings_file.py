"""Shared loading of the hospital's TOML settings files (brand, protocol)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from myelo_docs.schema.errors import ConfigError, Problem
from myelo_docs.schema.problems import problems_from

Model = TypeVar("Model", bound=BaseModel)


def read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"The {what} file was not found",
            [Problem(what, f"no file at {path}", "check the path you gave")],
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"The {what} file is not valid TOML",
            [Problem(f"{what} file {path.name}", str(exc), "fix the TOML syntax at that line")],
        ) from None


def validate_settings(model: type[Model], data: dict[str, Any], what: str) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(f"{what} {p.field}", p.problem, p.fix)
            for p in problems_from(exc, tuple(model.model_fields), "keys", model)
        ]
        raise ConfigError(f"The {what} settings have problems", problems) from None
