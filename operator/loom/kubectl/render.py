"""Text for a terminal, pure: kubectl-style tables (upper-case headers, columns padded by three
spaces), indented trees and ages; and the same data as JSON or YAML documents for -o."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from loom.kubectl.status import Row

NONE = "-"
BRANCH, LAST, PIPE, SPACE = "├── ", "└── ", "│   ", "    "


@dataclass(frozen=True)
class Node:
    label: str
    children: tuple[Node, ...] = ()
    note: str = ""  # a line of detail printed under the label


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["   ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip()
             for line in (headers, *rows)]
    return "\n".join(lines) + "\n"


def tree(root: Node) -> str:
    lines = [root.label]
    if root.note:
        lines.append(("│   " if root.children else "    ") + root.note)
    lines += _branches(root.children, "")
    return "\n".join(lines) + "\n"


def _branches(children: Sequence[Node], prefix: str) -> list[str]:
    lines = []
    for i, child in enumerate(children):
        last = i == len(children) - 1
        inner = prefix + (SPACE if last else PIPE)
        lines.append(prefix + (LAST if last else BRANCH) + child.label)
        if child.note:
            lines.append(inner + (PIPE if child.children else SPACE) + child.note)
        lines += _branches(child.children, inner)
    return lines


def age(created: str | None, now: datetime) -> str:
    """kubectl's short age (its HumanDuration): 90s, 4m30s, 25m, 5h10m, 20h, 3d4h, 40d, 2y30d."""
    if not created:
        return NONE
    seconds = max(0, int((now - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if days < 2:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def _number(value: float) -> str:
    return f"{value:.4g}"


def progress(kind: str, p: dict[str, Any]) -> str:
    """One cell for a row's progress, e.g. 'epoch 3/8 (38%), loss 0.412, recall@10 0.061' or
    'stable v3, canary v4 20%/50%, checks failed 1/3'."""
    parts: list[str] = []
    if kind == "DataLake":
        parts += [f"{p['tables']} tables" if p.get("tables") is not None else "",
                  f"{p['rows']} rows" if p.get("rows") is not None else ""]
    elif kind == "FeatureSet":
        parts += [f"snapshot {p['snapshotId']}" if p.get("snapshotId") is not None else "",
                  f"{p['onlineRows']} online rows" if p.get("onlineRows") is not None else ""]
    elif kind == "TrainingJob":
        if p.get("epoch") is not None:
            parts.append(f"epoch {p['epoch']}/{p.get('totalEpochs') or '?'}"
                         + (f" ({p['percent']}%)" if p.get("percent") is not None else ""))
        parts += [f"loss {_number(p['loss'])}" if p.get("loss") is not None else "",
                  f"{p['metric']} {_number(p['value'])}" if p.get("value") is not None else "",
                  f"v{p['modelVersion']}" if p.get("modelVersion") else ""]
    elif kind == "InferenceService":
        parts.append(f"stable v{p['stableVersion']}" if p.get("stableVersion") else "")
        if p.get("canaryVersion"):
            parts += [f"canary v{p['canaryVersion']} {p.get('canaryWeight') or 0}%/{p['maxWeight']}%",
                      f"checks failed {p.get('failedChecks', 0)}/{p['threshold']}"]
    return ", ".join(part for part in parts if part) or NONE


def status_table(rows: Sequence[Row], now: datetime, namespaces: bool) -> str:
    headers = (["NAMESPACE"] if namespaces else []) + ["KIND", "NAME", "PHASE", "READY", "REASON", "PROGRESS", "AGE"]
    cells = [([r.namespace] if namespaces else []) + [
        r.kind, r.name, r.phase or NONE, r.ready or NONE, r.reason or NONE, progress(r.kind, r.progress),
        age(r.created, now)] for r in rows]
    return table(headers, cells)


def conditions_table(r: Row, now: datetime) -> str:
    cells = [[c.get("type") or NONE, c.get("status") or NONE, c.get("reason") or NONE,
              age(c.get("lastTransitionTime"), now), c.get("message") or ""] for c in r.conditions]
    return table(["CONDITION", "STATUS", "REASON", "SINCE", "MESSAGE"], cells)


def document(data: Any, output: str) -> str:
    """The structured form of what a command prints, for -o json or -o yaml."""
    if output == "json":
        return json.dumps(data, indent=2, sort_keys=False) + "\n"
    return yaml.safe_dump(data, sort_keys=False, width=120)
