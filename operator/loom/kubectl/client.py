"""The plugin's calls to the API server, through Loom's own small client (`drivers/kube_http.py`),
credentials found as kubectl finds them: --kubeconfig, else $KUBECONFIG, else ~/.kube/config (or the
pod's service account), and the namespace as kubectl picks it: -n, else the context's, else default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from loom.api.kinds import Kind
from loom.api.meta import API_VERSION
from loom.drivers.kube_http import SERVICE_ACCOUNT, ApiError, KubeHttp, connect, from_kubeconfig, resource_path

DEFAULT_NAMESPACE = "default"


class NotFound(LookupError):
    """The object asked for does not exist (the message says as kubectl would)."""


def kubeconfig_files(flag: str | None) -> list[Path]:
    raw = flag or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]


def context_namespace(files: list[Path], context: str | None) -> str | None:
    """The namespace the kubeconfig's context (its current one unless named) sets, if any; the first
    file naming the context wins, as kubectl merges them."""
    loaded = [yaml.safe_load(p.read_text()) or {} for p in files if p.is_file()]
    name = context or next((c["current-context"] for c in loaded if c.get("current-context")), None)
    for config in loaded:
        for entry in config.get("contexts") or []:
            if entry.get("name") == name:
                return (entry.get("context") or {}).get("namespace") or None
    return None


class LoomApi:
    """Loom objects as plain dicts; `namespace` is the one commands use unless told otherwise."""

    def __init__(self, http: KubeHttp, namespace: str) -> None:
        self.http = http
        self.namespace = namespace

    @classmethod
    def connect(cls, kubeconfig: str | None, context: str | None, namespace: str | None) -> LoomApi:
        files = kubeconfig_files(kubeconfig)
        in_pod = not kubeconfig and not context and not any(p.is_file() for p in files)
        http = connect() if in_pod else from_kubeconfig(files, context)
        pod_namespace = SERVICE_ACCOUNT / "namespace"
        found = (pod_namespace.read_text().strip() if in_pod and pod_namespace.is_file()
                 else context_namespace(files, context))
        return cls(http, namespace or found or DEFAULT_NAMESPACE)

    def list(self, kind: Kind, namespace: str | None) -> list[dict[str, Any]]:
        """Every object of a kind in a namespace, or in all of them (None)."""
        path = (resource_path(API_VERSION, kind.plural, namespace) if namespace
                else f"/apis/{API_VERSION}/{kind.plural}")
        try:
            found = self.http.request("GET", path)
        except ApiError as error:
            if error.status == 404:
                raise NotFound(f"the API server has no {kind.plural}.{API_VERSION}: are Loom's CRDs installed?") \
                    from None
            raise
        return [dict(item, kind=kind.kind) for item in found.get("items") or []]

    def find(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.http.get(resource_path(API_VERSION, kind.plural, namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        found = self.find(kind, namespace, name)
        if found is None:
            raise NotFound(f'{kind.singular} "{name}" not found in namespace "{namespace}"')
        return found

    def patch(self, kind: Kind, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the object (not its status)."""
        try:
            return self.http.merge_patch(resource_path(API_VERSION, kind.plural, namespace, name), patch)
        except ApiError as error:
            if error.status == 404:
                raise NotFound(f'{kind.singular} "{name}" not found in namespace "{namespace}"') from None
            raise
