"""A small synchronous client of the Kubernetes REST API: plain dicts in and out over one urllib3
connection pool. The official `kubernetes` client costs ~60 MiB resident once imported, more than half
of an idle operator, for the dozen calls Loom makes besides Kopf's own (which has its own client).

Credentials are found as kubectl finds them: the pod's service account (its token read again every
TOKEN_FILE_SECONDS, as the kubelet rotates it), else the current context of $KUBECONFIG (a list of files,
merged: the first file that names something wins) or ~/.kube/config: server, certificate authority,
client certificate, token or tokenFile, insecure-skip-tls-verify, or an `exec` credential plugin (its
ExecCredential is used until its expirationTimestamp, and asked for again when the server answers 401).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE_SECONDS = 60.0
# An exec credential is asked for again this long before it expires, so no request carries a stale one.
EXEC_EXPIRY_MARGIN = timedelta(seconds=10)
EXEC_TIMEOUT_SECONDS = 60.0
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
# Connections kept open: more than the threads that call at once (16 reconcile workers by default, and
# Kopf's handler threads), since urllib3 closes a connection returned to a full pool, and the next call
# pays for a new TLS handshake. (The official client keeps five per core.)
POOL_SIZE = 32
TIMEOUT = urllib3.Timeout(connect=10.0, read=120.0)


class ApiError(Exception):
    """A response of the API server other than 2xx: `status` is its HTTP status (404, 403, 409, ...),
    `reason` and `message` those of the Status object it returned, when it returned one."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"({status}) {reason}: {message}" if message else f"({status}) {reason}")
        self.status = status
        self.reason = reason
        self.message = message


class ConfigError(Exception):
    """No usable credentials: not in a pod, and no kubeconfig (or a broken one)."""


def resource_path(api_version: str, plural: str, namespace: str, name: str | None = None,
                  subresource: str | None = None) -> str:
    """The URL path of a namespaced collection, or of one object (and a subresource of it)."""
    group = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    parts = [group, "namespaces", namespace, plural, name, subresource]
    return "/".join(part for part in parts if part)


def timestamp(value: object) -> datetime | None:
    """A Kubernetes time (RFC 3339, `Z` or an offset) as an aware datetime; None when absent."""
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


@dataclass(frozen=True)
class Credential:
    """What proves who the client is: a bearer token, a client certificate and key (PEM), or both."""

    token: str | None = None
    cert: tuple[str, str] | None = None


class StaticCredential:
    def __init__(self, credential: Credential) -> None:
        self._credential = credential

    def get(self) -> Credential:
        return self._credential

    def expire(self) -> bool:
        """Nothing to ask for again: a refused static credential stays refused."""
        return False


class TokenFile:
    """A bearer token read from a file, again after TOKEN_FILE_SECONDS or a 401 (projected service
    account tokens are rotated by the kubelet); a client certificate, if any, is kept as it is."""

    def __init__(self, path: Path, cert: tuple[str, str] | None = None) -> None:
        self._path = path
        self._cert = cert
        self._lock = threading.Lock()
        self._token = ""
        self._read_at = float("-inf")

    def get(self) -> Credential:
        with self._lock:
            now = time.monotonic()
            if now - self._read_at >= TOKEN_FILE_SECONDS:
                self._token = self._path.read_text().strip()
                self._read_at = now
            return Credential(self._token, self._cert)

    def expire(self) -> bool:
        with self._lock:
            self._read_at = float("-inf")
        return True


