"""The embedded default's serving target: the local executor's MLServer process per revision and
router in front of them (`builders/local_serving.py`), Loom's stand-in for Seldon Core 2 on one
machine. A revision's files are downloaded from MLflow once (`models_dir/<model>/<version>`); the
router's metrics port is announced to the local Prometheus as a file_sd target labelled with the
namespace and the InferenceService, as a PodMonitor would select its pods. A retired revision's server
is stopped only once the router's table in force no longer has it (the router reloads its table file
within a second), so no request is sent to a server that is going away."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loom.api.inferenceservice import Revision, Target
from loom.builders.canary_queries import MetricSource
from loom.builders.labels import owned_by
from loom.builders.local_serving import (
    HTTP_PORT,
    OWNER_KIND,
    ROUTER_METRICS_PORT,
    ROUTER_PORT,
    revision_workload,
    router_name,
    router_workload,
)
from loom.domain.serving import Serving
from loom.domain.workloads import Phase, WorkloadStatus
from loom.drivers import mlflow_tracking
from loom.drivers.mlflow_tracking import ResolvedModel
from loom.drivers.prometheus import ScrapeTarget, write_targets
from loom.drivers.router import routed as router_routes
from loom.executors.base import Executor
from loom.services.inferenceservice.backend import Applied, Served


def _newest(runs: list[WorkloadStatus]) -> WorkloadStatus | None:
    return runs[0] if runs else None


def targets_name(namespace: str, name: str) -> str:
    """The file_sd file of one InferenceService's router (namespaces and names have no `_`)."""
    return f"{namespace}_{name}"


class LocalServing:
    def __init__(self, executor: Executor, tracking_uri: str, models_dir: Path, targets_dir: Path | None) -> None:
        self.executor = executor
        self.tracking_uri = tracking_uri
        self.models_dir = models_dir
        self.targets_dir = targets_dir

    def metric_source(self, target: Target) -> MetricSource:
        return MetricSource.ROUTER  # whatever the cluster target, locally the router counts the requests

    def observe(self, namespace: str, name: str, target: Target, revisions: Sequence[Revision]) -> Served:
        """A revision is ready while its server answers and the router (ready itself) can send to it."""
        router = _newest(self.executor.runs(namespace, router_name(name)))
        url = None
        if router is not None and ROUTER_PORT in router.ports:
            url = f"http://127.0.0.1:{router.ports[ROUTER_PORT]}"
        if router is None or router.phase != Phase.RUNNING:
            said = f"the router is not running: {router.message}" if router is not None and router.message else ""
            return Served(frozenset(), url, why={r.name: said for r in revisions} if said else {})
        ready, why = set(), {}
        for revision in revisions:
            run = _newest(self.executor.runs(namespace, revision.name))
            if run is not None and run.phase == Phase.RUNNING:
                ready.add(revision.name)
            elif run is not None and run.message:
                why[revision.name] = run.message
        return Served(frozenset(ready), url, why=why)

    def apply(self, serving: Serving, target: Target) -> Applied:
        """Each revision's server (its files first), the router with the split, the scrape target; then
        every other workload of this InferenceService goes (a retired or rolled-back revision)."""
        ns = serving.namespace
        upstreams: dict[str, int] = {}
        revisions = [serving.stable] if serving.canary is None else [serving.stable, serving.canary]
        for revision in revisions:
            files = mlflow_tracking.download(self.tracking_uri, ResolvedModel(
                revision.model_name, revision.model_version, revision.model_uri, None, ""), self.models_dir)
            self.executor.submit(revision_workload(serving, revision, files))
            upstreams[revision.name] = self._port(ns, revision.name, HTTP_PORT)
        router = router_workload(serving, upstreams)
        self.executor.submit(router)
        port = self._port(ns, router.name, ROUTER_PORT)
        if self.targets_dir is not None:
            metrics = self._port(ns, router.name, ROUTER_METRICS_PORT)
            write_targets(self.targets_dir, targets_name(ns, serving.name), [ScrapeTarget(
                f"127.0.0.1:{metrics}", {"namespace": ns, "inferenceservice": serving.name})])
        wanted = {router.name, *upstreams}
        stale = sorted(self.executor.names(ns, owned_by(OWNER_KIND, serving.name)) - wanted)
        in_force = router_routes(self._port(ns, router.name, ROUTER_METRICS_PORT)) if stale else None
        draining = [name for name in stale if in_force is not None and name in in_force]
        for name in stale:
            if name not in draining:
                self.executor.delete(ns, name)
        return Applied(f"http://127.0.0.1:{port}", draining=bool(draining))

    def remove(self, namespace: str, name: str) -> None:
        """After the InferenceService is deleted: its scrape target (its workloads go by owner label)."""
        if self.targets_dir is not None:
            write_targets(self.targets_dir, targets_name(namespace, name), [])

    def _port(self, namespace: str, workload: str, port: str) -> int:
        run = _newest(self.executor.runs(namespace, workload))
        if run is None or port not in run.ports:
            raise LookupError(f"the executor reports no {port} for {namespace}/{workload}")
        return run.ports[port]
