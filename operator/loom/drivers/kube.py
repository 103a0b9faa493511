"""The Kubernetes calls of services and handlers besides Kopf's own (Kopf posts events and keeps its
finalizer): reads of Loom objects and Secrets, and the status each reconcile writes when it changed."""

from __future__ import annotations

import base64
from typing import Any, Protocol

from loom.api.kinds import Kind
from loom.api.meta import GROUP, VERSION
from loom.domain.errors import SecretNotFoundError
from loom.drivers.kube_http import ApiError, KubeHttp, connect, resource_path

_default: KubeHttp | None = None


def load_config() -> None:
    """In a pod use the service account; elsewhere $KUBECONFIG as it is now (read at this call, not at
    import, which is too early for tools that set it later). Clients built without one use it."""
    global _default
    _default = connect()


def default_api() -> KubeHttp:
    """The process's client, as `load_config` found the credentials (at the first use if never called)."""
    if _default is None:
        load_config()
    assert _default is not None
    return _default


class Kube(Protocol):
    """The few Kubernetes calls services need, behind one small typed surface (`tests/support/kube.py`
    has an in-memory one for unit tests of the act steps)."""

    def get_loom(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """A Loom object as a plain dict, or None if it does not exist."""

    def patch_status(self, kind: Kind, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge `status` into a Loom object's status; an object that is gone is left alone."""

    def get_secret(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's keys and decoded values; raises SecretNotFoundError when it does not exist."""

    def remove_annotation(self, kind: Kind, namespace: str, name: str, key: str) -> None:
        """Remove one annotation of a Loom object (a manual request that was answered)."""


class KubeClient:
    """`Kube` over the Kubernetes REST API (`drivers/kube_http.py`)."""

    def __init__(self, api: KubeHttp | None = None) -> None:
        self._api = api or default_api()

    def get_loom(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """A Loom object as a plain dict, or None if it does not exist."""
        try:
            return self._api.get(resource_path(f"{GROUP}/{VERSION}", kind.plural, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def patch_status(self, kind: Kind, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge `status` into a Loom object's status subresource (a JSON merge patch); an object
        that is gone is left alone."""
        try:
            self._api.merge_patch(resource_path(f"{GROUP}/{VERSION}", kind.plural, namespace, name, "status"),
                                  {"status": status})
        except ApiError as exc:
            if exc.status != 404:
                raise

    def remove_annotation(self, kind: Kind, namespace: str, name: str, key: str) -> None:
        """A JSON merge patch setting the annotation to null; an object that is gone is left alone."""
        try:
            self._api.merge_patch(resource_path(f"{GROUP}/{VERSION}", kind.plural, namespace, name),
                                  {"metadata": {"annotations": {key: None}}})
        except ApiError as exc:
            if exc.status != 404:
                raise

    def get_secret(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's keys and decoded values; callers must keep the values out of logs, status and events."""
        try:
            secret = self._api.get(resource_path("v1", "secrets", namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                raise SecretNotFoundError(f"Secret {namespace}/{name} does not exist") from None
            raise
        return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
