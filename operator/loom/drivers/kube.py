"""The Kubernetes calls of services and handlers besides Kopf's own (Kopf posts events and keeps its
finalizer): reads of Loom objects and Secrets, and the status each reconcile writes when it changed."""

from __future__ import annotations

import base64
import os
from typing import Any, Protocol

import kubernetes
from kubernetes.client.exceptions import ApiException

from loom.api.kinds import Kind
from loom.api.meta import GROUP, VERSION
from loom.domain.errors import SecretNotFoundError


def load_config() -> None:
    """In a pod use the service account; elsewhere $KUBECONFIG as it is now (the client library
    reads the variable once at import, which is too early for tools that set it later)."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))


class Kube(Protocol):
    """The few Kubernetes calls services need, behind one small typed surface (`tests/support/kube.py`
    has an in-memory one for unit tests of the act steps)."""

    def get_loom(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """A Loom object as a plain dict, or None if it does not exist."""

    def patch_status(self, kind: Kind, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge `status` into a Loom object's status; an object that is gone is left alone."""

    def get_secret(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's keys and decoded values; raises SecretNotFoundError when it does not exist."""


class KubeClient:
    """`Kube` over the Kubernetes API with the official client."""

    def __init__(self, api_client: kubernetes.client.ApiClient | None = None) -> None:
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._core = kubernetes.client.CoreV1Api(api_client)

    def get_loom(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """A Loom object as a plain dict, or None if it does not exist."""
        try:
            return self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, kind.plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_status(self, kind: Kind, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge `status` into a Loom object's status subresource (a JSON merge patch); an object
        that is gone is left alone."""
        try:
            self._custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, kind.plural, name,
                                                               {"status": status})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def get_secret(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's keys and decoded values; callers must keep the values out of logs, status and events."""
        try:
            secret = self._core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise SecretNotFoundError(f"Secret {namespace}/{name} does not exist") from None
            raise
        return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}
