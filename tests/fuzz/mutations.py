"""Hand-picked mutations of a valid manifest. Each one edits the manifest in place and returns the
field it aimed at, as the API server spells paths (`spec.tables[0].columns[0].type`), so a
rejection can be checked for naming that field; None when it aims at no single field."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

Path = tuple[str | int, ...]
Mutation = Callable[[dict[str, Any], random.Random], str | None]

DIFFBASE = "loom.dev/last-handled-configuration"
PROGRESS = "loom.dev/reconcile"

CRON_EDGES = ["61 * * * *", "0 0 31 2 *", "*/0 * * * *", "@every 1m", "* * * * * *", "0 0 30 2 *", "60 24 32 13 8",
              "@reboot", "", " ", "* * * *", "0-59/59 0-23/23 1-31/31 1-12/12 0-6/6", "5-1 * * * *", "@yearly "]
DURATION_EDGES = ["9" * 30 + "d", "0", "0s", "-1s", "-5m", "3651d", "3650d", "3650d1ms", "1d" * 16, "0.000000001ms",
                  "999999999999ms", "1.5", "1e3s", "1h 30m", "\u0661s", "\uff11h"]
TEXTS = ["\u00e9t\u00e9 \u6f22\u5b57 \U0001f600 \u202eevil", "\x00", "a\x00b", "\x01\x02\x1b[31m\x7f", "\r\n\t",
         "\ufeff\u200b", "\\u0000", "'; DROP TABLE x; --", "${HOME}", "$(reboot)", "%s%n%x", "\U0010ffff", "..\\..",
         "null", "\ud7ff\ue000"]
WRONG_TYPES: list[Any] = [7, -1, 1.5, True, None, [], ["x"], {}, {"a": 1}, "x", 2**63, -(2**63) - 1, 1e308]
# Garbage in Kopf's bookkeeping annotations (Loom keeps them under loom.dev/).
BOOKKEEPING_GARBAGE = [
    (PROGRESS, "not json {"), (PROGRESS, '{"retries": "x"}'), (PROGRESS, "[1, 2, 3]"), (PROGRESS, "null"),
    (PROGRESS, '"a string"'), (PROGRESS, '{"started": "yesterday", "success": "maybe", "delayed": 5}'),
    (PROGRESS, '{"retries": -1}'), (PROGRESS, '{"retries": 1e400}'), (PROGRESS, "{" * 5000),
    (DIFFBASE, "not json {"), (DIFFBASE, "[]"), (DIFFBASE, '{"spec": 5}'), (DIFFBASE, "null"),
    (DIFFBASE, '{"loom.dev/essence-sha256": "zz"}'), (DIFFBASE, '{"spec": {"bogus": [1, {"x": null}]}}'),
    (DIFFBASE, "[" * 10000), (DIFFBASE, "\x00"), ("loom.dev/unknown-handler", '{"retries": {"x": []}}'),
    ("loom.dev/reconcile.sub", "{}"), ("trigger.loom.dev/fuzz", "not a marker {"),
]


def api_path(path: Path) -> str:
    """('spec', 'tables', 0, 'name') -> 'spec.tables[0].name', as the API server prints it."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def leaves(node: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every (path, value) in a manifest's spec, containers included, depth first."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, (*path, index))


def get(obj: Any, path: Path) -> Any:
    for part in path:
        obj = obj[part]
    return obj


def put(obj: Any, path: Path, value: Any) -> None:
    get(obj, path[:-1])[path[-1]] = value


def _pick(obj: dict[str, Any], rng: random.Random, want: Callable[[Path, Any], bool]) -> Path | None:
    choices = [p for p, v in leaves(obj["spec"], ("spec",)) if len(p) > 1 and want(p, v)]
    return rng.choice(choices) if choices else None


def _strings(path: Path, value: Any) -> bool:
    return isinstance(value, str) and path[-1] not in SANDBOXED


def _named(names: tuple[str, ...]) -> Callable[[Path, Any], bool]:
    return lambda path, value: isinstance(path[-1], str) and path[-1] in names


# Fields that reach the file system or the network; mutations leave them as the sandbox set them.
SANDBOXED = ("uri", "warehouse")


def wrong_type(obj: dict[str, Any], rng: random.Random) -> str | None:
    path = _pick(obj, rng, lambda p, v: True)
    if path is None:
        return None
    current = get(obj, path)
    put(obj, path, rng.choice([w for w in WRONG_TYPES if type(w) is not type(current)]))
    return api_path(path)


def missing_field(obj: dict[str, Any], rng: random.Random) -> str | None:
    path = _pick(obj, rng, lambda p, v: isinstance(p[-1], str))
    if path is None:
        return None
    del get(obj, path[:-1])[path[-1]]
    return api_path(path)


def missing_spec(obj: dict[str, Any], rng: random.Random) -> str | None:
    del obj["spec"]
    return "spec"


