"""What the operator keeps of a watched body, for as long as the object lives (its loop's newest body,
the watch cache): only what a reconcile reads or what asks for one, compactly.

Left out: `managedFields` (about half of a Loom object, nothing reads it), Kopf's bookkeeping
annotations (Loom's prefix, other than Loom's own requests) and kubectl's copy of the last applied
manifest (a second copy of the spec). Every decoded body has its own copy of every key and of the
same short values (`type`, `status`, `True`, reasons): they are interned, so thousands of live
objects share one of each."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from loom.api.meta import GROUP
from loom.domain.rollout import ABORT_ANNOTATION, PROMOTE_ANNOTATION
from loom.domain.training import RETRAIN_ANNOTATION

# Loom's annotations that ask for something (a promotion, an abort, a retraining).
REQUESTS = frozenset({PROMOTE_ANNOTATION, ABORT_ANNOTATION, RETRAIN_ANNOTATION})
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SHARED_STRING_MAX = 64  # longer values (messages, specs' free text) are rarely the same twice


def kept_annotation(key: str) -> bool:
    """Whether a reconcile reads the annotation or its change asks for one."""
    return key != LAST_APPLIED and (not key.startswith(f"{GROUP}/") or key in REQUESTS)


# The last event slimmed and its kept body: the watch cache and the object's loop both keep the body of
# one watch event (Kopf hands its handlers the same event), so they share one copy instead of two.
_last: tuple[Mapping[str, Any], dict[str, Any]] | None = None


def slim(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A watched body as the operator keeps it."""
    global _last
    last = _last
    if last is not None and last[0] is raw:
        return last[1]
    meta = {k: v for k, v in (raw.get("metadata") or {}).items() if k != "managedFields"}
    if "annotations" in meta:
        meta["annotations"] = {k: v for k, v in (meta["annotations"] or {}).items() if kept_annotation(k)}
    kept: dict[str, Any] = _compact({**raw, "metadata": meta})
    _last = (raw, kept)
    return kept


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return {sys.intern(k): _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if type(value) is str and len(value) <= SHARED_STRING_MAX:
        return sys.intern(value)
    return value
