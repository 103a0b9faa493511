"""The fuzz classification on hand-made inputs: which field an API error names, and which watch
events count as writes without a change or as status churn."""

from __future__ import annotations

from tests.fuzz import classification as cls
from tests.fuzz.mutations import api_path


def test_fields_come_from_causes_and_the_message() -> None:
    message = ('DataLake.loom.dev "x" is invalid: [spec.tables[0].columns[0].type: Invalid value: "varchar", '
               'spec: Required value]; unknown field "spec.bogus"')
    assert cls.named_fields(message, [{"field": "spec.catalog.type"}]) == [
        "spec.catalog.type", "spec.tables[0].columns[0].type", "spec", "spec.bogus"]
    assert cls.named_fields("the request is invalid; specified nothing") == []


def test_rejections_are_classified_against_the_target() -> None:
    assert cls.classify_rejection("spec.ttl", ["spec.ttl"]) == cls.NAMES_FIELD
    assert cls.classify_rejection("spec.catalog", ["spec.catalog.type"]) == cls.NAMES_FIELD
    assert cls.classify_rejection("spec.ingest[0].table", ["spec.ingest"]) == cls.NAMES_ANCESTOR
    assert cls.classify_rejection("spec.ingest[0].table", ["spec.ingestion"]) == cls.NAMES_OTHER
    assert cls.classify_rejection("spec.ttl", []) == cls.NAMES_NONE
    assert cls.classify_rejection(None, ["spec.model"]) == cls.NAMES_FIELD


def test_api_paths_are_spelled_as_the_api_server_does() -> None:
    assert api_path(("spec", "tables", 0, "columns", 2, "type")) == "spec.tables[0].columns[2].type"


def _seen(at: float, spec: str = "s", status: str = "a", annotations: dict[str, str] | None = None,
          since: str = "t0") -> cls.Seen:
    condition = {"type": "Ready", "reason": status, "lastTransitionTime": since}
    obj = {"spec": spec, "status": {"conditions": [condition]}, "metadata": {"annotations": annotations or {}}}
    return cls.Seen.of(at, "MODIFIED" if at else "ADDED", obj)


def test_only_metadata_writes_inside_the_window_count() -> None:
    events = [
        _seen(0),
        _seen(1, annotations={"trigger.loom.dev/run": "1"}),  # before the window
        _seen(5, annotations={"trigger.loom.dev/run": "2"}),  # a write without a change
        _seen(6, status="b", annotations={"trigger.loom.dev/run": "2"}),  # a status change
        _seen(7, spec="t", status="b", annotations={"trigger.loom.dev/run": "2"}),  # a spec change
        _seen(8, spec="t", status="b", annotations={"trigger.loom.dev/run": "3", "loom.dev/reconcile": "{}"}),
    ]
    window = cls.quiet_window(events, 4, 10)
    assert (window.writes, window.status_changes, window.restated) == (2, 1, 0)
    assert window.moved == {"annotations/trigger.loom.dev/run": 2, "annotations/loom.dev/reconcile": 1}


def test_churn_is_more_status_changes_than_a_scheduled_run_makes() -> None:
    outcome = cls.Outcome("DataLake", "x", "sample", None, cls.ACCEPTED, status_changes=cls.CHURN_LIMIT + 1)
    assert cls.CHURN in outcome.classes
    outcome.status_changes = cls.CHURN_LIMIT
    assert cls.CHURN not in outcome.classes


def test_a_status_change_of_transition_times_alone_is_churn() -> None:
    """A condition rewritten with a new transition time but the same content: its writer started from
    an older status than the object had."""
    events = [_seen(0), _seen(5, status="b", since="t1"), _seen(6, status="b", since="t2")]
    window = cls.quiet_window(events, 4, 10)
    assert (window.status_changes, window.restated) == (2, 1)
    assert cls.CHURN in cls.Outcome("DataLake", "x", "sample", None, cls.ACCEPTED, restated=1).classes


def test_exception_lines_end_each_traceback() -> None:
    log = ("ERROR Handler 'reconcile' failed\nTraceback (most recent call last):\n  File \"x.py\", line 1\n"
           "    boom()\nValueError: boom\nINFO later\n")
    assert cls.exception_lines(log) == ["ValueError: boom"]
