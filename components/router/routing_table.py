"""The router's table: which revisions serve, at what weight, and which one gets a copy of the traffic.

The operator writes it as JSON (by an atomic rename, so a reader sees the old file or the new one):

    {"revisions": [{"name": "v3", "upstream": "127.0.0.1:8101", "weight": 90},
                   {"name": "v4", "upstream": "127.0.0.1:8102", "weight": 10}],
     "mirror": {"revision": "v4", "percent": 20}}

A revision's share of the inference requests is its weight over the sum of the weights (Seldon Core 2's
Experiment candidates, Flagger's canary weight); a revision of weight 0 is kept warm (its connections,
its metrics) but gets no live traffic, which is where a shadow-only canary sits. `mirror` (optional)
sends a copy of `percent` percent of the inference requests the other revisions serve to that revision
(a request it serves itself is not sent twice); the copies' responses are discarded (Seldon's Experiment
`mirror`, Flagger's mirroring). The first revision of the largest weight also gets every request
that is not an inference (model metadata, repository calls).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class TableError(ValueError):
    """A routing table the router refuses; it keeps serving with the table it has."""


@dataclass(frozen=True)
class Revision:
    name: str
    host: str
    port: int
    weight: int


@dataclass(frozen=True)
class Mirror:
    revision: str
    percent: int


@dataclass(frozen=True)
class RoutingTable:
    revisions: tuple[Revision, ...]
    mirror: Mirror | None


def _integer(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TableError(f"{what} must be an integer from {low} to {high}, got {value!r}")
    return value


def _revision(entry: Any, index: int) -> Revision:
    if not isinstance(entry, dict) or set(entry) != {"name", "upstream", "weight"}:
        raise TableError(f"revisions[{index}] must have exactly name, upstream and weight, got {entry!r}")
    name, upstream = entry["name"], entry["upstream"]
    if not isinstance(name, str) or not name:
        raise TableError(f"revisions[{index}].name must be a non-empty string")
    host, colon, port = upstream.rpartition(":") if isinstance(upstream, str) else ("", "", "")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TableError(f"revisions[{index}].upstream must be host:port, got {upstream!r}")
    return Revision(name, host.strip("[]"), int(port), _integer(entry["weight"], f"revisions[{index}].weight", 0, 1_000_000))


def parse_table(document: Any) -> RoutingTable:
    """The table a JSON document describes, or a TableError saying what is wrong with it."""
    if not isinstance(document, dict) or not set(document) <= {"revisions", "mirror"}:
        raise TableError("the table is an object with revisions and, optionally, mirror")
    entries = document.get("revisions")
    if not isinstance(entries, list) or not entries:
        raise TableError("revisions must be a non-empty list")
    revisions = tuple(_revision(entry, i) for i, entry in enumerate(entries))
    names = [r.name for r in revisions]
    if len(set(names)) != len(names):
        raise TableError(f"revision names must be unique, got {names}")
    mirror = document.get("mirror")
    if mirror is None:
        return RoutingTable(revisions, None)
    if not isinstance(mirror, dict) or set(mirror) != {"revision", "percent"}:
        raise TableError(f"mirror must have exactly revision and percent, got {mirror!r}")
    if mirror["revision"] not in names:
        raise TableError(f"mirror.revision {mirror['revision']!r} is not one of the revisions {names}")
    return RoutingTable(revisions, Mirror(mirror["revision"], _integer(mirror["percent"], "mirror.percent", 0, 100)))


def load_table(path: Path) -> RoutingTable:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise TableError(f"cannot read {path}: {error}") from None
    return parse_table(document)


class SmoothWeighted:
    """nginx's smooth weighted round-robin: over any run of sum(weights) picks each index is chosen
    exactly its weight times, interleaved (90/10 gives one canary request in every ten, not ten in a row)."""

    __slots__ = ("_weights", "_current", "_total")

    def __init__(self, weights: list[int]) -> None:
        self._weights = weights
        self._current = [0] * len(weights)
        self._total = sum(weights)

    def pick(self) -> int:
        """The next index (never one of weight 0); -1 when every weight is 0."""
        current = self._current
        best = -1
        for i, weight in enumerate(self._weights):
            if weight:
                current[i] += weight
                if best < 0 or current[i] > current[best]:
                    best = i
        if best >= 0:
            current[best] -= self._total
        return best


class Percent:
    """Exactly `percent` of the calls to `take` say yes, evenly spread (an error-diffusion counter)."""

    __slots__ = ("_percent", "_level")

    def __init__(self, percent: int) -> None:
        self._percent = percent
        self._level = 0

    def take(self) -> bool:
        self._level += self._percent
        if self._level >= 100:
            self._level -= 100
            return True
        return False