class ExecPlugin:
    """A client-go credential plugin: a command printing an ExecCredential, run at first use, when the
    credential it gave expires, and after a 401."""

    def __init__(self, spec: Mapping[str, Any], base: Path, cluster: Mapping[str, Any],
                 cert: tuple[str, str] | None = None) -> None:
        command = str(spec.get("command") or "")
        if not command:
            raise ConfigError("the kubeconfig's exec plugin names no command")
        if os.sep in command and not os.path.isabs(command):  # relative to the kubeconfig, as in client-go
            command = str(base / command)
        self._argv = [command, *(str(a) for a in spec.get("args") or [])]
        self._env = {str(e["name"]): str(e["value"]) for e in spec.get("env") or []}
        info: dict[str, Any] = {"interactive": False}
        if spec.get("provideClusterInfo"):
            info["cluster"] = {k: v for k, v in cluster.items() if k in ("server", "certificate-authority-data",
                                                                           "insecure-skip-tls-verify")}
        self._info = json.dumps({"apiVersion": spec.get("apiVersion", "client.authentication.k8s.io/v1"),
                                 "kind": "ExecCredential", "spec": info})
        self._cert = cert  # the kubeconfig's own client certificate, unless the plugin gives one
        self._lock = threading.Lock()
        self._credential: Credential | None = None
        self._expires: datetime | None = None

    def get(self) -> Credential:
        with self._lock:
            now = datetime.now(timezone.utc)
            if self._credential is None or (self._expires is not None and now >= self._expires - EXEC_EXPIRY_MARGIN):
                self._credential, self._expires = self._run()
            return self._credential

    def expire(self) -> bool:
        with self._lock:
            self._credential = None
        return True

    def _run(self) -> tuple[Credential, datetime | None]:
        env = {**os.environ, **self._env, "KUBERNETES_EXEC_INFO": self._info}
        try:
            done = subprocess.run(self._argv, env=env, capture_output=True, text=True, timeout=EXEC_TIMEOUT_SECONDS,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"the kubeconfig's exec plugin {self._argv[0]} could not run: {exc}") from exc
        if done.returncode != 0:
            raise ConfigError(f"the kubeconfig's exec plugin {self._argv[0]} exited {done.returncode}: "
                              f"{done.stderr.strip()}")
        try:
            status = json.loads(done.stdout)["status"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"the kubeconfig's exec plugin {self._argv[0]} printed no ExecCredential") from exc
        cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
        if not status.get("token") and not (cert and key):
            raise ConfigError(f"the kubeconfig's exec plugin {self._argv[0]} returned neither a token nor a "
                              "client certificate and key")
        credential = Credential(status.get("token") or None, (cert, key) if cert and key else self._cert)
        return credential, timestamp(status.get("expirationTimestamp"))


CredentialSource = StaticCredential | TokenFile | ExecPlugin


class KubeHttp:
    """The Kubernetes API at `server`, thread-safe; `request` raises ApiError for any status not 2xx."""

    def __init__(self, server: str, credentials: CredentialSource, ca: str | None = None,
                 insecure: bool = False) -> None:
        self.server = server.rstrip("/")
        self._credentials = credentials
        self._ca = ca
        self._insecure = insecure
        self._lock = threading.Lock()
        self._pool: urllib3.PoolManager | None = None
        self._pool_cert: tuple[str, str] | None = None

    def request(self, method: str, path: str, query: Mapping[str, str] | None = None, body: object = None,
                content_type: str = "application/json") -> Any:
        """One call; the decoded JSON answer (None when empty). A 401 is retried once with the
        credential asked for again (a rotated token, an exec plugin run again)."""
        url = self.server + path + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(2):
            pool, token = self._connection()
            headers = {"Accept": "application/json", "User-Agent": "loom-operator"}
            if data is not None:
                headers["Content-Type"] = content_type
            if token:
                headers["Authorization"] = f"Bearer {token}"
            response = pool.request(method, url, body=data, headers=headers, timeout=TIMEOUT)
            if response.status == 401 and attempt == 0 and self._credentials.expire():
                continue
            break
        if not 200 <= response.status < 300:
            raise _error(response.status, response.data)
        return json.loads(response.data) if response.data else None

    def get(self, path: str) -> dict[str, Any]:
        found: dict[str, Any] = self.request("GET", path)
        return found

    def list(self, path: str, label_selector: str) -> list[dict[str, Any]]:
        """The items of a collection that carry the labels of `label_selector`."""
        found = self.request("GET", path, {"labelSelector": label_selector})
        return list(found.get("items") or [])

    def apply(self, path: str, manifest: Mapping[str, Any], field_manager: str) -> dict[str, Any]:
        """Server-side apply of `manifest`, taking over fields other managers own (force)."""
        applied: dict[str, Any] = self.request("PATCH", path, {"fieldManager": field_manager, "force": "true"},
                                               manifest, APPLY_PATCH)
        return applied

    def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        patched: dict[str, Any] = self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        return patched

    def delete(self, path: str, propagation_policy: str | None = None) -> None:
        self.request("DELETE", path, {"propagationPolicy": propagation_policy} if propagation_policy else None)

    def delete_collection(self, path: str, label_selector: str, propagation_policy: str) -> None:
        """Delete every object of a collection that carries the labels of `label_selector`."""
        self.request("DELETE", path, {"labelSelector": label_selector, "propagationPolicy": propagation_policy})

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.clear()

    def _connection(self) -> tuple[urllib3.PoolManager, str | None]:
        """The pool and the bearer token of the current credential; a new pool when its client
        certificate changed (an exec plugin gave a new one)."""
        credential = self._credentials.get()
        with self._lock:
            if self._pool is None or credential.cert != self._pool_cert:
                context = _ssl_context(self._ca, credential.cert, self._insecure)
                self._pool = urllib3.PoolManager(num_pools=2, maxsize=POOL_SIZE, ssl_context=context)
                self._pool_cert = credential.cert
            return self._pool, credential.token


