"""Loom's Kubernetes REST client against a real HTTPS server in this process (the dev cluster's PKI:
its CA, serving certificate and admin client certificate): how each kind of credential in a kubeconfig
or a pod reaches the server, and what the verbs send and raise."""

from __future__ import annotations

import base64
import json
import os
import ssl
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml

from loom.devcluster.pki import ADMIN_USER, Pki, ensure_pki
from loom.drivers import kube_http
from loom.drivers.kube_http import APPLY_PATCH, MERGE_PATCH, ApiError, KubeHttp, connect, from_kubeconfig


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    client_cn: str | None


@dataclass
class Server:
    """Records every request; answers 401 to a refused token, a Status 404 to a path with `missing`,
    else 200 with {"items": [...]} echoing the path."""

    url: str
    seen: list[Seen] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def server(pki: Pki) -> Iterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_cert))
    context.load_cert_chain(pki.apiserver_cert, pki.apiserver_key)
    context.verify_mode = ssl.CERT_OPTIONAL  # a client certificate proves who the client is, when it has one

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            peer = self.connection.getpeercert()
            cn = next((v for rdn in peer["subject"] for k, v in rdn if k == "commonName"), None) if peer else None
            state.seen.append(Seen(self.command, self.path, dict(self.headers), json.loads(raw) if raw else None, cn))
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            body: dict[str, Any]
            if token in state.refused:
                status, body = 401, {"kind": "Status", "reason": "Unauthorized", "message": "Unauthorized"}
            elif "missing" in self.path:
                status, body = 404, {"kind": "Status", "reason": "NotFound", "message": 'jobs "missing" not found'}
            else:
                status, body = 200, {"items": [{"path": self.path}]}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads what it needs from `seen`."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    state = Server(f"https://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any], context: str = "test") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


def test_a_token_is_sent_and_the_server_checked_against_the_kubeconfigs_ca(server: Server, pki: Pki,
                                                                           tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "config", {"server": server.url, "certificate-authority-data": b64(pki.ca_cert)},
                        {"token": "t0ken"})
    api = from_kubeconfig([config])
    assert api.get("/api/v1/namespaces/ml/secrets/s") == {"items": [{"path": "/api/v1/namespaces/ml/secrets/s"}]}
    assert server.seen[-1].headers["Authorization"] == "Bearer t0ken"
    assert server.seen[-1].client_cn is None


def test_client_certificate_data_authenticates_the_client(server: Server, pki: Pki, tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "config", {"server": server.url, "certificate-authority-data": b64(pki.ca_cert)},
                        {"client-certificate-data": b64(pki.admin_cert), "client-key-data": b64(pki.admin_key)})
    from_kubeconfig([config]).get("/version")
    assert server.seen[-1].client_cn == ADMIN_USER
    assert "Authorization" not in server.seen[-1].headers


