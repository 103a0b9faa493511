"""Cron schedules (UTC), as Kubernetes CronJobs read them: the ticks that decisions and the local
executor's scheduler compute from a given `now` (never from the wall clock)."""

from __future__ import annotations

from datetime import datetime, timedelta

from cronsim import CronSim, CronSimError

# cronsim reads five fields only; Kubernetes CronJobs also accept these macros.
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleError(ValueError):
    """A cron expression that cannot run; the message says which part is wrong."""


def validate(schedule: str) -> None:
    """Raise ScheduleError for an expression cron cannot run (the CRD's pattern lets some through)."""
    try:
        CronSim(_cron(schedule), datetime(2000, 1, 1))
    except CronSimError as error:
        raise ScheduleError(f"invalid cron schedule {schedule!r}: {error}") from None


def _cron(expression: str) -> str:
    return _MACROS.get(expression, expression)


def latest_tick(schedule: str, now: datetime) -> datetime:
    """The last time at or before `now` the cron schedule (UTC) fired."""
    return next(CronSim(_cron(schedule), now + timedelta(seconds=1), reverse=True))


def next_tick(schedule: str, now: datetime) -> datetime:
    """The first time after `now` the cron schedule (UTC) fires."""
    return next(CronSim(_cron(schedule), now))
