"""Intake settings: the checks a hospital tunes, applied to every record on every path.

A record that passes the model (record.py) can still be the wrong one for
this hospital: an MRN of the wrong shape (Excel dropped its leading zeros),
or a procedure date years away (a typo far more often than not). These
checks run wherever a record comes in (flags, JSON, CSV, HTTP, FHIR), in
``record.validate_record``. Errors name the setting, never the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from myelo_docs.schema.errors import ConfigError, Problem
from myelo_docs.schema.messages import error, phrase, problem
from myelo_docs.schema.problems import Code

MRN_SYSTEM_HELP = ("The FHIR identifier system of your hospital's MRN (repeat for more); an "
                   "identifier with this system is the MRN, whatever its type says.")
MRN_PATTERN_HELP = ("A regular expression every MRN must match in full, e.g. '[0-9]{8}' "
                    "(catches MRNs that lost their leading zeros).")


@dataclass(frozen=True)
class IntakeSettings:
    """What a hospital sets about incoming records.

    - ``mrn_systems``: FHIR identifier systems (URIs) of the hospital's MRN; an
      identifier with one of these systems is the MRN (fhir.py).
    - ``mrn_pattern``: a regular expression the whole MRN must match, or None.
    - ``procedure_years_back`` / ``procedure_years_ahead``: how far from today
      a procedure date may be (whole years; default 5 back, 1 ahead).
    - ``recent_procedure_days``: a FHIR Procedure or order older than this
      (days; default 30) is chosen only when the procedure date is given.
    - ``large_print``: the large-print choice of a record that does not say
      (a site's output default; validate_record fills it in).
    - ``languages``: the languages the site offers; a record in another one is
      refused (() = every language we have text for).

    Raises ConfigError for a pattern that is not a valid regular expression
    or a negative window.
    """

    mrn_systems: tuple[str, ...] = ()
    mrn_pattern: str | None = None
    procedure_years_back: int = 5
    procedure_years_ahead: int = 1
    recent_procedure_days: int = 30
    large_print: bool = False
    languages: tuple[str, ...] = ()
    _compiled: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mrn_systems", tuple(s.strip() for s in self.mrn_systems
                                                      if s and s.strip()))
        if self.mrn_pattern:
            try:
                object.__setattr__(self, "_compiled", re.compile(self.mrn_pattern))
            except re.error as exc:
                raise error(ConfigError, "intake_mrn_pattern_unreadable", "--mrn-pattern",
                            detail=exc.msg) from None
        if min(self.procedure_years_back, self.procedure_years_ahead,
               self.recent_procedure_days) < 0:
            raise error(ConfigError, "intake_window_negative",
                        "procedure_years_back/ahead, recent_procedure_days")

    def problems(self, record: Any, on: date | None = None) -> list[Problem]:
        """Every intake problem of a validated record (never quoting a value)."""
        problems = []
        if self._compiled is not None and not self._compiled.fullmatch(record.mrn):
            problems.append(problem("intake_mrn_pattern", "mrn", pattern=self.mrn_pattern,
                                    code=Code.mrn_pattern))
        if self.languages and record.language not in self.languages:
            problems.append(problem("intake_language_not_offered", "language",
                                    known=", ".join(self.languages), code=Code.bad_language))
        day = on or today()
        earliest = _years_from(day, -self.procedure_years_back)
        latest = _years_from(day, self.procedure_years_ahead)
        if record.procedure_date < earliest:
            problems.append(problem(
                "intake_too_long_ago", "procedure_date", years=self.procedure_years_back,
                code=Code.too_long_ago, values=(("years", str(self.procedure_years_back)),)))
        elif record.procedure_date > latest:
            problems.append(problem("intake_too_far_ahead", "procedure_date",
                                    ahead=_years(self.procedure_years_ahead),
                                    code=Code.too_far_ahead))
        return problems


def today() -> date:
    """Today's date, as every intake rule sees it (one place, so tests can pin it)."""
    return date.today()


def _years(n: int) -> str:
    if n == 1:
        return phrase("intake_one_year")
    return phrase("intake_years", count=n)


def _years_from(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)