def _error(status: int, data: bytes) -> ApiError:
    try:
        body = json.loads(data)
    except ValueError:
        return ApiError(status, "", data.decode(errors="replace").strip())
    if not isinstance(body, dict):
        return ApiError(status, "", str(body))
    return ApiError(status, str(body.get("reason") or ""), str(body.get("message") or ""))


def _ssl_context(ca: str | None, cert: tuple[str, str] | None, insecure: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:  # the ssl module loads a certificate chain from files only
        with tempfile.TemporaryDirectory(prefix="loom-kube-") as directory:
            cert_file, key_file = Path(directory, "tls.crt"), Path(directory, "tls.key")
            for path, pem in ((cert_file, cert[0]), (key_file, cert[1])):
                path.touch(mode=0o600)
                path.write_text(pem)
            context.load_cert_chain(cert_file, key_file)
    return context


def connect() -> KubeHttp:
    """In a pod the service account; elsewhere the current context of $KUBECONFIG or ~/.kube/config,
    read now (not at import, too early for tools that set the variable later)."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    token = SERVICE_ACCOUNT / "token"
    if host and port and token.is_file():
        host = f"[{host}]" if ":" in host else host
        ca = SERVICE_ACCOUNT / "ca.crt"
        return KubeHttp(f"https://{host}:{port}", TokenFile(token), ca.read_text() if ca.is_file() else None)
    raw = os.environ.get("KUBECONFIG") or "~/.kube/config"
    return from_kubeconfig([Path(p).expanduser() for p in raw.split(os.pathsep) if p])


def from_kubeconfig(files: list[Path], context: str | None = None) -> KubeHttp:
    """The client of a kubeconfig's context (its current one unless named), the files merged."""
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}}
    bases: dict[tuple[str, str], Path] = {}  # each cluster's and user's file, for its relative paths
    found = [path for path in files if path.is_file()]
    if not found:
        raise ConfigError(f"not in a pod, and no kubeconfig at {os.pathsep.join(map(str, files))}")
    for path in found:
        loaded = yaml.safe_load(path.read_text()) or {}
        merged["current-context"] = merged.get("current-context") or loaded.get("current-context")
        for section in ("clusters", "users", "contexts"):
            for entry in loaded.get(section) or []:
                if entry["name"] not in merged[section]:
                    merged[section][entry["name"]] = entry.get(section[:-1]) or {}
                    bases[(section, entry["name"])] = path.resolve().parent
    name = context or merged.get("current-context")
    if not name or name not in merged["contexts"]:
        raise ConfigError(f"no kubeconfig context {name!r} in {', '.join(map(str, files))}")
    ctx = merged["contexts"][name]
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if not merged["clusters"].get(cluster_name, {}).get("server"):
        raise ConfigError(f"the kubeconfig context {name!r} names no cluster with a server ({cluster_name!r})")
    cluster, user = merged["clusters"][cluster_name], merged["users"].get(user_name) or {}
    cluster_base = bases[("clusters", cluster_name)]
    user_base = bases.get(("users", user_name), cluster_base)
    ca = _pem(cluster, "certificate-authority", cluster_base)
    cert, key = _pem(user, "client-certificate", user_base), _pem(user, "client-key", user_base)
    client_cert = (cert, key) if cert and key else None
    credentials: CredentialSource
    if user.get("exec"):
        credentials = ExecPlugin(user["exec"], user_base, cluster, client_cert)
    elif user.get("tokenFile"):
        credentials = TokenFile(user_base / user["tokenFile"], client_cert)
    else:
        credentials = StaticCredential(Credential(user.get("token") or None, client_cert))
    return KubeHttp(str(cluster["server"]), credentials, ca, bool(cluster.get("insecure-skip-tls-verify")))


def _pem(entry: Mapping[str, Any], field: str, base: Path) -> str | None:
    """A kubeconfig's PEM field: inline as `<field>-data` (base64), or a file relative to the kubeconfig."""
    if entry.get(f"{field}-data"):
        return base64.b64decode(entry[f"{field}-data"]).decode()
    if entry.get(field):
        return (base / entry[field]).read_text()
    return None
