"""What the operator keeps of a watched body: what reconciles read, compactly."""

from __future__ import annotations

import json
from typing import Any

from loom.domain.rollout import PROMOTE_ANNOTATION
from loom.handlers.bodies import LAST_APPLIED, kept_annotation, slim


def watched(name: str) -> dict[str, Any]:
    """A body as a watch event decodes it: every body its own copy of every string."""
    return json.loads(json.dumps({
        "apiVersion": "loom.dev/v1alpha1", "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": "ml", "generation": 3,
                     "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                     "annotations": {"loom.dev/last-handled-configuration": "{...}",
                                     "loom.dev/reconcile": '{"retries": 1}', PROMOTE_ANNOTATION: "now",
                                     LAST_APPLIED: '{"spec": {}}', "team": "recsys"}},
        "spec": {"epochs": 3, "notes": "x" * 100},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Registered"}]},
    }))


def test_a_kept_body_leaves_out_only_what_nothing_reads() -> None:
    raw = watched("a")
    kept = slim(raw)
    assert kept["metadata"] == {"name": "a", "namespace": "ml", "generation": 3,
                                "annotations": {PROMOTE_ANNOTATION: "now", "team": "recsys"}}
    assert {k: v for k, v in kept.items() if k != "metadata"} == {k: v for k, v in raw.items() if k != "metadata"}
    assert "managedFields" in raw["metadata"] and LAST_APPLIED in raw["metadata"]["annotations"]  # not mutated


def test_kept_bodies_share_their_keys_and_short_values() -> None:
    first, second = slim(watched("a")), slim(watched("b"))
    ready_a, ready_b = first["status"]["conditions"][0], second["status"]["conditions"][0]
    assert next(iter(ready_a)) is next(iter(ready_b))  # the key "type"
    assert ready_a["reason"] is ready_b["reason"]
    assert first["spec"]["notes"] == second["spec"]["notes"] and first["spec"]["notes"] is not second["spec"]["notes"]


def test_annotations_that_ask_for_a_reconcile_are_kept() -> None:
    assert kept_annotation(PROMOTE_ANNOTATION) and kept_annotation("team")
    assert not kept_annotation("loom.dev/last-handled-configuration") and not kept_annotation(LAST_APPLIED)


def test_one_event_is_kept_once_however_many_handlers_keep_it() -> None:
    raw = watched("a")
    assert slim(raw) is slim(raw)
    assert slim(watched("a")) is not slim(raw)
