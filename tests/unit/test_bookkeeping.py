"""Kopf's bookkeeping storages: a large diff-base is stored as a digest that still tells changed from
unchanged, and unreadable annotations are reset (reported, treated as absent) instead of raised."""

from __future__ import annotations

import json
from typing import Any

import kopf
import pytest

from loom.handlers.bookkeeping import CompactDiffBaseStorage, ReportOnce, ResettingProgressStorage, essence_digest

PREFIX = "loom.dev"
DIFFBASE = f"{PREFIX}/last-handled-configuration"
PROGRESS = f"{PREFIX}/reconcile"
MAX_ANNOTATIONS = 256 * 1024  # the API server's limit on all annotations of an object together


class Resets:
    """Records the resets a storage reports, in place of the log line and Event."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, body: kopf.Body, key: str, why: str) -> None:
        self.seen.append((key, why))


def _body(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> kopf.Body:
    return kopf.Body({
        "apiVersion": "loom.dev/v1alpha1",
        "kind": "DataLake",
        "metadata": {"name": "lake", "namespace": "ns", "uid": "u1", "annotations": dict(annotations or {})},
        "spec": spec,
        "status": {"conditions": []},
    })


def _large_spec(char: str = "x") -> dict[str, Any]:
    """100 tables with long properties: far more JSON than annotations may hold."""
    return {"tables": [{"name": f"t{i}", "properties": {"p": char * 4000}} for i in range(100)]}


def _stored(storage: CompactDiffBaseStorage, body: kopf.Body) -> dict[str, str]:
    """The annotations a store of the body's essence writes (the patch Kopf would send)."""
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    return dict(patch.metadata.annotations)


def _with(body: kopf.Body, annotations: dict[str, str]) -> kopf.Body:
    raw = json.loads(json.dumps(dict(body)))
    raw["metadata"]["annotations"].update(annotations)
    return kopf.Body(raw)


@pytest.fixture
def resets() -> Resets:
    return Resets()


@pytest.fixture
def diffbase(resets: Resets) -> CompactDiffBaseStorage:
    return CompactDiffBaseStorage(prefix=PREFIX, key="last-handled-configuration", on_reset=resets)


def test_small_essence_is_stored_whole_and_read_back(diffbase: CompactDiffBaseStorage) -> None:
    body = _body({"tables": [{"name": "t"}]})
    written = _stored(diffbase, body)
    assert json.loads(written[DIFFBASE]) == {"spec": {"tables": [{"name": "t"}]}}
    assert written[f"{PREFIX}/kopf-managed"] == "yes"
    assert diffbase.fetch(body=_with(body, written)) == diffbase.build(body=body)


@pytest.mark.parametrize("char", ["x", "é"])
def test_large_essence_is_stored_as_a_short_digest(diffbase: CompactDiffBaseStorage, char: str) -> None:
    body = _body(_large_spec(char))
    assert len(json.dumps(diffbase.build(body=body))) > MAX_ANNOTATIONS
    written = _stored(diffbase, body)
    assert len(written[DIFFBASE]) < 200
    assert json.loads(written[DIFFBASE]) == {f"{PREFIX}/essence-sha256": essence_digest(diffbase.build(body=body),
                                                                                        PREFIX)}
    # Unchanged: the fetched base is the essence itself, so Kopf sees no diff and runs no update.
    assert diffbase.fetch(body=_with(body, written)) == diffbase.build(body=body)


def test_a_changed_spec_or_annotation_does_not_match_the_digest(diffbase: CompactDiffBaseStorage) -> None:
    body = _body(_large_spec())
    written = _stored(diffbase, body)
    changed_spec = _body(_large_spec() | {"namespace": "other"}, written)
    annotated = _with(body, written | {"example.com/reconcile-requested": "abc"})
    for changed in (changed_spec, annotated):
        base = diffbase.fetch(body=changed)
        assert base is not None and base != diffbase.build(body=changed)


def test_own_bookkeeping_annotations_do_not_change_the_digest(diffbase: CompactDiffBaseStorage) -> None:
    """Kopf clears annotations under its prefix from both sides before diffing; so does the digest."""
    body = _body(_large_spec())
    written = _stored(diffbase, body)
    busy = _with(body, written | {PROGRESS: '{"retries":1}', f"{PREFIX}/touch-dummy": "x"})
    assert diffbase.fetch(body=busy) == diffbase.build(body=busy)


