"""Start, inspect and stop a local etcd + kube-apiserver + kube-controller-manager on loopback.

There is no kubelet, so pods never run; what this gives is a real API server with real admission,
RBAC, garbage collection and namespace/service-account controllers, which is what the operator and
its integration tests talk to. Everything lives under one state dir so several clusters can coexist.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .binaries import Binaries, BinariesError, ensure_binaries
from .pki import ADMIN_GROUP, ADMIN_USER, Pki, ensure_pki, write_private

log = logging.getLogger(__name__)

CONTEXT = "loom-dev"
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc"
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
USE_EXISTING_ENV = "LOOM_USE_EXISTING_CLUSTER"

_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")  # start order; stopped in reverse
_PORTS = ("etcd-client", "etcd-peer", "apiserver", "controller-manager")
_POLL_INTERVAL = 0.5
_PROBE_TIMEOUT = 3.0
_LOG_TAIL_LINES = 40
# Backgrounds the command with its output in a log file and prints its pid. The launcher exits at once,
# so the components are re-parented to init: never zombies of the caller, and Ctrl-C does not reach them.
_LAUNCHER = 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'


class ClusterError(RuntimeError):
    """The cluster could not be started, reached or described."""


@dataclass(frozen=True)
class Cluster:
    """How to talk to a running cluster. ``state_dir`` is None for an existing (not loom-started) one."""

    kubeconfig: Path
    server: str
    bin_dir: Path | None
    state_dir: Path | None


@dataclass(frozen=True)
class ClusterStatus:
    """What state.json records about a loom-started cluster, and whether it answers right now."""

    cluster: Cluster
    pids: Mapping[str, int]
    ports: Mapping[str, int]
    healthy: bool


@dataclass(frozen=True)
class _Process:
    """A started component: its pid, the process group to signal, and the binary it must be running."""

    pid: int
    pgid: int
    exe: str


@dataclass(frozen=True)
class _Layout:
    """Every path under a state dir, in one place."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def token_file(self) -> Path:
        return self.root / "tokens.csv"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def cert_dir(self, component: str) -> Path:
        """Scratch cert dir, so no component falls back to /var/run/kubernetes."""
        return self.root / "certs" / component

    def owned(self) -> tuple[Path, ...]:
        """What ``down(purge=True)`` may delete: only what loom created, never the dir itself blindly."""
        return (self.state_file, self.kubeconfig, self.token_file, self.pki, self.etcd_data, self.logs,
                self.root / "certs", self.root / ".lock")


