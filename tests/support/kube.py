"""An in-memory `loom.drivers.kube.Kube` for unit tests of act steps: Loom objects and Secrets the
test puts in, and the annotations the code under test wrote."""

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
    annotated: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)

    def put(self, kind: Kind, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects[(kind.plural, meta["namespace"], meta["name"])] = copy.deepcopy(obj)

    def put_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.secrets[(namespace, name)] = dict(data)

    def get_loom(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind.plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def annotate(self, kind: Kind, namespace: str, name: str, annotations: dict[str, str]) -> None:
        obj = self.objects.get((kind.plural, namespace, name))
        if obj is None:
            return
        obj["metadata"].setdefault("annotations", {}).update(annotations)
        self.annotated.append((kind.plural, namespace, name, dict(annotations)))

    def get_secret(self, namespace: str, name: str) -> dict[str, str]:
        try:
            return dict(self.secrets[(namespace, name)])
        except KeyError:
            raise SecretNotFoundError(f"Secret {namespace}/{name} does not exist") from None
