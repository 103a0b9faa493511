"""What became of each fuzz case, as pure functions of what the API server answered and what the
watch saw, and the table of counts the runner prints."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Per case: where it ended up. The FAIL classes make a run fail.
ACCEPTED = "accepted"
NAMES_FIELD = "rejected: names the field"
NAMES_ANCESTOR = "rejected: names an ancestor"
NAMES_OTHER = "rejected: names another field"
NAMES_NONE = "rejected: names no field"
API_ERROR = "api errors"
STRANDED = "stranded"
STUCK = "stuck deletion"
WRITES = "writes without a change"
CHURN = "status churn"
LIFETIME_WRITES = "(info) metadata-only writes, lifetime"
CASE_CLASSES = (ACCEPTED, NAMES_FIELD, NAMES_ANCESTOR, NAMES_OTHER, NAMES_NONE, API_ERROR, STRANDED, STUCK, WRITES,
                CHURN, LIFETIME_WRITES)
CASE_FAILURES = (NAMES_NONE, API_ERROR, STRANDED, STUCK, WRITES, CHURN)
# Per run: the operator process.
TRACEBACKS = "handler tracebacks"
HEALTHZ = "healthz failures"
EXITED = "operator exited"
RUN_FAILURES = (TRACEBACKS, HEALTHZ, EXITED)
# Status changes an object may make in the quiet window: a sample DataLake's two every-minute ingests
# can start together and end apart (Ingesting, one done, both done and Ready) in one window.
CHURN_LIMIT = 4

_FIELD = re.compile(r"(?<![\w.-])(?:spec|metadata)(?![\w-])(?:\.[\w-]+|\[[^\]\s]*\])*")


def named_fields(message: str, causes: Iterable[dict[str, Any]] = ()) -> list[str]:
    """Field paths an API error names: its causes' `field`s and paths spelled in its message."""
    fields = [str(c["field"]) for c in causes if c.get("field")]
    return fields + [f for f in _FIELD.findall(message) if f not in fields]


def classify_rejection(target: str | None, fields: Sequence[str]) -> str:
    """Does a rejection name the field a mutation aimed at, one of its ancestors, another one, or
    none? A draw from the schema aims at no field: any field named is its field."""
    if not fields:
        return NAMES_NONE
    if target is None:
        return NAMES_FIELD
    if any(f == target or _under(f, target) for f in fields):
        return NAMES_FIELD
    if any(_under(target, f) for f in fields):
        return NAMES_ANCESTOR
    return NAMES_OTHER