def default_state_dir() -> Path:
    """``$LOOM_DEV_DIR`` or the XDG-style ``~/.local/state/loom/dev``."""
    configured = os.environ.get("LOOM_DEV_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".local" / "state" / "loom" / "dev"


def use_existing_cluster() -> bool:
    """True when the caller opted into the cluster its KUBECONFIG points at."""
    return os.environ.get(USE_EXISTING_ENV) == "1"


def up(state_dir: Path | None = None, *, timeout: float = READY_TIMEOUT, build: bool = True) -> Cluster:
    """Return a ready cluster, reusing a healthy one from ``state_dir`` instead of restarting it.

    With ``LOOM_USE_EXISTING_CLUSTER=1`` nothing is started: the current KUBECONFIG must answer /readyz.
    """
    if use_existing_cluster():
        return _existing_cluster()
    layout = _Layout(_resolve(state_dir))
    with _locked(layout):
        current = _status(layout)
        if current is not None and current.healthy:
            log.info("reusing the running dev cluster at %s", current.cluster.server)
            return current.cluster
        if current is not None:
            log.warning("dev cluster in %s is not healthy; restarting it", layout.root)
            _stop(layout)
        return _start(layout, ensure_binaries(build=build), timeout)


def down(state_dir: Path | None = None, *, purge: bool = False, timeout: float = STOP_TIMEOUT) -> None:
    """Stop the cluster's processes; the etcd data survives for the next ``up`` unless ``purge``."""
    if use_existing_cluster():
        log.info("%s=1: leaving the existing cluster alone", USE_EXISTING_ENV)
        return
    layout = _Layout(_resolve(state_dir))
    if not layout.root.is_dir():
        return
    with _locked(layout):
        _stop(layout, timeout)
        if purge:
            for path in layout.owned():
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
    if purge:
        with contextlib.suppress(OSError):
            layout.root.rmdir()  # only if nothing else lives there


def status(state_dir: Path | None = None) -> ClusterStatus | None:
    """The recorded cluster of ``state_dir`` and its health, or None when none was started."""
    return _status(_Layout(_resolve(state_dir)))


def env(state_dir: Path | None = None) -> str:
    """Shell lines that point kubectl (the cached, version-matched one) at the cluster."""
    if use_existing_cluster():
        cluster = _existing_cluster()
    else:
        current = status(state_dir)
        if current is None:
            raise ClusterError(f"no dev cluster recorded in {_resolve(state_dir)}; run `loom dev up` first")
        cluster = current.cluster
    lines = [f"export KUBECONFIG={shlex.quote(str(cluster.kubeconfig))}"]
    if cluster.bin_dir is not None:
        lines.append(f"export PATH={shlex.quote(str(cluster.bin_dir))}:$PATH")
    return "\n".join(lines)


def _resolve(state_dir: Path | None) -> Path:
    return (Path(state_dir).expanduser() if state_dir is not None else default_state_dir()).absolute()


@contextlib.contextmanager
def _locked(layout: _Layout) -> Iterator[None]:
    """Serialise up/down on one state dir (e.g. parallel test workers sharing it)."""
    layout.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- existing cluster -------------------------------------------------------------------------------


def _existing_cluster() -> Cluster:
    """Verify the user's KUBECONFIG cluster is ready, through the kubernetes client so any auth works."""
    # Imported here: the client is slow to import and only this opt-in path needs it.
    from kubernetes import config
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    raw = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if os.pathsep in raw:
        raise ClusterError(f"{USE_EXISTING_ENV}=1 needs KUBECONFIG to name a single file, not {raw!r}")
    kubeconfig = Path(raw).expanduser()
    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))
    except config.ConfigException as exc:
        raise ClusterError(f"{USE_EXISTING_ENV}=1 but {kubeconfig} is unusable: {exc}") from exc
    try:
        api.call_api("/readyz", "GET", auth_settings=["BearerToken"], _return_http_data_only=True,
                     _preload_content=False, _request_timeout=_PROBE_TIMEOUT)
    except (ApiException, HTTPError) as exc:
        raise ClusterError(f"the existing cluster in {kubeconfig} is not ready: {exc}") from exc
    finally:
        api.close()
    try:
        bin_dir: Path | None = ensure_binaries(build=False).bin_dir
    except BinariesError:
        bin_dir = None
    return Cluster(kubeconfig=kubeconfig, server=api.configuration.host, bin_dir=bin_dir, state_dir=None)


# --- state ------------------------------------------------------------------------------------------


def _status(layout: _Layout) -> ClusterStatus | None:
    try:
        state = json.loads(layout.state_file.read_text())
    except FileNotFoundError:
        return None
    cluster = Cluster(kubeconfig=Path(state["kubeconfig"]), server=state["server"],
                      bin_dir=Path(state["bin_dir"]), state_dir=layout.root)
    processes = _processes(state)
    healthy = (
        set(processes) == set(_COMPONENTS)
        and all(_alive(proc) for proc in processes.values())
        and _apiserver_ready(cluster, layout)
    )
    pids = {name: proc.pid for name, proc in processes.items()}
    return ClusterStatus(cluster=cluster, pids=pids, ports=state["ports"], healthy=healthy)


def _processes(state: Mapping[str, Any]) -> dict[str, _Process]:
    return {name: _Process(**fields) for name, fields in state["processes"].items()}


def _record(layout: _Layout, cluster: Cluster, ports: Mapping[str, int],
            processes: Mapping[str, _Process]) -> None:
    """Write state.json atomically, after every spawn, so a failed start can still be torn down."""
    state = {
        "server": cluster.server,
        "kubeconfig": str(cluster.kubeconfig),
        "bin_dir": str(cluster.bin_dir),
        "ports": dict(ports),
        "processes": {name: dataclasses.asdict(proc) for name, proc in processes.items()},
    }
    tmp = layout.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(layout.state_file)


# --- start ------------------------------------------------------------------------------------------


