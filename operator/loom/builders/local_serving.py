"""An InferenceService's layout -> the local executor's workloads (pure; `services/inferenceservice/
local_serving.py` submits them). The embedded default's stand-in for Seldon Core 2: one MLServer
process per revision (`components/serve`, Loom's recommender runtime over the version's downloaded
files) and one router process (`components/router`) in front of them, which splits the requests by
weight, mirrors, and exposes per-revision metrics for the canary analysis.

Every port is left to the executor (0: assigned when the run is created, kept across restarts), and
the router reaches them through its table, a workload file: a new split only rewrites that file (the
executor updates it in place and the router reloads it), so the router never restarts for a step.
Every revision serves under the InferenceService's name, as with KServe, so a client's path
(/v2/models/<name>/infer) stays the same through promotions; the answer names the version."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loom.api.inferenceservice import Revision
from loom.builders.labels import owned_by
from loom.domain.rollout import Split
from loom.domain.serving import Serving
from loom.domain.workloads import MAX_NAME, PythonEnv, Service, Workload, dns_name

OWNER_KIND = "InferenceService"
SERVE_COMPONENT = "serve"
ROUTER_COMPONENT = "router"
IMPLEMENTATION = "serve.runtime.Recommender"
REVISION_LABEL = "loom.dev/revision"
ROLE_LABEL = "loom.dev/serving-role"
# MLServer's own settings variables: how the executor's ports reach it.
HTTP_PORT = "MLSERVER_HTTP_PORT"
GRPC_PORT = "MLSERVER_GRPC_PORT"
METRICS_PORT = "MLSERVER_METRICS_PORT"
ROUTER_PORT = "LOOM_ROUTER_PORT"
ROUTER_METRICS_PORT = "LOOM_ROUTER_METRICS_PORT"
READY_PATH = "/v2/health/ready"
TABLE_FILE = "routes.json"
SETTINGS_FILE = "model-settings.json"
# A model server loads its version in seconds; a crash loop backs off from 2 s to a minute.
BACKOFF = {"backoff_base_seconds": 2.0, "backoff_cap_seconds": 60.0}


def router_name(name: str) -> str:
    return dns_name(name, "router", MAX_NAME)


def _labels(serving: Serving, role: str, revision: Revision | None = None) -> dict[str, str]:
    labels = {**owned_by(OWNER_KIND, serving.name), ROLE_LABEL: role}
    if revision is not None:
        labels[REVISION_LABEL] = revision.name
    return labels


def model_settings(serving: Serving, revision: Revision, files: Path) -> dict[str, Any]:
    """MLServer's model settings of one revision: the recommender over `files`, the version it answers
    with, and the extra parameters (where the online features are)."""
    parameters: dict[str, Any] = {"uri": str(files), "version": revision.model_version}
    if serving.extra:
        parameters["extra"] = dict(serving.extra)
    return {"name": serving.name, "implementation": IMPLEMENTATION, "parameters": parameters}


def revision_workload(serving: Serving, revision: Revision, files: Path) -> Workload:
    """The MLServer process of one revision, on the version's files downloaded to `files`."""
    settings = json.dumps(model_settings(serving, revision, files), indent=1, sort_keys=True)
    return Workload(
        name=revision.name,
        namespace=serving.namespace,
        component=SERVE_COMPONENT,
        python=PythonEnv.SERVE,
        owner=serving.owner,
        labels=_labels(serving, "model", revision),
        # One process serving in its event loop: no inference worker to hand requests to (lower latency
        # on two cores; BLAS and onnxruntime use one thread either way).
        env={"MLSERVER_HOST": "127.0.0.1", "MLSERVER_PARALLEL_WORKERS": "0", "OMP_NUM_THREADS": "1"},
        secret_env=serving.secret_env,
        files={SETTINGS_FILE: settings},
        service=Service(ports={HTTP_PORT: 0, GRPC_PORT: 0, METRICS_PORT: 0}, ready_port=HTTP_PORT,
                        ready_path=READY_PATH, **BACKOFF),
    )


def routing_table(split: Split, upstreams: Mapping[str, int]) -> dict[str, Any]:
    """The router's table (components/router/routing_table.py): `upstreams` maps each revision of the
    split to its model server's HTTP port."""
    revisions = [{"name": split.stable, "upstream": f"127.0.0.1:{upstreams[split.stable]}",
                  "weight": split.stable_weight}]
    if split.canary is not None:
        revisions.append({"name": split.canary, "upstream": f"127.0.0.1:{upstreams[split.canary]}",
                          "weight": split.canary_weight})
    table: dict[str, Any] = {"revisions": revisions}
    if split.canary is not None and split.mirror:
        table["mirror"] = {"revision": split.canary, "percent": split.mirror}
    return table


def router_workload(serving: Serving, upstreams: Mapping[str, int]) -> Workload:
    """The router in front of the revisions; ready once the stable revision answers through it."""
    table = json.dumps(routing_table(serving.split, upstreams), indent=1, sort_keys=True)
    return Workload(
        name=router_name(serving.name),
        namespace=serving.namespace,
        component=ROUTER_COMPONENT,
        python=PythonEnv.SERVE,
        owner=serving.owner,
        labels=_labels(serving, "router"),
        args=("--table", TABLE_FILE, "--host", "127.0.0.1", "--port", f"$({ROUTER_PORT})",
              "--metrics-port", f"$({ROUTER_METRICS_PORT})"),
        files={TABLE_FILE: table},
        service=Service(ports={ROUTER_PORT: 0, ROUTER_METRICS_PORT: 0}, ready_port=ROUTER_PORT,
                        ready_path=READY_PATH, **BACKOFF),
    )