def test_files_are_relative_to_their_kubeconfig_and_the_first_file_wins(
    server: Server, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$KUBECONFIG as a list: current-context from the first file that sets one; a token file is read again."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    (tmp_path / "a" / "token").write_text("first\n")
    first = kubeconfig(tmp_path / "a" / "config", {"server": server.url, "certificate-authority": "ca.crt"},
                       {"tokenFile": "token"}, context="wanted")
    second = kubeconfig(tmp_path / "b" / "config", {"server": "https://127.0.0.1:1"}, {"token": "other"},
                        context="other")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{second}")
    api = connect()
    api.get("/version")
    assert server.seen[-1].headers["Authorization"] == "Bearer first"
    (tmp_path / "a" / "token").write_text("second\n")
    server.refused.add("first")  # the rotated token is read at the 401
    api.get("/version")
    assert [s.headers["Authorization"] for s in server.seen[-2:]] == ["Bearer first", "Bearer second"]


def test_an_exec_plugin_is_run_once_and_again_when_its_token_is_refused(server: Server, pki: Pki,
                                                                       tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plugin = tmp_path / "bin" / "credential"
    plugin.parent.mkdir()
    plugin.write_text(f"""#!{sys.executable}
import json, os, pathlib
runs = pathlib.Path({str(runs)!r})
with runs.open("a") as log:
    log.write(os.environ["KUBERNETES_EXEC_INFO"] + "\\n")
n = len(runs.read_text().splitlines())
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {{"token": os.environ["PREFIX"] + str(n), "expirationTimestamp": "2999-01-01T00:00:00Z"}}}}))
""")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    config = kubeconfig(tmp_path / "config", {"server": server.url, "certificate-authority-data": b64(pki.ca_cert)},
                        {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "./bin/credential",
                                  "env": [{"name": "PREFIX", "value": "exec-"}], "provideClusterInfo": True}})
    api = from_kubeconfig([config])
    api.get("/version")
    api.get("/version")
    assert [s.headers["Authorization"] for s in server.seen] == ["Bearer exec-1", "Bearer exec-1"]
    info = json.loads(runs.read_text().splitlines()[0])
    assert info["kind"] == "ExecCredential" and info["spec"]["cluster"]["server"] == server.url
    server.refused.add("exec-1")
    api.get("/version")
    assert [s.headers["Authorization"] for s in server.seen[2:]] == ["Bearer exec-1", "Bearer exec-2"]


def test_an_exec_plugin_may_give_a_client_certificate(server: Server, pki: Pki, tmp_path: Path) -> None:
    credential = {"kind": "ExecCredential", "status": {"clientCertificateData": pki.admin_cert.read_text(),
                                                       "clientKeyData": pki.admin_key.read_text()}}
    config = kubeconfig(tmp_path / "config", {"server": server.url, "certificate-authority-data": b64(pki.ca_cert)},
                        {"exec": {"command": sys.executable, "args": ["-c", f"print({json.dumps(credential)!r})"]}})
    from_kubeconfig([config]).get("/version")
    assert server.seen[-1].client_cn == ADMIN_USER


def test_a_failing_exec_plugin_is_told_with_its_stderr(tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "config", {"server": "https://127.0.0.1:1"},
                        {"exec": {"command": sys.executable, "args": ["-c", "import sys; sys.exit('no login')"]}})
    with pytest.raises(kube_http.ConfigError, match="no login"):
        from_kubeconfig([config]).get("/version")


def test_the_server_certificate_is_verified_unless_the_kubeconfig_says_insecure(server: Server, tmp_path: Path) -> None:
    unknown_ca = kubeconfig(tmp_path / "config", {"server": server.url}, {"token": "t"})
    with pytest.raises(urllib3.exceptions.MaxRetryError, match="CERTIFICATE_VERIFY_FAILED"):
        from_kubeconfig([unknown_ca]).get("/version")
    insecure = kubeconfig(tmp_path / "config", {"server": server.url, "insecure-skip-tls-verify": True}, {"token": "t"})
    assert from_kubeconfig([insecure]).get("/version")


def test_in_a_pod_the_service_account_token_is_read_again_as_it_rotates(
    server: Server, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("sa-1")
    (tmp_path / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    monkeypatch.setattr(kube_http, "SERVICE_ACCOUNT", tmp_path)
    monkeypatch.setattr(kube_http, "TOKEN_FILE_SECONDS", 0.0)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", server.url.rsplit(":", 1)[1])
    api = connect()
    api.get("/version")
    (tmp_path / "token").write_text("sa-2")
    api.get("/version")
    assert [s.headers["Authorization"] for s in server.seen] == ["Bearer sa-1", "Bearer sa-2"]


@pytest.fixture
def api(server: Server, pki: Pki, tmp_path: Path) -> KubeHttp:
    return from_kubeconfig([kubeconfig(tmp_path / "config", {"server": server.url,
                                                             "certificate-authority-data": b64(pki.ca_cert)},
                                       {"token": "t"})])


def test_verbs_send_what_the_api_server_expects(server: Server, api: KubeHttp) -> None:
    jobs = kube_http.resource_path("batch/v1", "jobs", "ml")
    assert api.list(jobs, "loom.dev/workload=w") == [{"path": f"{jobs}?labelSelector=loom.dev%2Fworkload%3Dw"}]
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w", "namespace": "ml"}}
    api.apply(kube_http.resource_path("v1", "configmaps", "ml", "w"), manifest, "loom-operator")
    api.merge_patch(kube_http.resource_path("loom.dev/v1alpha1", "datalakes", "ml", "d", "status"), {"status": {}})
    api.delete(kube_http.resource_path("batch/v1", "cronjobs", "ml", "w"), propagation_policy="Background")
    api.delete_collection(jobs, "loom.dev/workload=w", "Background")
    applied, patched, deleted, collection = server.seen[1:]
    assert (applied.method, applied.path) == ("PATCH", "/api/v1/namespaces/ml/configmaps/w?fieldManager=loom-operator&force=true")
    assert applied.headers["Content-Type"] == APPLY_PATCH and applied.body == manifest
    assert (patched.path, patched.headers["Content-Type"]) == ("/apis/loom.dev/v1alpha1/namespaces/ml/datalakes/d/status",
                                                              MERGE_PATCH)
    assert (deleted.method, deleted.path) == ("DELETE", "/apis/batch/v1/namespaces/ml/cronjobs/w?propagationPolicy=Background")
    assert collection.path == f"{jobs}?labelSelector=loom.dev%2Fworkload%3Dw&propagationPolicy=Background"


def test_an_error_carries_the_status_of_the_answer(api: KubeHttp) -> None:
    with pytest.raises(ApiError) as raised:
        api.get("/apis/batch/v1/namespaces/ml/jobs/missing")
    assert (raised.value.status, raised.value.reason) == (404, "NotFound")
    assert 'jobs "missing" not found' in str(raised.value)


def test_without_a_pod_or_a_kubeconfig_the_error_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(kube_http.ConfigError, match="no kubeconfig at .*absent"):
        from_kubeconfig([tmp_path / "absent"])
