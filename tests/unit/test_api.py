"""The typed models accept the samples and explain what is wrong with bad input, field by field."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from loom.api import cron
from loom.api.datalake import DataLakeSpec
from loom.api.kinds import BY_KIND
from loom.api.meta import MAX_DURATION, DurationError, parse_duration
from loom.domain import schedules
from loom.domain.schedules import ScheduleError
from loom.handlers.reconcile import describe_errors

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.yaml"))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_samples_parse(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    spec = BY_KIND[doc["kind"]].spec.model_validate(doc["spec"])
    assert spec.to_wire()  # round-trips to the wire form


@pytest.mark.parametrize(
    "text, expected",
    [("90s", timedelta(seconds=90)), ("1h30m", timedelta(minutes=90)), ("7d", timedelta(days=7)),
     ("250ms", timedelta(milliseconds=250))],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_errors_name_the_field_as_users_write_it() -> None:
    doc = yaml.safe_load(SAMPLES[0].read_text())
    doc["spec"]["tables"][1]["columns"][0]["type"] = "varchar"
    doc["spec"]["catalog"]["bogus"] = 1
    with pytest.raises(ValidationError) as err:
        DataLakeSpec.model_validate(doc["spec"])
    message = describe_errors(err.value)
    assert "spec.tables[1].columns[0].type" in message
    assert "spec.catalog.bogus" in message


def test_defaults_are_filled() -> None:
    doc = yaml.safe_load(SAMPLES[0].read_text())
    spec = DataLakeSpec.model_validate(doc["spec"])
    assert spec.deletion_policy == "Retain"
    assert spec.schema_evolution.allow_drop_columns is False
    assert spec.tables[0].partition_by[0].transform == "year"


def _set(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path (list indexes as numbers) in a spec."""
    *parents, leaf = path.split(".")
    node: Any = spec
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[int(leaf) if leaf.isdigit() else leaf] = value


_BIG = "x" * 5000
# Values the API server refuses too (tests/integration/test_validation.py): the models refuse them
# at the operator's boundary, so an object that got past an older CRD reports InvalidSpec naming the field.
LIMITS = [
    ("datalake", "ingest.0.schedule", "61 * * * *", "spec.ingest[0].schedule: Value error, invalid cron schedule "
     "'61 * * * *': Bad minute '61'"),
    ("datalake", "ingest.0.schedule", "* * 32 * *", "spec.ingest[0].schedule: Value error, invalid cron schedule "
     "'* * 32 * *': Bad day-of-month '32'"),
    ("datalake", "ingest.0.schedule", "* * * 13 *", "spec.ingest[0].schedule: Value error, invalid cron schedule "
     "'* * * 13 *': Bad month '13'"),
    ("datalake", "ingest.0.schedule", "0 0 30 2 *", "spec.ingest[0].schedule: Value error, invalid cron schedule "
     "'0 0 30 2 *': Bad day-of-month"),
    ("datalake", "maintenance.compaction.schedule", "*/0 * * * *", "spec.maintenance.compaction.schedule: Value error"),
    ("datalake", "maintenance.expireSnapshots.olderThan", "9" * 30 + "d",
     "spec.maintenance.expireSnapshots.olderThan: String should match pattern"),
    ("datalake", "maintenance.expireSnapshots.olderThan", "3651d",
     "spec.maintenance.expireSnapshots.olderThan: Value error, duration '3651d' is longer than 3650d"),
    ("datalake", "catalog.properties", {"s3.secret": _BIG}, "spec.catalog.properties.s3.secret: String should have at most 4096"),
    ("datalake", "catalog.properties", {f"k{i}": "v" for i in range(33)}, "spec.catalog.properties: Dictionary should have at most 32"),
    ("datalake", "tables.0.properties", {"k" * 254: "v"}, "spec.tables[0].properties." + "k" * 254),
    ("datalake", "tables.0.partitionBy.0.transform", "bucket[9999999999]", "spec.tables[0].partitionBy[0].transform"),
    ("featureset", "ttl", "999999999999999999999999999999d", "spec.ttl: String should match pattern"),
    ("featureset", "ttl", "87601h", "spec.ttl: Value error, duration '87601h' is longer than 3650d"),
    ("featureset", "materialization.schedule", "0 0 * * 7", "spec.materialization.schedule: Value error"),
    ("featureset", "entities.0.description", _BIG, "spec.entities[0].description: String should have at most 1024"),
    ("trainingjob", "model.hyperparameters", {"a": _BIG, "b": _BIG, "c": _BIG},
     "spec.model.hyperparameters.a: String should have at most 4096"),
    ("trainingjob", "model.hyperparameters", {f"p{i}": "1" for i in range(33)},
     "spec.model.hyperparameters: Dictionary should have at most 32"),
    ("trainingjob", "activeDeadline", "1" * 13 + "s", "spec.activeDeadline: String should match pattern"),
    ("trainingjob", "image", _BIG, "spec.image: String should have at most 512"),
    ("inferenceservice", "rollout.canary.interval", "3650d1ms", "spec.rollout.canary.interval: Value error"),
    ("inferenceservice", "rollout.canary.metrics.0.query", _BIG, "spec.rollout.canary.metrics[0].query"),
]


