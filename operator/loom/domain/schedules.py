"""Cron schedules (UTC), as Kubernetes CronJobs read them: the ticks that decisions and the local
executor's scheduler compute from a given `now` (never from the wall clock). The syntax itself is
checked in loom.api.cron, where the API models check it at the boundary."""

from __future__ import annotations

from datetime import datetime, timedelta

from cronsim import CronSim

from loom.api.cron import ScheduleError, expand, validate

__all__ = ["ScheduleError", "latest_tick", "next_tick", "validate"]


def latest_tick(schedule: str, now: datetime) -> datetime:
    """The last time at or before `now` the cron schedule (UTC) fired."""
    return next(CronSim(expand(schedule), now + timedelta(seconds=1), reverse=True))


def next_tick(schedule: str, now: datetime) -> datetime:
    """The first time after `now` the cron schedule (UTC) fires."""
    return next(CronSim(expand(schedule), now))