def test_a_full_essence_stored_earlier_is_still_read(diffbase: CompactDiffBaseStorage) -> None:
    body = _body({"tables": []}, {DIFFBASE: '{"spec":{"tables":[{"name":"old"}]}}\n'})
    assert diffbase.fetch(body=body) == {"spec": {"tables": [{"name": "old"}]}}


@pytest.mark.parametrize("raw, why", [
    ("not json {", "not JSON"),
    ("[1, 2]", "a JSON list, not an object"),
    ('"text"', "a JSON str, not an object"),
    (f'{{"{PREFIX}/essence-sha256": 5}}', "not the only key or not a string"),
    ("[" * 100000, "not JSON"),
])
def test_unreadable_diffbase_is_reset(diffbase: CompactDiffBaseStorage, resets: Resets, raw: str, why: str) -> None:
    body = _body({"tables": []}, {DIFFBASE: raw})
    assert diffbase.fetch(body=body) is None  # as if never handled: Kopf runs the handler and stores anew
    assert len(resets.seen) == 1 and resets.seen[0][0] == DIFFBASE and why in resets.seen[0][1]
    written = _stored(diffbase, body)
    assert diffbase.fetch(body=_with(body, written)) == diffbase.build(body=body)


@pytest.fixture
def progress(resets: Resets) -> ResettingProgressStorage:
    return ResettingProgressStorage(prefix=PREFIX, on_reset=resets)


def test_a_valid_progress_record_is_read_back(progress: ResettingProgressStorage, resets: Resets) -> None:
    record = {"started": "2026-12-02T14:21:37.123456+00:00", "delayed": "2026-12-02T14:22:37.000000+00:00",
              "retries": 2, "success": False, "failure": False, "purpose": "update", "message": "later",
              "subrefs": ["reconcile/a"]}
    patch = kopf.Patch()
    progress.store(key=kopf.HandlerId("reconcile"), record=kopf.ProgressRecord(**record), body=_body({}),
                   patch=patch)
    body = _body({}, dict(patch.metadata.annotations))
    assert progress.fetch(key=kopf.HandlerId("reconcile"), body=body) == record
    assert resets.seen == []


@pytest.mark.parametrize("raw, why", [
    ("not json {", "not JSON"),
    ('{"retries": "x"}', "invalid retries"),
    ("[1, 2]", "a JSON list, not an object"),
    ("null", "a JSON NoneType, not an object"),
    ('{"started": "yesterday"}', "invalid started"),
    ('{"delayed": "2026-12-02T14:21:37"}', "invalid delayed"),  # no time zone: Kopf compares aware times
    ('{"success": "yes", "subrefs": "a"}', "invalid success, subrefs"),
    ('{"retries": true}', "invalid retries"),
])
def test_unreadable_progress_is_reset(progress: ResettingProgressStorage, resets: Resets, raw: str,
                                      why: str) -> None:
    body = _body({}, {PROGRESS: raw})
    assert progress.fetch(key=kopf.HandlerId("reconcile"), body=body) is None
    assert len(resets.seen) == 1 and resets.seen[0][0] == PROGRESS and why in resets.seen[0][1]
    patch = kopf.Patch()
    progress.store(key=kopf.HandlerId("reconcile"), record=kopf.ProgressRecord(retries=1), body=body, patch=patch)
    assert patch.metadata.annotations[PROGRESS] == '{"retries":1}'  # the next store overwrites the garbage


def test_progress_of_other_handlers_is_untouched(progress: ResettingProgressStorage, resets: Resets) -> None:
    body = _body({}, {PROGRESS: "not json {"})
    assert progress.fetch(key=kopf.HandlerId("deletion-policy"), body=body) is None
    assert resets.seen == []


def test_a_reset_is_reported_once_per_object_annotation_and_value() -> None:
    """Kopf fetches at every event; the same garbage on the same object is one Warning, not one per event."""
    resets = Resets()
    storage = CompactDiffBaseStorage(prefix=PREFIX, key="last-handled-configuration", on_reset=ReportOnce(resets))
    garbage = _body({"a": 1}, {DIFFBASE: "not json {"})
    for _ in range(3):
        assert storage.fetch(body=garbage) is None
    storage.fetch(body=_with(garbage, {DIFFBASE: "[1]"}))
    other = json.loads(json.dumps(dict(garbage)))
    other["metadata"]["uid"] = "u2"
    storage.fetch(body=kopf.Body(other))
    assert [key for key, _ in resets.seen] == [DIFFBASE] * 3
    assert "not JSON" in resets.seen[0][1] and "a JSON list" in resets.seen[1][1]
