"""An ingest's zeroCopy and engine reach the component as arguments only when they differ from the
defaults, so the workloads (and names) of ingests that leave them unset stay what they were."""

from __future__ import annotations

from loom.builders import ingest
from tests.unit.test_job_builder import SPEC, lake


def _args(**changes: object) -> tuple[str, ...]:
    entry = SPEC.ingest[0].model_copy(update=changes)
    spec = SPEC.model_copy(update={"ingest": [entry]})
    return ingest.workload(spec, entry, lake(spec)).args


def test_defaults_add_no_arguments() -> None:
    assert _args() == ingest.workload(SPEC, SPEC.ingest[0], lake(SPEC)).args
    assert "--no-zero-copy" not in _args() and "--engine" not in _args()


def test_zero_copy_off_and_the_spark_engine_are_passed_on() -> None:
    args = _args(zero_copy=False, engine="spark")
    assert args[-3:] == ("--no-zero-copy", "--engine", "spark")
