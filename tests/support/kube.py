"""An in-memory `loom.drivers.kube.Kube` for unit tests of act steps: Loom objects and Secrets the
test puts in, and the status the code under test wrote."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from loom.api.kinds import Kind
from loom.domain.errors import SecretNotFoundError


@dataclass
class FakeKube:
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    statuses: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)

    def put(self, kind: Kind, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects[(kind.plural, meta["namespace"], meta["name"])] = copy.deepcopy(obj)

    def put_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.secrets[(namespace, name)] = dict(data)

    def get_loom(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind.plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def patch_status(self, kind: Kind, namespace: str, name: str, status: dict[str, Any]) -> None:
        obj = self.objects.get((kind.plural, namespace, name))
        if obj is None:
            return
        obj.setdefault("status", {}).update(copy.deepcopy(status))
        self.statuses.append((kind.plural, namespace, name, copy.deepcopy(status)))

    def remove_annotation(self, kind: Kind, namespace: str, name: str, key: str) -> None:
        obj = self.objects.get((kind.plural, namespace, name))
        if obj is not None:
            (obj.get("metadata") or {}).get("annotations", {}).pop(key, None)

    def get_secret(self, namespace: str, name: str) -> dict[str, str]:
        try:
            return dict(self.secrets[(namespace, name)])
        except KeyError:
            raise SecretNotFoundError(f"Secret {namespace}/{name} does not exist") from None
