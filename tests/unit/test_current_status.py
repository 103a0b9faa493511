"""Which status a reconcile starts from: the live one, unless the watch has not delivered this loop's
last write yet — in the very version that was read, or in a newer one that still carries the status
the write replaced (the operator's own annotation removal, a user's edit, arriving first), or an
earlier write of the same loop that a second write has already replaced."""

from __future__ import annotations

from typing import Any

import kopf

from loom.handlers.reconcile import Written, current_status, superseding

BEFORE = {"phase": "Progressing", "canaryWeight": 20}
WRITTEN = Written(read_at="10", superseded=(BEFORE,), status={"phase": "Promoting", "canaryWeight": 20})


def body(resource_version: str, status: dict[str, Any]) -> kopf.Body:
    return kopf.Body({"metadata": {"resourceVersion": resource_version}, "status": status})


def test_the_version_that_was_read_is_superseded_by_the_write() -> None:
    assert current_status(body("10", BEFORE), WRITTEN) == WRITTEN.status


def test_a_newer_version_still_showing_the_replaced_status_is_superseded_too() -> None:
    assert current_status(body("11", BEFORE), WRITTEN) == WRITTEN.status


def test_once_the_write_or_anything_newer_arrives_the_live_status_wins() -> None:
    assert current_status(body("12", WRITTEN.status), WRITTEN) == WRITTEN.status
    newer = {"phase": "Finalising", "canaryWeight": 100}
    assert current_status(body("13", newer), WRITTEN) == newer
    assert current_status(body("13", newer), None) == newer


def test_a_second_write_before_the_first_arrives_supersedes_both() -> None:
    """Two writes from the version read first: the next version the watch delivers shows the first
    write, which the second has replaced; the reconcile starts from the second."""
    first = superseding(body("10", BEFORE), None, {"phase": "Promoting", "canaryWeight": 20})
    second = superseding(body("10", BEFORE), first, {"phase": "Finalising", "canaryWeight": 100})
    assert current_status(body("11", first.status), second) == second.status
    assert current_status(body("11", BEFORE), second) == second.status
    assert current_status(body("12", second.status), second) == second.status


def test_once_a_write_has_arrived_what_it_superseded_earlier_is_forgotten() -> None:
    first = superseding(body("10", BEFORE), None, {"phase": "Promoting", "canaryWeight": 20})
    seen = superseding(body("11", first.status), first, {"phase": "Finalising", "canaryWeight": 100})
    assert seen.superseded == (first.status,)
