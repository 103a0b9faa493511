"""The fuzz run: a local control plane with the CRDs, the real operator as a subprocess, and every
case applied, watched, deleted and classified (tests.fuzz.classification).

Cases go in batches, one namespace each holding cases of all four kinds (a sample's references
name the other kinds' cases of its index, so dependencies link up), a few namespaces at a time:
create them all, wait for each to get a condition (else `stranded`), watch a quiet window for writes
that change neither spec nor status, delete them and wait until they are gone (else `stuck deletion`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from loom import devcluster
from tests.conftest import ROOT
from tests.fuzz import classification as cls
from tests.fuzz.generators import Case, cases
from tests.fuzz.schemas import GROUP, KINDS, VERSION, FuzzKind


@dataclass(frozen=True)
class Settings:
    per_kind: int
    seed: int
    workdir: Path
    batch: int = 25  # cases per kind in one namespace
    parallel: int = 2  # namespaces worked at once
    condition_timeout: float = 60.0
    deletion_timeout: float = 60.0
    settle: float = 2.0
    quiet: float = 10.0
    create_workers: int = 4


@dataclass
class Report:
    table: dict[str, Counter[str]]
    run: Counter[str]
    outcomes: list[cls.Outcome]
    exceptions: list[str]
    seconds: float
    workdir: Path
    moved: Counter[str] = field(default_factory=Counter)

    @property
    def failures(self) -> dict[str, int]:
        return cls.failures(self.table, self.run)

    def render(self) -> str:
        lines = [cls.render(self.table, self.run, [k.kind for k in KINDS]), ""]
        if self.moved:
            lines.append("metadata moved by writes without a change: " +
                         ", ".join(f"{k} x{n}" for k, n in self.moved.most_common(8)))
        lifetime: Counter[str] = Counter()
        for o in self.outcomes:
            lifetime.update(o.lifetime_moved)
        if lifetime:
            lines.append("(info) metadata moved by metadata-only writes over the lifetime: " +
                         ", ".join(f"{k} x{n}" for k, n in lifetime.most_common(8)))
        for line in sorted(set(self.exceptions), key=self.exceptions.index)[:5]:
            lines.append(f"exception: {line}")
        for klass in cls.CASE_FAILURES:
            examples = [o for o in self.outcomes if klass in o.classes or (klass == cls.WRITES and o.writes)]
            for o in examples[:3]:
                lines.append(f"{klass}: {o.kind} {o.name} ({o.origin}, {o.target}) {o.message[:240]!r}")
        lines.append(f"{len(self.outcomes)} cases in {self.seconds:.0f}s; manifests, operator log and report in "
                     f"{self.workdir}")
        return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def control_plane(workdir: Path) -> Iterator[devcluster.Cluster]:
    """A control plane of the run's own, with the CRDs of crds/ installed and Established."""
    state = workdir / "controlplane"
    cluster = devcluster.up(state)
    try:
        kubectl = [str(cluster.bin_dir / "kubectl") if cluster.bin_dir else "kubectl",
                   "--kubeconfig", str(cluster.kubeconfig)]
        subprocess.run([*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")],
                       check=True, capture_output=True)
        subprocess.run([*kubectl, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds")],
                       check=True, capture_output=True)
        yield cluster
    finally:
        if cluster.state_dir is not None:
            devcluster.down(state, purge=True)


class Operator:
    """`loom run --executor local` in a subprocess, watching the run's namespaces, its liveness
    probed throughout."""

    def __init__(self, cluster: devcluster.Cluster, workdir: Path, pattern: str) -> None:
        self.log_path = workdir / "operator.log"
        self.liveness = f"http://127.0.0.1:{free_port()}/healthz"
        env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "LOOM_STATE_DIR": str(workdir / "operator-state"),
            "LOOM_METRICS_PORT": str(free_port()),
            "LOOM_METRICS_ADDRESS": "127.0.0.1",
            "LOOM_DELETION_ATTEMPTS": "2",
            "LOOM_DEPENDENCY_RETRY_SECONDS": "1",
            "LOOM_FEAST_REDIS": "127.0.0.1:9",  # never a Redis someone else is running
        }
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "loom.cli", "run", "--executor", "local", "--liveness", self.liveness,
             "--namespace", pattern],
            cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.healthz_failures = 0
        self.probes = 0
        self._stop = threading.Event()
        self._probe_thread = threading.Thread(target=self._probe_forever, daemon=True)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.liveness, timeout=10) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the operator exited with {self.process.returncode}; see {self.log_path}")
            if self.healthy():
                self._probe_thread.start()
                return
            time.sleep(1)
        raise RuntimeError(f"the operator's liveness endpoint never answered; see {self.log_path}")

    def _probe_forever(self) -> None:
        while not self._stop.wait(2.0):
            if self.process.poll() is not None:
                return
            self.probes += 1
            if not self.healthy():
                self.healthz_failures += 1

    @property
    def exited(self) -> bool:
        return self.process.poll() is not None

    def stop(self) -> None:
        self._stop.set()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class NamespaceWatch:
    """Every event of one kind in one namespace, reduced to `Seen`s per object name."""

    def __init__(self, api: client.CustomObjectsApi, kind: FuzzKind, namespace: str) -> None:
        self.api, self.kind, self.namespace = api, kind, namespace
        self.events: dict[str, list[cls.Seen]] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        listed = api.list_namespaced_custom_object(GROUP, VERSION, namespace, kind.plural)
        self._version = listed["metadata"]["resourceVersion"]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch().stream(
                self.api.list_namespaced_custom_object, GROUP, VERSION, self.namespace, self.kind.plural,
                resource_version=self._version, timeout_seconds=5, allow_watch_bookmarks=True)
            try:
                for event in stream:
                    obj = event["object"]
                    self._version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "BOOKMARK":
                        continue
                    seen = cls.Seen.of(time.monotonic(), event["type"], obj)
                    with self.lock:
                        self.events.setdefault(obj["metadata"]["name"], []).append(seen)
            except ApiException as error:
                if error.status != 410:
                    time.sleep(0.5)
                    continue
                # Too old to resume: start again from now. What happened in between is lost, so the
                # few objects concerned may show up as stranded or stuck; this has not been seen here.
                self._version = self.api.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, self.kind.plural)["metadata"]["resourceVersion"]
            except Exception:  # a dropped connection (urllib3 errors): resume where the stream stopped
                time.sleep(0.5)

    def of(self, name: str) -> list[cls.Seen]:
        with self.lock:
            return list(self.events.get(name, []))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