def _start(layout: _Layout, binaries: Binaries, timeout: float) -> Cluster:
    layout.logs.mkdir(parents=True, exist_ok=True)
    pki = ensure_pki(layout.pki)
    token = _ensure_token(layout.token_file)
    port = dict(zip(_PORTS, _free_ports(len(_PORTS)), strict=True))
    server = f"https://127.0.0.1:{port['apiserver']}"
    _write_kubeconfig(layout.kubeconfig, server, pki.ca_cert, token)
    cluster = Cluster(kubeconfig=layout.kubeconfig, server=server, bin_dir=binaries.bin_dir,
                      state_dir=layout.root)
    commands = {
        "etcd": _etcd_command(binaries, layout, port),
        "kube-apiserver": _apiserver_command(binaries, layout, pki, port),
        "kube-controller-manager": _controller_manager_command(binaries, layout, pki, port),
    }
    checks: dict[str, tuple[str, Callable[[], bool]]] = {
        "etcd": ("etcd /health", lambda: _etcd_healthy(port["etcd-client"])),
        "kube-apiserver": ("kube-apiserver /readyz", lambda: _apiserver_ready(cluster, layout)),
        "kube-controller-manager": ("the default ServiceAccount",
                                    lambda: _default_service_account(cluster, layout)),
    }
    processes: dict[str, _Process] = {}
    try:
        for name in _COMPONENTS:
            log.info("starting %s (log: %s)", name, layout.log(name))
            processes[name] = _spawn(commands[name], layout.log(name))
            _record(layout, cluster, port, processes)
            what, check = checks[name]
            _wait_for(what, check, name, processes, layout, timeout)
    except BaseException:
        _stop(layout)
        raise
    log.info("dev cluster ready at %s (kubeconfig %s)", server, layout.kubeconfig)
    return cluster


def _etcd_command(binaries: Binaries, layout: _Layout, port: Mapping[str, int]) -> list[str]:
    client = f"http://127.0.0.1:{port['etcd-client']}"
    peer = f"http://127.0.0.1:{port['etcd-peer']}"
    return [
        str(binaries.etcd),
        "--name=default",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--unsafe-no-fsync",  # a throwaway dev store: speed over durability
    ]


def _apiserver_command(binaries: Binaries, layout: _Layout, pki: Pki, port: Mapping[str, int]) -> list[str]:
    return [
        str(binaries.kube_apiserver),
        f"--etcd-servers=http://127.0.0.1:{port['etcd-client']}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port['apiserver']}",
        f"--cert-dir={layout.cert_dir('kube-apiserver')}",
        f"--tls-cert-file={pki.apiserver_cert}",
        f"--tls-private-key-file={pki.apiserver_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--token-auth-file={layout.token_file}",
        "--authorization-mode=RBAC",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # The `kubernetes` Endpoints may not point at loopback; without pods nothing reads them anyway.
        "--endpoint-reconciler-type=none",
    ]


def _controller_manager_command(binaries: Binaries, layout: _Layout, pki: Pki,
                                port: Mapping[str, int]) -> list[str]:
    return [
        str(binaries.kube_controller_manager),
        f"--kubeconfig={layout.kubeconfig}",
        f"--authentication-kubeconfig={layout.kubeconfig}",
        f"--authorization-kubeconfig={layout.kubeconfig}",
        # Token review only: the apiserver has no request-header (front-proxy) CA for it to look up.
        "--authentication-skip-lookup",
        "--leader-elect=false",
        "--controllers=*",
        "--use-service-account-credentials=false",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_cert}",
        f"--cluster-signing-cert-file={pki.ca_cert}",
        f"--cluster-signing-key-file={pki.ca_key}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port['controller-manager']}",
        f"--cert-dir={layout.cert_dir('kube-controller-manager')}",
    ]


def _ensure_token(path: Path) -> str:
    """The admin bearer token, kept across restarts so exported kubeconfigs stay valid."""
    if path.is_file():
        return _read_token(path)
    token = secrets.token_urlsafe(32)
    write_private(path, f'{token},{ADMIN_USER},{ADMIN_USER},"{ADMIN_GROUP}"\n'.encode())
    return token


def _read_token(path: Path) -> str:
    return path.read_text().split(",", 1)[0].strip()


