"""Where Kopf keeps its bookkeeping on Loom's objects, made robust to size and to garbage.

- The diff-base (the last handled essence) is stored whole only while it is small. A large spec
  (many tables with long properties, non-ASCII text that JSON escaping inflates) would otherwise push
  the annotations past the API server's 256 KiB limit, and every patch of the object, status
  included, would fail. Loom's reconcile is level-based and reads the whole spec, so Kopf only needs
  to know whether the essence changed: a large one is stored as its SHA-256 digest.
- An annotation Kopf cannot read (hand-edited, truncated, of the wrong shape) is reset: it is
  treated as absent, and the next store overwrites it. A Warning Event and a WARNING log line say
  once which annotation was reset and why, instead of Kopf failing on it on every event, forever.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import kopf

from loom import logs

log = logging.getLogger(__name__)

Reset = Callable[[kopf.Body, str, str], None]
"""Told (body, annotation key, why) when an unreadable annotation is reset."""

REASON = "BookkeepingReset"
INLINE_LIMIT = 16 * 1024  # bytes of JSON up to which the diff-base is stored whole


def report_reset(body: kopf.Body, key: str, why: str) -> None:
    """A WARNING line and a Warning Event on the object, naming the annotation and what was wrong."""
    message = f"reset unreadable annotation {key} ({why}); it is ignored, and Kopf's next store of it overwrites it"
    log.warning("%s", message, extra=logs.extra(str(body.get("kind", "")), body.metadata.namespace,
                                                 body.metadata.name or ""))
    kopf.event(body, type="Warning", reason=REASON, message=message)


class ReportOnce:
    """Kopf reads its annotations at every event of an object, and an object whose kind has no
    change handlers never stores a diff-base that would replace the garbage; so a reset is reported
    once per object, annotation and value (remembered for the last `size` of them)."""

    def __init__(self, report: Reset = report_reset, size: int = 4096) -> None:
        self.report = report
        self.size = size
        self._seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, body: kopf.Body, key: str, why: str) -> None:
        raw = str(body.metadata.annotations.get(key))
        seen = (body.metadata.uid or "", key, hashlib.sha256(raw.encode()).hexdigest())
        with self._lock:
            if seen in self._seen:
                return
            self._seen[seen] = None
            if len(self._seen) > self.size:
                self._seen.popitem(last=False)
        self.report(body, key, why)


def _decode(raw: str) -> tuple[Any, str | None]:
    """The JSON value of an annotation, or why it is not JSON."""
    try:
        return json.loads(raw), None
    except (ValueError, RecursionError) as error:
        return None, f"not JSON: {error}"


def essence_digest(essence: kopf.BodyEssence, prefix: str) -> str:
    """SHA-256 of the essence as Kopf compares it: without the annotations under Kopf's own prefix
    (the progress storage clears those from both sides before diffing)."""
    cleared = cast(dict[str, Any], copy.deepcopy(essence))
    annotations = cleared.get("metadata", {}).get("annotations", {})
    for key in [k for k in annotations if k.startswith(f"{prefix}/")]:
        del annotations[key]
    kopf.DiffBaseStorage.remove_empty_stanzas(cast(kopf.BodyEssence, cleared))
    canonical = json.dumps(cleared, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class CompactDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """The diff-base annotation holds the essence while its JSON fits `inline_limit`, else
    `{"<prefix>/essence-sha256": "<hex>"}`. For a digest, `fetch` returns the current essence when
    it matches (Kopf sees no diff) and the digest record itself when not (Kopf sees a diff and runs
    on.update). The digest covers the essence as built without extra fields, which is what Kopf
    builds for Loom's handlers (none of them watches a field outside the essence)."""

    def __init__(self, *, prefix: str, key: str, inline_limit: int = INLINE_LIMIT,
                 on_reset: Reset | None = None) -> None:
        super().__init__(prefix=prefix, key=key)
        self.inline_limit = inline_limit
        self.on_reset = on_reset or ReportOnce()
        self.digest_key = f"{prefix}/essence-sha256"

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        for full_key in self.make_keys(self.key, body=body):
            raw = body.metadata.annotations.get(full_key)
            if raw is None:
                continue
            decoded, why = _decode(raw)
            if why is None and not isinstance(decoded, dict):
                why = f"a JSON {type(decoded).__name__}, not an object"
            elif why is None and self.digest_key in decoded and (
                    len(decoded) != 1 or not isinstance(decoded[self.digest_key], str)):
                why = f"{self.digest_key} is not the only key or not a string"
            if why is not None:
                self.on_reset(body, full_key, why)
                continue
            if self.digest_key not in decoded:
                return cast(kopf.BodyEssence, decoded)
            current = self.build(body=body)
            matches = essence_digest(current, self.prefix) == decoded[self.digest_key]
            return current if matches else cast(kopf.BodyEssence, decoded)
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if len(json.dumps(essence, separators=(",", ":"))) > self.inline_limit:
            essence = cast(kopf.BodyEssence, {self.digest_key: essence_digest(essence, self.prefix)})
        super().store(body=body, patch=patch, essence=essence)


_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)")


def _is_timestamp(value: object) -> bool:
    """What Kopf writes: ISO 8601 with a time zone (it compares them with aware datetimes)."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def record_problem(record: object) -> str | None:
    """Why a decoded progress record would break Kopf's handler state, or None if it would not."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    checks: dict[str, Callable[[object], bool]] = {
        "started": _is_timestamp,
        "stopped": _is_timestamp,
        "delayed": _is_timestamp,
        "purpose": lambda v: isinstance(v, str),
        "message": lambda v: isinstance(v, str),
        "retries": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "success": lambda v: isinstance(v, bool),
        "failure": lambda v: isinstance(v, bool),
        "subrefs": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
    }
    bad = [field for field, ok in checks.items() if record.get(field) is not None and not ok(record[field])]
    return f"invalid {', '.join(bad)}" if bad else None


class ResettingProgressStorage(kopf.AnnotationsProgressStorage):
    """Kopf's per-handler progress in annotations; a record it could not use is reported and
    treated as absent, and the handler's next store overwrites it."""

    def __init__(self, *, prefix: str, on_reset: Reset | None = None) -> None:
        super().__init__(prefix=prefix)
        self.on_reset = on_reset or ReportOnce()

    def fetch(self, *, key: kopf.HandlerId, body: kopf.Body) -> kopf.ProgressRecord | None:
        for full_key in self.make_keys(key, body=body):
            raw = body.metadata.annotations.get(full_key)
            if raw is None:
                continue
            decoded, why = _decode(raw)
            why = why or record_problem(decoded)
            if why is not None:
                self.on_reset(body, full_key, why)
                continue
            return cast(kopf.ProgressRecord, decoded)
        return None
