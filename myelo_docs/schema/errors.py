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
    # A stable name of the kind of problem (``problems.Code``), for a front end that
    # says it in its own words; "" for problems no one translates. ``values``: the
    # numbers such words need (("count", "120"),).
    code: str = ""
    values: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}. Fix: {self.fix}"

    def as_dict(self) -> dict[str, str]:
        """field, problem, fix; and code when there is one (an added key is compatible)."""
        out = {"field": self.field, "problem": self.problem, "fix": self.fix}
        if self.code:
            out["code"] = self.code
        return out


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


class Interrupted(MyeloDocsError):
    """Stopped with Ctrl-C; what was finished is kept (a batch can be resumed)."""

    exit_code = 130  # 128 + SIGINT, as shells report it


# -- exit codes: each declared once, the error classes' own codes included ---------

ROWS_FAILED = 7  # batch and validate: finished, but some rows have problems

EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "internal error (a bug: please report it)",
    2: "usage error (unknown option, missing argument, a value not among the choices)",
    RecordError.exit_code: "invalid input (a field is missing or wrong; the message names it)",
    ConfigError.exit_code: "bad configuration (brand, protocol, content or font folder)",
    OutputError.exit_code: "output problem (file exists, folder missing, a PDF to a terminal)",
    SelfCheckError.exit_code: "the PDF failed its safety self-check; nothing was written",
    ROWS_FAILED: "finished, but some rows have problems (each is listed)",
    Interrupted.exit_code: "stopped with Ctrl-C (nothing half-written is left)",
}


def exit_codes_help(*codes: int) -> str:
    """The "Exit codes:" block of a command's help: 0, 1, 2 and 130 (every command can
    return them) and the ``codes`` it can return besides, in click's no-rewrap form."""
    lines = ["\b", "Exit codes:"]
    every = {0, 1, 2, Interrupted.exit_code}
    lines += [f"  {code:>3}  {EXIT_CODES[code]}" for code in sorted({*every, *codes})]
    return "\n".join(lines) + "\n"