def unknown_field(obj: dict[str, Any], rng: random.Random) -> str | None:
    path = _pick(obj, rng, lambda p, v: isinstance(v, dict)) or ("spec",)
    name = rng.choice(["bogus", "Tables", "__proto__", "status", "spec", "x-kubernetes-int-or-string", "\u00fcber"])
    get(obj, path)[name] = rng.choice(WRONG_TYPES)
    return api_path((*path, name))


def odd_text(obj: dict[str, Any], rng: random.Random) -> str | None:
    """Non-ASCII, NUL and control characters in a string, appended or instead of it."""
    path = _pick(obj, rng, _strings)
    if path is None:
        return None
    text = rng.choice(TEXTS)
    put(obj, path, text if rng.random() < 0.5 else get(obj, path) + text)
    return api_path(path)


def huge_string(obj: dict[str, Any], rng: random.Random) -> str | None:
    path = _pick(obj, rng, _strings)
    if path is None:
        return None
    put(obj, path, rng.choice("x\u00e9\u6f22") * rng.randint(100_000, 300_000))
    return api_path(path)


def huge_map(obj: dict[str, Any], rng: random.Random) -> str | None:
    """A string map filled to its schema's limits (32 keys of 4 KiB) or far past them."""
    path = _pick(obj, rng, _named(("properties", "hyperparameters"))) or _pick(obj, rng, lambda p, v: isinstance(v, dict))
    if path is None:
        return None
    keys, size = rng.choice([(32, 4096), (33, 10), (200, 1500), (1, 300_000), (32, 4097)])
    accent = "\u00e9"
    put(obj, path, {f"k{i}.{accent * (i % 3)}": "v" * size for i in range(keys)})
    return api_path(path)


def huge_list(obj: dict[str, Any], rng: random.Random) -> str | None:
    path = _pick(obj, rng, lambda p, v: isinstance(v, list) and bool(v))
    if path is None:
        return None
    items = get(obj, path)
    count = rng.choice([9, 65, 257, 2000])
    put(obj, path, [json.loads(json.dumps(items[i % len(items)])) for i in range(count)])
    return api_path(path)


def cron_edge(obj: dict[str, Any], rng: random.Random) -> str | None:
    path = _pick(obj, rng, _named(("schedule",)))
    if path is None:
        return None
    put(obj, path, rng.choice(CRON_EDGES))
    return api_path(path)


def duration_edge(obj: dict[str, Any], rng: random.Random) -> str | None:
    path = _pick(obj, rng, _named(("olderThan", "ttl", "freshness", "activeDeadline", "interval")))
    if path is None:
        return None
    put(obj, path, rng.choice(DURATION_EDGES))
    return api_path(path)


def number_edge(obj: dict[str, Any], rng: random.Random) -> str | None:
    path = _pick(obj, rng, lambda p, v: isinstance(v, (int, float)) and not isinstance(v, bool))
    if path is None:
        return None
    put(obj, path, rng.choice([0, -1, 2**31, 2**53 + 1, 2**63 - 1, 10**30, 0.5, -0.0, 1e-300]))
    return api_path(path)


def bookkeeping_garbage(obj: dict[str, Any], rng: random.Random) -> str | None:
    """Unreadable Kopf bookkeeping: the object is valid and must still be reconciled."""
    annotations = obj["metadata"].setdefault("annotations", {})
    for key, value in rng.sample(BOOKKEEPING_GARBAGE, rng.randint(1, 3)):
        annotations[key] = value
    return None


def odd_metadata(obj: dict[str, Any], rng: random.Random) -> str | None:
    choice = rng.randrange(4)
    if choice == 0:
        obj["metadata"]["name"] = rng.choice(["UPPER", "\u00e9t\u00e9", "a" * 254, "-x", "a..b", "x\x00"])
        return "metadata.name"
    if choice == 1:
        obj["metadata"]["annotations"] = {"fuzz.example/big": "x" * rng.randint(100_000, 300_000)}
        return "metadata.annotations"
    if choice == 2:
        obj["metadata"]["labels"] = {"fuzz": rng.choice(TEXTS + ["x" * 64])}
        return "metadata.labels"
    obj["metadata"]["finalizers"] = ["not a/valid/finalizer\u00e9"]
    return "metadata.finalizers"


MUTATIONS: dict[str, Mutation] = {
    "wrong-type": wrong_type,
    "missing-field": missing_field,
    "missing-spec": missing_spec,
    "unknown-field": unknown_field,
    "odd-text": odd_text,
    "huge-string": huge_string,
    "huge-map": huge_map,
    "huge-list": huge_list,
    "cron-edge": cron_edge,
    "duration-edge": duration_edge,
    "number-edge": number_edge,
    "bookkeeping-garbage": bookkeeping_garbage,
    "odd-metadata": odd_metadata,
}
