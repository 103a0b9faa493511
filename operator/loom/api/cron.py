"""Cron syntax as both Kubernetes CronJobs (robfig/cron) and cronsim run it: one regular expression
for the CRD, so the API server names the field, and the same check plus cronsim's own in pydantic,
so nothing the operator parses can fail later with a CronSimError."""

from __future__ import annotations

import re
from datetime import datetime

from cronsim import CronSim, CronSimError

# cronsim reads five fields only; Kubernetes CronJobs also accept these macros.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = "(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
_DAYS = "(?i:sun|mon|tue|wed|thu|fri|sat)"
# (name, one value): the values both robfig/cron (day-of-week 0-6) and cronsim accept.
_FIELDS = (
    ("minute", "[0-5]?[0-9]", "0-59"),
    ("hour", "[01]?[0-9]|2[0-3]", "0-23"),
    ("day-of-month", "0?[1-9]|[12][0-9]|3[01]", "1-31"),
    ("month", f"0?[1-9]|1[0-2]|{_MONTHS}", "1-12 or jan-dec"),
    ("day-of-week", f"0?[0-6]|{_DAYS}", "0-6 or sun-sat"),
)


def _list_of(value: str) -> str:
    """A comma-separated list of `*`, values or ranges, each with an optional /step."""
    atom = rf"(\*|({value})(-({value}))?)(/[1-9][0-9]?)?"
    return f"{atom}(,{atom})*"


_FIELD_PATTERNS = tuple(re.compile(_list_of(value)) for _, value, _ in _FIELDS)

PATTERN = (
    "^(" + "|".join(MACROS) + "|" + r"[ \t]+".join(f"({_list_of(value)})" for _, value, _ in _FIELDS) + ")$"
)
_COMPILED = re.compile(PATTERN)


class ScheduleError(ValueError):
    """A cron expression that cannot run; the message says which part is wrong."""


def expand(schedule: str) -> str:
    """The five-field form of a schedule (macros expanded), as cronsim reads it."""
    return MACROS.get(schedule, schedule)


def validate(schedule: str) -> str:
    """Return the schedule, or raise ScheduleError naming the cron field that cannot run."""
    if schedule not in MACROS:
        fields = schedule.split()
        if len(fields) != 5:
            raise ScheduleError(
                f"invalid cron schedule {schedule!r}: expected five fields (minute hour day-of-month month "
                f"day-of-week) or one of {', '.join(MACROS)}"
            )
        for (name, _, allowed), pattern, field in zip(_FIELDS, _FIELD_PATTERNS, fields, strict=True):
            if not pattern.fullmatch(field):
                raise ScheduleError(
                    f"invalid cron schedule {schedule!r}: Bad {name} {field!r} "
                    f"(values {allowed}, *, lists, ranges and /steps)"
                )
        if not _COMPILED.fullmatch(schedule):
            raise ScheduleError(f"invalid cron schedule {schedule!r}: fields must be separated by blanks only")
    try:
        CronSim(expand(schedule), datetime(2000, 1, 1))
    except CronSimError as error:
        raise ScheduleError(f"invalid cron schedule {schedule!r}: {error}") from None
    return schedule
