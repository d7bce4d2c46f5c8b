"""Error types raised to callers.

User mistakes (bad record, bad brand file, a character no font covers) are
``MyeloDocsError`` subclasses with a message that says where and how to fix;
anything else escaping the core is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where, what, and how to fix it."""

    field: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}. Fix: {self.fix}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem, "fix": self.fix}


class MyeloDocsError(Exception):
    """Base of every error a user can cause and fix."""

    exit_code = 1

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = list(problems or [])

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        lines = [self.message] + [f"  - {p}" for p in self.problems]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "problems": [p.as_dict() for p in self.problems],
        }


class RecordError(MyeloDocsError):
    """The patient record is invalid (missing, malformed or unknown fields)."""

    exit_code = 3


class ConfigError(MyeloDocsError):
    """A brand, protocol, content or font configuration is invalid."""

    exit_code = 4


class MissingGlyphError(RecordError):
    """A field holds a character that no bundled or configured font can draw."""

    exit_code = 3


class OutputError(MyeloDocsError):
    """The output cannot be written (exists, not writable, bad path)."""

    exit_code = 5


class SelfCheckError(MyeloDocsError):
    """The rendered PDF failed its own safety check; nothing was written."""

    exit_code = 6


class InvalidJSON(RecordError):
    """JSON input that cannot be read as it was meant: not UTF-8, not valid
    JSON, too deep or with a number too long, or an object with a key twice."""

    exit_code = 3