def _write_kubeconfig(path: Path, server: str, ca_cert: Path, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(ca_cert.read_bytes()).decode(),
        }}],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {
            "cluster": CONTEXT, "user": ADMIN_USER, "namespace": "default",
        }}],
        "current-context": CONTEXT,
    }
    write_private(path, yaml.safe_dump(config, sort_keys=False).encode())


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports; all sockets stay open until every port is picked."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _spawn(argv: list[str], log_file: Path) -> _Process:
    """Start ``argv`` detached in a new session, whose process group is the (exiting) launcher's pid."""
    with log_file.open("ab") as handle:
        handle.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {shlex.join(argv)}\n".encode())
    with subprocess.Popen(["/bin/sh", "-c", _LAUNCHER, "sh", str(log_file), *argv], stdout=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, start_new_session=True) as launcher:
        out, _ = launcher.communicate(timeout=10)
    if launcher.returncode != 0:
        raise ClusterError(f"could not launch {argv[0]}: launcher exited {launcher.returncode}")
    return _Process(pid=int(out), pgid=launcher.pid, exe=argv[0])


def _wait_for(what: str, check: Callable[[], bool], component: str, processes: Mapping[str, _Process],
              layout: _Layout, timeout: float) -> None:
    """Poll ``check`` until it passes; fail fast with the log tail if a component dies or time runs out."""
    deadline = time.monotonic() + timeout
    while not check():
        dead = [name for name, proc in processes.items() if not _alive(proc)]
        if dead:
            raise ClusterError(f"{dead[0]} exited while waiting for {what}:\n{_tail(layout.log(dead[0]))}")
        if time.monotonic() > deadline:
            tail = _tail(layout.log(component))
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}:\n{tail}")
        time.sleep(_POLL_INTERVAL)
    log.info("%s is up", what)


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} does not exist)"
    return f"--- last lines of {path} ---\n" + "\n".join(lines[-_LOG_TAIL_LINES:])


# --- probes -----------------------------------------------------------------------------------------


def _http_status(url: str, context: ssl.SSLContext | None = None, token: str | None = None) -> int | None:
    """HTTP status of a GET, or None if nothing answered."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=_PROBE_TIMEOUT) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):  # URLError is an OSError; ValueError covers a torn-down half response
        return None


def _etcd_healthy(client_port: int) -> bool:
    return _http_status(f"http://127.0.0.1:{client_port}/health") == 200


def _api_get(cluster: Cluster, layout: _Layout, path: str) -> int | None:
    context = ssl.create_default_context(cafile=str(Pki(layout.pki).ca_cert))
    token = _read_token(layout.token_file)
    return _http_status(cluster.server + path, context, token)


def _apiserver_ready(cluster: Cluster, layout: _Layout) -> bool:
    return _api_get(cluster, layout, "/readyz") == 200


def _default_service_account(cluster: Cluster, layout: _Layout) -> bool:
    """Namespaced writes need it (ServiceAccount admission), and it proves the controllers are working."""
    return _api_get(cluster, layout, "/api/v1/namespaces/default/serviceaccounts/default") == 200


# --- stop -------------------------------------------------------------------------------------------


def _alive(proc: _Process) -> bool:
    """Whether the recorded process still runs the recorded binary (a recycled pid does not count)."""
    try:
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
    except OSError:
        return False
    zombie = stat.rpartition(")")[2].split()[0] == "Z"
    return not zombie and cmdline.split(b"\0", 1)[0].decode(errors="replace") == proc.exe


def _stop(layout: _Layout, timeout: float = STOP_TIMEOUT) -> None:
    """Stop the recorded processes in reverse start order, then forget the state.

    One at a time: the apiserver shuts down promptly only while etcd still answers.
    """
    try:
        processes = _processes(json.loads(layout.state_file.read_text()))
    except FileNotFoundError:
        return
    for name in reversed(_COMPONENTS):
        if name in processes:
            _terminate(name, processes[name], timeout)
    layout.state_file.unlink(missing_ok=True)


def _terminate(name: str, proc: _Process, timeout: float) -> None:
    """SIGTERM the process group, SIGKILL it if it outlives ``timeout``."""
    for sig, grace in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not _alive(proc):
            return
        _signal_group(proc, sig)
        deadline = time.monotonic() + grace
        while _alive(proc) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(proc):
            log.warning("%s (pid %d) outlived %s", name, proc.pid, sig.name)
    if _alive(proc):
        raise ClusterError(f"could not stop {name} (pid {proc.pid})")


def _signal_group(proc: _Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pgid, sig)
