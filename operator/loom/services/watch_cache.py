"""Reads of Loom objects served from the operator's own watches, as controller-runtime's informer
cache does: the watch that follows a kind (see `handlers.links`) already delivers every body to the
`Informer`, so a reconcile that reads the FeatureSet or DataLake it depends on costs no API call. An
object not seen (yet) is read from the API server, so a cold cache is only slower, never wrong; a
deleted one is forgotten."""

from __future__ import annotations

from typing import Any

from loom.api.kinds import Kind
from loom.drivers.informer import Informer
from loom.drivers.kube import Kube


class CachedReads:
    """`Kube` whose reads of watched Loom objects come from the informer; everything else is `kube`'s."""

    def __init__(self, kube: Kube, informer: Informer) -> None:
        self._kube = kube
        self._informer = informer

    def get_loom(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        found = self._informer.get(kind.plural, namespace, name)
        return dict(found) if found is not None else self._kube.get_loom(kind, namespace, name)

    def patch_status(self, kind: Kind, namespace: str, name: str, status: dict[str, Any]) -> None:
        self._kube.patch_status(kind, namespace, name, status)

    def get_secret(self, namespace: str, name: str) -> dict[str, str]:
        return self._kube.get_secret(namespace, name)

    def remove_annotation(self, kind: Kind, namespace: str, name: str, key: str) -> None:
        self._kube.remove_annotation(kind, namespace, name, key)
