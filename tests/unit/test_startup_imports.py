"""What the operator process loads before it has seen a single object: the CLI, the handlers, a
registry for each executor, both executors' modules and the services' runtime, with the operator's
`lean_process` in place. No Kubernetes client library: Loom has its own REST client, and Kopf uses
theirs only because they are installed. The libraries of the driven systems (Iceberg,
Arrow, Feast, MLflow, torch) arrive with the first object that needs them, so an operator with only
TrainingJobs and InferenceServices never holds them; a DataLake on a local warehouse brings
pyiceberg and its SQL catalog but no Arrow; and Feast and the MLflow library load in the driver
helper, never in the operator, Feast without torch. A fresh interpreter each, so nothing imported by other tests counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each costs tens of MiB (Feast several hundred with what it pulls in); none is needed at start-up.
HEAVY = ("pyiceberg", "pyarrow", "pandas", "numpy", "feast", "sqlalchemy", "mlflow", "torch", "duckdb", "pyspark")
# `kubernetes.client` alone is ~60 MiB; with lean_process an import of any of them raises ImportError.
KUBERNETES_CLIENTS = ("kubernetes", "kubernetes_asyncio", "pykube")
# Peak RSS measured at 65 MiB without the kubernetes client (102 MiB with it); the same
# start-up loading pyiceberg, pyarrow and numpy peaked at 198 MiB.
RSS_LIMIT_MIB = 85

REPORT = """
modules = sorted(name for name, module in sys.modules.items() if module is not None)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"modules": modules, "hwm_kib": int(hwm.split()[1])}))
"""
STARTUP = """
import json, sys
from loom import cli

cli.lean_process()
from loom.config import ExecutorKind, OperatorConfig
from loom.drivers.kube_http import Credential, KubeHttp, StaticCredential
from loom.handlers import build_registry
from loom.executors.kubernetes import KubernetesExecutor
import loom.executors.local, loom.services.runtime

cli.parser()
for executor in ExecutorKind:
    build_registry(OperatorConfig(executor=executor))
KubernetesExecutor({}, KubeHttp("https://127.0.0.1:6443", StaticCredential(Credential("token"))))
""" + REPORT
# A DataLake's first reconcile: its two tables created in a local warehouse, then changed.
DATALAKE_STEPS = """
import json, sys, tempfile
from datetime import datetime, timezone
from pathlib import Path

from loom.config import OperatorConfig
from loom.services import datalake
from loom.services.context import ReconcileContext
from tests.support.executors import FakeExecutor
from tests.support.kube import FakeKube
from tests.support.specs import sqlite_lake

kube = FakeKube()
kube.put_secret("ml", "lake-credentials", {"s3.secret-access-key": "x"})
ctx = ReconcileContext("ml", "movielens", "uid-1", 1, kube, OperatorConfig(), FakeExecutor(),
                       datetime(2025, 3, 1, tzinfo=timezone.utc), {}, "loom.dev/v1alpha1", "DataLake")
spec = sqlite_lake(Path(tempfile.mkdtemp()))
assert datalake.reconcile(spec, ctx).ready.status is not False
evolved = spec.model_copy(update={"tables": [t.model_copy(update={"properties": {"k": "v"}}) for t in spec.tables]})
assert datalake.reconcile(evolved, ctx).ready.status is not False
"""
DATALAKE_RECONCILE = DATALAKE_STEPS + REPORT


# With the driver helper started as the operator starts it: a DataLake's first reconcile, a FeatureSet's
# first read of the Feast registry and a TrainingJob's of a SQLite MLflow store. The libraries load in
# the helper, which reports what it holds.
HELPER_CALLS = """
import json, sys, tempfile
from pathlib import Path

from loom.cli import lean_process

lean_process()
from loom.drivers import feast_registry, host, mlflow_tracking
from loom.drivers.feast_store import OnlineKind, StoreSettings
from tests.support import hosted

host.start(idle_seconds=60)
""" + DATALAKE_STEPS + """
d = Path(tempfile.mkdtemp())
settings = StoreSettings("p", f"sqlite:///{d}/registry.db", OnlineKind.SQLITE, str(d / "online.db"))
assert feast_registry.registered_view(settings, "v") is None
mlflow_tracking.open_store(f"sqlite:///{d}/mlflow.db")
print(json.dumps(hosted.packages()))
""" + REPORT


def loads(script: str) -> tuple[set[str], float]:
    """The top-level packages a fresh interpreter holds after `script`, and its peak RSS in MiB."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr  # an ImportError names a module lean_process keeps out
    result = json.loads(done.stdout.splitlines()[-1])
    return {name.split(".")[0] for name in result["modules"]}, result["hwm_kib"] / 1024


def test_startup_loads_no_library_of_the_driven_systems() -> None:
    packages, hwm_mib = loads(STARTUP)
    heavy = sorted(packages & set(HEAVY))
    assert heavy == [], f"imported at start-up: {heavy}; see `python -X importtime -c 'import loom.handlers'`"
    assert not packages & set(KUBERNETES_CLIENTS)
    print(f"operator start-up peak RSS {hwm_mib:.1f} MiB (limit {RSS_LIMIT_MIB})")
    assert hwm_mib < RSS_LIMIT_MIB


def test_a_datalake_on_a_local_warehouse_loads_no_arrow() -> None:
    """pyiceberg picks pyarrow's FileIO when it can: pyarrow, numpy and pandas for metadata files."""
    packages, hwm_mib = loads(DATALAKE_RECONCILE)
    print(f"operator with a DataLake peak RSS {hwm_mib:.1f} MiB")
    assert "pyiceberg" in packages
    assert not packages & {"pyarrow", "numpy", "pandas"}


def test_catalogs_feast_and_mlflow_load_in_the_helper_not_the_operator_and_feast_without_torch() -> None:
    """Feast imports torch whenever it can (`feast.torch_wrapper`): 740 MiB instead of 210 MiB."""
    done = subprocess.run([sys.executable, "-c", HELPER_CALLS], capture_output=True, text=True, cwd=ROOT,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    *_, helper_line, operator_line = done.stdout.splitlines()
    helper, operator = set(json.loads(helper_line)), json.loads(operator_line)
    packages = {name.split(".")[0] for name in operator["modules"]}
    print(f"operator after the helper's calls: peak RSS {operator['hwm_kib'] / 1024:.1f} MiB")
    assert not packages & {"feast", "mlflow", "sqlalchemy", "pandas", "pyarrow", "numpy", "torch", "duckdb"}
    assert {"feast", "mlflow", "sqlalchemy"} <= helper
    assert "torch" not in helper
