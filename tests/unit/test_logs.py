"""The operator's log formats: timestamp, level and the object a line is about, plain and JSON."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import Any

import pytest

from loom import logs
from loom.config import LogFormat

WHEN = datetime(2026, 12, 2, 14, 3, 1, 123456, tzinfo=timezone.utc)
LAKE = {"apiVersion": "loom.dev/v1alpha1", "kind": "DataLake", "namespace": "ns", "name": "movielens", "uid": "u1"}


def _record(msg: str = "tables %s created", args: tuple = ("ratings",), ref: dict | None = None,
            level: int = logging.INFO, exc_info: Any = None) -> logging.LogRecord:
    record = logging.LogRecord("loom.test", level, __file__, 1, msg, args, exc_info)
    record.created = WHEN.timestamp()
    record.msecs = 123.0
    if ref is not None:
        setattr(record, logs.REF, ref)  # as Kopf's ObjectLogger does
    return record


def _fresh(fn: Any, *args: Any) -> Any:
    """Run outside any handler's `about()`."""
    return contextvars.Context().run(fn, *args)


def test_plain_line_with_the_object_kopf_attached() -> None:
    line = _fresh(logs.PlainFormatter().format, _record(ref=LAKE))
    assert line == "2026-12-02T14:03:01.123Z INFO  [DataLake ns/movielens] tables ratings created"


def test_plain_line_without_an_object() -> None:
    line = _fresh(logs.PlainFormatter().format, _record(level=logging.WARNING))
    assert line == "2026-12-02T14:03:01.123Z WARNING tables ratings created"


def test_plain_line_of_a_cluster_scoped_object_and_a_traceback() -> None:
    try:
        raise RuntimeError("catalog down")
    except RuntimeError:
        record = _record("failed", (), ref={"kind": "Node", "namespace": None, "name": "n1"},
                         level=logging.ERROR, exc_info=sys.exc_info())
    first, *rest = _fresh(logs.PlainFormatter().format, record).splitlines()
    assert first == "2026-12-02T14:03:01.123Z ERROR [Node n1] failed"
    assert rest[0].startswith("Traceback") and rest[-1] == "RuntimeError: catalog down"


def test_json_line_with_the_object() -> None:
    entry = json.loads(_fresh(logs.JsonFormatter().format, _record(ref=LAKE)))
    assert entry == {
        "timestamp": "2026-12-02T14:03:01.123Z",
        "level": "INFO",
        "logger": "loom.test",
        "message": "tables ratings created",
        "object": {"kind": "DataLake", "namespace": "ns", "name": "movielens"},
    }


def test_json_line_without_an_object_and_with_a_traceback() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = _record("failed", (), level=logging.ERROR, exc_info=sys.exc_info())
    entry = json.loads(_fresh(logs.JsonFormatter().format, record))
    assert set(entry) == {"timestamp", "level", "logger", "message", "exception"}
    assert (entry["level"], entry["message"]) == ("ERROR", "failed")
    assert entry["exception"].endswith("ValueError: bad")


def test_a_handler_invocation_attributes_loom_records_to_its_object() -> None:
    def in_handler() -> str:
        logs.about("FeatureSet", "ns", "user-features")
        return logs.PlainFormatter().format(_record("view %s", ("applied",)))

    def kopf_record_in_handler() -> str:
        logs.about("FeatureSet", "ns", "user-features")
        return logs.PlainFormatter().format(_record(ref=LAKE))

    assert "[FeatureSet ns/user-features] view applied" in _fresh(in_handler)
    assert "[DataLake ns/movielens]" in _fresh(kopf_record_in_handler)  # Kopf's own reference wins
    assert _fresh(logs.object_of, _record()) is None  # nothing outlives the invocation's context


def test_extra_names_the_object_for_a_module_logger() -> None:
    record = _record()
    record.__dict__.update(logs.extra("DataLake", "ns", "movielens"))
    assert json.loads(_fresh(logs.JsonFormatter().format, record))["object"]["kind"] == "DataLake"


def test_configure_puts_loom_formatter_on_kopf_handler(capsys: pytest.CaptureFixture[str]) -> None:
    root, aio = logging.getLogger(), logging.getLogger("asyncio")
    saved = (root.level, list(root.handlers), aio.propagate, list(aio.handlers))
    try:
        logs.configure(LogFormat.JSON)
        logging.getLogger("loom.test").info("hello", extra=logs.extra("DataLake", "ns", "lake"))
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        aio.propagate, aio.handlers[:] = saved[2], saved[3]
    entry = json.loads(line)
    assert entry["message"] == "hello" and entry["object"] == {"kind": "DataLake", "namespace": "ns", "name": "lake"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["timestamp"])


@pytest.mark.parametrize(("message", "kept"), [
    ("Handler 'wake' succeeded.", False),
    ("Handler 'follow-featuresets_by_datalake' succeeded.", False),
    ("Handler 'deletion-policy' succeeded.", True),
    ("Handler 'wake' failed with an exception. Will retry.", True),
])
def test_the_watch_handlers_successes_are_debug_lines(message: str, kept: bool) -> None:
    record = _record(message, ())
    assert logs.QuietWatchHandlers().filter(record) is kept
    assert record.levelname == ("INFO" if kept else "DEBUG")