@pytest.mark.parametrize("kind, path, value, expected", LIMITS,
                         ids=[f"{kind}-{path}-{str(value)[:16]}" for kind, path, value, _ in LIMITS])
def test_limits_are_refused_naming_the_field(kind: str, path: str, value: Any, expected: str) -> None:
    doc = yaml.safe_load((SAMPLES[0].parent / f"{kind}.yaml").read_text())
    _set(doc["spec"], path, value)
    with pytest.raises(ValidationError) as err:
        BY_KIND[doc["kind"]].spec.model_validate(doc["spec"])
    assert expected in describe_errors(err.value)


@pytest.mark.parametrize("text", ["9" * 30 + "d", "3651d", "87601h", "3650d1ms", "forever", "", "1h 30m"])
def test_parse_duration_refuses_clearly(text: str) -> None:
    with pytest.raises(DurationError, match="duration"):
        parse_duration(text)


def test_parse_duration_accepts_the_longest() -> None:
    assert parse_duration("3650d") == MAX_DURATION
    assert parse_duration("3649d23h59m59s999ms") < MAX_DURATION


GOOD_CRONS = ["@daily", "@hourly", "@yearly", "* * * * *", "*/5 * * * *", "0 0 1 1 *", "00 23 31 12 6",
              "1,2,3-5/2 * * * *", "5/10 * * * *", "0 9 * jan-mar mon-fri", "0 9 * JAN MON", "0\t0  * * 0"]
BAD_CRONS = ["61 * * * *", "* 24 * * *", "* * 32 * *", "* * 0 * *", "* * * 13 *", "* * * 0 *", "* * * * 7",
             "*/0 * * * *", "* * L * *", "* * * * 1#2", "* * ? * *", "@every 1h", "@reboot", "* * * *",
             "* * * * * *", " * * * * *", "* * * * * ", "hourly", "0 0 * * mon;", "1-2-3 * * * *"]


@pytest.mark.parametrize("schedule", GOOD_CRONS)
def test_cron_accepted_by_both_checks(schedule: str) -> None:
    assert re.fullmatch(cron.PATTERN, schedule)
    assert schedules.validate(schedule) == schedule


@pytest.mark.parametrize("schedule", BAD_CRONS)
def test_cron_refused_by_both_checks(schedule: str) -> None:
    """The CRD's pattern (what the API server checks) and validate() agree, and validate's error is a
    ScheduleError (never cronsim's own) naming the cron field."""
    assert not re.fullmatch(cron.PATTERN, schedule)
    with pytest.raises(ScheduleError, match="invalid cron schedule"):
        schedules.validate(schedule)


def test_cron_refused_beyond_the_pattern() -> None:
    """Dates no month has pass the pattern (robfig/cron would never fire them); cronsim refuses them."""
    assert re.fullmatch(cron.PATTERN, "0 0 30 2 *")
    with pytest.raises(ScheduleError, match="Bad day-of-month"):
        schedules.validate("0 0 30 2 *")
