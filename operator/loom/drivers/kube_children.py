"""Children a Loom object keeps in kinds of other projects' CRDs (Seldon Core 2's Models, KServe's
InferenceServices, ...), kept level-based: discovery says which of the kinds the cluster serves, the
wanted children are server-side applied, and those the object no longer wants are found by its owner
label (one LIST per kind) and deleted. Their controllers report in status conditions, which count
only when written for the object's current spec (`status.observedGeneration`).

API errors propagate (the caller reports them and tries again), except a 404 on delete: the child
is already gone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loom.drivers.kube_http import ApiError, KubeHttp, resource_path

Manifest = dict[str, Any]


@dataclass(frozen=True)
class ChildKind:
    kind: str
    api_version: str
    plural: str

    def path(self, namespace: str, name: str | None = None) -> str:
        return resource_path(self.api_version, self.plural, namespace, name)


def label_selector(labels: Mapping[str, str]) -> str:
    """A label selector requiring every one of `labels`."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def current(obj: Mapping[str, Any]) -> bool:
    """Whether the status speaks of the object's current spec: its observedGeneration is the object's
    generation, or the controller records none."""
    observed = (obj.get("status") or {}).get("observedGeneration")
    return observed is None or observed == (obj.get("metadata") or {}).get("generation")


def condition_status(obj: Mapping[str, Any], type_: str) -> bool | None:
    """A condition's status as a bool; None when the object has no condition of that type."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_:
            return bool(condition.get("status") == "True")
    return None


def holds(obj: Mapping[str, Any], required: Sequence[str], where_present: Sequence[str] = ()) -> bool:
    """The status is current, each `required` condition is True, and each of `where_present` is True
    if the controller reports it at all."""
    return (current(obj) and all(condition_status(obj, t) is True for t in required)
            and all(condition_status(obj, t) is not False for t in where_present))


class KubeChildren:
    """Children of the given kinds through one client, applied under `field_manager`."""

    def __init__(self, api: KubeHttp, field_manager: str) -> None:
        self._api = api
        self._field_manager = field_manager

    def unserved(self, kinds: Iterable[ChildKind]) -> tuple[ChildKind, ...]:
        """The kinds discovery does not list: one GET per group version."""
        by_group_version: dict[str, list[ChildKind]] = {}
        for kind in kinds:
            by_group_version.setdefault(kind.api_version, []).append(kind)
        missing: list[ChildKind] = []
        for group_version, wanted in by_group_version.items():
            try:
                found = self._api.get(f"/apis/{group_version}")
            except ApiError as exc:
                if exc.status != 404:
                    raise
                missing += wanted
                continue
            plurals = {resource.get("name") for resource in found.get("resources") or []}
            missing += [kind for kind in wanted if kind.plural not in plurals]
        return tuple(missing)

    def apply(self, manifests: Iterable[Manifest], kinds: Iterable[ChildKind]) -> list[Manifest]:
        """Server-side apply each manifest in order, taking over fields others own; the objects as
        the API server answered."""
        by_kind = {(kind.api_version, kind.kind): kind for kind in kinds}
        applied = []
        for manifest in manifests:
            kind = by_kind.get((manifest["apiVersion"], manifest["kind"]))
            if kind is None:
                raise ValueError(f"{manifest['apiVersion']} {manifest['kind']} is not among the kinds to apply")
            meta = manifest["metadata"]
            applied.append(self._api.apply(kind.path(meta["namespace"], meta["name"]), manifest, self._field_manager))
        return applied

    def listed(self, kind: ChildKind, namespace: str, selector: str) -> list[Manifest]:
        return self._api.list(kind.path(namespace), selector)

    def prune(self, namespace: str, selector: str, kinds: Iterable[ChildKind],
              keep: Iterable[Manifest]) -> list[tuple[str, str]]:
        """Delete the children that carry `selector`'s labels but are not in `keep`, kind by kind in
        the order given (users before what they use); the (kind, name) of each deleted."""
        kept = {(m["apiVersion"], m["kind"], m["metadata"]["name"]) for m in keep}
        deleted = []
        for kind in kinds:
            for obj in self.listed(kind, namespace, selector):
                name = obj["metadata"]["name"]
                if (kind.api_version, kind.kind, name) in kept:
                    continue
                try:
                    self._api.delete(kind.path(namespace, name), propagation_policy="Background")
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                deleted.append((kind.kind, name))
        return deleted