@dataclass
class _Live:
    case: Case
    outcome: cls.Outcome
    created: float


class Fuzzer:
    def __init__(self, settings: Settings, api_client: client.ApiClient, prefix: str) -> None:
        self.settings = settings
        self.api = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.prefix = prefix

    def batch(self, number: int, batch: list[Case]) -> list[cls.Outcome]:
        """Cases of every kind in one namespace: created together, watched, deleted together."""
        s = self.settings
        namespace = f"{self.prefix}-{number:03d}"
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        watches = {kind.kind: NamespaceWatch(self.api, kind, namespace) for kind in KINDS}

        def events(c: _Live) -> list[cls.Seen]:
            return watches[c.case.kind.kind].of(c.case.name)

        try:
            with ThreadPoolExecutor(s.create_workers) as pool:
                created = list(pool.map(lambda case: self._create(namespace, case), batch))
            live = [c for c in created if c.outcome.verdict == cls.ACCEPTED]
            self._until(lambda: all(cls.first_condition(events(c)) or
                                    time.monotonic() > c.created + s.condition_timeout for c in live))
            for c in live:
                at = cls.first_condition(events(c))
                c.outcome.condition_after = None if at is None else round(at - c.created, 1)
                c.outcome.stranded = at is None
            time.sleep(s.settle)
            quiet_start = time.monotonic()
            time.sleep(s.quiet)
            quiet_end = time.monotonic()
            for c in live:
                quiet = cls.quiet_window(events(c), quiet_start, quiet_end)
                c.outcome.writes, c.outcome.moved = quiet.writes, quiet.moved
                c.outcome.status_changes, c.outcome.restated = quiet.status_changes, quiet.restated
            deleted_at = time.monotonic()
            for c in live:
                lifetime = cls.quiet_window(events(c), 0, deleted_at)
                c.outcome.lifetime_writes, c.outcome.lifetime_moved = lifetime.writes, lifetime.moved
            with ThreadPoolExecutor(s.create_workers) as pool:
                list(pool.map(lambda c: self._delete(namespace, c), live))
            self._until(lambda: all(self._gone(events(c)) for c in live), timeout=s.deletion_timeout)
            for c in live:
                gone = next((e.at for e in events(c) if e.type == "DELETED"), None)
                c.outcome.deleted_after = None if gone is None else round(gone - deleted_at, 1)
                c.outcome.stuck = gone is None and self._still_there(namespace, c)
        finally:
            for w in watches.values():
                w.stop()
            self.core.delete_namespace(namespace)
        for c in created:
            if c.outcome.verdict != cls.ACCEPTED or any(k in cls.CASE_FAILURES for k in c.outcome.classes):
                self._keep(c.case)
        return [c.outcome for c in created]

    @staticmethod
    def _gone(events: list[cls.Seen]) -> bool:
        return any(e.type == "DELETED" for e in events)

    @staticmethod
    def _until(done: Any, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while not done() and time.monotonic() < deadline:
            time.sleep(0.5)

    def _create(self, namespace: str, case: Case) -> _Live:
        outcome = cls.Outcome(case.kind.kind, case.name, case.origin, case.target, cls.ACCEPTED)
        started = time.monotonic()
        try:
            self.api.create_namespaced_custom_object(GROUP, VERSION, namespace, case.kind.plural, case.manifest,
                                                     field_validation="Strict")
        except ApiException as error:
            outcome.verdict, outcome.message = _rejection(error, case.target)
        except Exception as error:  # the client could not even send it: not the API server's answer
            outcome.verdict, outcome.message = cls.API_ERROR, f"{type(error).__name__}: {error}"
        return _Live(case, outcome, started)

    def _delete(self, namespace: str, c: _Live) -> None:
        try:
            self.api.delete_namespaced_custom_object(GROUP, VERSION, namespace, c.case.kind.plural, c.case.name)
        except ApiException as error:
            if error.status != 404:
                c.outcome.message = f"delete: {error.status} {error.reason}"

    def _still_there(self, namespace: str, c: _Live) -> bool:
        """Whether an object the watch saw no deletion of is really still there; if so, what holds it."""
        try:
            obj = self.api.get_namespaced_custom_object(GROUP, VERSION, namespace, c.case.kind.plural, c.case.name)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        meta = obj["metadata"]
        c.outcome.message = (f"deletionTimestamp={meta.get('deletionTimestamp')} finalizers={meta.get('finalizers')} "
                             f"annotations={sorted(meta.get('annotations') or {})} "
                             f"conditions={[(x.get('type'), x.get('reason')) for x in obj.get('status', {}).get('conditions', [])]}")
        return True

    def _keep(self, case: Case) -> None:
        """The manifest of a case worth a look, for reproduction."""
        folder = self.settings.workdir / "cases"
        folder.mkdir(exist_ok=True)
        (folder / f"{case.kind.short}-{case.index:05d}.json").write_text(json.dumps(case.manifest, ensure_ascii=False))


def _rejection(error: ApiException, target: str | None) -> tuple[str, str]:
    """The class of an API error and its message: a validation answer (400, 413, 422) is a
    rejection, anything else an API error."""
    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        body = {}
    message = str(body.get("message") or error.reason or "")
    if error.status not in (400, 413, 422):
        return cls.API_ERROR, f"{error.status}: {message}"
    causes = (body.get("details") or {}).get("causes") or []
    return cls.classify_rejection(target, cls.named_fields(message, causes)), message


def run(settings: Settings) -> Report:
    """Generate, start everything, fuzz every kind at once, tear down, and report."""
    started = time.monotonic()
    settings.workdir.mkdir(parents=True, exist_ok=True)
    sandbox = settings.workdir / "sandbox"
    all_cases = {kind: cases(kind, settings.per_kind, settings.seed, sandbox) for kind in KINDS}
    prefix = f"fz{settings.seed}-{uuid.uuid4().hex[:4]}"
    outcomes: list[cls.Outcome] = []
    with control_plane(settings.workdir) as cluster:
        operator = Operator(cluster, settings.workdir, f"{prefix}-*")
        try:
            operator.wait_ready()
            api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
            api_client.configuration.connection_pool_maxsize = 32
            api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] = 32
            fuzzer = Fuzzer(settings, api_client, prefix)
            size = settings.batch
            batches = [[c for kind in KINDS for c in all_cases[kind][start:start + size]]
                       for start in range(0, settings.per_kind, size)]
            with ThreadPoolExecutor(settings.parallel) as pool:
                for done in pool.map(fuzzer.batch, range(len(batches)), batches):
                    outcomes.extend(done)
        finally:
            exited = operator.exited
            operator.stop()
    log = operator.log_path.read_text(errors="replace")
    run_counts: Counter[str] = Counter({cls.TRACEBACKS: log.count("Traceback (most recent call last)"),
                                         cls.HEALTHZ: operator.healthz_failures, cls.EXITED: int(exited)})
    moved: Counter[str] = Counter()
    for o in outcomes:
        moved.update(o.moved)
    report = Report(cls.counts(outcomes), run_counts, outcomes, cls.exception_lines(log),
                    time.monotonic() - started, settings.workdir, moved)
    rows = [o.__dict__ | {"moved": dict(o.moved), "lifetime_moved": dict(o.lifetime_moved)} for o in outcomes]
    (settings.workdir / "report.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1))
    return report


def default_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="loom-fuzz-"))