def _under(path: str, ancestor: str) -> bool:
    return path.startswith(ancestor + ".") or path.startswith(ancestor + "[")


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _said(status: Any) -> Any:
    """A status without its conditions' transition times: what it tells a reader."""
    if not isinstance(status, dict):
        return status
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return status
    return {**status, "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                                     if isinstance(c, dict) else c for c in conditions]}


@dataclass(frozen=True)
class Seen:
    """One watch event of an object, reduced to what the analysis compares."""

    at: float
    type: str  # ADDED, MODIFIED, DELETED
    spec: str
    status: str
    said: str  # the status without transition times
    conditions: bool
    metadata: dict[str, str]  # annotation keys (`annotations/<key>`) and other metadata fields -> digest

    @classmethod
    def of(cls, at: float, type_: str, obj: dict[str, Any]) -> Seen:
        meta = obj.get("metadata", {})
        moved = {f"annotations/{k}": digest(v) for k, v in (meta.get("annotations") or {}).items()}
        moved.update({k: digest(meta.get(k)) for k in ("labels", "finalizers", "deletionTimestamp", "generation")})
        status = obj.get("status")
        return cls(at, type_, digest(obj.get("spec")), digest(status), digest(_said(status)),
                   bool((status or {}).get("conditions")), moved)


@dataclass(frozen=True)
class Window:
    """What happened in the quiet window: writes that changed neither spec nor status (and the
    metadata they moved), status changes, and among them the ones that told nothing new: only
    transition times moved, so the writer took a condition for changed that the object already
    had (a reconcile starting from an older status than the newest)."""

    writes: int = 0
    moved: Counter[str] = field(default_factory=Counter)
    status_changes: int = 0
    restated: int = 0


def quiet_window(events: Sequence[Seen], start: float, end: float) -> Window:
    """The MODIFIED events in [start, end], compared each with the version before it."""
    writes, status_changes, restated = 0, 0, 0
    moved: Counter[str] = Counter()
    for before, after in zip(events, events[1:]):
        if after.type != "MODIFIED" or not start <= after.at <= end:
            continue
        if after.status != before.status:
            status_changes += 1
            restated += after.said == before.said
        elif after.spec == before.spec:
            writes += 1
            keys = set(before.metadata) | set(after.metadata)
            moved.update(k for k in keys if before.metadata.get(k) != after.metadata.get(k))
    return Window(writes, moved, status_changes, restated)


def first_condition(events: Sequence[Seen]) -> float | None:
    return next((e.at for e in events if e.conditions), None)


@dataclass
class Outcome:
    """What happened to one case."""

    kind: str
    name: str
    origin: str
    target: str | None
    verdict: str  # ACCEPTED or a rejection class or API_ERROR
    message: str = ""
    condition_after: float | None = None
    deleted_after: float | None = None
    stranded: bool = False
    stuck: bool = False
    writes: int = 0
    moved: Counter[str] = field(default_factory=Counter)
    status_changes: int = 0
    restated: int = 0  # status changes that told nothing new
    lifetime_writes: int = 0  # from creation to the delete request; Kopf's own bookkeeping included
    lifetime_moved: Counter[str] = field(default_factory=Counter)

    @property
    def classes(self) -> list[str]:
        out = [self.verdict]
        out += [STRANDED] if self.stranded else []
        out += [STUCK] if self.stuck else []
        out += [CHURN] if self.restated or self.status_changes > CHURN_LIMIT else []
        return out


def counts(outcomes: Iterable[Outcome]) -> dict[str, Counter[str]]:
    """kind -> class -> count; the two write classes count events, every other class cases."""
    table: dict[str, Counter[str]] = {}
    for o in outcomes:
        row = table.setdefault(o.kind, Counter())
        row["cases"] += 1
        row.update(o.classes)
        row[WRITES] += o.writes
        row[LIFETIME_WRITES] += o.lifetime_writes
    return table


def render(table: dict[str, Counter[str]], run: Counter[str], kinds: Sequence[str]) -> str:
    """Classes down, kinds across, totals last; failure classes marked FAIL; then the run's own."""
    total: Counter[str] = Counter()
    for row in table.values():
        total.update(row)
    columns = [*kinds, "total"]
    rows = [("", "cases", *(table.get(k, Counter())["cases"] for k in kinds), total["cases"])]
    for klass in CASE_CLASSES:
        mark = "FAIL" if klass in CASE_FAILURES and total[klass] else ""
        rows.append((mark, klass, *(table.get(k, Counter())[klass] for k in kinds), total[klass]))
    width = max(len(r[1]) for r in rows)
    lines = [f"{'':4} {'class':<{width}} " + " ".join(f"{c:>16}" for c in columns)]
    lines += [f"{r[0]:4} {r[1]:<{width}} " + " ".join(f"{v:>16}" for v in r[2:]) for r in rows]
    lines.append("")
    lines += [f"{'FAIL' if run[k] else '':4} {k:<{width}} {run[k]:>16}" for k in RUN_FAILURES]
    return "\n".join(lines)


def failures(table: dict[str, Counter[str]], run: Counter[str]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for row in table.values():
        total.update(row)
    found = {k: total[k] for k in CASE_FAILURES if total[k]}
    found.update({k: run[k] for k in RUN_FAILURES if run[k]})
    return found


def exception_lines(log: str) -> list[str]:
    """The exception line ending each traceback in a log (`ValueError: ...`)."""
    found: list[str] = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "Traceback (most recent call last)" not in line:
            continue
        for candidate in lines[i + 1:]:
            if candidate and not candidate[0].isspace() and not candidate.startswith("Traceback"):
                found.append(candidate.strip()[:300])
                break
    return found
