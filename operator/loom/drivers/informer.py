"""What the operator's watches delivered, kept in memory as client-go's informer store does: Kopf's
watch of a kind already brings every body, so keeping the newest one (or what a reader needs of it)
makes a read of it cost no API call. Handlers feed it (`seen`); readers below them (the watch cache
of Loom objects, the Kubernetes executor's training runs) read it.

A reader registers a transform for a kind to keep only what it needs of each body (the executor keeps
a run's creation time and status, not the whole TrainJob), as client-go's SetTransform does; objects
are also indexed by the value of one label, so the children of one workload are found without a
LIST. A body is never looked at again once transformed, so nothing here holds the watch's dicts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

Transform = Callable[[Mapping[str, Any]], Any]
Key = tuple[str, str, str]  # (plural, namespace, name)


class Informer:
    """The newest of each watched object by (plural, namespace, name), indexed by `index_label`."""

    def __init__(self, index_label: str | None = None) -> None:
        self._index_label = index_label
        self._transforms: dict[str, Transform] = {}
        self._items: dict[Key, Any] = {}
        self._index: dict[tuple[str, str, str], set[str]] = {}  # (plural, namespace, label value) -> names
        self._labels: dict[Key, str] = {}
        self._lock = threading.Lock()

    def transform(self, plural: str, fn: Transform) -> None:
        """Keep `fn(body)` instead of the body for objects of `plural` seen from now on."""
        self._transforms[plural] = fn

    def seen(self, plural: str, namespace: str, name: str, body: Mapping[str, Any] | None) -> None:
        """What a watch event delivered; None when the object was deleted."""
        key = (plural, namespace, name)
        value = None if body is None else self._transforms.get(plural, _same)(body)
        label = None
        if body is not None and self._index_label is not None:
            label = ((body.get("metadata") or {}).get("labels") or {}).get(self._index_label)
        with self._lock:
            old = self._labels.pop(key, None)
            if old is not None:
                names = self._index.get((plural, namespace, old))
                if names is not None:
                    names.discard(name)
                    if not names:
                        del self._index[(plural, namespace, old)]
            if body is None:
                self._items.pop(key, None)
                return
            self._items[key] = value
            if isinstance(label, str):
                self._labels[key] = label
                self._index.setdefault((plural, namespace, label), set()).add(name)

    def get(self, plural: str, namespace: str, name: str) -> Any | None:
        with self._lock:
            return self._items.get((plural, namespace, name))

    def labelled(self, plural: str, namespace: str, value: str) -> list[Any]:
        """The objects of `plural` in `namespace` whose index label has this value."""
        with self._lock:
            names = sorted(self._index.get((plural, namespace, value), ()))
            return [self._items[(plural, namespace, n)] for n in names]


def _same(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return body
