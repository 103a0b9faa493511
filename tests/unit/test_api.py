"""The typed models accept the samples and explain what is wrong with bad input, field by field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from loom.api.datalake import DataLakeSpec
from loom.api.kinds import BY_KIND
from loom.api.meta import parse_duration
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
