"""Shared loading of the hospital's TOML settings files (brand, protocol)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from myelo_docs.schema.errors import ConfigError, Problem
from myelo_docs.schema.messages import error, title
from myelo_docs.schema.problems import problems_from

Model = TypeVar("Model", bound=BaseModel)


def read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise error(ConfigError, "settings_file_missing", what, what=what, path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise error(ConfigError, "settings_not_toml", f"{what} file {path.name}", what=what,
                    detail=exc) from None


def validate_settings(model: type[Model], data: dict[str, Any], what: str) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(f"{what} {p.field}", p.problem, p.fix)
            for p in problems_from(exc, tuple(model.model_fields), "keys", model)
        ]
        raise ConfigError(title("settings_invalid", what=what), problems) from None
