"""Reads of Loom objects served from the operator's own watches, as controller-runtime's informer
cache does: the watch that follows a kind (see `handlers.links`) already delivers every body, so a
reconcile that reads the FeatureSet or DataLake it depends on costs no API call. An object not seen
(yet) is read from the API server, so a cold cache is only slower, never wrong; a deleted one is
forgotten."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from loom.api.kinds import Kind
from loom.drivers.kube import Kube


class WatchCache:
    """The newest body of each watched object, by (plural, namespace, name)."""

    def __init__(self) -> None:
        self._bodies: dict[tuple[str, str, str], Mapping[str, Any]] = {}
        self._lock = threading.Lock()

    def seen(self, plural: str, namespace: str, name: str, body: Mapping[str, Any] | None) -> None:
        """What a watch event delivered; None when the object was deleted."""
        with self._lock:
            if body is None:
                self._bodies.pop((plural, namespace, name), None)
            else:
                self._bodies[(plural, namespace, name)] = body

    def get(self, plural: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        with self._lock:
            return self._bodies.get((plural, namespace, name))

    def reads(self, kube: Kube) -> Kube:
        return CachedReads(kube, self)


class CachedReads:
    """`Kube` whose reads of watched Loom objects come from the cache; everything else is `kube`'s."""

    def __init__(self, kube: Kube, cache: WatchCache) -> None:
        self._kube = kube
        self._cache = cache

    def get_loom(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        found = self._cache.get(kind.plural, namespace, name)
        return dict(found) if found is not None else self._kube.get_loom(kind, namespace, name)

    def patch_status(self, kind: Kind, namespace: str, name: str, status: dict[str, Any]) -> None:
        self._kube.patch_status(kind, namespace, name, status)

    def get_secret(self, namespace: str, name: str) -> dict[str, str]:
        return self._kube.get_secret(namespace, name)
